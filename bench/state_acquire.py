"""Micro-benchmark: one call slot taken and given back (acquire + release).

Run: ``.venv/bin/python bench/state_acquire.py [--pairs N]``. Prints p50 and
p99 latency per acquire+release pair, and pairs per second, for:

- the memory backend (in process; "two clients" are two callers taking
  turns on one state, as two call legs in one process would);
- a local ``redis-server`` started for the run (as the tests start it, on a
  free loopback port), with one client, two clients on two connections in
  one process (one reactor serves both), and two client processes (two
  engine processes on one Redis).

Every client runs its pairs one after another (await acquire, await release:
two round trips), all on one key with room for every lease, so no acquire
is refused. The first 500 pairs of each client warm up and are not counted.
Redis' own time per command comes from ``INFO commandstats``. No assertions:
it prints figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from twisted.internet import defer, task

from engine.state.memory import MemoryState
from engine.state.redis import RedisClient
from engine.state.redis_state import RedisState
from rediskit import MISSING, RedisServer, find_redis_server  # the tests' redis-server

KEY = "+3225551234"
LIMIT = 1_000_000
WARMUP = 500


def summary(latencies_ns: list[int], seconds: float) -> dict[str, float]:
    ordered = sorted(latencies_ns)
    return {
        "pairs": len(ordered),
        "p50_us": statistics.median(ordered) / 1000,
        "p99_us": ordered[int(len(ordered) * 0.99) - 1] / 1000,
        "pairs_per_s": len(ordered) / seconds,
    }


def show(label: str, figures: dict[str, float]) -> None:
    print(f"{label:<44} p50 {figures['p50_us']:8.1f} µs   p99 {figures['p99_us']:8.1f} µs   "
          f"{figures['pairs_per_s']:9.0f} pairs/s   ({figures['pairs']:.0f} pairs)")  # fmt: skip


def memory(pairs: int, callers: int) -> dict[str, float]:
    clock = task.Clock()
    state = MemoryState(clock)
    latencies: list[int] = []
    ns = time.perf_counter_ns
    start = 0.0
    for i in range(WARMUP + pairs):
        if i == WARMUP:
            start = time.perf_counter()
        lease = f"leg{i % callers}-{i}"
        t0 = ns()
        state.acquire(KEY, LIMIT, lease)
        state.release(KEY, lease)
        if i >= WARMUP:
            latencies.append(ns() - t0)
    return summary(latencies, time.perf_counter() - start)


async def _client_loop(state: RedisState, name: str, pairs: int, out: list[int]) -> None:
    ns = time.perf_counter_ns
    for i in range(WARMUP + pairs):
        lease = f"{name}-{i}"
        t0 = ns()
        await state.acquire(KEY, LIMIT, lease)
        await state.release(KEY, lease)
        if i >= WARMUP:
            out.append(ns() - t0)


async def _redis_clients(reactor: Any, port: int, pairs: int, clients: int) -> dict[str, float]:
    opened = [RedisClient(reactor, "127.0.0.1", port) for _ in range(clients)]
    for client in opened:
        await client.wait_connected()
    states = [RedisState(client, reactor) for client in opened]
    results: list[list[int]] = [[] for _ in states]
    tag = f"p{id(results)}"
    start = time.perf_counter()
    await defer.gatherResults([
        defer.ensureDeferred(_client_loop(state, f"{tag}c{n}", pairs, results[n]))
        for n, state in enumerate(states)
    ])  # fmt: skip
    seconds = time.perf_counter() - start
    for client in opened:
        await client.close()
    # Warm-up pairs ran inside the timed span too: scale the rate to the counted pairs.
    merged = [x for r in results for x in r]
    figures = summary(merged, seconds)
    figures["pairs_per_s"] = len(merged) / seconds * pairs / (pairs + WARMUP)
    return figures


def redis(port: int, pairs: int, plans: list[int]) -> list[dict[str, float]]:
    """One run per plan (its number of clients), all in one reactor run."""
    figures: list[dict[str, float]] = []

    async def main(reactor: Any) -> None:
        for clients in plans:
            figures.append(await _redis_clients(reactor, port, pairs, clients))

    try:
        task.react(lambda reactor: defer.ensureDeferred(main(reactor)))
    except SystemExit as exit_:
        if exit_.code:
            raise
    return figures


def two_processes(port: int, pairs: int) -> list[dict[str, float]]:
    command = [sys.executable, __file__, "--worker", str(port), "--pairs", str(pairs)]
    workers = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    return [json.loads(w.communicate()[0]) for w in workers]


def commandstats(port: int) -> dict[str, float]:
    out = subprocess.run(["redis-cli", "-p", str(port), "INFO", "commandstats"],
                         capture_output=True, text=True, check=False).stdout  # fmt: skip
    stats = {}
    for line in out.splitlines():
        if line.startswith("cmdstat_"):
            name, fields = line[len("cmdstat_"):].split(":", 1)
            values = dict(field.split("=") for field in fields.split(","))
            stats[name] = float(values["usec_per_call"])
    return stats


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=20_000, help="pairs counted per client")
    parser.add_argument("--worker", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(redis(args.worker, args.pairs, [1])[0]))
        return

    print(f"acquire+release pairs, {args.pairs} per client after {WARMUP} to warm up")
    show("memory, one caller", memory(args.pairs, 1))
    show("memory, two callers taking turns", memory(2 * args.pairs, 2))

    binary = find_redis_server()
    if binary is None:
        print(MISSING)
        return
    with tempfile.TemporaryDirectory() as directory:
        server = RedisServer(binary, Path(directory))
        server.start()
        try:
            one, two = redis(server.port, args.pairs, [1, 2])
            show("redis, one client", one)
            show("redis, two clients in one process", two)
            for n, figures in enumerate(two_processes(server.port, args.pairs), 1):
                show(f"redis, two processes: process {n}", figures)
            stats = commandstats(server.port)
            if stats:
                print("redis-server time per command (µs): " + ", ".join(
                    f"{name} {stats[name]:.1f}" for name in ("evalsha", "zrem") if name in stats))
        finally:
            server.stop()


if __name__ == "__main__":
    main()
