"""B2BUA mode: the engine crashes during a call and starts again; the call's legs are closed.

A call is completed, then a second one is answered and held (the caller
pauses a minute) while the engine gets SIGKILL. Started again on the same
``data_dir``, the engine closes both legs of the held call as ``failed``
with the crash reason, keeps the completed call's records, and takes calls.
The trunk is a SIPp UAS running ``tests/sipp/b2bua_trunk.xml`` (a
destination ending in 3 answers).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import pytest

from vmskit import (
    Server,
    SippServer,
    b2bua,
    caller_call_ids,
    cdr_export,
    run_sipp,
    scenario,
    start_sipp,
    tree,
    wait_calls,
    wait_until,
)

pytestmark = pytest.mark.integration

CALLER = "+3227001122"
NUMBER, DESTINATION = "+3225551401", "+32475001403"
CRASH_REASON = "engine stopped during the call (crash or kill)"


def answered_on_disk(server: Server, caller_call_id: str) -> bool:
    """Whether both legs of the call in progress are stored as answered (open legs).

    The records are group-committed about 50 ms after the answer; a crash
    before that would leave the answer out, so the test waits for it here,
    reading the database the way ``vms cdr export`` does (read-only).
    """
    path = server.config.parent / "var" / "cdr.sqlite"
    if not path.exists():
        return False
    conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=5)
    try:
        rows = conn.execute(
            "SELECT leg, answer FROM open_legs WHERE call_id IN "
            "(SELECT call_id FROM open_legs WHERE leg = 0 AND sip_call_id = ?)",
            (caller_call_id,),
        ).fetchall()
    finally:
        conn.close()
    return len(rows) == 2 and all(answer is not None for _, answer in rows)


@dataclass
class Crash:
    """What the crash left: the restarted engine, the trunk, the calls by their Call-ID."""

    engine: Server
    trunk: SippServer
    completed: str  # before the crash
    crashed: str  # up when the engine was killed
    after: str  # after the restart
    calls: dict[str, list[dict[str, Any]]]
    records: list[dict[str, Any]]


@pytest.fixture(scope="module")
def crash(sipp: str, serve_module: Any, sipp_peers_module: Any,
          tmp_path_factory: pytest.TempPathFactory) -> Crash:  # fmt: skip
    """A completed call, a call held while the engine gets SIGKILL, a restart, one more call."""
    work = tmp_path_factory.mktemp("calls")
    trunk = sipp_peers_module("b2bua_trunk.xml")
    routes = f'  - name: desk\n    do: {{forward: "{DESTINATION}"}}\n'
    server = serve_module({"desk.yaml": tree(NUMBER, routes)}, [NUMBER],
                          sip=b2bua(trunk.hostport))  # fmt: skip
    xml = scenario(work, "b2bua_uac.xml")

    def one_call(engine: Server) -> str:
        result = run_sipp(sipp, work, xml, engine.sip, service=NUMBER, keys={"caller": CALLER},
                          extra=("-d", "200"), trace=True)  # fmt: skip
        assert (result.successful, result.failed) == (1, 0), result.explain()
        (call_id,) = caller_call_ids(result.messages)
        return call_id

    completed = one_call(server)
    wait_calls(server.config, {completed: 2})
    held = start_sipp(sipp, work, xml, server.sip, service=NUMBER, keys={"caller": CALLER},
                      extra=("-d", "60000"), timeout=90, trace=True)  # fmt: skip
    try:
        (crashed,) = caller_call_ids(held.wait_acked())
        wait_until("the held call's answer stored", lambda: answered_on_disk(server, crashed))
        server.kill()
        restarted = serve_module.restart(server)
    finally:
        held.kill()  # the caller gives up too: its dialog died with the engine
    restarted.wait_stderr(r"2 call legs left open by an engine that stopped during calls "
                          r"were closed as failed")  # fmt: skip
    after = one_call(restarted)
    calls = wait_calls(restarted.config, {completed: 2, crashed: 2, after: 2})
    return Crash(restarted, trunk, completed, crashed, after, calls,
                 cdr_export(restarted.config))  # fmt: skip


def test_a_crash_during_a_call_then_a_restart_closes_its_legs(crash: Crash) -> None:
    calls = crash.calls
    assert [r["outcome"] for r in calls[crash.completed]] == ["answered", "answered"]
    legs = calls[crash.crashed]
    for leg in legs:
        assert (leg["outcome"], leg["reason"]) == ("failed", CRASH_REASON), leg
        assert leg["answer"] is not None and leg["end"] >= leg["answer"]
        assert leg["duration"] >= 0
    assert legs[1]["destination"] == DESTINATION and legs[1]["billed_to"] == "itest"
    assert legs[1]["sip_code"] == 200
    # Nothing lost, nothing invented: the legs of the three calls are all there is.
    assert len(crash.records) == 6
    # The engine took calls again after its restart.
    assert [r["outcome"] for r in calls[crash.after]] == ["answered", "answered"]
    assert len(crash.trunk.invites()) == 3


def test_the_callers_leg_of_a_crashed_call_keeps_its_200(crash: Crash) -> None:
    """The caller got 200 before the crash: its leg says so, like the callee's (3e88e8b)."""
    assert [leg["sip_code"] for leg in crash.calls[crash.crashed]] == [200, 200]
