"""A 3xx from the trunk reaches the caller with the trunk's Contacts, its redirect targets.

Before, the engine put its own Contact in every response above 100, so the
relayed 302 pointed the caller back at the engine. Only responses that set
up a dialog with the engine (a tagged 1xx, the 2xx) carry our Contact now.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from b2bkit import SDP_ANSWER, Harness, bare_harness, only
from engine.sip.message import Response

OURS = "<sip:vms@127.0.0.1:5060>"

@pytest.fixture
def h(tmp_path: Path) -> Harness:
    h = bare_harness(tmp_path)
    h.caller_sends(h.invite(called="+3225551236"))
    return h


def finals(h: Harness) -> list[Response]:
    return [m for m in h.to_caller() if isinstance(m, Response) and m.status >= 200]


def test_a_302_keeps_the_trunks_contact(h: Harness) -> None:
    invite = only(h.to_trunk(), "INVITE")
    h.trunk_answers(invite, 302, extra={"contact": "<sip:+3225559999@10.0.0.9>;q=0.7"})
    (moved,) = finals(h)
    assert moved.status == 302
    assert moved.headers["contact"] == ["<sip:+3225559999@10.0.0.9>;q=0.7"]
    assert only(h.to_trunk(), "ACK")  # the trunk's 3xx is acknowledged as any failure
    assert h.b2bua.calls == {}
    assert h.records.by_leg()[1].outcome == "rejected"
    assert h.records.by_leg()[1].sip_code == 302


def test_every_contact_of_a_300_goes_to_the_caller_in_order(h: Harness) -> None:
    invite = only(h.to_trunk(), "INVITE")
    response = invite.response(300, None, "callee-tag")
    response.headers["contact"] = ["<sip:a@10.0.0.1>, <sip:b@10.0.0.2>", "<sip:c@10.0.0.3>"]
    h.trunk_sends(response)
    (choices,) = finals(h)
    assert choices.status == 300
    assert choices.values("contact") == ["<sip:a@10.0.0.1>", "<sip:b@10.0.0.2>",
                                         "<sip:c@10.0.0.3>"]  # fmt: skip


def test_a_3xx_without_contact_gets_none_of_ours(h: Harness) -> None:
    invite = only(h.to_trunk(), "INVITE")
    h.trunk_sends(invite.response(305, None, "callee-tag"))
    (moved,) = finals(h)
    assert moved.status == 305 and "contact" not in moved.headers


def test_a_failure_carries_no_contact_of_ours(h: Harness) -> None:
    h.trunk_answers(only(h.to_trunk(), "INVITE"), 603)
    (declined,) = finals(h)
    assert declined.status == 603 and "contact" not in declined.headers


def test_dialog_setting_responses_still_carry_our_contact(h: Harness) -> None:
    invite = only(h.to_trunk(), "INVITE")
    h.trunk_answers(invite, 180)
    h.trunk_answers(invite, 200, SDP_ANSWER)
    ringing, ok = [m for m in h.to_caller() if isinstance(m, Response) and m.status > 100]
    assert (ringing.status, ringing.headers["contact"]) == (180, [OURS])
    assert (ok.status, ok.headers["contact"]) == (200, [OURS])
