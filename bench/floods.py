"""Micro-benchmark: what the flood guard and the down-site lookup cost per call.

Run: ``.venv/bin/python bench/floods.py``. Prints, per call (best of five
runs of a loop, so the figures are the cost without noise):

- ``FloodGuard.admit`` for admitted calls (1,000 numbers from 200 sources),
  for a flood at one number (the refusal path, log lines suppressed), and
  for a million distinct sources (a new bucket and an eviction each time);
- the memory a table of 100,000 buckets takes (tracemalloc);
- ``SiteTable.down_site_for`` with every site up, and with half of 50 PBX
  sites and the trunk down.

The clock is ``time.time``, which is what the reactor's ``seconds`` is. No
assertions: it prints figures.
"""

from __future__ import annotations

import logging
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.floods import FloodGuard, FloodSettings, RateLimit
from engine.sites.health import Site, SiteTable

CLOCK = SimpleNamespace(seconds=time.time)


def best(run: Callable[[int], None], calls: int, repeat: int = 5) -> float:
    """Seconds per call: the best of ``repeat`` timed loops of ``calls`` calls."""
    out = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run(calls)
        out = min(out, (time.perf_counter() - start) / calls)
    return out


def admitted() -> float:
    # Limits high enough that every call is admitted: the common path.
    guard = FloodGuard(CLOCK, FloodSettings(RateLimit(1e5, 10**6), RateLimit(1e5, 10**6)))
    numbers = [f"+32255{n:05d}" for n in range(1000)]
    sources = [f"192.0.2.{n}" for n in range(200)]
    pairs = [(numbers[i % 1000], sources[i % 200]) for i in range(100_000)]
    admit = guard.admit

    def run(calls: int) -> None:
        for called, source in pairs[:calls]:
            admit(called, "acme", source)

    return best(run, 100_000)


def flooded() -> float:
    guard = FloodGuard(CLOCK)
    admit = guard.admit

    def run(calls: int) -> None:
        for _ in range(calls):
            admit("+3225551234", None, "192.0.2.1")

    return best(run, 100_000)


def many_sources() -> tuple[float, int]:
    guard = FloodGuard(CLOCK)
    sources = [f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}" for n in range(1_000_000)]
    admit = guard.admit
    start = time.perf_counter()
    for source in sources:
        admit(None, None, source)
    return (time.perf_counter() - start) / len(sources), len(guard.sources)


def bucket_memory() -> float:
    sources = [f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}" for n in range(100_000)]
    tracemalloc.start()
    guard = FloodGuard(CLOCK)
    before = tracemalloc.get_traced_memory()[0]
    for source in sources:
        guard.admit(None, None, source)
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return (after - before) / len(sources)


def lookups() -> tuple[float, float]:
    sites = [Site("trunk", numbers=("*",))] + [
        Site(f"pbx{i}", ("127.0.0.1", 6000 + i),
             numbers=(f"+32{20 + i}5550*", f"+32{20 + i}55600{i % 10}"))
        for i in range(50)
    ]  # fmt: skip
    table = SiteTable(sites, CLOCK)
    numbers = [f"+32{20 + i % 50}555{i:04d}" for i in range(10_000)]
    down = table.down_site_for

    def run(calls: int) -> None:
        for number in numbers[:calls]:
            down(number)

    idle = best(run, 10_000)
    for i in [*range(0, 50, 2)]:
        for _ in range(3):
            table.record(f"pbx{i}", False, "timeout")
    for _ in range(3):
        table.record("trunk", False, "timeout")
    return idle, best(run, 10_000)


def main() -> None:
    logging.disable(logging.WARNING)  # the refusal lines are rate-limited anyway
    print(f"FloodGuard.admit, admitted (1,000 numbers x 200 sources): {admitted() * 1e6:.2f} µs")
    print(f"FloodGuard.admit, refused (one number flooded):          {flooded() * 1e6:.2f} µs")
    per_call, kept = many_sources()
    print(f"FloodGuard.admit, 1,000,000 distinct sources:            {per_call * 1e6:.2f} µs "
          f"(table holds {kept:,} buckets)")  # fmt: skip
    print(f"memory per source bucket (100,000 buckets):              {bucket_memory():.0f} bytes")
    idle, busy = lookups()
    print(f"SiteTable.down_site_for, every site up:                  {idle * 1e9:.0f} ns")
    print(f"SiteTable.down_site_for, trunk and 25 of 50 PBXs down:   {busy * 1e9:.0f} ns")


if __name__ == "__main__":
    main()
