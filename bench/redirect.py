"""Redirect mode under SIPp load at rising rates: the engine, then Kamailio, on the same load.

For each server (measure.py's sequence, which the B2BUA benchmark shares):
start it pinned to core 0, check that one call gets the expected 302 (a
benchmark of wrong answers measures nothing), warm it up for a second,
measure its idle CPU once the warm-up's transactions are gone (from
schedstat: two idle seconds are below the 10 ms resolution of
utime+stime), then one SIPp run per rate with SIPp pinned to core 1. A
step's CPU is read from /proc before SIPp starts, when it exits, and after
``settle`` seconds: the engine keeps each answered INVITE transaction for
T4 (5 s) after the ACK and frees it then, which is part of the cost of a
call (about 7% of it at 1,000 calls/s), so CPU per call is taken over the
run plus the settle time, while the CPU share is taken over the run alone.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redirect_report
import tree_micro
from common import BenchError, Sample
from measure import SERVER_CPU, SIPP_CPU, LoadBenchmark, LoadOptions, Server, ServerResult, Step
from servers import EngineServer, KamailioServer, contact_regexp

__all__ = ["DEFAULT_RATES", "Options", "run"]

DEFAULT_RATES = (500, 1000, 2000, 3000, 4000)


@dataclass(frozen=True)
class Options(LoadOptions):
    rates: tuple[int, ...] = DEFAULT_RATES
    tree_eval: bool = True


class Redirect(LoadBenchmark[Step, ServerResult[Step]]):
    """One INVITE per call, answered with a 302 (the ACK absorbed)."""

    title = "redirect"
    kept = "configs, logs, SIPp CSVs"
    opts: Options

    def prepare(self, workdir: Path) -> None:
        scenario = self.root / "tests" / "sipp" / "redirect_uac.xml"
        self.sipp = self.caller_sipp(workdir, scenario, contact_regexp())

    def engine(self, workdir: Path) -> Server:
        return EngineServer(self.root, workdir, SERVER_CPU)

    def kamailio(self, workdir: Path, name: str, memory: str) -> Server:
        return KamailioServer(workdir, SERVER_CPU, self.opts.kamailio_children, memory, name)

    def header(self) -> str:
        opts = self.opts
        return (
            f"redirect benchmark: rates {', '.join(map(str, opts.rates))} calls/s, "
            f"{opts.seconds:g} s each (+{opts.settle:g} s settle), servers on core {SERVER_CPU}, "
            f"SIPp on core {SIPP_CPU}"
        )

    def new_result(self, server: Server) -> ServerResult[Step]:
        return ServerResult(server.name, server.description)

    def warm_up(self, server: Server, result: ServerResult[Step]) -> None:
        check = self.sipp.run(server.address, 1, 1, f"{server.name}-check")
        if check.successful != 1:
            why = next(iter(check.errors), "no 302 came back")
            raise BenchError(
                f"{server.name} did not answer a check call with the expected 302 ({why})"
            )
        warm = min(self.opts.rates)
        self.sipp.run(server.address, warm, warm, f"{server.name}-warmup")

    def step(self, server: Server, rate: int, result: ServerResult[Step]) -> Step:
        before = Sample.take(server.pid)
        run_ = self.sipp.run(server.address, rate, self.calls(rate), f"{server.name}-{rate}")
        ended = Sample.take(server.pid)
        time.sleep(self.opts.settle)
        return Step.measured(rate, run_, (before, ended, Sample.take(server.pid)))

    def progress_line(self, name: str, step: Step) -> str:
        return redirect_report.progress_line(name, step)

    def summarise(self, results: list[ServerResult[Step]], errors: list[str]) -> dict[str, Any]:
        tree = None
        if self.opts.tree_eval:
            self.say("tree evaluation: running bench/tree_eval.py ...")
            try:
                tree = tree_micro.run(self.root / "bench", SERVER_CPU)
            except BenchError as exc:
                errors.append(str(exc))
        return redirect_report.summarise(self.opts, self.sipp, results, tree)

    def render(self, summary: dict[str, Any]) -> str:
        return redirect_report.render(summary)


def run(
    opts: Options, root: Path, say: Callable[[str], None] = print
) -> tuple[dict[str, Any], list[str]]:
    """Measure what ``opts`` asks: the JSON summary, and a sentence per thing that could not run."""
    return Redirect(opts, root, say).run()
