"""Every row of the two leg tables, walked from a real call on a fake clock."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from b2bkit import SDP_ANSWER, Harness, only
from engine.calls.inbound import InboundLeg
from engine.calls.outbound import OutboundLeg
from engine.sip.message import Request, Response

TREE = """\
version: 1
customer: acme
numbers: ["+3225551234"]
routes:
  - name: desk
    do: {forward: "+3225550001", timeout: 30}
"""


def call(tmp_path: Path) -> tuple[Harness, Request]:
    (tmp_path / "acme.yaml").write_text(TREE)
    h = Harness(tmp_path)
    h.caller_sends(h.invite())
    return h, only(h.to_trunk(), "INVITE")


def the_call(h: Harness) -> Any:
    (c,) = h.b2bua.calls.values()
    return c


def response(invite: Request, status: int, tag: str | None = "callee-tag") -> Response:
    r = invite.response(status, None, tag)
    r.headers["contact"] = ["<sip:callee@127.0.0.1:5080>"]
    if status == 200:
        r.body = SDP_ANSWER
        r.headers["content-type"] = ["application/sdp"]
    return r


def caller_ack(h: Harness) -> None:
    c = the_call(h)
    h.caller_sends(h.caller_in_dialog("ACK", c.inbound.to_tag, cseq=1, branch="z9hG4bK-ack"))


OUT_STATES: dict[str, Callable[[Harness, Request], None]] = {
    "calling": lambda h, inv: None,
    "proceeding": lambda h, inv: h.trunk_sends(response(inv, 100, None)),
    "early": lambda h, inv: h.trunk_sends(response(inv, 180)),
    "cancel_pending": lambda h, inv: the_call(h).legs[0].cancel("no_answer"),
    "cancelling": lambda h, inv: (h.trunk_sends(response(inv, 180)),
                                  the_call(h).legs[0].cancel("no_answer")),
    "answered": lambda h, inv: h.trunk_sends(response(inv, 200)),
    "confirmed": lambda h, inv: (h.trunk_sends(response(inv, 200)), caller_ack(h)),
    "ending": lambda h, inv: (h.trunk_sends(response(inv, 200)), caller_ack(h),
                              the_call(h).legs[0].hang_up()),
}  # fmt: skip

IN_STATES: dict[str, Callable[[Harness, Request], None]] = {
    "trying": lambda h, inv: None,
    "early": lambda h, inv: h.trunk_sends(response(inv, 180)),
    "answered": lambda h, inv: h.trunk_sends(response(inv, 200)),
    "confirmed": lambda h, inv: (h.trunk_sends(response(inv, 200)), caller_ack(h)),
    "ending": lambda h, inv: (h.trunk_sends(response(inv, 200)), caller_ack(h),
                              the_call(h).inbound.hang_up()),
}  # fmt: skip


def out_event(event: str, h: Harness, inv: Request) -> tuple[str, Any]:
    args: dict[str, Any] = {
        "trying": response(inv, 100, None), "progress": response(inv, 183, None),
        "early": response(inv, 180), "success": response(inv, 200),
        "failure": response(inv, 486), "txn_failed": "timeout",
        "ack": Request("ACK", "sip:x", {}), "bye": Request("BYE", "sip:x", {}),
    }  # fmt: skip
    return event, args.get(event)


def in_event(event: str, h: Harness, inv: Request) -> tuple[str, Any]:
    args: dict[str, Any] = {
        "provisional": response(inv, 180), "answer": response(inv, 200),
        "reject": (486, None, ()), "ack": Request("ACK", "sip:x", {"cseq": ["1 ACK"]}),
        "bye": Request("BYE", "sip:x", {}),
    }  # fmt: skip
    return event, args.get(event)


def rows(cls: type) -> list[tuple[str, str, str]]:
    return [(state, event, nxt) for (state, event), (nxt, _) in cls.TABLE.items()]


@pytest.mark.parametrize(("state", "event", "expected"), rows(OutboundLeg))
def test_every_outbound_row(tmp_path: Path, state: str, event: str, expected: str) -> None:
    h, invite = call(tmp_path)
    OUT_STATES[state](h, invite)
    leg = the_call(h).legs[0]
    assert leg.state == state
    name, arg = out_event(event, h, invite)
    assert leg.handle(name, arg) is True
    assert leg.state == expected


@pytest.mark.parametrize(("state", "event", "expected"), rows(InboundLeg))
def test_every_inbound_row(tmp_path: Path, state: str, event: str, expected: str) -> None:
    h, invite = call(tmp_path)
    IN_STATES[state](h, invite)
    leg = the_call(h).inbound
    assert leg.state == state
    name, arg = in_event(event, h, invite)
    assert leg.handle(name, arg) is True
    assert leg.state == expected


def test_every_state_has_a_way_out() -> None:
    for cls in (InboundLeg, OutboundLeg):
        states = cls.states()
        assert "ended" in states
        for state in states - {"ended"}:
            assert any(s == state and nxt != state for (s, _), (nxt, _) in cls.TABLE.items()), (
                f"{cls.__name__}: {state} has no transition out"
            )
