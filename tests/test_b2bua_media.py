"""Announcements, menus and bridging in the call controller, on a fake clock with fake streams."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from b2bkit import SDP_ANSWER, SDP_OFFER, Harness, only
from engine.calls.media import MediaServices
from engine.config import MediaSettings
from engine.sip.headers import parse_address
from engine.sip.message import Request, Response
from media.prompts import PromptCache
from media.sdp import parse_sdp

PROMPTS = Path(__file__).resolve().parent.parent / "routing_trees" / "examples" / "prompts"

TREE = """\
version: 1
customer: acme
numbers: ["+3225551234", "+3225551235", "+3225551236"]
timezone: Europe/Brussels
prompts:
  closed: prompts/closed-nl.wav
  busy: prompts/busy-fr.wav
routes:
  - name: closed
    when: {called: "+3225551234"}
    do: {announce: closed}
  - name: desk
    when: {called: "+3225551235"}
    do:
      announce: busy
      then:
        forward: "+3225550001"
        on_busy: {announce: closed}
  - name: choose
    when: {called: "+3225551236"}
    do:
      menu: busy
      timeout: 5
      retries: 1
      options:
        "1": {forward: "+3225550001"}
        "2": {reject: 603}
      on_invalid: {announce: closed}
"""


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


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    shutil.copytree(PROMPTS, tmp_path / "prompts")
    (tmp_path / "acme.yaml").write_text(TREE)
    harness = Harness(tmp_path)
    harness.plane = FakePlane()  # type: ignore[attr-defined]
    harness.ctx.media = MediaServices(harness.plane, PromptCache(),  # type: ignore[attr-defined]
                                      MediaSettings(), tmp_path / "recordings")  # fmt: skip
    return harness


def streams(h: Harness) -> list[FakeStream]:
    return h.plane.streams  # type: ignore[attr-defined, no-any-return]


def responses(h: Harness) -> list[Response]:
    return [m for m in h.to_caller() if isinstance(m, Response)]


def tag_of(message: Request | Response) -> str:
    tag = parse_address(message.headers["to"][0]).tag
    assert tag is not None
    return tag


def test_announce_answers_with_our_sdp_plays_then_hangs_up(h: Harness) -> None:
    h.caller_sends(h.invite("+3225551234"))
    ok = next(r for r in responses(h) if r.status == 200)
    sdp = parse_sdp(ok.body)
    (caller,) = streams(h)
    assert sdp.media[0].port == caller.port
    assert caller.configured[0][:3] == (("127.0.0.1", 6000), "PCMU", 0)
    assert caller.playing is not None and len(caller.playing) > 50  # seconds of 20 ms frames
    assert all(len(frame) == 160 for frame in caller.playing)
    h.caller_sends(h.caller_in_dialog("ACK", tag_of(ok), cseq=1, branch="z9hG4bK-ack"))
    assert h.to_trunk() == []  # nothing dialled
    caller.finish_playing()
    bye = only(h.to_caller(), "BYE")
    h.stack.receive_datagram(bye.response(200).to_bytes(), h.caller, ("127.0.0.1", 5070))
    assert caller.closed
    (record,) = h.records.ended
    assert record.outcome == "answered"


def test_an_offer_without_a_codec_we_speak_gets_488(h: Harness) -> None:
    g729 = SDP_OFFER.replace(b"RTP/AVP 0", b"RTP/AVP 18")
    h.caller_sends(h.invite("+3225551234", body=g729))
    assert [r.status for r in responses(h)][-1] == 488


def test_no_port_left_gets_503(h: Harness) -> None:
    h.plane.left = 0  # type: ignore[attr-defined]
    h.caller_sends(h.invite("+3225551234"))
    assert [r.status for r in responses(h)][-1] == 503


def test_announce_then_forward_is_early_media_then_bridged(h: Harness) -> None:
    h.caller_sends(h.invite("+3225551235"))
    early = [r for r in responses(h) if r.status == 183]
    assert len(early) == 1 and early[0].body  # the announcement plays before any answer
    caller = streams(h)[0]
    caller.finish_playing()
    invite = only(h.to_trunk(), "INVITE")
    offer = parse_sdp(invite.body)
    callee = streams(h)[1]
    assert offer.media[0].port == callee.port  # the callee gets our stream, not the caller's
    assert invite.body != SDP_OFFER
    h.trunk_answers(invite, 180)
    assert [r.status for r in responses(h)] == []  # early media already flows
    h.trunk_answers(invite, 200, SDP_ANSWER)
    assert only(h.to_trunk(), "ACK")  # the engine acknowledges the callee itself
    ok = next(r for r in responses(h) if r.status == 200)
    assert ok.body == early[0].body  # the same SDP as the early media
    assert caller.bridged_to is callee
    assert callee.configured[-1][0] == ("127.0.0.1", 7000)
    h.caller_sends(h.caller_in_dialog("ACK", tag_of(ok), cseq=1, branch="z9hG4bK-ack"))
    assert h.to_trunk() == []  # the caller's ACK stays here
    # A re-INVITE from the caller (hold) is answered by the engine, not relayed.
    hold = SDP_OFFER.replace(b"t=0 0\r\n", b"t=0 0\r\na=sendonly\r\n")
    h.caller_sends(h.caller_in_dialog("INVITE", tag_of(ok), hold))
    reply = next(r for r in responses(h) if r.status == 200)
    assert b"a=recvonly" in reply.body
    assert caller.configured[-1][4] == "recvonly"
    assert h.to_trunk() == []


def test_busy_after_an_early_announcement_plays_the_next_announcement(h: Harness) -> None:
    h.caller_sends(h.invite("+3225551235"))
    streams(h)[0].finish_playing()
    invite = only(h.to_trunk(), "INVITE")
    h.trunk_answers(invite, 486)
    caller = streams(h)[0]
    assert caller.playing is not None  # on_busy: announce closed
    statuses = [r.status for r in responses(h)]
    assert 200 in statuses  # an announcement with no `then` answers


def test_menu_option_by_rfc4733_digit_dials_and_bridges(h: Harness) -> None:
    h.caller_sends(h.invite("+3225551236"))
    ok = next(r for r in responses(h) if r.status == 200)
    caller = streams(h)[0]
    assert caller.playing is not None and caller.detect_inband
    assert caller.on_digit is not None
    caller.on_digit("1", "rfc4733")  # barge-in: the prompt stops
    assert caller.playing is None and not caller.detect_inband
    invite = only(h.to_trunk(), "INVITE")
    h.trunk_answers(invite, 200, SDP_ANSWER)
    assert caller.bridged_to is streams(h)[1]
    assert [r.status for r in responses(h)] == []  # answered already: no second answer
    h.caller_sends(h.caller_in_dialog("ACK", tag_of(ok), cseq=1, branch="z9hG4bK-ack"))


def test_menu_type_ahead_digit_typed_during_the_prompt(h: Harness) -> None:
    h.ctx.media.settings = MediaSettings(barge_in=False)  # type: ignore[union-attr]
    h.caller_sends(h.invite("+3225551236"))
    caller = streams(h)[0]
    assert caller.on_digit is not None
    caller.on_digit("2", "inband")
    assert caller.playing is not None  # no barge-in: the prompt goes on, the digit is kept
    caller.finish_playing()
    bye = only(h.to_caller(), "BYE")  # option 2 rejects 603: answered already, so a BYE
    assert bye is not None


def test_menu_info_digit_and_invalid_key(h: Harness) -> None:
    h.caller_sends(h.invite("+3225551236"))
    ok = next(r for r in responses(h) if r.status == 200)
    info = h.caller_in_dialog("INFO", tag_of(ok)).replace(
        b"Content-Length: 0\r\n\r\n",
        b"Content-Type: application/dtmf-relay\r\nContent-Length: 24\r\n\r\n"
        b"Signal=9\r\nDuration=160\r\n",
    )
    h.caller_sends(info)
    assert [r.status for r in responses(h) if r.status == 200]  # the INFO's 200
    caller = streams(h)[0]
    assert caller.playing is not None  # on_invalid: announce closed
    assert h.to_trunk() == []


def test_menu_timeouts_retry_then_end_the_call(h: Harness) -> None:
    h.caller_sends(h.invite("+3225551236"))
    caller = streams(h)[0]
    caller.finish_playing()
    h.clock.advance(5.1)
    assert caller.playing is not None  # retried: the prompt again
    caller.finish_playing()
    h.clock.advance(5.1)
    assert only(h.to_caller(), "BYE")


def test_the_caller_hanging_up_during_a_prompt_closes_the_streams(h: Harness) -> None:
    h.caller_sends(h.invite("+3225551236"))
    ok = next(r for r in responses(h) if r.status == 200)
    h.caller_sends(h.caller_in_dialog("ACK", tag_of(ok), cseq=1, branch="z9hG4bK-ack"))
    h.caller_sends(h.caller_in_dialog("BYE", tag_of(ok)))
    assert all(s.closed for s in streams(h))


def test_dead_media_ends_the_call(h: Harness) -> None:
    h.caller_sends(h.invite("+3225551234"))
    caller = streams(h)[0]
    assert caller.on_dead is not None
    caller.on_dead()
    assert only(h.to_caller(), "BYE")
