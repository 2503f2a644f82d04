"""A BYE from the caller before the answer (RFC 3261 §15.1.2): 200 to it, 487 to the INVITE,
and the call ends as the caller's CANCEL would end it, the callee cancelled.

Before, the BYE got its 200 and was then ignored: the callee kept ringing
and, if it answered, the caller got a 2xx for a dialog it had left.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from b2bkit import SDP_ANSWER, Harness, bare_harness, only, tag_of
from engine.sip.message import Request, Response


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return bare_harness(tmp_path, '{forward: "+3225550020", timeout: 10, '
                                  "on_no_answer: {reject: 486}}")


def ringing(h: Harness, extra: str = "", provisional: int = 180) -> tuple[Request, str]:
    """A call whose callee rings: its INVITE, and our tag in the caller's early dialog."""
    h.caller_sends(h.invite(called="+3225551236", extra=extra))
    invite = only(h.to_trunk(), "INVITE")
    h.trunk_answers(invite, provisional)
    ring = [m for m in h.to_caller() if isinstance(m, Response) and m.status == provisional]
    return invite, tag_of(ring[-1])


def test_an_early_bye_answers_both_requests_and_cancels_the_callee(h: Harness) -> None:
    invite, tag = ringing(h)
    h.caller_sends(h.caller_in_dialog("BYE", tag))
    ok, terminated = [m for m in h.to_caller() if isinstance(m, Response)]
    assert (ok.status, ok.get("cseq")) == (200, "2 BYE")
    assert (terminated.status, terminated.get("cseq")) == (487, "1 INVITE")
    cancel = only(h.to_trunk(), "CANCEL")
    assert cancel.top_via().branch == invite.top_via().branch
    h.trunk_answers(cancel, 200)
    h.trunk_answers(invite, 487)
    assert h.b2bua.calls == {}
    records = h.records.by_leg()
    assert records[0].outcome == "cancelled" and records[0].sip_code == 487
    assert records[1].outcome == "cancelled" and records[1].reason == "cancelled by the caller"


def test_the_tree_does_not_go_on_after_an_early_bye(h: Harness) -> None:
    invite, tag = ringing(h)
    h.caller_sends(h.caller_in_dialog("BYE", tag))
    h.to_caller()
    h.clock.advance(10)  # the ring timeout would have run on_no_answer
    h.trunk_answers(invite, 487)
    assert "INVITE" not in [m.method for m in h.to_trunk() if isinstance(m, Request)]
    assert set(h.statuses_to_caller()) <= {487}  # no 486 from on_no_answer: the caller left
    assert h.b2bua.calls == {}


def test_a_callee_answer_crossing_the_early_bye_is_acked_and_hung_up(h: Harness) -> None:
    invite, tag = ringing(h)
    h.caller_sends(h.caller_in_dialog("BYE", tag))
    h.to_caller()
    only(h.to_trunk(), "CANCEL")
    h.trunk_answers(invite, 200, SDP_ANSWER)
    assert [m.method for m in h.to_trunk() if isinstance(m, Request)] == ["ACK", "BYE"]
    assert h.to_caller() == []  # no 2xx for a dialog the caller has left
    bye = only([m for m in h.trunk.messages() if isinstance(m, Request)], "BYE")
    h.trunk_answers(bye, 200)
    assert h.b2bua.calls == {}
    assert h.records.by_leg()[0].outcome == "cancelled"


def test_an_early_bye_stops_the_reliable_provisional_retransmissions(h: Harness) -> None:
    _, tag = ringing(h, extra="Require: 100rel\r\nSupported: 100rel\r\n")
    h.caller_sends(h.caller_in_dialog("BYE", tag))  # instead of the PRACK
    assert [m.status for m in h.to_caller() if isinstance(m, Response)] == [200, 487]
    h.clock.advance(64 * 0.5)
    assert 180 not in h.statuses_to_caller()
