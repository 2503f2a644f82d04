"""B2BUA mode under SIPp load at rising rates: the engine, then Kamailio, on the same calls.

Full calls: the caller's SIPp (bench/scenarios/b2bua_uac.xml: INVITE with
SDP, 100/180/200, ACK, ``call_seconds`` of conversation, BYE, 200) calls the
server, which places each call to the callee SIPp, its trunk
(bench/scenarios/b2bua_uas.xml: 180, 200 with SDP, ACK, BYE, 200). The
engine is a back-to-back user agent (two dialogs, two INVITE transactions,
a call detail record per leg); Kamailio is a stateful record-routing proxy
(see b2bua_servers.py for both).

For each server (measure.py's sequence, as in the redirect benchmark):
start it pinned to core 0, check that one call goes through end to end
(and, for the engine, that its call records reach the database), warm it
up for a second of calls, wait out the warm-up's timers, measure its idle
CPU, then one step per rate. A step starts a new callee SIPp, then the
caller's SIPp for ``seconds`` of calls at the rate; both SIPp instances
are pinned to core 1. The server's CPU is read from /proc (utime+stime of
its whole process tree) before the caller starts, when it exits, and
``settle`` seconds later. The default settle is 64*T1 (32 s) + the call
duration + 2 s = 35 s, because a call's work does not end with its last
message: the engine keeps the caller's answered INVITE transaction (RFC
6026 Timer L), its own INVITE to the callee (Timer M) and the BYE's server
transaction (Timer J) for 64*T1 after they complete, and frees them then
(measured: about 7% of the engine's CPU per call happens after the run);
Kamailio frees its transactions 5 s after their final response
(``wt_timer``); the call records are committed every 50 ms. CPU per call
is therefore taken over the run plus the settle time (idle work included;
the figure with the idle rate taken out is in the JSON), and the CPU
shares over the run alone.

Before each step a fixed Python loop is timed on core 0
(``common.core_speed``): this virtual machine's speed moves with its
host's load (the same runs took 2 to 4 times more CPU per call in one hour
than in the next), and the report says when it moved between the engine's
steps and Kamailio's, which skews their ratio.

A call fails when SIPp's caller counts it failed (an unexpected response
such as a 503, a missing 200 within 4 s after the INVITE's
retransmissions, a BYE unanswered) or never completes; the callee's SIPp
counts its own failures (an ACK that never came), reported beside.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import b2bua_report
from b2bua_servers import B2buaEngine, KamailioProxy
from common import BenchError, Sample, core_speed
from measure import (
    SERVER_CPU,
    SIPP_CPU,
    IdledStep,
    LoadBenchmark,
    LoadOptions,
    Server,
    ServerResult,
)
from sipp import SippRun, SippUas

__all__ = ["DEFAULT_RATES", "B2buaResult", "B2buaStep", "Options", "default_settle", "run"]

DEFAULT_RATES = (100, 200, 300, 500, 800, 1000)
CALL_SECONDS = 1.0
T1 = 0.5  # the engine's (sip.timers.t1, default) and RFC 3261's
SCENARIOS = Path(__file__).resolve().parent / "scenarios"


def default_settle(call_seconds: float) -> float:
    """64*T1 (the longest transaction timer after a call) + the call + 2 s of margin."""
    return 64 * T1 + call_seconds + 2.0


@dataclass(frozen=True)
class Options(LoadOptions):
    rates: tuple[int, ...] = DEFAULT_RATES
    settle: float = default_settle(CALL_SECONDS)
    call_seconds: float = CALL_SECONDS


@dataclass
class B2buaStep(IdledStep):
    """One rate: the caller's SIPp (``sipp``), the callee's, and what /proc says."""

    uas: SippRun | None = None
    core_speed: float | None = None  # common.core_speed of the server's core before the step

    @property
    def offered_rate(self) -> float | None:
        """The rate SIPp created calls at, failed calls included.

        The redirect benchmark dates answers (every call gets one there); here
        a call refused with a 503 has no setup time, so creations are counted.
        """
        return self.sipp.created_rate or self.sipp.achieved_rate

    @property
    def uas_share(self) -> float:
        if self.uas is None or not self.sipp.wall:
            return 0.0
        return self.uas.cpu_seconds / self.sipp.wall * 100

    @property
    def sipp_total_share(self) -> float:
        """Both SIPp instances together, % of their one core (core 1)."""
        return self.sipp_share + self.uas_share

    @property
    def retransmissions(self) -> int:
        return self.sipp.retransmissions + (self.uas.retransmissions if self.uas else 0)


@dataclass
class B2buaResult(ServerResult[B2buaStep]):
    #: What the engine's call-record database holds at the end (engine only).
    records: dict[str, Any] | None = None
    calls_answered: int = 0  # check, warm-up and steps: calls the caller's SIPp completed


class B2bua(LoadBenchmark[B2buaStep, B2buaResult]):
    """Full calls from the caller's SIPp through the server to the callee's SIPp."""

    title = "B2BUA"
    kept = "configs, logs, call records, SIPp CSVs"
    opts: Options
    uas: SippUas

    def prepare(self, workdir: Path) -> None:
        self.sipp = self.caller_sipp(
            workdir,
            SCENARIOS / "b2bua_uac.xml",
            None,
            call_seconds=self.opts.call_seconds,
            local_ip="127.0.0.1",
        )
        self.uas = SippUas(
            workdir / "sipp", SCENARIOS / "b2bua_uas.xml", cpu=SIPP_CPU, shim=self.sipp.shim
        )

    def engine(self, workdir: Path) -> Server:
        return B2buaEngine(self.root, workdir, SERVER_CPU, self.uas.address)

    def kamailio(self, workdir: Path, name: str, memory: str) -> Server:
        trunk = self.uas.address
        return KamailioProxy(workdir, SERVER_CPU, trunk, self.opts.kamailio_children, memory, name)

    def header(self) -> str:
        opts = self.opts
        return (
            f"\nB2BUA benchmark: rates {', '.join(map(str, opts.rates))} calls/s, "
            f"{opts.seconds:g} s each, calls of {opts.call_seconds:g} s "
            f"(+{opts.settle:g} s settle: 64*T1 + the call + 2 s), servers on core {SERVER_CPU}, "
            f"both SIPp (caller and callee) on core {SIPP_CPU}"
        )

    def where(self) -> str:
        return f", trunk (callee SIPp) on 127.0.0.1:{self.uas.port}"

    def new_result(self, server: Server) -> B2buaResult:
        return B2buaResult(server.name, server.description)

    def measure(self, server: Server) -> B2buaResult:
        result = super().measure(server)
        if isinstance(server, B2buaEngine):
            result.records = _records(server.records)
        return result

    def warm_up(self, server: Server, result: B2buaResult) -> None:
        result.calls_answered += self._check(server)
        warm = min(self.opts.rates)
        self.uas.start(warm, warm, self.opts.call_seconds, f"{server.name}-warmup")
        try:
            warmup = self.sipp.run(server.address, warm, warm, f"{server.name}-warmup")
        finally:
            self.uas.finish(wait=self.opts.settle)
        result.calls_answered += warmup.successful
        self.say(
            f"{server.name}: warmed up ({warmup.successful} calls), "
            f"{self.opts.settle:g} s to settle"
        )

    def _check(self, server: Server) -> int:
        """One call end to end; returns 1 (the calls it completed) or raises BenchError."""
        self.uas.start(1, 1, self.opts.call_seconds, f"{server.name}-check")
        try:
            check = self.sipp.run(server.address, 1, 1, f"{server.name}-check")
        finally:
            callee = self.uas.finish(wait=10)
        if check.successful != 1 or callee.successful != 1:
            why = next(iter(check.errors), None) or next(iter(callee.errors), None)
            raise BenchError(
                f"{server.name} did not carry a check call from the caller's SIPp to the "
                f"callee's and back (caller: {check.successful} ok, {check.failed} failed; "
                f"callee: {callee.successful} ok, {callee.failed} failed"
                + (f"; {why}" if why else "")
                + ")"
            )
        if isinstance(server, B2buaEngine):
            time.sleep(0.5)  # two commit intervals
            legs = _records(server.records).get("legs", 0)
            if legs < 2:
                raise BenchError(
                    f"the engine carried the check call but its call records are not in "
                    f"{server.records} ({legs} legs there)"
                )
        return 1

    def step(self, server: Server, rate: int, result: B2buaResult) -> B2buaStep:
        """One run of the caller's SIPp at ``rate`` against a fresh callee, /proc read around it."""
        calls = self.calls(rate)
        label = f"{server.name}-{rate}"
        speed = core_speed(SERVER_CPU)
        self.uas.start(rate, calls, self.opts.call_seconds, label)
        uas_pid = self.uas.pid
        try:
            before = Sample.take(server.pid)
            run_ = self.sipp.run(server.address, rate, calls, label)
            ended = Sample.take(server.pid)
        except BenchError:
            self.uas.stop()
            raise
        settled_at = ended.at + self.opts.settle
        callee = self.uas.finish(wait=max(0.1, settled_at - time.monotonic()))
        time.sleep(max(0.0, settled_at - time.monotonic()))
        after = Sample.take(server.pid)
        result.calls_answered += run_.successful
        return B2buaStep.measured(
            rate,
            run_,
            (before, ended, after),
            exclude={uas_pid} if uas_pid else (),
            uas=callee,
            window_s=after.at - before.at,
            idle_cpu_us_per_s=result.idle_cpu_us_per_s,
            core_speed=speed,
        )

    def stop(self, server: Server) -> None:
        self.uas.stop()
        server.stop()

    def progress_line(self, name: str, step: B2buaStep) -> str:
        return b2bua_report.progress_line(name, step)

    def summarise(self, results: list[B2buaResult], errors: list[str]) -> dict[str, Any]:
        return b2bua_report.summarise(self.opts, self.sipp, results)

    def render(self, summary: dict[str, Any]) -> str:
        return b2bua_report.render(summary)


def _records(path: Path) -> dict[str, Any]:
    """What the engine's call-record database holds: legs ended, legs still open, rules."""
    out: dict[str, Any] = {"legs": 0, "open_legs": 0, "rules": {}}
    if not path.exists():
        return out
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
        try:
            out["legs"] = db.execute("SELECT count(*) FROM legs").fetchone()[0]
            out["open_legs"] = db.execute("SELECT count(*) FROM open_legs").fetchone()[0]
            out["rules"] = dict(
                db.execute("SELECT route, count(*) FROM legs WHERE leg = 0 GROUP BY route")
            )
            out["outcomes"] = dict(
                db.execute("SELECT outcome, count(*) FROM legs GROUP BY outcome")
            )
        except sqlite3.Error as exc:
            out["error"] = str(exc)
    return out


def run(
    opts: Options, root: Path, say: Callable[[str], None] = print
) -> tuple[dict[str, Any], list[str]]:
    """Measure what ``opts`` asks: the JSON summary, and a sentence per thing that could not run."""
    return B2bua(opts, root, say).run()
