"""Call-record writes: what the group commit sustains and costs the reactor thread.

Plain script; prints figures, asserts nothing. Run with
``.venv/bin/python bench/cdr_write.py [--seconds N] [--dir DIR]``.

Each call has two legs, as in B2BUA mode: the caller's leg 0 and one outgoing
leg 1 placed at once, answered 0.2 s later (``leg_updated``) and both ended
after a holding time, so starts and ends land in different commits as they
do in production (an end inside the same commit interval as its start would
be coalesced into one write). The store's clock is a ``task.Clock`` moved
to the wall clock after each step, so the commit timer fires as on the
reactor, every ``commit_interval`` (0.05 s).

1. Sustained: calls as fast as one core allows (holding time 1 s), legs
   started and ended per second, with the group commits included.
2. Paced: 300 and 1,000 calls/s (holding time 3 s) with sleeps between
   steps like an idle reactor; the time one ``leg_*`` call takes and the
   time one commit takes on the reactor thread (p50, p99, max), and the
   legs per commit.
"""

from __future__ import annotations

import argparse
import collections
import statistics
import tempfile
import time
from pathlib import Path

from twisted.internet import task

from engine.cdr.record import LegRecord
from engine.cdr.store import CdrStore

HOLD_SUSTAINED = 1.0
HOLD_PACED = 3.0


class Calls:
    """Makes the calls of one run and drives the store with their leg events."""

    def __init__(self, store: CdrStore, hold: float, timings: list[int] | None) -> None:
        self.store = store
        self.hold = hold
        self.timings = timings
        self.serial = 0
        self.answering: collections.deque[tuple[float, LegRecord]] = collections.deque()
        self.ending: collections.deque[tuple[float, LegRecord, LegRecord]] = collections.deque()
        self.legs_started = 0
        self.legs_ended = 0

    def _timed(self, fn: object, record: LegRecord) -> None:
        if self.timings is None:
            fn(record)  # type: ignore[operator]
            return
        t0 = time.perf_counter_ns()
        fn(record)  # type: ignore[operator]
        self.timings.append(time.perf_counter_ns() - t0)

    def start_call(self, now: float) -> None:
        self.serial += 1
        call_id = f"{int(now * 1000):x}-{self.serial:08x}"
        leg0 = LegRecord(call_id, 0, "acme", "+3226001122", "+3225551234", start=now,
                         route="office hours", sip_call_id=f"a{self.serial}@pbx",
                         peer="192.0.2.10:5060")  # fmt: skip
        leg1 = LegRecord(call_id, 1, "acme", "+3226001122", "+3225551234", start=now,
                         destination="+3225559999", route="office hours", billed_to="acme",
                         sip_call_id=f"b{self.serial}@vms", peer="192.0.2.20:5060")  # fmt: skip
        self._timed(self.store.leg_started, leg0)
        self._timed(self.store.leg_started, leg1)
        self.legs_started += 2
        self.answering.append((now + 0.2, leg1))
        self.ending.append((now + self.hold, leg0, leg1))

    def due(self, now: float) -> None:
        while self.answering and self.answering[0][0] <= now:
            at, leg1 = self.answering.popleft()
            leg1.ringing = leg1.start
            leg1.answer = at
            self._timed(self.store.leg_updated, leg1)
        while self.ending and self.ending[0][0] <= now:
            at, leg0, leg1 = self.ending.popleft()
            leg1.finish(at, "answered", 200)
            leg0.answer = leg1.answer
            leg0.finish(at, "answered", 200)
            self._timed(self.store.leg_ended, leg1)
            self._timed(self.store.leg_ended, leg0)
            self.legs_ended += 2


def _store(directory: Path, name: str) -> tuple[CdrStore, task.Clock]:
    clock = task.Clock()
    clock.advance(time.time())
    store = CdrStore(directory / f"{name}.sqlite", clock)
    store.open()
    return store, clock


def sustained(directory: Path, seconds: float) -> None:
    store, clock = _store(directory, "sustained")
    calls = Calls(store, HOLD_SUSTAINED, None)
    began = time.time()
    window = began + HOLD_SUSTAINED  # measured once ends flow too
    before: tuple[int, int] | None = None
    while (now := time.time()) < window + seconds:
        if before is None and now >= window:
            before, window = (calls.legs_started, calls.legs_ended), now
        for _ in range(20):
            calls.start_call(now)
        calls.due(now)
        clock.advance(max(0.0, now - clock.seconds()))
    elapsed = time.time() - window
    assert before is not None
    events = (calls.legs_started - before[0]) + (calls.legs_ended - before[1])
    store.close()
    legs = events / 2 / elapsed  # a leg is a start and an end (and maybe an update)
    print(f"sustained: {legs:,.0f} legs/s started and ended ({legs / 2:,.0f} calls/s of "
          f"2 legs) on one core, group commit every {store.commit_interval * 1000:.0f} ms "
          f"({store.rows_written / max(store.commits, 1):,.0f} rows per commit, "
          f"commit max {store.max_commit_seconds * 1000:.0f} ms)")


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000)[round(q * 1000) - 1] if len(values) > 1 else 0.0


def paced(directory: Path, rate: int, seconds: float) -> None:
    store, clock = _store(directory, f"paced{rate}")
    api_ns: list[int] = []
    calls = Calls(store, HOLD_PACED, api_ns)
    commit_s: list[float] = []
    rows_per_commit: list[int] = []
    began = time.time()
    placed = 0
    end = began + seconds + HOLD_PACED + 0.5
    while (now := time.time()) < end:
        if now < began + seconds:
            due = int((now - began) * rate) + 1
            while placed < due:
                calls.start_call(now)
                placed += 1
        calls.due(now)
        commits, rows = store.commits, store.rows_written
        clock.advance(max(0.0, now - clock.seconds()))
        if store.commits != commits:
            commit_s.append(store.last_commit_seconds)
            rows_per_commit.append(store.rows_written - rows)
        time.sleep(0.0005)
    store.close()
    api_us = [n / 1000 for n in api_ns]
    commit_ms = [s * 1000 for s in commit_s]
    print(f"{rate:>5} calls/s ({2 * rate} legs/s, {seconds:.0f} s): "
          f"leg_* call p50 {statistics.median(api_us):.1f} µs, p99 {_pct(api_us, 0.99):.1f} µs, "
          f"max {max(api_us):.0f} µs ({len(api_us):,} calls); "
          f"commit p50 {statistics.median(commit_ms):.2f} ms, p99 {_pct(commit_ms, 0.99):.2f} ms, "
          f"max {max(commit_ms):.2f} ms ({len(commit_ms)} commits, "
          f"{statistics.mean(rows_per_commit):.0f} rows each)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0, help="length of each run")
    parser.add_argument("--dir", help="where the databases go (default: a temporary directory)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        directory = Path(tmp)
        print(f"call-record writes, SQLite in {directory} (WAL, synchronous=NORMAL)")
        sustained(directory, args.seconds)
        for rate in (300, 1000):
            paced(directory, rate, args.seconds)


if __name__ == "__main__":
    main()
