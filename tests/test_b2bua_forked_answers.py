"""A second 2xx from another fork behind the trunk is acknowledged and hung up (§13.2.2.4)."""

from __future__ import annotations

from pathlib import Path

import pytest

from b2bkit import SDP_ANSWER, Harness, answered, bare_harness, tag_of
from engine.sip.message import Request


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
