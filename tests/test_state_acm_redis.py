"""ACM reservations on a real redis-server: two engine processes racing, and real time.

The race runs two OS processes (this file, run as a script) on one
redis-server, each with many calls at once reserving from the same
operators and giving them back. Each process logs to Redis, per operator,
``+CALL`` once its reservation is confirmed and ``-CALL`` before releasing
it (on the same connection, so Redis sees the ``-`` before the release):
an operator reserved twice would show two ``+`` in a row. Afterwards the
logs, the processes' own records and the data in Redis must all agree.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import uuid
from typing import Any

import pytest
import pytest_twisted
from twisted.internet import defer, reactor, task

from engine.state.redis import RedisClient
from engine.state.redis_state import RedisState
from rediskit import RedisServer

C = "acme"
OPERATORS = [f"op{n:02}" for n in range(20)]
CALLERS = 30  # calls at once per process: three callers per operator in all
ROUNDS = 20  # reservations each caller attempts, one after another
WAIT = 60.0



# -- the worker process ----------------------------------------------------


async def _caller(state: RedisState, name: str, n: int, log: str, out: dict[str, Any]) -> None:
    rng = random.Random(f"{name}-{n}")
    client = state.client
    for i in range(ROUNDS):
        call = f"{name}-{n}-{i}"
        # Half the callers all want the same operators first; half in an order of their own.
        order = OPERATORS if n % 2 else rng.sample(OPERATORS, len(OPERATORS))
        op = await state.reserve(C, order, call, 60.0)
        if op is None:  # every operator busy: wait a moment, as a queued call would
            out["misses"] += 1
            await task.deferLater(reactor, rng.uniform(0, 0.003), lambda: None)
            continue
        await client.execute("RPUSH", f"{log}{op}", f"+{call}")
        await task.deferLater(reactor, rng.uniform(0, 0.003), lambda: None)
        client.execute("RPUSH", f"{log}{op}", f"-{call}")
        if not await state.move_operator(C, op, call, "available"):
            out["lost"].append(call)
        out["held"].append([op, call])


async def _worker(port: int, prefix: str, name: str) -> dict[str, Any]:
    client = RedisClient(reactor, "127.0.0.1", port, command_timeout=WAIT)
    state = RedisState(client, reactor, prefix=prefix)
    await client.wait_connected()
    print("ready", flush=True)
    await client.execute("BLPOP", f"{prefix}go", WAIT)  # both processes start together
    out: dict[str, Any] = {"misses": 0, "lost": [], "held": [], "kept": []}
    await defer.gatherResults([
        defer.ensureDeferred(_caller(state, name, n, f"{prefix}log:", out))
        for n in range(CALLERS)
    ])  # fmt: skip
    # The last round: one more call per caller, all sent at once, each keeping what it gets.
    calls = [f"{name}-final-{n}" for n in range(CALLERS)]
    finals = [state.reserve(C, OPERATORS, call, 60.0) for call in calls]
    for call, d in zip(calls, finals, strict=True):
        if (op := await d) is not None:
            out["kept"].append([op, call])
    await client.close()
    return out


def worker_main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("prefix")
    parser.add_argument("name")
    args = parser.parse_args(argv)

    async def main(_reactor: Any) -> None:
        print(json.dumps(await _worker(args.port, args.prefix, args.name)), flush=True)

    task.react(lambda _r: defer.ensureDeferred(main(_r)))


# -- the tests -------------------------------------------------------------


@pytest.mark.timeout(120)
@pytest_twisted.ensureDeferred
async def test_two_processes_never_reserve_one_operator_twice(redis_server: RedisServer) -> None:
    prefix = f"race:{uuid.uuid4().hex}:"
    client = RedisClient(reactor, "127.0.0.1", redis_server.port)
    state = RedisState(client, reactor, prefix=prefix)
    await client.wait_connected()
    for name in OPERATORS:
        await state.set_operator(C, name, "available", {"g": 1}, 0.0)
    command = [sys.executable, __file__, str(redis_server.port), prefix]
    workers = [subprocess.Popen([*command, name], stdout=subprocess.PIPE, text=True)
               for name in ("A", "B")]  # fmt: skip
    try:
        for w in workers:
            assert w.stdout is not None and w.stdout.readline() == "ready\n"
        await client.execute("RPUSH", f"{prefix}go", "A", "B")
        outputs = [w.communicate(timeout=WAIT)[0] for w in workers]
    finally:
        for w in workers:
            w.kill()
    assert [w.returncode for w in workers] == [0, 0]
    results = [json.loads(text.strip().splitlines()[-1]) for text in outputs]

    held = [tuple(pair) for r in results for pair in r["held"]]
    assert min(len(r["held"]) for r in results) >= 50  # both processes really took part
    assert len(held) + sum(r["misses"] for r in results) == 2 * CALLERS * ROUNDS
    logged: list[tuple[str, str]] = []
    for name in OPERATORS:
        entries = [e.decode() for e in await client.execute("LRANGE", f"{prefix}log:{name}", 0, -1)]
        for start, end in zip(entries[::2], entries[1::2], strict=True):
            assert start[0] == "+" and end == f"-{start[1:]}", (name, entries)
            logged.append((name, start[1:]))
    assert sorted(logged) == sorted(held)
    assert [r["lost"] for r in results] == [[], []]  # every release found its own reservation

    kept = [tuple(pair) for r in results for pair in r["kept"]]
    assert len(kept) == len(OPERATORS)  # 60 last calls for 20 operators: each reserved once
    assert sorted(op for op, _call in kept) == OPERATORS
    presence = f"{prefix}acm:{len(C)}:{C}:presence"  # operator -> state|since|expires|handled|call
    for op, call in kept:
        record = (await client.execute("HGET", presence, op)).decode().split("|")
        assert (record[0], record[-1]) == ("reserved", call)
    assert {info.state for info in await state.operators(C, "g")} == {"reserved"}
    await client.close()


@pytest_twisted.ensureDeferred
async def test_a_crashed_engines_reservation_lapses_in_real_time(
    redis_server: RedisServer,
) -> None:
    prefix = f"crash:{uuid.uuid4().hex}:"
    crashed, survivor = (RedisClient(reactor, "127.0.0.1", redis_server.port) for _ in "ab")
    gone, state = RedisState(crashed, reactor, prefix=prefix), RedisState(survivor, reactor,
                                                                          prefix=prefix)
    await crashed.wait_connected()
    await survivor.wait_connected()
    await state.set_operator(C, "anna", "available", {"g": 1}, reactor.seconds())
    assert await gone.reserve(C, ["anna"], "c1", 0.3) == "anna"
    await crashed.close()  # never releases
    assert await state.reserve(C, ["anna"], "c2", 10.0) is None
    await task.deferLater(reactor, 0.35, lambda: None)
    assert await state.reserve(C, ["anna"], "c2", 10.0) == "anna"
    await survivor.close()


if __name__ == "__main__":
    worker_main(sys.argv[1:])
