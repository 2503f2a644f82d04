"""Servers measured under SIPp load at rising rates: what the redirect and B2BUA benchmarks share.

Both measure each server the same way, so that their figures mean the same
thing: start it pinned to core 0, check that a call goes through (a
benchmark of wrong answers measures nothing), warm it up, wait out the
warm-up's timers, measure its idle CPU, then one step per rate with SIPp on
core 1 and /proc read around the run, and stop the server whatever
happens. :class:`LoadBenchmark` runs that sequence in a work directory of
its own; a benchmark says only how its mode checks, warms up and steps,
and how it reports.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, Self, TypeVar

from common import CLK_TCK, BenchError, Sample, machine_load, percentile, tree_runtime_ns
from report import OTHER_BUSY
from servers import CALLED, CALLER
from sipp import Sipp, SippRun

__all__ = [
    "SERVER_CPU",
    "SIPP_CPU",
    "LoadBenchmark",
    "LoadOptions",
    "Server",
    "ServerResult",
    "Step",
]

SERVER_CPU = 0
SIPP_CPU = 1
#: The Kamailio the targets are judged against: Debian's build with its default
#: allocator (qm); its cost matches the B2BUA issue's reference figure, and the redirect
#: issue's lies between it and tlsf's (bench/servers.py).
KAMAILIO = "kamailio"
#: Kamailio on tlsf, its fastest allocator here: shown beside, not judged.
KAMAILIO_TLSF = "kamailio-tlsf"
UDP_KEYS = ("InDatagrams", "OutDatagrams", "InErrors", "RcvbufErrors", "SndbufErrors", "NoPorts")


@dataclass(frozen=True)
class LoadOptions:
    """What both benchmarks take from the command line; each adds its own."""

    rates: tuple[int, ...]
    seconds: float = 10.0
    settle: float = 6.0
    engine: bool = True
    kamailio: bool = True
    kamailio_mem: str = "qm"  # the peer the targets use: Debian's build as shipped
    kamailio_children: int = 1
    kamailio_tlsf: bool = True  # also Kamailio on its fastest allocator, for information
    fine_clock: bool = True
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

    @classmethod
    def measured(
        cls,
        rate: int,
        sipp: SippRun,
        samples: tuple[Sample, Sample, Sample],
        exclude: Collection[int] = (),
        **more: Any,
    ) -> Self:
        """A step from /proc read before the run, when it ended and after the settle time.

        ``exclude``: processes other than the server not to count as
        disturbance (a callee SIPp that runs through the step).
        """
        before, ended, after = samples
        other, top = ended.others_since(before, exclude)
        wall = ended.at - before.at
        return cls(
            rate=rate,
            sipp=sipp,
            server_cpu_s=(after.server_ticks - before.server_ticks) / CLK_TCK,
            run_cpu_s=(ended.server_ticks - before.server_ticks) / CLK_TCK,
            other_busy_share=other / CLK_TCK / wall * 100 if wall else 0.0,
            other_top=[(name, ticks / CLK_TCK / wall * 100) for name, ticks in top] if wall else [],
            udp={k: after.udp.get(k, 0) - before.udp.get(k, 0) for k in UDP_KEYS},
            **more,
        )

    @property
    def completed(self) -> int:
        return self.sipp.successful + self.sipp.failed

    @property
    def failed(self) -> int:
        """Failed as SIPp counts them, plus calls never completed."""
        return self.sipp.failed + self.sipp.unfinished

    def rtt_ms(self, fraction: float) -> float | None:
        """A percentile of the response (or setup) times SIPp measured."""
        return percentile(self.sipp.rtts_ms, fraction)

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
    def offered_rate(self) -> float | None:
        """The rate SIPp offered, as the rate of the answers it dated (every call gets one)."""
        return self.sipp.achieved_rate

    @property
    def offered(self) -> bool:
        """SIPp really offered the rate (within 5%) and started every call."""
        rate = self.offered_rate
        return self.sipp.not_started == 0 and rate is not None and rate >= 0.95 * self.rate

    @property
    def clean(self) -> bool:
        return self.failed == 0 and self.sipp.not_started == 0


StepT = TypeVar("StepT", bound=Step)


@dataclass
class ServerResult(Generic[StepT]):
    name: str
    description: str = ""
    idle_cpu_us_per_s: float | None = None
    steps: list[StepT] = field(default_factory=list)
    error: str | None = None

    def step(self, rate: int) -> StepT | None:
        return next((s for s in self.steps if s.rate == rate), None)

    def highest_clean(self) -> int | None:
        """The highest rate SIPp really offered with no call failed."""
        rates = [s.rate for s in self.steps if s.clean and s.offered]
        return max(rates) if rates else None


ResultT = TypeVar("ResultT", bound=ServerResult[Any])


class LoadBenchmark(ABC, Generic[StepT, ResultT]):
    """The run both SIPp benchmarks share; subclasses fill in what their mode does.

    ``title`` names the benchmark in messages and its work directory,
    ``kept`` says what that directory holds when ``--keep`` keeps it;
    ``sipp`` is the caller's SIPp, made by :meth:`prepare`.
    """

    title: str
    kept: str
    sipp: Sipp

    def __init__(self, opts: LoadOptions, root: Path, say: Callable[[str], None]) -> None:
        self.opts = opts
        self.root = root
        self.say = say

    def run(self) -> tuple[dict[str, Any], list[str]]:
        """Measure every server: the JSON summary, and a sentence per thing that could not run."""
        if len(os.sched_getaffinity(0)) < 2:
            return {}, [
                f"the {self.title} benchmark needs two cores (server on core {SERVER_CPU}, "
                f"SIPp on core {SIPP_CPU})"
            ]
        workdir = Path(tempfile.mkdtemp(prefix=f"vms-bench-{self.title.lower()}-"))
        try:
            return self._run(workdir)
        finally:
            if self.opts.keep:
                self.say(f"work files ({self.kept}) kept in {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)

    def _run(self, workdir: Path) -> tuple[dict[str, Any], list[str]]:
        try:
            (workdir / "sipp").mkdir()
            self.prepare(workdir)
            servers = [
                *([self.engine(workdir)] if self.opts.engine else []),
                *(
                    [self.kamailio(workdir, KAMAILIO, self.opts.kamailio_mem)]
                    if self.opts.kamailio
                    else []
                ),
                *(
                    [self.kamailio(workdir, KAMAILIO_TLSF, "tlsf")]
                    if self.opts.kamailio and self.opts.kamailio_tlsf
                    else []
                ),
            ]
        except BenchError as exc:
            return {"error": str(exc)}, [str(exc)]
        self.say(self.header())
        load, busiest = machine_load(1.0)
        if load >= OTHER_BUSY:
            names = "; ".join(f"{name} {pct:.0f}%" for name, pct in busiest)
            self.say(
                f"warning: before the benchmark, other processes keep {load:.0f}% of a core busy "
                f"({names}); figures will be disturbed"
            )
        results = [self.measure(server) for server in servers]
        errors = [result.error for result in results if result.error]
        summary = self.summarise(results, errors)
        self.say("")
        self.say(self.render(summary))
        return summary, errors

    def measure(self, server: Server) -> ResultT:
        """Start, check, warm up and measure one server at every rate; always stop it."""
        result = self.new_result(server)
        try:
            server.start()
            result.description = server.description
            self.say(
                f"{server.name}: {server.description}, pinned to core {SERVER_CPU}, "
                f"on 127.0.0.1:{server.address[1]}{self.where()}"
            )
            self.warm_up(server, result)
            time.sleep(self.opts.settle)
            result.idle_cpu_us_per_s = _idle(server, 2.0)
            for rate in self.opts.rates:
                step = self.step(server, rate, result)
                result.steps.append(step)
                self.say(self.progress_line(server.name, step))
                if not server.alive():
                    raise BenchError(f"{server.name} exited during the {rate}/s step")
        except BenchError as exc:
            result.error = str(exc)
            self.say(f"{server.name}: {exc}")
        finally:
            self.stop(server)
        return result

    def caller_sipp(
        self, workdir: Path, scenario: Path, contact_regexp: str | None, **more: Any
    ) -> Sipp:
        """The caller's SIPp for ``scenario``: the test caller calls the tree's number."""
        return Sipp(
            workdir / "sipp",
            scenario,
            contact_regexp,
            service=CALLED,
            caller=CALLER,
            cpu=SIPP_CPU,
            fine_clock=self.opts.fine_clock,
            **more,
        )

    def calls(self, rate: int) -> int:
        """How many calls one step offers: ``seconds`` of them at ``rate``."""
        return max(1, round(rate * self.opts.seconds))

    def where(self) -> str:
        """What follows the server's address when it is introduced."""
        return ""

    def stop(self, server: Server) -> None:
        """Stop the server (and whatever this mode started beside it)."""
        server.stop()

    @abstractmethod
    def prepare(self, workdir: Path) -> None:
        """Make SIPp ready in ``workdir``/sipp (``sipp``, and whatever else the mode needs)."""

    @abstractmethod
    def engine(self, workdir: Path) -> Server:
        """The VMS engine as this mode runs it."""

    @abstractmethod
    def kamailio(self, workdir: Path, name: str, memory: str) -> Server:
        """Kamailio doing this mode's work on allocator ``memory``, to compare with."""

    @abstractmethod
    def header(self) -> str:
        """The line that opens the benchmark's output."""

    @abstractmethod
    def new_result(self, server: Server) -> ResultT:
        """An empty result for ``server``."""

    @abstractmethod
    def warm_up(self, server: Server, result: ResultT) -> None:
        """Check that a call goes through, then warm up; BenchError when the check fails."""

    @abstractmethod
    def step(self, server: Server, rate: int, result: ResultT) -> StepT:
        """One SIPp run at ``rate`` with /proc read around it."""

    @abstractmethod
    def progress_line(self, name: str, step: StepT) -> str:
        """What is printed once a step is measured."""

    @abstractmethod
    def summarise(self, results: list[ResultT], errors: list[str]) -> dict[str, Any]:
        """The JSON summary; what could not run meanwhile is appended to ``errors``."""

    @abstractmethod
    def render(self, summary: dict[str, Any]) -> str:
        """The report printed from the summary."""


def _idle(server: Server, seconds: float) -> float:
    """µs of CPU per second the server spends with no calls (timers, file watching).

    From schedstat: two idle seconds are below the 10 ms resolution of utime+stime.
    """
    start, before = time.monotonic(), tree_runtime_ns(server.pid)
    time.sleep(seconds)
    used = tree_runtime_ns(server.pid) - before
    return used / 1000 / (time.monotonic() - start)


@dataclass
class IdledStep(Step):
    """A step of a server also measured with no load: its CPU per call less the idle part."""

    window_s: float = 0.0  # from the first /proc sample to the last (run + settle)
    idle_cpu_us_per_s: float | None = None

    @property
    def cpu_us_per_call_less_idle(self) -> float | None:
        if not self.completed or self.idle_cpu_us_per_s is None:
            return None
        idle_s = self.idle_cpu_us_per_s / 1e6 * self.window_s
        return max(0.0, self.server_cpu_s - idle_s) / self.completed * 1e6
