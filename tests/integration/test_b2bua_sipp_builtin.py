"""B2BUA mode between SIPp's own scenarios: ``sipp -sn uac`` calls, ``sipp -sn uas`` answers.

The engine in b2bua mode has its trunk on a SIPp ``uas``; a SIPp ``uac``
places five calls through it, each holding one second before its BYE. Every
call succeeds end to end, and each leaves two records, both answered, whose
durations are about that second.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vmskit import ServeFactory, b2bua, caller_call_ids, requests, run_sipp, tree, wait_calls

pytestmark = pytest.mark.integration

NUMBER, DESTINATION = "+3225551101", "+32475001103"
CALLS, PAUSE = 5, 1.0


def test_sipp_uac_through_the_engine_to_sipp_uas(
    sipp: str, serve: ServeFactory, sipp_peers: Any, tmp_path: Path
) -> None:
    uas = sipp_peers("uas")
    routes = f'  - name: desk\n    do: {{forward: "{DESTINATION}", timeout: 10}}\n'
    server = serve({"desk.yaml": tree(NUMBER, routes)}, [NUMBER],
                   sip=b2bua(uas.hostport))  # fmt: skip
    result = run_sipp(sipp, tmp_path, "uac", server.sip, service=NUMBER, calls=CALLS, rate=5,
                      extra=("-d", str(int(PAUSE * 1000))), trace=True)  # fmt: skip
    assert result.returncode == 0, result.explain()
    assert (result.successful, result.failed) == (CALLS, 0), result.explain()
    call_ids = caller_call_ids(result.messages)
    assert len(call_ids) == CALLS
    calls = wait_calls(server.config, dict.fromkeys(call_ids, 2))
    for legs in calls.values():
        assert [(r["leg"], r["outcome"]) for r in legs] == [(0, "answered"), (1, "answered")]
        caller, callee = legs
        assert callee["destination"] == DESTINATION and callee["route"] == "desk"
        assert callee["billed_to"] == "itest" and caller["billed_to"] is None
        assert caller["caller"] is None  # SIPp's From is "sipp": no number, anonymous
        for leg in legs:
            assert leg["sip_code"] == 200
            assert leg["duration"] == pytest.approx(PAUSE, abs=0.5), leg
        # The uas saw a whole call on that leg: INVITE, the ACK, the BYE.
        assert requests(uas.dialogue(callee["sip_call_id"])) == ["INVITE", "ACK", "BYE"]
