"""ACM queues through real ``vms serve`` processes: SIPp callers, SIPp operators, Redis.

The operators' numbers are dialled through the SIPp trunk of the B2BUA tests
(``tests/sipp/b2bua_trunk.xml``), whose last digit says how the operator's
phone behaves: 2 rings for ever, 3 answers, 6 answers and hangs up after
800 ms. Operators log in through the HTTP API (one engine, in-process
state) and through ``vms acm login`` (two engines sharing a real
``redis-server``), and the tests judge the call records, the trunk's trace
and the statistics the engine serves.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import pytest

from engine.passwords import hash_password
from vmskit import (
    SIPP_DIR,
    ServeFactory,
    Server,
    SippServer,
    Traced,
    api_call,
    b2bua,
    caller_call_ids,
    run_sipp,
    run_vms,
    scenario,
    start_sipp,
    tree,
    wait_legs,
    wait_until,
)

pytestmark = pytest.mark.integration

QUEUE = "+3225553001"
CALLER = "+3227001122"
#: Operators' phones behind the trunk: busy, ring for ever, answer.
BUSY, RINGS, ANSWERS = "+32475000101", "+32475000102", "+32475000103"
TOKEN = "itest:queue-secret"
ROUTES = f"""\
  - name: sales
    when: {{called: "{QUEUE}"}}
    do: {{queue: sales, max_wait: 60}}
"""


def customers(operators: dict[str, Any], **group: Any) -> dict[str, Any]:
    return {"itest": {
        "formula": "classic", "options": ["acm"], "numbers": [QUEUE],
        "api_token": hash_password(TOKEN.split(":", 1)[1]),
        "acm": {"groups": {"sales": {"ring_timeout": 2, "wrap_up": 1, **group}},
                "operators": operators},
    }}  # fmt: skip


def api(engine: Server, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    return api_call(engine, TOKEN, method, path, body)


@pytest.fixture(scope="module")
def trunk(sipp_peers_module: Any) -> SippServer:
    return sipp_peers_module("b2bua_trunk.xml")


@pytest.fixture(scope="module")
def engine(serve_module: ServeFactory, trunk: SippServer) -> Server:
    operators = {
        "bert": {"numbers": [RINGS], "pin": "1234", "groups": {"sales": 3}},
        "cleo": {"numbers": [BUSY], "pin": "1234", "groups": {"sales": 2}},
        "anna": {"numbers": [ANSWERS], "pin": "1234", "groups": {"sales": 1}},
    }
    extra = {"customers": customers(operators)}
    return serve_module({"queue.yaml": tree([QUEUE], ROUTES)}, [QUEUE], name="acm",
                        sip=b2bua(trunk.hostport), extra=extra)  # fmt: skip


def test_no_answer_and_busy_move_on_and_the_next_operator_takes_the_call(
    sipp: str, engine: Server, trunk: SippServer, tmp_path: Path
) -> None:
    for name in ("bert", "cleo", "anna"):
        status, body = api(engine, "POST", f"acm/operators/{name}/login")
        assert status == 200, body
    result = run_sipp(sipp, tmp_path, "uac", engine.sip, service=QUEUE, keys={"caller": CALLER},
                      extra=("-d", "5000"), trace=True, timeout=30)  # fmt: skip
    assert (result.successful, result.failed) == (1, 0), result.explain()
    (call_id,) = caller_call_ids(result.messages)
    legs = wait_legs(engine.config, call_id, 4)
    shape = [(r["leg"], r["destination"], r["outcome"]) for r in legs]
    # The caller is answered by the engine (music), bert (level 3) rings 2 s in vain,
    # cleo (level 2) is busy, anna (level 1) answers and talks until the caller hangs up.
    assert shape == [(0, None, "answered"), (1, RINGS, "no_answer"), (2, BUSY, "busy"),
                     (3, ANSWERS, "answered")]  # fmt: skip
    rung = trunk.dialogue(legs[1]["sip_call_id"])
    assert [m.method for m in rung if m.method and not m.sent] == ["INVITE", "CANCEL", "ACK"]

    def figures() -> Any:
        status, body = api(engine, "GET", "stats")
        assert status == 200, body
        sales = next(q for q in body["queues"] if q["group"] == "sales")
        return body if sales["answered"] == 1 else None

    stats = wait_until("the statistics of the call", figures, timeout=10)
    (sales,) = stats["queues"]
    assert (sales["offered"], sales["answered"], sales["abandoned"]) == (1, 1, 0)
    assert 2.0 <= sales["average_speed_of_answer"] <= 5.0
    operators = {o["operator"]: o for o in stats["operators"]}
    assert [operators[n]["no_answers"] for n in ("bert", "cleo", "anna")] == [1, 1, 0]
    assert operators["anna"]["handled"] == 1


def test_a_registered_softphone_is_offered_the_call_where_it_registered(
    sipp: str, serve: ServeFactory, sipp_peers: Any, tmp_path: Path
) -> None:
    # H(anna:itest:secret), as `vms passwd --digest anna itest` prints it.
    softphone = {"user": "anna", "ha1": "e9d53d8ae5bb383683e3af8d96a7d943"}
    operators = {"anna": {"pin": "1234", "groups": {"sales": 1}, "softphone": softphone}}
    trunk = sipp_peers("b2bua_trunk.xml")  # nobody is called through it
    engine = serve({"queue.yaml": tree([QUEUE], ROUTES)}, [QUEUE], sip=b2bua(trunk.hostport),
                   extra={"customers": customers(operators)})  # fmt: skip
    assert api(engine, "POST", "acm/operators/anna/login")[0] == 200
    phone = start_sipp(sipp, tmp_path, scenario(tmp_path, "register_uac.xml", USER="anna",
                                                PASSWORD="secret"), engine.sip,
                       service="anna", extra=("-d", "6000", "-oocsf",
                                              str(SIPP_DIR / "softphone_ooc.xml")),
                       trace=True, timeout=30)  # fmt: skip
    engine.wait_stderr(r"softphone anna@itest bound")
    result = run_sipp(sipp, tmp_path, "uac", engine.sip, service=QUEUE, keys={"caller": CALLER},
                      extra=("-d", "2000"), trace=True, timeout=30)  # fmt: skip
    assert (result.successful, result.failed) == (1, 0), result.explain()
    (call_id,) = caller_call_ids(result.messages)
    legs = wait_legs(engine.config, call_id, 2)
    assert legs[1]["outcome"] == "answered"
    assert legs[1]["destination"].startswith("sip:anna@127.0.0.1:")
    registered = phone.wait()
    assert registered.successful == 1, registered.explain()
    invites = [m for m in registered.messages if m.method == "INVITE" and not m.sent]
    assert len(invites) == 1 and invites[0].message.raw.startswith(b"INVITE sip:anna@127.0.0.1:")
    assert trunk.invites() == []


def _intervals(trace: list[Traced], number: str) -> list[tuple[float, float]]:
    """When the trunk was busy with each INVITE to ``number``: from the INVITE to its end."""
    by_call: dict[str, list[Traced]] = {}
    for m in trace:
        if m.call_id:
            by_call.setdefault(m.call_id, []).append(m)
    out = []
    for messages in by_call.values():
        first = messages[0]
        if first.method != "INVITE" or f"sip:{number}@" not in first.message.raw.decode():
            continue
        out.append((first.at, messages[-1].at))
    return sorted(out)


@pytest.mark.slow
def test_two_engines_on_one_redis_never_offer_an_operator_two_calls(
    sipp: str, serve: ServeFactory, sipp_peers: Any, redis_server: Any, tmp_path: Path
) -> None:
    trunk = sipp_peers("b2bua_trunk.xml")
    numbers = [f"+3247500{n}106" for n in range(3)]  # they answer, hang up after 800 ms
    operators = {f"op{n}": {"numbers": [number], "pin": "1234", "groups": {"sales": 1}}
                 for n, number in enumerate(numbers)}  # fmt: skip
    extra = {"customers": customers(operators, wrap_up=0.5), "state": redis_server.url}
    engines = [serve({"queue.yaml": tree([QUEUE], ROUTES)}, [QUEUE], name=f"e{n}",
                     sip=b2bua(trunk.hostport), extra=extra) for n in range(2)]  # fmt: skip
    for name in operators:
        done = run_vms("acm", "login", "--customer", "itest", "--operator", name,
                       "--config", str(engines[0].config))  # fmt: skip
        assert done.returncode == 0, done.stderr
    # Callers on both engines at once, more than the operators: each waits in the queue
    # until an operator answers and hangs up (800 ms), then the engine hangs up on it.
    xml = scenario(tmp_path, "b2bua_callee_bye_uac.xml", ANSWERED_BY="s=")
    runs = [start_sipp(sipp, tmp_path, xml, engine.sip, service=QUEUE, calls=8, rate=8,
                       keys={"caller": CALLER}, timeout=60) for engine in engines]  # fmt: skip
    for run in runs:
        result = run.wait()
        assert (result.successful, result.failed) == (8, 0), result.explain()
    trace = trunk.messages()
    for number in numbers:
        spans = _intervals(trace, number)
        assert spans, f"{number} was never offered a call"
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end - 0.05, f"{number} was offered a call while on another"
    assert sum(len(_intervals(trace, n)) for n in numbers) == 16  # one offer per call
