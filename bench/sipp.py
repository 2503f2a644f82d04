"""SIPp as the load generator: the scenario made ready, one run per rate, its CSV read back.

Each choice below has its reason, most of them measured on this machine:

- The scenario is tests/sipp/redirect_uac.xml with CONTACT_REGEXP filled in,
  XML-escaped (SIPp substitutes no keywords inside ereg attributes), so a
  302 whose first Contact is wrong fails its call.
- ``start_rtd`` is added to the INVITE. By default SIPp starts the
  response-time clock when it allocates a call, one pass of its main loop
  (which ends in a 1 ms epoll_wait) before the INVITE leaves: that added
  about 1.1 ms to every response time, even against a server answering in
  tens of microseconds.
- SIPp 3.6 reads CLOCK_MONOTONIC_COARSE, which moves in 4 ms steps on this
  kernel (HZ=250): every response time would read 0, 4 or 8 ms. A tiny
  LD_PRELOAD shim, compiled with ``cc`` when there is one, hands SIPp
  CLOCK_MONOTONIC instead; without ``cc`` the run goes on and the report
  states the resolution.
- One UDP socket (``-t u1``, the default): an upstream proxy sends from one
  address. ``-max_socket`` only bounds the socket-per-call modes, so it is
  not set.
- ``-buff_size`` 4 MiB (the kernel's rmem_max here): with SIPp's 64 KiB
  default, 302s dropped in SIPp's own socket under bursts would count
  against the server.
- ``-recv_timeout`` 4 s: an INVITE still without a 302 after its
  retransmissions at 0.5, 1.5 and 3.5 s fails, instead of lingering until
  Timer B (32 s); ``-timeout`` ends SIPp a few seconds after its last call
  is due, whatever the server does.
- ``-l`` three seconds' worth of calls: SIPp does not quietly slow down
  while a server is merely late (a server 4 s late fails its calls anyway),
  and up to 4,000/s it stays below the open-file limit (``ulimit -n``,
  20,000 here), which SIPp otherwise warns about. When SIPp does hold back,
  the offered rate shows it.
- ``-timer_resol 0``: the call generator wakes every millisecond (bursts of
  2 INVITEs at 2,000/s) instead of every 11 ms (bursts of 22).
- ``-rtt_freq 100``: SIPp writes response times 100 at a time and drops the
  last partial batch when it exits, so up to 99 per run are missing (the
  JSON summary keeps the sample count).
"""

from __future__ import annotations

import contextlib
import os
import re
import resource
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import quoteattr

from common import BenchError, free_port

__all__ = ["Sipp", "SippRun", "coarse_clock_resolution_ms", "prepare_scenario"]

RTT_FREQ = 100
RECV_TIMEOUT_MS = 4000
BUFFER_BYTES = 4 * 1024 * 1024

_SHIM = r"""
/* For SIPp only: CLOCK_MONOTONIC_COARSE (4 ms steps here) becomes CLOCK_MONOTONIC. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <time.h>
typedef int (*gettime_fn)(clockid_t, struct timespec *);
int clock_gettime(clockid_t id, struct timespec *ts) {
    static gettime_fn real;
    if (!real) real = (gettime_fn)dlsym(RTLD_NEXT, "clock_gettime");
    return real(id == CLOCK_MONOTONIC_COARSE ? CLOCK_MONOTONIC : id, ts);
}
"""
_CLOCK_MONOTONIC_COARSE = 6  # Linux clock id
_ENTRY = re.compile(r"\d{4}-\d\d-\d\d\t[\d:.]+\t\d+\.\d+: ")  # entries need not start a line
_RECEIVED = re.compile(r"received '((?:SIP/2\.0 \d{3}|[A-Z]+ sip:)[^\r\n']*)")


def coarse_clock_resolution_ms() -> float:
    """The step of the clock SIPp reads when no shim replaces it."""
    try:
        return time.clock_getres(_CLOCK_MONOTONIC_COARSE) * 1000
    except OSError:
        return float("nan")


def prepare_scenario(template: Path, contact_regexp: str, out: Path) -> bool:
    """Write the scenario with its Contact check filled in; True when start_rtd could be added."""
    try:
        text = template.read_text(encoding="iso-8859-1")
    except OSError as exc:
        raise BenchError(f"cannot read the SIPp scenario {template}: {exc.strerror}") from None
    if 'regexp="CONTACT_REGEXP"' not in text:
        raise BenchError(
            f'the SIPp scenario {template} has no regexp="CONTACT_REGEXP" '
            "placeholder to fill in; the benchmark cannot check the Contact"
        )
    text = text.replace('regexp="CONTACT_REGEXP"', f"regexp={quoteattr(contact_regexp)}")
    text, added = re.subn(
        r"<send\b(?![^>]*\bstart_rtd=)([^>]*)>", r'<send\1 start_rtd="true">', text, count=1
    )
    out.write_text(text, encoding="iso-8859-1")
    return bool(added)


def build_fine_clock(workdir: Path) -> Path | None:
    """Compile the clock shim; None when there is no C compiler or it fails."""
    compiler = shutil.which("cc") or shutil.which("gcc")
    if compiler is None:
        return None
    source, library = workdir / "fineclock.c", workdir / "libfineclock.so"
    source.write_text(_SHIM)
    done = subprocess.run(
        [compiler, "-O2", "-shared", "-fPIC", "-o", str(library), str(source), "-ldl"],
        capture_output=True,
        check=False,
    )
    return library if done.returncode == 0 and library.exists() else None


@dataclass
class SippRun:
    """One SIPp run at one rate, as SIPp counted it."""

    rate: int
    planned: int
    created: int = 0
    successful: int = 0
    failed: int = 0
    failures: dict[str, int] = field(default_factory=dict)  # the non-zero Failed*(C) counters
    retransmissions: int = 0
    out_of_call: int = 0
    rtts_ms: list[float] = field(default_factory=list)  # sorted
    achieved_rate: float | None = None
    wall: float = 0.0
    cpu_seconds: float = 0.0
    exit_status: int = 0
    errors: dict[str, int] = field(default_factory=dict)  # SIPp's error log, by kind

    @property
    def unfinished(self) -> int:
        """Calls SIPp started but neither completed nor failed before it quit."""
        return max(0, self.created - self.successful - self.failed)

    @property
    def not_started(self) -> int:
        """Calls SIPp never got round to starting (it could not keep up, or quit early)."""
        return max(0, self.planned - self.created)


class Sipp:
    """Runs SIPp against one server address, pinned to one core."""

    def __init__(
        self,
        workdir: Path,
        template: Path,
        contact_regexp: str,
        *,
        service: str,
        caller: str,
        cpu: int,
        fine_clock: bool = True,
    ) -> None:
        if shutil.which("sipp") is None:
            raise BenchError(
                "SIPp is not installed; install the Debian package sip-tester "
                "(make bench does when run as root)"
            )
        self.workdir = workdir
        self.scenario = workdir / "redirect_uac.xml"
        self.send_time_rtd = prepare_scenario(template, contact_regexp, self.scenario)
        self.service = service
        self.caller = caller
        self.cpu = cpu
        self.shim = build_fine_clock(workdir) if fine_clock else None
        if self.shim is not None:
            self.clock_note = "the fine clock shim is on"
        elif fine_clock:
            self.clock_note = "no C compiler could build the fine clock shim"
        else:
            self.clock_note = "the fine clock shim was turned off"
        self.runs = 0

    @property
    def resolution_ms(self) -> float:
        return 0.001 if self.shim is not None else coarse_clock_resolution_ms()

    def run(self, target: tuple[str, int], rate: int, calls: int, label: str) -> SippRun:
        """Offer ``calls`` calls at ``rate`` per second and wait for SIPp to finish."""
        self.runs += 1
        rundir = self.workdir / f"{self.runs:02d}-{label}"
        rundir.mkdir()
        due = calls / rate
        argv = [
            "taskset",
            "-c",
            str(self.cpu),
            "sipp",
            f"{target[0]}:{target[1]}",
            "-sf",
            str(self.scenario),
            "-s",
            self.service,
            "-key",
            "caller",
            self.caller,
            "-r",
            str(rate),
            "-m",
            str(calls),
            "-l",
            str(max(10, rate * 3)),
            "-p",
            str(free_port()),
            "-mp",
            str(free_port()),
            "-t",
            "u1",
            "-buff_size",
            str(BUFFER_BYTES),
            "-recv_timeout",
            str(RECV_TIMEOUT_MS),
            "-timeout",
            f"{int(due + RECV_TIMEOUT_MS / 1000 + 6)}s",
            "-timer_resol",
            "0",
            "-nostdin",
            "-trace_stat",
            "-stf",
            str(rundir / "stat.csv"),
            "-fd",
            "1",
            "-trace_rtt",
            "-rtt_freq",
            str(RTT_FREQ),
            "-trace_err",
            "-error_file",
            str(rundir / "errors.log"),
        ]
        env = None if self.shim is None else {**os.environ, "LD_PRELOAD": str(self.shim)}
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        with (rundir / "sipp.out").open("wb") as out:
            process = subprocess.Popen(
                argv,
                cwd=rundir,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
            try:
                status = process.wait(due + RECV_TIMEOUT_MS / 1000 + 30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise BenchError(
                    f"SIPp did not finish its {rate}/s run in time (see {rundir})"
                ) from None
        wall = time.monotonic() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if status not in (0, 1):  # 0: every call succeeded, 1: some failed
            raise BenchError(
                f"SIPp could not run at {rate}/s (exit status {status}): "
                f"{_last_line(rundir / 'sipp.out')}"
            )
        result = _read_stat(rundir / "stat.csv", rate, calls)
        result.rtts_ms = sorted(_read_rtts(rundir))
        result.achieved_rate = _achieved_rate(rundir)
        result.wall = wall
        result.cpu_seconds = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        result.exit_status = status
        result.errors = _error_kinds(rundir / "errors.log")
        return result


def _read_stat(path: Path, rate: int, planned: int) -> SippRun:
    """SIPp's cumulative counters from the last row of its -trace_stat file."""
    try:
        rows = [line.split(";") for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        raise BenchError(f"SIPp wrote no statistics file ({path})") from None
    if len(rows) < 2:
        raise BenchError(f"SIPp's statistics file {path} has no data row")
    last = dict(zip(rows[0], rows[-1], strict=False))

    def counter(name: str) -> int:
        try:
            return int(last.get(name, "0") or 0)
        except ValueError:
            return 0

    failures = {
        name[len("Failed") : -3]: counter(name)
        for name in rows[0]
        if name.startswith("Failed")
        and name.endswith("(C)")
        and name != "FailedCall(C)"
        and counter(name)
    }
    return SippRun(
        rate=rate,
        planned=planned,
        created=counter("TotalCallCreated"),
        successful=counter("SuccessfulCall(C)"),
        failed=counter("FailedCall(C)"),
        failures=failures,
        retransmissions=counter("Retransmissions(C)"),
        out_of_call=counter("OutOfCallMsgs(C)") + counter("DeadCallMsgs(C)"),
    )


def _rtt_rows(rundir: Path) -> list[tuple[float, float]]:
    """(time of the 302 in ms since SIPp started, response time in ms), one per call."""
    rows = []
    for path in rundir.glob("*_rtt.csv"):
        for line in path.read_text().splitlines()[1:]:
            parts = line.split(";")
            with contextlib.suppress(ValueError, IndexError):
                rows.append((float(parts[0]), float(parts[1])))
    return rows


def _read_rtts(rundir: Path) -> list[float]:
    return [rtt for _, rtt in _rtt_rows(rundir)]


def _achieved_rate(rundir: Path) -> float | None:
    """Calls per second SIPp really offered, from the spread of its answer times."""
    dates = sorted(date for date, _ in _rtt_rows(rundir))
    if len(dates) < 2 or dates[-1] <= dates[0]:
        return None
    return (len(dates) - 1) / ((dates[-1] - dates[0]) / 1000)


def _error_kinds(path: Path) -> dict[str, int]:
    """SIPp's error log grouped by kind, most frequent first.

    Each entry starts with a timestamp and may run over several lines (the
    unexpected message follows it); an unexpected message is named by its
    status line (``SIP/2.0 503 Overloaded``), other entries by their first
    line with quoted parts (Call-IDs) blanked.
    """
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return {}
    kinds: Counter[str] = Counter()
    for entry in _ENTRY.split(text)[1:]:
        first = entry.strip().splitlines()[0] if entry.strip() else ""
        received = _RECEIVED.search(entry)
        if received:
            kinds[f"unexpected {received[1].strip()}"] += 1
        elif first:
            kinds[re.sub(r"'[^']*'", "'...'", first)[:140]] += 1
    return dict(kinds.most_common())


def _last_line(path: Path) -> str:
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "no output"
    errors = [ln for ln in lines if "rror" in ln or "nable" in ln]
    return (errors or lines or ["no output"])[-1][:200]
