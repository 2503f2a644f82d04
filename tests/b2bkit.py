"""A B2BUA on a fake clock between a scripted caller and a scripted trunk (no sockets)."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from twisted.internet.task import Clock

from engine.calls.b2bua import B2bua
from engine.calls.context import CallContext, CallSettings
from engine.router import Router
from engine.sip.headers import parse_address
from engine.sip.message import Request, Response
from engine.sip.parser import parse_datagram
from engine.sip.stack import SipStack
from engine.state.memory import MemoryState
from routing_trees.treeset import load_directory
from sipkit import FakeTransport

CALLER_ADDR = ("127.0.0.1", 5070)
TRUNK_ADDR = ("127.0.0.1", 5080)
ENGINE = ("127.0.0.1", 5060)
SDP_OFFER = (
    b"v=0\r\no=caller 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\nm=audio 6000 RTP/AVP 0\r\n"
)
SDP_ANSWER = (
    b"v=0\r\no=callee 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\n"
    b"t=0 0\r\nm=audio 7000 RTP/AVP 0\r\n"
)
# 2026-11-18 is a Wednesday; 10:00 in Brussels is 09:00 UTC.
WEDNESDAY_10H = 1795424400.0


class Records:
    """Call detail records kept in memory, as the store would get them."""

    def __init__(self) -> None:
        self.started: list[Any] = []
        self.ended: list[Any] = []

    def leg_started(self, record: Any) -> None:
        self.started.append(record)

    def leg_updated(self, record: Any) -> None:
        pass

    def leg_ended(self, record: Any) -> None:
        self.ended.append(record)

    def by_leg(self) -> dict[int, Any]:
        return {r.leg: r for r in self.ended}


class Sites:
    def __init__(self) -> None:
        self.down: dict[str, str] = {}

    def down_site_for(self, number: str) -> str | None:
        return next((site for prefix, site in self.down.items() if number.startswith(prefix)), None)


class Harness:
    """Feeds the engine what the caller and the trunk send, and keeps what it sends them."""

    def __init__(self, trees: Path, **settings: Any) -> None:
        self.clock = Clock()
        self.clock.advance(WEDNESDAY_10H)
        self.caller = FakeTransport()
        self.trunk = FakeTransport()
        self.records = Records()
        self.sites = Sites()
        self.state = MemoryState(self.clock)
        self.router = router = Router(load_directory(trees), mode_of=lambda _c: "normal")
        self.stack = SipStack(self.clock, None)  # type: ignore[arg-type]
        self.ctx = CallContext(
            stack=self.stack, transport=self.trunk, local=ENGINE, trunk=TRUNK_ADDR,
            trunk_name="127.0.0.1:5080", settings=CallSettings(**settings), state=self.state,
            records=self.records, sites=self.sites,
        )  # fmt: skip
        self.b2bua = B2bua(self.ctx, router, rng=random.Random(3))
        self.stack.tu = self.b2bua
        self.seen_caller = 0
        self.seen_trunk = 0
        self.cseq = 1

    # -- what the engine sent -----------------------------------------------------

    def _new(self, transport: FakeTransport, attr: str) -> list[Request | Response]:
        seen = getattr(self, attr)
        fresh = transport.sent[seen:]
        setattr(self, attr, len(transport.sent))
        return [parse_datagram(data) for data, _ in fresh]

    def to_caller(self) -> list[Request | Response]:
        return self._new(self.caller, "seen_caller")

    def to_trunk(self) -> list[Request | Response]:
        return self._new(self.trunk, "seen_trunk")

    def statuses_to_caller(self) -> list[int]:
        return [m.status for m in self.to_caller() if isinstance(m, Response)]

    # -- what the caller sends ------------------------------------------------------

    def caller_sends(self, data: bytes) -> None:
        self.stack.receive_datagram(data, self.caller, CALLER_ADDR)

    def invite(
        self, called: str = "+3225551234", caller: str = "+3226001122", extra: str = "",
        body: bytes = SDP_OFFER, branch: str = "z9hG4bK-c1",
    ) -> bytes:  # fmt: skip
        self.branch = branch
        data = (
            f"INVITE sip:{called}@127.0.0.1:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch}\r\n"
            f"Max-Forwards: 70\r\n"
            f'From: "Caller" <sip:{caller}@127.0.0.1:5070>;tag=caller-tag\r\n'
            f"To: <sip:{called}@127.0.0.1:5060>\r\n"
            f"Call-ID: call-{branch}@caller\r\n"
            f"CSeq: 1 INVITE\r\n"
            f"Contact: <sip:caller@127.0.0.1:5070>\r\n"
            f"{extra}"
            f"Content-Type: application/sdp\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        self.invite_bytes = data
        self.called = called
        return data

    def caller_in_dialog(self, method: str, to_tag: str, body: bytes = b"",
                         branch: str | None = None, cseq: int | None = None) -> bytes:  # fmt: skip
        if cseq is None:
            self.cseq += 1
            cseq = self.cseq
        data = (
            f"{method} sip:caller-target@127.0.0.1:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5070;branch={branch or f'z9hG4bK-{method}-{cseq}'}\r\n"
            f"Max-Forwards: 70\r\n"
            f'From: "Caller" <sip:+3226001122@127.0.0.1:5070>;tag=caller-tag\r\n'
            f"To: <sip:{self.called}@127.0.0.1:5060>;tag={to_tag}\r\n"
            f"Call-ID: call-{self.branch}@caller\r\n"
            f"CSeq: {cseq} {method}\r\n"
            f"Contact: <sip:caller@127.0.0.1:5070>\r\n"
            + ("Content-Type: application/sdp\r\n" if body else "")
            + f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        return data

    # -- what the trunk sends ----------------------------------------------------------

    def trunk_sends(self, message: Request | Response) -> None:
        self.stack.receive_datagram(message.to_bytes(), self.trunk, TRUNK_ADDR)

    def trunk_answers(
        self, request: Request, status: int, body: bytes = b"", tag: str = "callee-tag",
        extra: dict[str, str] | None = None,
    ) -> Response:  # fmt: skip
        response = request.response(status, None, tag if status > 100 else None)
        if status > 100 and request.method == "INVITE":
            response.headers["contact"] = ["<sip:callee@127.0.0.1:5080>"]
        if body:
            response.body = body
            response.headers["content-type"] = ["application/sdp"]
        for name, value in (extra or {}).items():
            response.headers[name] = [value]
        self.trunk_sends(response)
        return response

    def trunk_request(self, method: str, dialog_of: Request, to_tag: str = "callee-tag",
                      cseq: int = 10, body: bytes = b"") -> bytes:  # fmt: skip
        """A request from the callee inside the dialog our INVITE ``dialog_of`` made."""
        from_ = dialog_of.headers["from"][0]
        to = dialog_of.headers["to"][0]
        data = (
            f"{method} sip:vms@127.0.0.1:5060 SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-t-{method}-{cseq}\r\n"
            f"Max-Forwards: 70\r\n"
            f"From: {to};tag={to_tag}\r\n"
            f"To: {from_}\r\n"
            f"Call-ID: {dialog_of.headers['call-id'][0]}\r\n"
            f"CSeq: {cseq} {method}\r\n"
            f"Contact: <sip:callee@127.0.0.1:5080>\r\n"
            + ("Content-Type: application/sdp\r\n" if body else "")
            + f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        self.stack.receive_datagram(data, self.trunk, TRUNK_ADDR)
        return data


def only(messages: list[Request | Response], method: str) -> Request:
    found = [m for m in messages if isinstance(m, Request) and m.method == method]
    assert len(found) == 1, f"expected one {method}, got {messages}"
    return found[0]


# -- the media plane, faked: what the call controller asks of streams ---------------------


class FakeStream:
    def __init__(self, plane: FakePlane, port: int) -> None:
        self.plane = plane
        self.address = "127.0.0.1"
        self.port = port
        self.on_digit: Callable[[str, str], None] | None = None
        self.on_dead: Callable[[], None] | None = None
        self.detect_inband = False
        self.configured: list[tuple[Any, ...]] = []
        self.playing: Sequence[bytes] | None = None
        self.on_done: Callable[[], None] | None = None
        self.bridged_to: FakeStream | None = None
        self.writer: Any = None
        self.watched = False
        self.closed = False

    def configure(self, remote: Any, codec: str, payload_type: int,
                  dtmf_payload_type: int | None, direction: str = "sendrecv") -> None:  # fmt: skip
        self.configured.append((remote, codec, payload_type, dtmf_payload_type, direction))

    def play(self, frames: Sequence[bytes], on_done: Callable[[], None] | None = None) -> None:
        self.playing, self.on_done = frames, on_done

    def stop_playing(self) -> None:
        self.playing = self.on_done = None

    def finish_playing(self) -> None:
        done, self.playing, self.on_done = self.on_done, None, None
        assert done is not None, "nothing was playing"
        done()

    def bridge(self, other: Any) -> None:
        self.bridged_to = other

    def unbridge(self) -> None:
        self.bridged_to = None

    def watch_media(self) -> None:
        self.watched = True

    def record(self, writer: Any) -> None:
        self.writer = writer

    def close(self) -> None:
        self.closed = True


class FakePlane:
    def __init__(self, ports: int = 10) -> None:
        self.streams: list[FakeStream] = []
        self.left = ports

    def open_stream(self) -> FakeStream:
        if not self.left:
            raise OSError("no RTP port left in 20000-20019")
        self.left -= 1
        stream = FakeStream(self, 20000 + 2 * len(self.streams))
        self.streams.append(stream)
        return stream


def responses(h: Harness) -> list[Response]:
    return [m for m in h.to_caller() if isinstance(m, Response)]


def tag_of(message: Request | Response) -> str:
    tag = parse_address(message.headers["to"][0]).tag
    assert tag is not None
    return tag


# -- one number forwarded to one destination: the call most B2BUA tests need ----------------

BARE_NUMBER = "+3225551236"
BARE_FORWARD = '{forward: "+3225550020", timeout: 10}'


def bare_harness(trees: Path, do: str = BARE_FORWARD, **settings: Any) -> Harness:
    """A harness whose one tree forwards :data:`BARE_NUMBER` by the action ``do``."""
    (trees / "acme.yaml").write_text(
        "version: 1\ncustomer: acme\n"
        f'numbers: ["{BARE_NUMBER}"]\n'
        "timezone: Europe/Brussels\nroutes:\n"
        f"  - name: bare\n    do: {do}\n"
    )
    return Harness(trees, **settings)


def answered(h: Harness, extra: dict[str, str] | None = None,
             tag: str = "callee-tag") -> tuple[Request, str]:  # fmt: skip
    """A call to :data:`BARE_NUMBER` answered and acknowledged: the callee's INVITE, our tag."""
    h.caller_sends(h.invite(called=BARE_NUMBER))
    invite = only(h.to_trunk(), "INVITE")
    h.trunk_answers(invite, 200, SDP_ANSWER, tag=tag, extra=extra)
    ok = [m for m in h.to_caller() if isinstance(m, Response) and m.status == 200][-1]
    h.caller_sends(h.caller_in_dialog("ACK", tag_of(ok), cseq=1, branch="z9hG4bK-ack"))
    only(h.to_trunk(), "ACK")
    return invite, tag_of(ok)
