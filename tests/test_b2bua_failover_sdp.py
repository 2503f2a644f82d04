"""One answer per dialog: SDP from a failover leg reaches the caller on a new early dialog.

Leg A's early media (183 with its SDP) has told the caller an answer; when
A fails and leg B answers with other SDP, repeating B's SDP in the same
dialog would change an answer RFC 3261 §13.2.1 says the 2xx must repeat.
The engine does what a forking proxy's branches look like: B's responses
carry a fresh To tag, and the caller's dialog is the one the 2xx makes.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from b2bkit import SDP_ANSWER, Harness, only, tag_of
from engine.sip.message import Response

TREE = """\
version: 1
customer: acme
numbers: ["+3225551234"]
timezone: Europe/Brussels
routes:
  - name: chain
    do:
      forward: "+3225550001"
      on_busy: {forward: "+3225550002"}
"""
SDP_B = SDP_ANSWER.replace(b"o=callee 1 1", b"o=calleeB 7 7")


@pytest.fixture
def h(tmp_path: Path) -> Harness:
    (tmp_path / "acme.yaml").write_text(TREE)
    return Harness(tmp_path)


def _responses(h: Harness) -> list[Response]:
    return [m for m in h.to_caller() if isinstance(m, Response) and m.status > 100]


def test_a_failover_legs_answer_comes_on_a_new_dialog_that_the_call_then_uses(h: Harness) -> None:
    assert SDP_B != SDP_ANSWER
    h.caller_sends(h.invite())
    first = only(h.to_trunk(), "INVITE")
    h.trunk_answers(first, 183, SDP_ANSWER, tag="a")
    (early,) = _responses(h)
    h.trunk_answers(first, 486, tag="a")
    second = only([m for m in h.to_trunk() if getattr(m, "method", "") == "INVITE"], "INVITE")
    h.trunk_answers(second, 200, SDP_B, tag="b")
    (answer,) = _responses(h)
    assert (early.status, early.body, answer.status, answer.body) == (183, SDP_ANSWER, 200, SDP_B)
    assert tag_of(answer) != tag_of(early)
    h.caller_sends(h.caller_in_dialog("ACK", tag_of(answer), cseq=1, branch="z9hG4bK-ack"))
    assert [m.method for m in h.to_trunk() if hasattr(m, "method")] == ["ACK"]
    h.caller_sends(h.caller_in_dialog("BYE", tag_of(answer)))
    assert h.statuses_to_caller() == [200]
    only(h.to_trunk(), "BYE")
    h.caller_sends(h.caller_in_dialog("BYE", tag_of(early)))
    assert h.statuses_to_caller() == [481]  # the abandoned early dialog is gone


def test_the_same_legs_early_media_and_answer_share_one_dialog(h: Harness) -> None:
    h.caller_sends(h.invite())
    first = only(h.to_trunk(), "INVITE")
    h.trunk_answers(first, 183, SDP_ANSWER, tag="a")
    h.trunk_answers(first, 200, SDP_ANSWER, tag="a")
    early, answer = _responses(h)
    assert tag_of(early) == tag_of(answer)
