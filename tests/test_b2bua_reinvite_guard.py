"""A relayed re-INVITE that the other side rings but never answers does not block the call."""

from __future__ import annotations

from pathlib import Path

import pytest

from b2bkit import SDP_ANSWER, SDP_OFFER, TRUNK_ADDR, Harness, answered, bare_harness, only
from engine.sip.message import Request


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return bare_harness(tmp_path)


def test_a_re_invite_left_ringing_is_cancelled_then_the_call_takes_re_invites_again(
    h: Harness,
) -> None:
    _, tag = answered(h)
    hold = SDP_OFFER.replace(b"m=audio", b"a=sendonly\r\nm=audio")
    h.caller_sends(h.caller_in_dialog("INVITE", tag, body=hold))
    reinvite = only(h.to_trunk(), "INVITE")
    h.trunk_answers(reinvite, 180)
    h.to_caller()
    h.caller_sends(h.caller_in_dialog("INVITE", tag, body=hold, branch="z9hG4bK-glare"))
    assert h.statuses_to_caller() == [491]  # one re-INVITE at a time (§14.1)
    h.clock.advance(64 * 0.5)
    cancel = only(h.to_trunk(), "CANCEL")
    assert cancel.cseq() == (reinvite.cseq()[0], "CANCEL")
    h.clock.advance(64 * 0.5)  # neither the CANCEL nor the INVITE answered: §9.1's guard
    assert 408 in h.statuses_to_caller()
    h.caller_sends(h.caller_in_dialog("INVITE", tag, body=hold, branch="z9hG4bK-again"))
    again = [m for m in h.to_trunk() if isinstance(m, Request) and m.method == "INVITE"]
    assert len(again) == 1 and again[0].body == hold


def test_a_re_invite_answered_in_time_is_never_cancelled(h: Harness) -> None:
    _, tag = answered(h)
    h.caller_sends(h.caller_in_dialog("INVITE", tag, body=SDP_OFFER))
    reinvite = only(h.to_trunk(), "INVITE")
    h.trunk_answers(reinvite, 180)
    h.trunk_answers(reinvite, 200, SDP_ANSWER)
    h.to_trunk()
    h.clock.advance(200)
    assert not [m for m in h.to_trunk() if isinstance(m, Request) and m.method == "CANCEL"]


def test_an_icmp_error_after_a_re_invites_final_answer_changes_nothing(h: Harness) -> None:
    """Timer D keeps the refused re-INVITE's transaction: a transport error then is no answer."""
    _, tag = answered(h)
    h.caller_sends(h.caller_in_dialog("INVITE", tag, body=SDP_OFFER))
    h.trunk_answers(only(h.to_trunk(), "INVITE"), 488)
    assert h.statuses_to_caller() == [488]
    h.stack.transport_error(h.trunk, TRUNK_ADDR)
    assert h.statuses_to_caller() == []
    assert h.b2bua.calls  # the call goes on


def test_an_older_re_invites_retransmitted_2xx_leaves_the_pending_one_alone(h: Harness) -> None:
    _, tag = answered(h)
    h.caller_sends(h.caller_in_dialog("INVITE", tag, body=SDP_OFFER))
    first = only(h.to_trunk(), "INVITE")
    ok = h.trunk_answers(first, 200, SDP_ANSWER)
    h.to_trunk()
    h.caller_sends(h.caller_in_dialog("INVITE", tag, body=SDP_OFFER, branch="z9hG4bK-second"))
    h.trunk_answers(only(h.to_trunk(), "INVITE"), 180)
    h.to_caller()
    h.trunk_sends(ok)  # our ACK to the first was lost: its 200 comes again
    h.caller_sends(h.caller_in_dialog("INVITE", tag, body=SDP_OFFER, branch="z9hG4bK-third"))
    assert 491 in h.statuses_to_caller()  # the second is still the one in progress
