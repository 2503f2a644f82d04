"""The media plane: RTP streams on UDP ports from a configured range, and their shared clocks.

The call controller asks the plane for a stream per party (``open_stream``)
and puts its advertised address and port in the SDP. The plane owns what
streams share: the port range, the 20 ms ``Pacer`` that sends every
stream's prompts and recordings from one timer, and a once-a-second
housekeeping timer for dead-media checks and RTCP reports, so a plane with
hundreds of calls runs two reactor timers, not hundreds.

Ports are even, RTCP on the next odd port (RFC 3550 §11). They are handed
out round-robin from the last one used, so a port just released is the
last to be reused and stray packets of an ended call do not reach the next.
"""

from __future__ import annotations

import logging
import random
from typing import Any

from twisted.internet.error import CannotListenError

from media.pacer import Pacer
from media.stream import MediaError, RtpStream

__all__ = ["MediaError", "MediaPlane"]

log = logging.getLogger(__name__)

RTCP_INTERVAL = 5.0
"""Seconds between our RTCP reports on average (RFC 3550 §6.2's minimum)."""
HOUSEKEEPING = 1.0
"""Seconds between dead-media checks and RTCP turns."""


class MediaPlane:
    """Opens RTP streams on ``bind_host``, advertised in SDP as ``advertise``."""

    def __init__(
        self,
        reactor: Any,
        bind_host: str,
        advertise: str,
        ports: tuple[int, int],
        dead_media: float = 30.0,
        rng: random.Random | None = None,
    ) -> None:
        low, high = ports
        low += low % 2
        if low + 1 > high:
            raise MediaError(f"the RTP port range {ports[0]}-{ports[1]} holds no even/odd pair")
        self.reactor = reactor
        self.bind_host = bind_host
        self.advertise = advertise
        self.dead_media = dead_media
        self.rng = rng if rng is not None else random.SystemRandom()
        self.cname = f"vms@{advertise}"
        self.pacer = Pacer(reactor)
        self._ports = range(low, high, 2)
        self._cursor = 0
        self._streams: dict[int, RtpStream] = {}
        self._housekeeping: Any = None

    @property
    def streams(self) -> int:
        """Streams open now."""
        return len(self._streams)

    def open_stream(self) -> RtpStream:
        """A stream on the next free even port (RTCP on port+1); MediaError when none is left."""
        count = len(self._ports)
        for step in range(count):
            port = self._ports[(self._cursor + step) % count]
            if port in self._streams:
                continue
            stream = RtpStream(self, self.advertise, port)
            try:
                rtp = self.reactor.listenUDP(port, stream.rtp_protocol, interface=self.bind_host)
            except CannotListenError:
                continue
            try:
                rtcp = self.reactor.listenUDP(
                    port + 1, stream.rtcp_protocol, interface=self.bind_host
                )
            except CannotListenError:
                rtp.stopListening()
                continue
            stream.attach(rtp, rtcp)
            self._streams[port] = stream
            self._cursor = (self._cursor + step + 1) % count
            if self._housekeeping is None:
                self._housekeeping = self.reactor.callLater(HOUSEKEEPING, self._tick)
            return stream
        raise MediaError(
            f"no free RTP port pair in {self._ports.start}-{self._ports[-1] + 1} "
            f"({len(self._streams)} streams open)"
        )

    def close(self) -> None:
        """Close every stream (each says BYE in RTCP)."""
        for stream in list(self._streams.values()):
            stream.close()

    def forget(self, stream: RtpStream) -> None:
        """A stream closed: its port may be reused; the timers stop with the last stream."""
        if self._streams.get(stream.port) is stream:
            del self._streams[stream.port]
        if not self._streams and self._housekeeping is not None:
            self._housekeeping.cancel()
            self._housekeeping = None

    def report_interval(self) -> float:
        """A randomised RTCP interval (RFC 3550 §6.3.1: 0.5 to 1.5 times the mean)."""
        return RTCP_INTERVAL * (0.5 + self.rng.random())

    def _tick(self) -> None:
        self._housekeeping = None
        now = self.reactor.seconds()
        for stream in list(self._streams.values()):
            if stream.closed:
                continue
            try:
                stream.housekeeping(now)
            except Exception:
                # An on_dead that fails must not stop the checks of every other call.
                log.exception("media housekeeping failed for %r", stream)
        self._housekeeping = (
            self.reactor.callLater(HOUSEKEEPING, self._tick) if self._streams else None
        )
