"""Route sets (RFC 3261 §12.1, §16.12.1): what Record-Route on either side does to the dialog.

The callee's 2xx Record-Route (in reverse) becomes our route set towards it:
requests carry it as Route and go to its first hop; a strict router (no
``lr``) gets the request-URI and the target moves last. The caller's INVITE
Record-Route is echoed in our 2xx and routes what we send the caller.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from b2bkit import SDP_ANSWER, Harness, answered, bare_harness, only, tag_of
from engine.sip.message import Response

PROXY_A = "<sip:10.0.0.1;lr>"
PROXY_B = "<sip:10.0.0.2:5070;lr>"


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    return bare_harness(tmp_path)


def _bye_to_callee(h: Harness, tag: str) -> tuple[bytes, tuple[str, int]]:
    sent = len(h.trunk.sent)
    h.caller_sends(h.caller_in_dialog("BYE", tag))
    (bye,) = [(data, addr) for data, addr in h.trunk.sent[sent:] if data.startswith(b"BYE ")]
    return bye


def test_the_callees_record_route_is_our_route_set_in_reverse(h: Harness) -> None:
    _, tag = answered(h, extra={"record-route": f"{PROXY_A}, {PROXY_B}"})
    data, addr = _bye_to_callee(h, tag)
    assert data.startswith(b"BYE sip:callee@127.0.0.1:5080 ")  # the remote target stays
    assert b"Route: <sip:10.0.0.2:5070;lr>\r\nRoute: <sip:10.0.0.1;lr>\r\n" in data
    assert addr == ("10.0.0.2", 5070)  # to the first hop of the route set


def test_a_strict_router_gets_the_request_uri_and_the_target_moves_last(h: Harness) -> None:
    _, tag = answered(h, extra={"record-route": "<sip:10.0.0.9:5090>"})
    data, addr = _bye_to_callee(h, tag)
    assert data.startswith(b"BYE sip:10.0.0.9:5090 ")
    assert b"Route: <sip:callee@127.0.0.1:5080>\r\n" in data
    assert addr == ("10.0.0.9", 5090)


def test_the_callers_record_route_is_echoed_and_routes_our_requests(h: Harness) -> None:
    h.caller_sends(h.invite(called="+3225551236", extra=f"Record-Route: {PROXY_A}\r\n"))
    invite = only(h.to_trunk(), "INVITE")
    assert "record-route" not in invite.headers  # our dialog with the callee is our own
    h.trunk_answers(invite, 200, SDP_ANSWER)
    ok = [m for m in h.to_caller() if isinstance(m, Response) and m.status == 200][-1]
    assert ok.headers["record-route"] == [PROXY_A]
    h.caller_sends(h.caller_in_dialog("ACK", tag_of(ok), cseq=1, branch="z9hG4bK-ack"))
    sent = len(h.caller.sent)
    h.trunk_request("BYE", invite)
    (bye,) = [(d, a) for d, a in h.caller.sent[sent:] if d.startswith(b"BYE ")]
    assert bye[0].startswith(b"BYE sip:caller@127.0.0.1:5070 ")
    assert b"Route: <sip:10.0.0.1;lr>\r\n" in bye[0] and bye[1] == ("10.0.0.1", 5060)
