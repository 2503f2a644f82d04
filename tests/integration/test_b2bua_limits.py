"""B2BUA mode against real SIPp peers: flood limits, peers, and max_calls shared through Redis.

The trunk is a SIPp UAS running ``tests/sipp/b2bua_trunk.xml`` (the last
digit of the destination says how the callee behaves: 3 answers).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vmskit import (
    ServeFactory,
    Traced,
    b2bua,
    caller_call_ids,
    cdr_export,
    dialogue,
    requests,
    run_sipp,
    scenario,
    start_sipp,
    statuses,
    tree,
    wait_calls,
)

pytestmark = pytest.mark.integration

CALLER = "+3227001122"
NUMBER, DESTINATION, OVERFLOW = "+3225551201", "+32475001203", "+32475001213"
RATE, BURST, CALLS = 2.0, 2, 5
HOLD = 1.5  # seconds the admitted calls of a burst stay up


def _finals(messages: list[Traced]) -> dict[str, tuple[float, Traced]]:
    """Per Call-ID: when the caller sent its INVITE, and the final response it got."""
    sent = {m.call_id: m.at for m in messages if m.sent and m.method == "INVITE"}
    out: dict[str, tuple[float, Traced]] = {}
    for m in messages:
        if not m.sent and m.cseq_method == "INVITE" and (m.message.status or 0) >= 200:
            out.setdefault(m.call_id or "", (sent[m.call_id], m))
    return out


@pytest.mark.parametrize("response", [503, 486])
def test_a_burst_to_one_number_is_cut_to_the_rate_limit(
    sipp: str, serve: ServeFactory, sipp_peers: Any, tmp_path: Path, response: int
) -> None:
    trunk = sipp_peers("b2bua_trunk.xml")
    routes = f'  - name: desk\n    do: {{forward: "{DESTINATION}"}}\n'
    floods = {"per_number": {"rate": RATE, "burst": BURST}, "response": response}
    server = serve({"desk.yaml": tree(NUMBER, routes)}, [NUMBER], sip=b2bua(trunk.hostport),
                   extra={"floods": floods})  # fmt: skip
    xml = scenario(tmp_path, "b2bua_burst_uac.xml", REFUSAL=str(response))
    result = run_sipp(sipp, tmp_path, xml, server.sip, service=NUMBER, calls=CALLS, rate=100,
                      keys={"caller": CALLER}, extra=("-d", str(int(HOLD * 1000))),
                      trace=True)  # fmt: skip
    assert result.returncode == 0, result.explain()
    assert (result.successful, result.failed) == (CALLS, 0), result.explain()
    finals = sorted(_finals(result.messages).items(), key=lambda item: item[1][0])
    assert len(finals) == CALLS
    first_at = finals[0][1][0]
    admitted = [call_id for call_id, (_, m) in finals if m.message.status == 200]
    for index, (_, (at, final)) in enumerate(finals):
        if index < BURST:
            assert final.message.status == 200, finals  # the bucket starts full
        elif at - first_at < 1 / RATE - 0.05:  # no token back yet when this one came
            assert final.message.start == f"SIP/2.0 {response} Call Rate Limited", final
            assert final.message.get("retry-after") == "5"
    assert len(admitted) < CALLS, finals
    # The admitted calls went on undisturbed: answered, held, hung up by the caller.
    for call_id in admitted:
        own = dialogue(result.messages, call_id)
        assert statuses(own)[-1] == 200 and statuses(own, "BYE") == [200]
    calls = wait_calls(server.config, dict.fromkeys(admitted, 2))
    for legs in calls.values():
        assert [r["outcome"] for r in legs] == ["answered", "answered"]
        assert legs[1]["duration"] == pytest.approx(HOLD, abs=0.6)
    # The refused calls never reached the trunk and left no call.
    assert len(trunk.invites()) == len(admitted)
    assert len(cdr_export(server.config)) == 2 * len(admitted)


def test_a_request_from_a_non_peer_gets_403_and_nothing_reaches_the_trunk(
    sipp: str, serve: ServeFactory, sipp_peers: Any, tmp_path: Path
) -> None:
    trunk = sipp_peers("b2bua_trunk.xml")
    routes = f'  - name: desk\n    do: {{forward: "{DESTINATION}"}}\n'
    server = serve({"desk.yaml": tree(NUMBER, routes)}, [NUMBER],
                   sip=b2bua(trunk.hostport, peers=["10.0.0.0/8"]))  # fmt: skip
    xml = scenario(tmp_path, "final_uac.xml", FINAL_STATUS="403")
    result = run_sipp(sipp, tmp_path, xml, server.sip, service=NUMBER, calls=2,
                      keys={"caller": CALLER}, trace=True)  # fmt: skip
    assert result.returncode == 0, result.explain()
    assert (result.successful, result.failed) == (2, 0), result.explain()
    assert set(statuses(result.messages)) == {403}
    server.wait_stderr(r"refused SIP from 127\.0\.0\.1: not a configured peer")
    assert trunk.messages() == []
    assert cdr_export(server.config) == []


def test_max_calls_is_shared_by_two_engines_on_one_redis(
    sipp: str, serve: ServeFactory, sipp_peers: Any, redis_server: Any, tmp_path: Path
) -> None:
    """One call through each engine at max_calls 1: the second overflows, wherever it comes."""
    trunk = sipp_peers("b2bua_trunk.xml")
    routes = (f'  - name: capped\n    do:\n      forward: "{DESTINATION}"\n      max_calls: 1\n'
              f'      on_overflow: {{forward: "{OVERFLOW}"}}\n')  # fmt: skip
    engines = [
        serve({"capped.yaml": tree(NUMBER, routes)}, [NUMBER], sip=b2bua(trunk.hostport), name=name,
              extra={"state": redis_server.url})
        for name in ("first", "second")
    ]  # fmt: skip
    first, second = engines
    assert first.sip != second.sip
    xml = scenario(tmp_path, "b2bua_uac.xml")
    held = start_sipp(sipp, tmp_path, xml, first.sip, service=NUMBER, keys={"caller": CALLER},
                      extra=("-d", "3000"), trace=True)  # fmt: skip
    held.wait_acked()
    result = run_sipp(sipp, tmp_path, xml, second.sip, service=NUMBER, keys={"caller": CALLER},
                      extra=("-d", "200"), trace=True)  # fmt: skip
    assert (result.successful, result.failed) == (1, 0), result.explain()
    (overflowed,) = caller_call_ids(result.messages)
    done = held.wait()
    assert (done.successful, done.failed) == (1, 0), done.explain()
    (kept,) = caller_call_ids(done.messages)
    kept_legs = wait_calls(first.config, {kept: 2})[kept]
    assert [(r["destination"], r["outcome"]) for r in kept_legs] == [
        (None, "answered"), (DESTINATION, "answered")]  # fmt: skip
    legs = wait_calls(second.config, {overflowed: 3})[overflowed]
    assert [(r["destination"], r["outcome"], r["action_path"]) for r in legs] == [
        (None, "answered", ""),
        (DESTINATION, "overflow", ""),
        (OVERFLOW, "answered", "on_overflow"),
    ]
    assert legs[1]["start"] < kept_legs[1]["end"]  # while the first engine's call was up
    placed = [m.message.start.split()[1] for m in trunk.invites()]
    assert [uri.split("@")[0] for uri in placed] == [f"sip:{DESTINATION}", f"sip:{OVERFLOW}"]
    # Once the first call is over its slot is free again: the next call gets the destination.
    result = run_sipp(sipp, tmp_path, xml, second.sip, service=NUMBER, keys={"caller": CALLER},
                      extra=("-d", "200"), trace=True)  # fmt: skip
    assert (result.successful, result.failed) == (1, 0), result.explain()
    (again,) = caller_call_ids(result.messages)
    legs = wait_calls(second.config, {again: 2})[again]
    assert [(r["destination"], r["outcome"]) for r in legs] == [
        (None, "answered"), (DESTINATION, "answered")]  # fmt: skip
    assert requests(trunk.dialogue(legs[1]["sip_call_id"])) == ["INVITE", "ACK", "BYE"]
