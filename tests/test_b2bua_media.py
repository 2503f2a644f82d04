"""Announcements, menus and bridging in the call controller, on a fake clock with fake streams."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from b2bkit import SDP_ANSWER, SDP_OFFER, FakePlane, FakeStream, Harness, only, responses, tag_of
from engine.calls.media import MediaServices
from engine.config import MediaSettings
from media.prompts import load_prompt
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


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    shutil.copytree(PROMPTS, tmp_path / "prompts")
    (tmp_path / "acme.yaml").write_text(TREE)
    harness = Harness(tmp_path)
    harness.plane = FakePlane()  # type: ignore[attr-defined]
    prompts = {str(p): load_prompt(p) for p in (tmp_path / "prompts").glob("*.wav")}
    harness.ctx.media = MediaServices(harness.plane, prompts,  # type: ignore[attr-defined]
                                      MediaSettings(), tmp_path / "recordings")  # fmt: skip
    return harness


def streams(h: Harness) -> list[FakeStream]:
    return h.plane.streams  # type: ignore[attr-defined, no-any-return]


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


def test_a_callee_that_fails_after_early_media_is_unbridged_and_closed(h: Harness) -> None:
    h.caller_sends(h.invite("+3225551235"))
    caller = streams(h)[0]
    caller.finish_playing()
    invite = only(h.to_trunk(), "INVITE")
    callee = streams(h)[1]
    h.trunk_answers(invite, 183, SDP_ANSWER)
    assert caller.bridged_to is callee
    h.trunk_answers(invite, 486)
    assert callee.closed and caller.bridged_to is None
    assert caller.playing is not None  # on_busy: the next announcement


def test_the_engine_plays_ringing_tone_behind_a_menu(h: Harness) -> None:
    from media.ringback import ringback_frames

    h.caller_sends(h.invite("+3225551236"))
    caller = streams(h)[0]
    assert caller.on_digit is not None
    caller.on_digit("1", "rfc4733")
    invite = only(h.to_trunk(), "INVITE")
    h.trunk_answers(invite, 180)
    assert caller.playing == ringback_frames("PCMU")
    h.trunk_answers(invite, 200, SDP_ANSWER)
    assert caller.playing is None and caller.bridged_to is streams(h)[1]
    assert streams(h)[1].watched  # dead media watched once the callee answered


def test_recording_starts_at_the_answer_not_in_early_media(h: Harness, tmp_path: Path) -> None:
    from media.recording import RecordingWriter

    h.ctx.media.recorded = frozenset({"acme"})  # type: ignore[union-attr]
    h.caller_sends(h.invite("+3225551236"))
    caller = streams(h)[0]
    assert caller.on_digit is not None
    caller.on_digit("1", "rfc4733")
    invite = only(h.to_trunk(), "INVITE")
    h.trunk_answers(invite, 183, SDP_ANSWER)
    assert caller.bridged_to is streams(h)[1] and caller.writer is None  # ringback: not recorded
    h.trunk_answers(invite, 200, SDP_ANSWER)
    assert isinstance(caller.writer, RecordingWriter)
    assert h.b2bua.hang_up_all("test over") == 1  # closes the media: the file is complete
    assert len(list((tmp_path / "recordings" / "acme").rglob("*.wav"))) == 1
    assert not list((tmp_path / "recordings").rglob("*.part"))


def test_an_unwritable_recordings_folder_does_not_stop_the_call(h: Harness, tmp_path: Path) -> None:
    h.ctx.media.recorded = frozenset({"acme"})  # type: ignore[union-attr]
    (tmp_path / "recordings").write_text("a file where the folder should be")
    h.caller_sends(h.invite("+3225551236"))
    caller = streams(h)[0]
    assert caller.on_digit is not None
    caller.on_digit("1", "rfc4733")
    invite = only(h.to_trunk(), "INVITE")
    h.trunk_answers(invite, 200, SDP_ANSWER)
    assert caller.bridged_to is streams(h)[1] and caller.writer is None


def test_refreshes_answered_here_grant_the_session_interval(h: Harness) -> None:
    h.caller_sends(h.invite("+3225551236"))
    ok = next(r for r in responses(h) if r.status == 200)
    tag = tag_of(ok)
    h.caller_sends(h.caller_in_dialog("ACK", tag, cseq=1, branch="z9hG4bK-ack"))
    first_version = parse_sdp(ok.body).origin.version
    refresh = h.caller_in_dialog("INVITE", tag, SDP_OFFER).replace(
        b"Content-Type", b"Session-Expires: 1800;refresher=uac\r\nSupported: timer\r\nContent-Type")
    h.caller_sends(refresh)
    reply = next(r for r in responses(h) if r.status == 200)
    assert reply.get("session-expires") == "1800;refresher=uac"
    assert reply.get("require") == "timer"
    assert parse_sdp(reply.body).origin.version == first_version  # nothing changed
    update = h.caller_in_dialog("UPDATE", tag).replace(
        b"Content-Length", b"Session-Expires: 1800\r\nSupported: timer\r\nContent-Length")
    h.caller_sends(update)
    reply = next(r for r in responses(h) if r.status == 200)
    assert reply.body == b"" and reply.get("session-expires") == "1800;refresher=uac"
    hold = SDP_OFFER.replace(b"t=0 0\r\n", b"t=0 0\r\na=sendonly\r\n")
    h.caller_sends(h.caller_in_dialog("INVITE", tag, hold))
    reply = next(r for r in responses(h) if r.status == 200)
    assert parse_sdp(reply.body).origin.version == first_version + 1  # it changed


def test_an_offerless_re_invite_gets_our_sdp_and_its_ack_the_answer(h: Harness) -> None:
    h.caller_sends(h.invite("+3225551236"))
    ok = next(r for r in responses(h) if r.status == 200)
    tag = tag_of(ok)
    h.caller_sends(h.caller_in_dialog("ACK", tag, cseq=1, branch="z9hG4bK-ack"))
    h.caller_sends(h.caller_in_dialog("INVITE", tag, cseq=5))
    reply = next(r for r in responses(h) if r.status == 200)
    assert reply.body == ok.body
    moved = SDP_OFFER.replace(b"m=audio 6000", b"m=audio 6100")
    h.caller_sends(h.caller_in_dialog("ACK", tag, moved, cseq=5, branch="z9hG4bK-ack5"))
    assert streams(h)[0].configured[-1][0] == ("127.0.0.1", 6100)


def test_a_late_offer_caller_hears_the_prompt_once_its_ack_answers(h: Harness) -> None:
    h.caller_sends(h.invite("+3225551234", body=b""))
    ok = next(r for r in responses(h) if r.status == 200)
    assert b"m=audio" in ok.body  # our offer
    caller = streams(h)[0]
    assert caller.playing is None  # nowhere to send it yet
    answer = SDP_OFFER.replace(b"RTP/AVP 0", b"RTP/AVP 8")
    h.caller_sends(h.caller_in_dialog("ACK", tag_of(ok), answer, cseq=1, branch="z9hG4bK-ack"))
    assert caller.configured[-1][1] == "PCMA"
    assert caller.playing is not None and caller.playing[0] != b"\xff" * 160


def test_keys_by_info_before_a_menu_are_kept_for_it(tmp_path: Path) -> None:
    shutil.copytree(PROMPTS, tmp_path / "prompts")
    (tmp_path / "acme.yaml").write_text(TREE.replace(
        'do: {announce: closed}',
        'do: {announce: closed, then: {menu: busy, options: {"2": {reject: 603}}}}'))
    h = Harness(tmp_path)
    h.plane = FakePlane()  # type: ignore[attr-defined]
    prompts = {str(p): load_prompt(p) for p in (tmp_path / "prompts").glob("*.wav")}
    h.ctx.media = MediaServices(h.plane, prompts, MediaSettings(),  # type: ignore[attr-defined]
                                tmp_path / "recordings")  # fmt: skip
    h.caller_sends(h.invite("+3225551234"))
    ok = next(r for r in responses(h) if r.status == 200)
    info = h.caller_in_dialog("INFO", tag_of(ok)).replace(
        b"Content-Length: 0\r\n\r\n",
        b"Content-Type: application/dtmf-relay\r\nContent-Length: 24\r\n\r\n"
        b"Signal=2\r\nDuration=160\r\n",
    )
    h.caller_sends(info)
    assert [r.status for r in responses(h)] == [200]
    streams(h)[0].finish_playing()  # the announcement ends; the menu takes the "2" at once
    assert only(h.to_caller(), "BYE")


def test_keys_cross_a_bridge_as_info_to_a_callee_without_telephone_event(h: Harness) -> None:
    h.caller_sends(h.invite("+3225551236"))
    caller = streams(h)[0]
    assert caller.on_digit is not None
    caller.on_digit("1", "rfc4733")
    invite = only(h.to_trunk(), "INVITE")
    h.trunk_answers(invite, 200, SDP_ANSWER)  # PCMU only: no telephone-event
    h.to_trunk()
    caller.on_digit("7", "inband")
    info = only(h.to_trunk(), "INFO")
    assert info.body == b"Signal=7\r\nDuration=160\r\n"


def test_dead_media_is_watched_only_once_the_caller_confirmed(h: Harness) -> None:
    h.caller_sends(h.invite("+3225551236"))
    ok = next(r for r in responses(h) if r.status == 200)
    caller = streams(h)[0]
    assert not caller.watched
    h.caller_sends(h.caller_in_dialog("ACK", tag_of(ok), cseq=1, branch="z9hG4bK-ack"))
    assert caller.watched


def test_an_ended_call_leaves_no_reference_cycles(h: Harness) -> None:
    import gc

    gc.collect()
    h.caller_sends(h.invite("+3225551236"))  # a menu: media, a menu run, timers
    caller = streams(h)[0]
    assert caller.on_digit is not None
    caller.on_digit("1", "rfc4733")
    invite = only(h.to_trunk(), "INVITE")
    h.trunk_answers(invite, 200, SDP_ANSWER)
    ok = next(r for r in responses(h) if r.status == 200)
    h.caller_sends(h.caller_in_dialog("BYE", tag_of(ok)))
    bye = only(h.to_trunk(), "BYE")
    h.trunk_sends(bye.response(200))
    h.clock.advance(1.0)  # the finished call breaks its cycles on the next tick
    assert all(s.closed for s in streams(h))
    h.plane.streams.clear()  # type: ignore[attr-defined]  # as the real plane forgets closed ones
    del caller
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        kinds = {type(o).__name__ for o in gc.garbage}
    finally:
        gc.garbage.clear()
        gc.set_debug(0)
    assert not kinds & {"Call", "CallMedia", "_Side", "FakeStream", "InboundLeg", "OutboundLeg",
                        "MenuRun"}, kinds  # fmt: skip
