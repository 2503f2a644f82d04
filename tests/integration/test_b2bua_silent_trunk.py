"""B2BUA mode with a trunk that never answers: the forward's ``timeout`` still rules.

The trunk is a UDP socket that reads nothing (no response, not even 100
Trying, and no ICMP error either). routing-trees.md: "no answer is the
``timeout`` expiring"; the caller must get the no-answer treatment when the
forward's timeout expires, not when the INVITE transaction finally gives up
(Timer B, 64*T1: 32 s with the default T1; T1 is 50 ms here so that the
difference shows in a few seconds, and the leg's record, written when the
transaction ends, comes soon after).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from vmskit import (
    LOCAL,
    Traced,
    b2bua,
    caller_call_ids,
    run_sipp,
    scenario,
    tree,
    wait_calls,
)

pytestmark = pytest.mark.integration

CALLER = "+3227001122"
NUMBER, DESTINATION = "+3225551501", "+32475001503"
TIMEOUT, T1 = 1, 0.05  # Timer B: 64 * T1 = 3.2 s


@dataclass
class Silent:
    messages: list[Traced]  # the caller's
    legs: list[dict[str, Any]]


@pytest.fixture(scope="module")
def black_hole() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((LOCAL, 0))
    yield sock
    sock.close()


@pytest.fixture(scope="module")
def silent(sipp: str, serve_module: Any, black_hole: socket.socket,
           tmp_path_factory: pytest.TempPathFactory) -> Silent:  # fmt: skip
    """One call to a destination behind the silent trunk; the tree has no on_no_answer."""
    work = tmp_path_factory.mktemp("calls")
    host, port = black_hole.getsockname()
    routes = f'  - name: desk\n    do: {{forward: "{DESTINATION}", timeout: {TIMEOUT}}}\n'
    sip = b2bua(f"{host}:{port}", timers={"t1": T1})
    server = serve_module({"desk.yaml": tree(NUMBER, routes)}, [NUMBER], sip=sip)
    xml = scenario(work, "final_uac.xml", FINAL_STATUS="480")
    result = run_sipp(sipp, work, xml, server.sip, service=NUMBER, keys={"caller": CALLER},
                      trace=True)  # fmt: skip
    assert (result.successful, result.failed) == (1, 0), result.explain()
    (call_id,) = caller_call_ids(result.messages)
    return Silent(result.messages, wait_calls(server.config, {call_id: 2})[call_id])


def test_a_trunk_that_never_answers_is_no_answer_when_the_timeout_expires(
    silent: Silent,
) -> None:
    messages = silent.messages
    sent = next(m.at for m in messages if m.sent and m.method == "INVITE")
    final = next(m.at for m in messages if not m.sent and m.message.status == 480)
    assert final - sent < TIMEOUT + 1.2, f"the 480 came {final - sent:.1f} s after the INVITE"
    assert [r["outcome"] for r in silent.legs] == ["no_answer", "no_answer"]
    assert silent.legs[0]["sip_code"] == 480


def test_the_silent_legs_record_shows_no_response_code(silent: Silent) -> None:
    assert silent.legs[1]["sip_code"] is None, silent.legs[1]
