"""B2BUA mode with a trunk whose UDP port is closed: unreachable at once, not no answer.

The kernel answers the engine's INVITE with ICMP port unreachable; the engine
reads it from its socket's error queue and fails the INVITE transaction.
routing-trees.md: unreachable is "404/5xx, a transport failure, ...", so the
caller gets 503 within moments, where without the ICMP error the forward's
ring timeout (30 s here) would come first and end the call with 480.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from vmskit import (
    LOCAL,
    Traced,
    b2bua,
    caller_call_ids,
    free_port,
    run_sipp,
    scenario,
    tree,
    wait_calls,
)

pytestmark = pytest.mark.integration

CALLER = "+3227001122"
NUMBER, DESTINATION = "+3225551601", "+32475001603"
TIMEOUT = 30


@dataclass
class Unreachable:
    messages: list[Traced]  # the caller's
    legs: list[dict[str, Any]]


@pytest.fixture(scope="module")
def unreachable(sipp: str, serve_module: Any,
                tmp_path_factory: pytest.TempPathFactory) -> Unreachable:  # fmt: skip
    """One call to a destination behind a trunk nothing listens on; no on_unreachable."""
    work = tmp_path_factory.mktemp("calls")
    routes = f'  - name: desk\n    do: {{forward: "{DESTINATION}", timeout: {TIMEOUT}}}\n'
    sip = b2bua(f"{LOCAL}:{free_port()}")  # closed: free_port binds nothing
    server = serve_module({"desk.yaml": tree(NUMBER, routes)}, [NUMBER], sip=sip)
    xml = scenario(work, "final_uac.xml", FINAL_STATUS="503")
    result = run_sipp(sipp, work, xml, server.sip, service=NUMBER, keys={"caller": CALLER},
                      trace=True)  # fmt: skip
    assert (result.successful, result.failed) == (1, 0), result.explain()
    (call_id,) = caller_call_ids(result.messages)
    return Unreachable(result.messages, wait_calls(server.config, {call_id: 2})[call_id])


def test_a_closed_trunk_port_is_503_at_once(unreachable: Unreachable) -> None:
    messages = unreachable.messages
    sent = next(m.at for m in messages if m.sent and m.method == "INVITE")
    final = next(m.at for m in messages if not m.sent and m.message.status == 503)
    assert final - sent < 2, f"the 503 came {final - sent:.1f} s after the INVITE"


def test_the_legs_record_the_transport_failure(unreachable: Unreachable) -> None:
    assert [r["outcome"] for r in unreachable.legs] == ["unreachable", "unreachable"]
    callee = unreachable.legs[1]
    assert (callee["sip_code"], callee["reason"]) == (None, "transport"), callee
