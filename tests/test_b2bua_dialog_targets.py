"""Where in-dialog requests go when a dialog's next hop is a host name the engine does not resolve.

In production the caller and the trunk reach the engine on the same UDP
socket, so the harness gives both one transport here: the side a dialog
belongs to, not the socket, decides where its requests go.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from b2bkit import CALLER_ADDR, SDP_ANSWER, TRUNK_ADDR, Harness, bare_harness, only, tag_of
from engine.sip.message import Request, Response


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    harness = bare_harness(tmp_path)
    harness.ctx.transport = harness.caller  # one socket for callers and the trunk
    harness.trunk = harness.caller
    return harness


def _answered(h: Harness, caller_contact: str, callee_contact: str) -> tuple[str, Request]:
    """An answered call whose two parties name themselves by the Contacts given."""
    invite = h.invite(called="+3225551236").replace(
        b"Contact: <sip:caller@127.0.0.1:5070>", f"Contact: <{caller_contact}>".encode()
    )
    h.caller_sends(invite)
    placed = only(h.to_caller(), "INVITE")  # the one socket: the INVITE to the trunk
    h.trunk_answers(placed, 200, SDP_ANSWER, extra={"contact": f"<{callee_contact}>"})
    ok = [m for m in h.to_caller() if isinstance(m, Response) and m.status == 200][-1]
    tag = tag_of(ok)
    h.caller_sends(h.caller_in_dialog("ACK", tag, cseq=1, branch="z9hG4bK-ack"))
    h.to_caller()
    return tag, placed


def _byes(h: Harness, since: int) -> list[tuple[bytes, tuple[str, int]]]:
    return [(data, addr) for data, addr in h.caller.sent[since:] if data.startswith(b"BYE ")]


def test_a_caller_named_by_host_name_gets_its_bye_where_it_called_from(h: Harness) -> None:
    _, placed = _answered(h, "sip:caller@pbx.example.net:5070", "sip:callee@127.0.0.1:5080")
    sent = len(h.caller.sent)
    h.trunk_request("BYE", placed)
    byes = _byes(h, sent)
    assert len(byes) == 1
    assert byes[0][0].startswith(b"BYE sip:caller@pbx.example.net:5070 ")
    assert byes[0][1] == CALLER_ADDR  # not the trunk


def test_a_callee_named_by_host_name_gets_its_bye_through_the_trunk(h: Harness) -> None:
    tag, _ = _answered(h, "sip:caller@127.0.0.1:5070", "sip:callee@gw.example.net:5080")
    sent = len(h.caller.sent)
    h.caller_sends(h.caller_in_dialog("BYE", tag))
    byes = _byes(h, sent)
    assert len(byes) == 1
    assert byes[0][0].startswith(b"BYE sip:callee@gw.example.net:5080 ")
    assert byes[0][1] == TRUNK_ADDR
