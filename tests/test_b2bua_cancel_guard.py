"""A callee that never answers our CANCEL (no 487): the leg ends 64*T1 later (RFC 3261 §9.1).

Before, the leg stayed in ``cancelling`` for ever: the caller kept ringing,
on_no_answer never ran, the call, its open records and its max_calls slot
were held until the engine restarted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from b2bkit import SDP_ANSWER, Harness, only
from engine.sip.message import Request

GUARD = 64 * 0.5  # 64*T1

TREE = """\
version: 1
customer: acme
numbers: ["+3225551235", "+3225551236"]
timezone: Europe/Brussels
routes:
  - name: capped
    when: {called: "+3225551235"}
    do:
      forward: "+3225550009"
      timeout: 10
      max_calls: 1
      on_no_answer: {forward: "+3225550010"}
  - name: bare
    when: {called: "+3225551236"}
    do: {forward: "+3225550020", timeout: 10, max_calls: 1}
"""


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    (tmp_path / "acme.yaml").write_text(TREE)
    return Harness(tmp_path)


def caller_cancel(h: Harness) -> None:
    h.caller_sends(
        h.invite_bytes.replace(b"INVITE sip", b"CANCEL sip").replace(
            b"CSeq: 1 INVITE", b"CSeq: 1 CANCEL"
        )
    )


def methods(h: Harness) -> list[str]:
    return [m.method for m in h.to_trunk() if isinstance(m, Request)]


def test_ring_timeout_with_no_487_runs_on_no_answer_after_64_t1(h: Harness) -> None:
    h.caller_sends(h.invite(called="+3225551235", branch="z9hG4bK-a"))
    first = only(h.to_trunk(), "INVITE")
    h.trunk_answers(first, 180)
    h.clock.advance(10)  # ring timeout: CANCEL, which the trunk ignores
    assert methods(h) == ["CANCEL"]
    h.clock.advance(GUARD - 0.5)
    assert "INVITE" not in methods(h)  # still waiting for the 487, as §9.1 says
    assert h.records.ended == []
    h.clock.advance(1)
    second = only(h.to_trunk(), "INVITE")
    assert second.uri.startswith("sip:+3225550010@")  # on_no_answer, as after a 487
    leg = h.records.by_leg()[1]
    assert leg.outcome == "no_answer" and leg.reason == "ring timeout" and leg.sip_code is None
    # Its max_calls slot is free: a second call to the same number is placed, not refused.
    h.caller_sends(h.invite(called="+3225551235", branch="z9hG4bK-b"))
    assert only(h.to_trunk(), "INVITE").uri.startswith("sip:+3225550009@")
    assert not [r for r in h.records.ended if r.outcome == "overflow"]


def test_caller_cancel_with_no_487_ends_the_call_after_64_t1(h: Harness) -> None:
    h.caller_sends(h.invite(called="+3225551236", branch="z9hG4bK-a"))
    invite = only(h.to_trunk(), "INVITE")
    h.trunk_answers(invite, 180)
    caller_cancel(h)
    assert h.statuses_to_caller()[-2:] == [200, 487]  # the caller is done at once
    cancel = only(h.to_trunk(), "CANCEL")
    h.trunk_answers(cancel, 200)  # the CANCEL is accepted, the INVITE never finished
    h.clock.advance(GUARD - 0.5)
    assert len(h.b2bua.calls) == 1
    h.clock.advance(1)
    assert h.b2bua.calls == {}
    records = h.records.by_leg()
    assert records[0].outcome == "cancelled" and records[1].outcome == "cancelled"
    assert records[1].closed
    h.caller_sends(h.invite(called="+3225551236", branch="z9hG4bK-b"))
    assert only(h.to_trunk(), "INVITE").uri.startswith("sip:+3225550020@")  # slot released


def test_a_cancel_held_for_the_first_provisional_is_guarded_too(h: Harness) -> None:
    h.caller_sends(h.invite(called="+3225551236"))
    invite = only(h.to_trunk(), "INVITE")
    caller_cancel(h)  # before any provisional: the CANCEL waits (§9.1)
    assert h.to_trunk() == []
    h.trunk_answers(invite, 100)
    assert methods(h) == ["CANCEL"]
    h.clock.advance(GUARD + 0.5)
    assert h.b2bua.calls == {}
    assert h.records.by_leg()[1].outcome == "cancelled"


def test_a_final_response_after_the_guard_changes_nothing(h: Harness) -> None:
    h.caller_sends(h.invite(called="+3225551236"))
    invite = only(h.to_trunk(), "INVITE")
    h.trunk_answers(invite, 180)
    h.clock.advance(10)
    h.clock.advance(GUARD + 0.5)
    assert h.b2bua.calls == {}
    h.to_caller()
    h.to_trunk()
    h.trunk_answers(invite, 487)  # a stray now: its transaction is gone
    h.trunk_answers(invite, 200, SDP_ANSWER)
    h.clock.advance(1)
    assert h.to_trunk() == []  # no ACK, no BYE: nothing of ours is left to answer for it
    assert set(h.statuses_to_caller()) <= {480}  # only the unacknowledged 480, repeated
    assert sorted((r.leg, r.outcome) for r in h.records.ended) == [
        (0, "no_answer"),
        (1, "no_answer"),
    ]
