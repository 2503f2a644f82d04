"""Redirect mode under SIPp load at rising rates: the engine, then Kamailio, on the same load.

For each server: start it pinned to core 0, check that one call gets the
expected 302 (a benchmark of wrong answers measures nothing), warm it up
for a second, measure its idle CPU once the warm-up's transactions are
gone (from schedstat: two idle seconds are below the 10 ms resolution of
utime+stime), then one SIPp run per rate with SIPp
pinned to core 1. A step's CPU is read from /proc before SIPp starts, when
it exits, and after ``settle`` seconds: the engine keeps each answered
INVITE transaction for T4 (5 s) after the ACK and frees it then, which is
part of the cost of a call (about 7% of it at 1,000 calls/s), so CPU per
call is taken over the run plus the settle time, while the CPU share is
taken over the run alone.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import redirect_report
import tree_micro
from common import CLK_TCK, BenchError, Sample, machine_load, tree_runtime_ns
from servers import CALLED, CALLER, EngineServer, KamailioServer, contact_regexp
from sipp import Sipp, SippRun

__all__ = ["DEFAULT_RATES", "Options", "ServerResult", "Step", "run"]

DEFAULT_RATES = (500, 1000, 2000, 3000, 4000)
SERVER_CPU = 0
SIPP_CPU = 1
UDP_KEYS = ("InDatagrams", "OutDatagrams", "InErrors", "RcvbufErrors", "SndbufErrors", "NoPorts")


@dataclass(frozen=True)
class Options:
    rates: tuple[int, ...] = DEFAULT_RATES
    seconds: float = 10.0
    settle: float = 6.0
    engine: bool = True
    kamailio: bool = True
    kamailio_mem: str = "tlsf"
    kamailio_children: int = 1
    fine_clock: bool = True
    tree_eval: bool = True
    keep: bool = False


class Server(Protocol):
    name: str
    description: str

    @property
    def address(self) -> tuple[str, int]: ...
    @property
    def pid(self) -> int: ...
    def alive(self) -> bool: ...
    def start(self) -> None: ...
    def stop(self) -> None: ...


@dataclass
class Step:
    """One rate: what SIPp saw and what /proc says the server and the machine spent."""

    rate: int
    sipp: SippRun
    server_cpu_s: float  # over the run and the settle time
    run_cpu_s: float  # over the run alone
    other_busy_share: float  # % of one core used by other processes during the run
    other_top: list[tuple[str, float]]  # the busiest of them, % of one core each
    udp: dict[str, int]  # kernel UDP counter deltas over the step

    @property
    def completed(self) -> int:
        return self.sipp.successful + self.sipp.failed

    @property
    def failed(self) -> int:
        """Failed as SIPp counts them, plus calls never completed."""
        return self.sipp.failed + self.sipp.unfinished

    @property
    def cpu_us_per_call(self) -> float | None:
        return self.server_cpu_s / self.completed * 1e6 if self.completed else None

    @property
    def cpu_share(self) -> float:
        return self.run_cpu_s / self.sipp.wall * 100 if self.sipp.wall else 0.0

    @property
    def sipp_share(self) -> float:
        return self.sipp.cpu_seconds / self.sipp.wall * 100 if self.sipp.wall else 0.0

    @property
    def offered(self) -> bool:
        """SIPp really offered the rate (within 5%) and started every call."""
        achieved = self.sipp.achieved_rate
        return self.sipp.not_started == 0 and achieved is not None and achieved >= 0.95 * self.rate

    @property
    def clean(self) -> bool:
        return self.failed == 0 and self.sipp.not_started == 0


@dataclass
class ServerResult:
    name: str
    description: str = ""
    idle_cpu_us_per_s: float | None = None
    steps: list[Step] = field(default_factory=list)
    error: str | None = None

    def step(self, rate: int) -> Step | None:
        return next((s for s in self.steps if s.rate == rate), None)


def _measure(server: Server, sipp: Sipp, opts: Options, say: Callable[[str], None]) -> ServerResult:
    """Start, check, warm up and measure one server at every rate; always stop it."""
    result = ServerResult(server.name, server.description)
    try:
        server.start()
        result.description = server.description
        say(
            f"{server.name}: {server.description}, pinned to core {SERVER_CPU}, "
            f"on 127.0.0.1:{server.address[1]}"
        )
        check = sipp.run(server.address, 1, 1, f"{server.name}-check")
        if check.successful != 1:
            why = next(iter(check.errors), "no 302 came back")
            raise BenchError(
                f"{server.name} did not answer a check call with the expected 302 ({why})"
            )
        warm = min(opts.rates)
        sipp.run(server.address, warm, warm, f"{server.name}-warmup")
        time.sleep(opts.settle)
        result.idle_cpu_us_per_s = _idle(server, 2.0)
        for rate in opts.rates:
            step = _step(server, sipp, rate, opts)
            result.steps.append(step)
            say(redirect_report.progress_line(server.name, step))
            if not server.alive():
                raise BenchError(f"{server.name} exited during the {rate}/s step")
    except BenchError as exc:
        result.error = str(exc)
        say(f"{server.name}: {exc}")
    finally:
        server.stop()
    return result


def _idle(server: Server, seconds: float) -> float:
    """µs of CPU per second the server spends with no calls (timers, file watching)."""
    start, before = time.monotonic(), tree_runtime_ns(server.pid)
    time.sleep(seconds)
    used = tree_runtime_ns(server.pid) - before
    return used / 1000 / (time.monotonic() - start)


def _step(server: Server, sipp: Sipp, rate: int, opts: Options) -> Step:
    """One SIPp run at ``rate`` for ``opts.seconds``, with /proc read around it."""
    calls = max(1, round(rate * opts.seconds))
    before = Sample.take(server.pid)
    run_ = sipp.run(server.address, rate, calls, f"{server.name}-{rate}")
    ended = Sample.take(server.pid)
    time.sleep(opts.settle)
    after = Sample.take(server.pid)
    run_ticks = ended.server_ticks - before.server_ticks
    other, top = ended.others_since(before)
    wall = ended.at - before.at
    return Step(
        rate=rate,
        sipp=run_,
        server_cpu_s=(after.server_ticks - before.server_ticks) / CLK_TCK,
        run_cpu_s=run_ticks / CLK_TCK,
        other_busy_share=other / CLK_TCK / wall * 100 if wall else 0.0,
        other_top=[(name, ticks / CLK_TCK / wall * 100) for name, ticks in top] if wall else [],
        udp={k: after.udp.get(k, 0) - before.udp.get(k, 0) for k in UDP_KEYS},
    )


def run(
    opts: Options, root: Path, say: Callable[[str], None] = print
) -> tuple[dict[str, Any], list[str]]:
    """Measure what ``opts`` asks: the JSON summary, and a sentence per thing that could not run."""
    if len(os.sched_getaffinity(0)) < 2:
        return {}, ["the redirect benchmark needs two cores (server on core 0, SIPp on core 1)"]
    workdir = Path(tempfile.mkdtemp(prefix="vms-bench-redirect-"))
    try:
        return _run(opts, root, workdir, say)
    finally:
        if opts.keep:
            say(f"work files (configs, logs, SIPp CSVs) kept in {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _run(
    opts: Options, root: Path, workdir: Path, say: Callable[[str], None]
) -> tuple[dict[str, Any], list[str]]:
    errors: list[str] = []
    try:
        (workdir / "sipp").mkdir()
        sipp = Sipp(
            workdir / "sipp",
            root / "tests" / "sipp" / "redirect_uac.xml",
            contact_regexp(),
            service=CALLED,
            caller=CALLER,
            cpu=SIPP_CPU,
            fine_clock=opts.fine_clock,
        )
    except BenchError as exc:
        return {"error": str(exc)}, [str(exc)]
    say(
        f"redirect benchmark: rates {', '.join(map(str, opts.rates))} calls/s, "
        f"{opts.seconds:g} s each (+{opts.settle:g} s settle), servers on core {SERVER_CPU}, "
        f"SIPp on core {SIPP_CPU}"
    )
    load, busiest = machine_load(1.0)
    if load >= redirect_report.OTHER_BUSY:
        names = "; ".join(f"{name} {pct:.0f}%" for name, pct in busiest)
        say(
            f"warning: before the benchmark, other processes keep {load:.0f}% of a core busy "
            f"({names}); figures will be disturbed"
        )
    servers: list[Server] = []
    if opts.engine:
        servers.append(EngineServer(root, workdir, SERVER_CPU))
    if opts.kamailio:
        servers.append(
            KamailioServer(workdir, SERVER_CPU, opts.kamailio_children, opts.kamailio_mem)
        )
    results = []
    for server in servers:
        result = _measure(server, sipp, opts, say)
        results.append(result)
        if result.error:
            errors.append(result.error)
    tree = None
    if opts.tree_eval:
        say("tree evaluation: running bench/tree_eval.py ...")
        try:
            tree = tree_micro.run(root / "bench", SERVER_CPU)
        except BenchError as exc:
            errors.append(str(exc))
    summary = redirect_report.summarise(opts, sipp, results, tree)
    say("")
    say(redirect_report.render(summary))
    return summary, errors
