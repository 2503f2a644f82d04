"""A second 2xx from another fork behind the trunk is acknowledged and hung up (§13.2.2.4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from b2bkit import SDP_ANSWER, Harness, answered, bare_harness, only, tag_of
from engine.sip.message import Request, Response


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return bare_harness(tmp_path)


def test_another_forks_answer_gets_ack_then_bye_and_the_call_goes_on(h: Harness) -> None:
    invite, _ = answered(h, tag="first")
    h.trunk_answers(invite, 200, SDP_ANSWER, tag="second")  # another phone answered too
    sent = [m for m in h.to_trunk() if isinstance(m, Request)]
    assert [(m.method, tag_of(m)) for m in sent] == [("ACK", "second"), ("BYE", "second")]
    h.trunk_answers(invite, 200, SDP_ANSWER, tag="second")  # its retransmission
    assert [(m.method, tag_of(m)) for m in h.to_trunk()] == [("ACK", "second")]
    assert h.b2bua.calls and h.to_caller() == []  # the caller's call is the first answer's


def test_a_bye_from_the_other_fork_never_ends_the_call(h: Harness) -> None:
    invite, _ = answered(h, tag="first")
    h.trunk_answers(invite, 200, SDP_ANSWER, tag="second")
    h.to_trunk()
    h.trunk_request("BYE", invite, to_tag="second")  # its phone hung up first
    assert [m.status for m in h.to_trunk() if isinstance(m, Response)] == [200]
    h.trunk_request("INFO", invite, to_tag="stranger", cseq=11)
    assert [m.status for m in h.to_trunk() if isinstance(m, Response)] == [481]
    assert h.b2bua.calls and h.to_caller() == []  # the first answer's call goes on


def test_a_fork_that_rang_is_hung_up_in_its_early_dialog(h: Harness) -> None:
    """Its CSeq goes on from the PRACK it got, so a strict phone takes the BYE."""
    h.caller_sends(h.invite(called="+3225551236"))
    invite = only(h.to_trunk(), "INVITE")
    h.trunk_answers(invite, 180, tag="second", extra={"require": "100rel", "rseq": "1"})
    prack = only(h.to_trunk(), "PRACK")
    h.trunk_answers(invite, 200, SDP_ANSWER, tag="first")
    ok = [m for m in h.to_caller() if isinstance(m, Response) and m.status == 200][-1]
    h.caller_sends(h.caller_in_dialog("ACK", tag_of(ok), cseq=1, branch="z9hG4bK-ack"))
    h.to_trunk()
    h.trunk_answers(invite, 200, SDP_ANSWER, tag="second")
    bye = only(h.to_trunk(), "BYE")
    assert tag_of(bye) == "second" and bye.cseq()[0] > prack.cseq()[0]
