"""A reactor for media plane tests: ``task.Clock`` time plus UDP ports that keep what they send."""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.error import CannotListenError
from twisted.internet.task import Clock

from media.plane import MediaPlane
from media.rtp import RtpPacket, build_rtp, parse_rtp

HOST = "192.0.2.10"
PARTY = ("198.51.100.7", 40000)


class FakePort:
    """A bound UDP port: keeps every datagram written, delivers datagrams we inject."""

    def __init__(self, reactor: FakeReactor, port: int, protocol: Any) -> None:
        self.reactor = reactor
        self.port = port
        self.protocol = protocol
        self.sent: list[tuple[bytes, tuple[str, int]]] = []
        self.open = True

    @property
    def socket(self) -> FakePort:
        """Streams send on the port's socket directly, as on a real Twisted UDP port."""
        return self

    def sendto(self, data: bytes, addr: tuple[str, int]) -> int:
        self.sent.append((data, addr))
        return len(data)

    def stopListening(self) -> None:
        self.open = False
        del self.reactor.ports[self.port]

    def deliver(self, data: bytes, addr: tuple[str, int] = PARTY) -> None:
        self.protocol.datagramReceived(data, addr)

    def packets(self) -> list[RtpPacket]:
        parsed = [parse_rtp(data) for data, _ in self.sent]
        assert all(p is not None for p in parsed)
        return [p for p in parsed if p is not None]


class FakeReactor(Clock):
    """Clock plus ``listenUDP``; ports in ``busy`` refuse to bind, as if someone else held them."""

    def __init__(self) -> None:
        super().__init__()
        self.ports: dict[int, FakePort] = {}
        self.busy: set[int] = set()

    def listenUDP(self, port: int, protocol: Any, interface: str = "") -> FakePort:
        if port in self.busy or port in self.ports:
            raise CannotListenError(interface, port, OSError("in use"))
        bound = FakePort(self, port, protocol)
        self.ports[port] = bound
        protocol.makeConnection(bound)
        return bound


def make_plane(
    reactor: FakeReactor, ports: tuple[int, int] = (20000, 20099), **kw: Any
) -> MediaPlane:
    return MediaPlane(reactor, "0.0.0.0", HOST, ports, rng=random.Random(7), **kw)


def rtp(
    sequence: int,
    timestamp: int,
    payload: bytes = b"\xff" * 160,
    pt: int = 0,
    marker: bool = False,
    ssrc: int = 0x1234,
) -> bytes:
    return build_rtp(pt, marker, sequence % 65536, timestamp % (1 << 32), ssrc, payload)
