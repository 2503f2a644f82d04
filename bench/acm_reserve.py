"""Benchmark: ACM queue decisions (choose an operator, reserve it) on the Redis backend.

Run: ``.venv/bin/python bench/acm_reserve.py [--decisions N] [--json]``.

1,000 operators in 100 groups (each operator in 3 groups at a level of 1
to 5, so about 30 per group) on a ``redis-server`` started for the run on
a free loopback port (as the tests start it). One decision, timed from
start to end, is what a queue does when it offers a call: read the group's
operators (one script), keep the available ones, sort them by level, highest
first, then longest idle, and reserve the first that is still available
(one script). Decisions run one after another on one client; between them,
untimed, the oldest reservations are released back to available so that
about half the operators stay busy, as in a loaded contact centre. The
first 500 decisions warm up and are not counted. The same loop on the
memory backend is shown for reference. Target: p99 below 1 ms on Redis.

``run(options, root)`` runs this script as its own process (its reactor and
its timings undisturbed by the caller) with ``--json`` and reads back the
figures, for ``bench/run.py``; ``headlines(summary)`` gives its closing lines.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from common import BenchError, summary_head
from twisted.internet import defer, task

from engine.state.interface import SharedState
from engine.state.memory import MemoryState
from engine.state.redis import RedisClient
from engine.state.redis_state import RedisState
from rediskit import MISSING, RedisServer, find_redis_server

__all__ = ["Options", "headlines", "run"]

CUSTOMER = "bench"
OPERATORS = 1000
GROUPS = 100
GROUPS_PER_OPERATOR = 3
WARMUP = 500
TARGET_P99_MS = 1.0
RESERVATION_TTL = 300.0  # longer than any hold here: no reservation lapses during the run


@dataclass(frozen=True)
class Options:
    decisions: int = 20_000
    quick: bool = False


# -- the measurement (in this script's own process) --------------------------------------


async def populate(state: SharedState, rng: random.Random, now: float) -> None:
    """Every operator available in its groups, idle for up to an hour; all sent at once."""
    names = [f"op{n:04}" for n in range(OPERATORS)]
    groups = [f"group{n:03}" for n in range(GROUPS)]
    pending = []
    for name in names:
        levels = {g: rng.randint(1, 5) for g in rng.sample(groups, GROUPS_PER_OPERATOR)}
        pending.append(state.set_operator(CUSTOMER, name, "available", levels,
                                          now - rng.uniform(0, 3600)))  # fmt: skip
    await defer.gatherResults(pending)


async def decide(state: SharedState, group: str, call: str) -> str | None:
    """One queue decision: the group's best available operator, reserved (None: nobody)."""
    members = await state.operators(CUSTOMER, group)
    available = [op for op in members if op.state == "available"]
    available.sort(key=lambda op: (-op.level, op.idle_since))
    if not available:
        return None
    return await state.reserve(CUSTOMER, [op.operator for op in available], call, RESERVATION_TTL)


async def measure(state: SharedState, decisions: int, seed: int = 7) -> dict[str, Any]:
    """Time ``decisions`` decisions after the warm-up; figures in milliseconds."""
    rng = random.Random(seed)
    held: deque[tuple[str, str]] = deque()
    latencies: list[int] = []
    nobody = 0
    ns = time.perf_counter_ns
    for i in range(WARMUP + decisions):
        call = f"call{i}"
        group = f"group{rng.randrange(GROUPS):03}"
        t0 = ns()
        chosen = await decide(state, group, call)
        elapsed = ns() - t0
        if i >= WARMUP:
            latencies.append(elapsed)
            nobody += chosen is None
        if chosen is not None:
            held.append((chosen, call))
        while len(held) > OPERATORS // 2:  # untimed: a call ends, its operator is free again
            operator, ended = held.popleft()
            await state.move_operator(CUSTOMER, operator, ended, "available")
    ordered = sorted(latencies)
    return {
        "decisions": len(ordered),
        "no_operator": nobody,
        "p50_ms": statistics.median(ordered) / 1e6,
        "p99_ms": ordered[int(len(ordered) * 0.99) - 1] / 1e6,
        "max_ms": ordered[-1] / 1e6,
    }


def _commandstats(info: bytes) -> dict[str, float]:
    """Redis' own microseconds per call, by command, from ``INFO commandstats``."""
    stats = {}
    for line in info.decode().splitlines():
        if line.startswith("cmdstat_"):
            name, fields = line[len("cmdstat_") :].split(":", 1)
            values = dict(field.split("=") for field in fields.split(","))
            stats[name] = float(values["usec_per_call"])
    return stats


def measure_all(decisions: int) -> dict[str, Any]:
    """The memory backend, then a redis-server of the run's own."""
    out: dict[str, Any] = {}
    clock = task.Clock()
    clock.advance(time.time())
    memory = MemoryState(clock)
    first = defer.ensureDeferred(populate(memory, random.Random(1), clock.seconds()))
    first.addCallback(lambda _: defer.ensureDeferred(measure(memory, decisions)))
    out["memory"] = first.result  # the memory backend answers at once
    binary = find_redis_server()
    if binary is None:
        out["error"] = MISSING
        return out

    async def main(reactor: Any, port: int) -> None:
        client = RedisClient(reactor, "127.0.0.1", port)
        await client.wait_connected()
        state = RedisState(client, reactor)
        await populate(state, random.Random(1), reactor.seconds())
        out["redis"] = await measure(state, decisions)
        info = await client.execute("INFO", "commandstats")
        out["redis_us_per_command"] = _commandstats(info if isinstance(info, bytes) else b"")
        await client.close()

    with tempfile.TemporaryDirectory() as directory:
        server = RedisServer(binary, Path(directory))
        server.start()
        try:
            task.react(lambda reactor: defer.ensureDeferred(main(reactor, server.port)))
        except SystemExit as exit_:
            if exit_.code:
                raise
        finally:
            server.stop()
    return out


def show(label: str, figures: dict[str, Any]) -> str:
    return (f"{label:<8} p50 {figures['p50_ms']:.3f} ms   p99 {figures['p99_ms']:.3f} ms   "
            f"max {figures['max_ms']:.3f} ms   ({figures['decisions']} decisions, "
            f"{figures['no_operator']} with no operator available)")  # fmt: skip


# -- for bench/run.py ------------------------------------------------------------------------


def run(
    options: Options, root: Path, say: Callable[[str], None] = print
) -> tuple[dict[str, Any], list[str]]:
    """Run the script with ``--json`` in its own process; (summary, what could not run)."""
    decisions = 5000 if options.quick else options.decisions
    summary = summary_head("acm_reserve", {"decisions": decisions, "quick": options.quick})
    say(f"\nACM queue decisions: {decisions} on {OPERATORS} operators in {GROUPS} groups ...")
    argv = [sys.executable, str(root / "bench" / "acm_reserve.py"), "--json",
            "--decisions", str(decisions)]  # fmt: skip
    try:
        done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=900)
        if done.returncode != 0:
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise BenchError(f"bench/acm_reserve.py failed (exit status {done.returncode}): {last}")
    except (BenchError, subprocess.TimeoutExpired) as exc:
        summary["error"] = str(exc)
        return summary, [str(exc)]
    summary.update(json.loads(done.stdout))
    summary["targets"] = _targets(summary)
    for line in headlines(summary):
        say(f"  {line}")
    return summary, [summary["error"]] if summary.get("error") else []


def _targets(summary: dict[str, Any]) -> list[dict[str, str]]:
    name = f"queue decision (choose + reserve), p99 below {TARGET_P99_MS:g} ms on Redis"
    redis = summary.get("redis")
    if not redis:
        return [{"target": name, "status": "n/a", "detail": summary.get("error", "did not run")}]
    status = "PASS" if redis["p99_ms"] < TARGET_P99_MS else "MISS"
    detail = f"p99 {redis['p99_ms']:.3f} ms over {redis['decisions']} decisions"
    return [{"target": name, "status": status, "detail": detail}]


def headlines(summary: dict[str, Any]) -> list[str]:
    """The closing-summary lines: latency per decision on each backend, and the target."""
    out = []
    for backend in ("redis", "memory"):
        if summary.get(backend):
            out.append(f"ACM decision, {OPERATORS} operators in {GROUPS} groups, "
                       + show(backend, summary[backend]))  # fmt: skip
    server = summary.get("redis_us_per_command") or {}
    if "evalsha" in server:
        out.append(f"redis-server time per script call: {server['evalsha']:.1f} µs")
    if summary.get("error"):
        out.append(f"acm_reserve: could not run: {summary['error']}")
    out += [f"{t['status']:<4}  {t['target']}: {t['detail']}" for t in summary.get("targets", [])]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--decisions", type=int, default=Options.decisions,
                        help=f"decisions counted (after {WARMUP} to warm up)")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    figures = measure_all(args.decisions)
    if args.json:
        print(json.dumps(figures))
        return
    summary = {**figures, "targets": _targets(figures)}
    print(f"queue decisions (operators + reserve): {OPERATORS} operators in {GROUPS} groups, "
          f"{GROUPS_PER_OPERATOR} groups each, {args.decisions} decisions after {WARMUP}")
    print("\n".join(headlines(summary)))


if __name__ == "__main__":
    main()
