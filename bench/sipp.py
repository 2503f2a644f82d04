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

For full calls (the B2BUA benchmark) the caller runs
bench/scenarios/b2bua_uac.xml with ``-d`` (the call's length: ``-l`` and
the timeouts grow by it) and ``-i 127.0.0.1``, and :class:`SippUas`
answers as the trunk with bench/scenarios/b2bua_uas.xml, a new SIPp per
step on one fixed port, pinned to the same core as the caller. SIPp's own
``-sn uac``/``-sn uas`` do not fit: the caller ignores the Record-Route of
the 200 (no ``rrs``) and the callee does not copy it into its answers, so
the ACK and the BYE would bypass a record-routing proxy. The callee sends
its 200 one turn of its main loop after its 180, about 1.1 ms later, which
is in every call setup time, whatever the server.
"""

from __future__ import annotations

import contextlib
import math
import os
import re
import resource
import shutil
import signal
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from xml.sax.saxutils import quoteattr

from common import BenchError, free_port, start_logged, udp_bound

__all__ = ["Sipp", "SippRun", "SippUas", "coarse_clock_resolution_ms", "prepare_scenario"]

RTT_FREQ = 100
RECV_TIMEOUT_MS = 4000
BUFFER_BYTES = 4 * 1024 * 1024
UAS_TIMEWAIT_S = 4.0  # the callee scenario's <timewait> after the BYE

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


def prepare_scenario(
    template: Path, contact_regexp: str | None, out: Path, start_rtd: bool = True
) -> bool:
    """Write the scenario, its Contact check filled in when it has one to fill.

    Returns True when the first message sent starts the response-time clock
    (``start_rtd``, added here when the scenario lacks it, unless
    ``start_rtd`` is false: a callee's first send is an answer).
    """
    try:
        text = template.read_text(encoding="iso-8859-1")
    except OSError as exc:
        raise BenchError(f"cannot read the SIPp scenario {template}: {exc.strerror}") from None
    if contact_regexp is not None:
        if 'regexp="CONTACT_REGEXP"' not in text:
            raise BenchError(
                f'the SIPp scenario {template} has no regexp="CONTACT_REGEXP" '
                "placeholder to fill in; the benchmark cannot check the Contact"
            )
        text = text.replace('regexp="CONTACT_REGEXP"', f"regexp={quoteattr(contact_regexp)}")
    if start_rtd:
        text = re.sub(
            r"<send\b(?![^>]*\bstart_rtd=)([^>]*)>", r'<send\1 start_rtd="true">', text, count=1
        )
    out.write_text(text, encoding="iso-8859-1")
    first = re.search(r"<send\b[^>]*>", text)
    return bool(first and "start_rtd=" in first[0])


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
    #: Calls per second SIPp created, from its statistics rows (failed calls included).
    created_rate: float | None = None
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
    """Runs SIPp against one server address, pinned to one core.

    ``contact_regexp`` fills the scenario's Contact check (None: the
    scenario has none); ``call_seconds`` is the scenario's ``<pause/>``
    (``-d``), the time a call stays up after its ACK; ``local_ip`` the
    address SIPp binds and puts in its Via and Contact (``-i``).
    """

    def __init__(
        self,
        workdir: Path,
        template: Path,
        contact_regexp: str | None,
        *,
        service: str,
        caller: str,
        cpu: int,
        fine_clock: bool = True,
        call_seconds: float = 0.0,
        local_ip: str | None = None,
    ) -> None:
        if shutil.which("sipp") is None:
            raise BenchError(
                "SIPp is not installed; install the Debian package sip-tester "
                "(make bench does when run as root)"
            )
        self.workdir = workdir
        self.scenario = workdir / template.name
        self.send_time_rtd = prepare_scenario(template, contact_regexp, self.scenario)
        self.call_seconds = call_seconds
        self.local_ip = local_ip
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
        due = calls / rate + self.call_seconds
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
            str(max(10, math.ceil(rate * (3 + self.call_seconds)))),
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
        if self.call_seconds:
            argv += ["-d", str(round(self.call_seconds * 1000))]
        if self.local_ip is not None:
            argv += ["-i", self.local_ip]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        process = _start(argv, rundir, self.shim)
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
        result.created_rate = _created_rate(rundir / "stat.csv", calls)
        result.wall = wall
        result.cpu_seconds = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        result.exit_status = status
        result.errors = _error_kinds(rundir / "errors.log")
        return result


class SippUas:
    """SIPp as the callee (the server's trunk): one SIPp per step, on the same port each time.

    The server under test is configured once with this port as its trunk
    (or next hop), so each step starts a new SIPp there: its statistics
    file, error log and CPU time then belong to that step alone. It quits
    by itself once it has seen ``calls`` calls through (``-m``; each ends
    with 4 s of timewait), or at ``-timeout`` when some never came.

    It is reaped only by :meth:`finish`, after the caller's SIPp has been:
    both are children of this process, and the CPU time of each is read
    from ``RUSAGE_CHILDREN`` around its own reaping.
    """

    def __init__(
        self,
        workdir: Path,
        template: Path,
        *,
        cpu: int,
        local_ip: str = "127.0.0.1",
        shim: Path | None = None,
    ) -> None:
        self.workdir = workdir
        self.scenario = workdir / template.name
        prepare_scenario(template, None, self.scenario, start_rtd=False)
        self.cpu = cpu
        self.local_ip = local_ip
        self.port = free_port()
        self.shim = shim
        self.runs = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._rundir: Path | None = None
        self._planned = 0
        self._rate = 0
        self._deadline = 0.0

    @property
    def address(self) -> tuple[str, int]:
        return (self.local_ip, self.port)

    def start(self, rate: int, calls: int, call_seconds: float, label: str) -> None:
        """Start answering ``calls`` calls (offered at ``rate``); returns once the port is bound."""
        if self._process is not None:
            raise BenchError("the callee SIPp is still running from the previous step")
        self.runs += 1
        rundir = self.workdir / f"{self.runs:02d}-{label}-uas"
        rundir.mkdir()
        due = calls / rate + call_seconds + RECV_TIMEOUT_MS / 1000 + UAS_TIMEWAIT_S
        argv = [
            "taskset", "-c", str(self.cpu), "sipp",
            "-sf", str(self.scenario),
            "-i", self.local_ip, "-p", str(self.port), "-mp", str(free_port()),
            "-t", "u1", "-buff_size", str(BUFFER_BYTES),
            "-m", str(calls), "-timeout", f"{math.ceil(due + 5)}s",
            "-nostdin",
            "-trace_stat", "-stf", str(rundir / "stat.csv"), "-fd", "1",
            "-trace_err", "-error_file", str(rundir / "errors.log"),
        ]  # fmt: skip
        try:
            self._process = _start(argv, rundir, self.shim, new_session=True)
        except OSError as exc:
            raise BenchError(f"cannot start the callee SIPp: {exc.strerror}") from None
        self._rundir, self._planned, self._rate = rundir, calls, rate
        self._deadline = time.monotonic() + due + 15
        bound_by = time.monotonic() + 10
        while not udp_bound(self.port):
            if self._process.poll() is not None or time.monotonic() > bound_by:
                if self._process.poll() is None:
                    self._process.kill()
                self._process.wait()
                self._process = None
                raise BenchError(
                    f"the callee SIPp did not start on port {self.port}: "
                    f"{_last_line(rundir / 'sipp.out')}"
                )
            time.sleep(0.02)

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def finish(self, wait: float | None = None) -> SippRun:
        """Wait for it to quit (at most ``wait`` seconds, else until its own timeout), read it."""
        process, rundir = self._process, self._rundir
        if process is None or rundir is None:
            raise BenchError("the callee SIPp was not started")
        self._process = None
        limit = self._deadline - time.monotonic() if wait is None else wait
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        try:
            status = process.wait(max(0.1, limit))
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            status = process.wait()
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        try:
            result = _read_stat(rundir / "stat.csv", self._rate, self._planned)
        except BenchError:
            result = SippRun(rate=self._rate, planned=self._planned)
        result.cpu_seconds = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
        result.exit_status = status
        result.errors = _error_kinds(rundir / "errors.log")
        return result

    def stop(self) -> None:
        """Kill a callee still running (the benchmark is ending on an error)."""
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()
            self._process = None


def _start(
    argv: list[str], rundir: Path, shim: Path | None, new_session: bool = False
) -> subprocess.Popen[bytes]:
    """SIPp started in ``rundir``, its output in sipp.out, on the fine clock shim if any."""
    env = None if shim is None else {**os.environ, "LD_PRELOAD": str(shim)}
    return start_logged(argv, rundir / "sipp.out", rundir, env, new_session)


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


def _created_rate(path: Path, planned: int) -> float | None:
    """Calls per second SIPp created, from its -trace_stat rows (one a second).

    The calls created by the last row written while SIPp was still creating
    (fewer than planned), over the time since it started. Unlike
    :func:`_achieved_rate`, which dates answers, this counts the calls that
    failed too.
    """
    try:
        rows = [line.split(";") for line in path.read_text().splitlines() if line.strip()]
    except OSError:
        return None
    if len(rows) < 3 or planned < 2:
        return None
    try:
        start = rows[0].index("StartTime")
        now = rows[0].index("CurrentTime")
        total = rows[0].index("TotalCallCreated")
        points = [
            (float(r[now].split("\t")[-1]) - float(r[start].split("\t")[-1]), int(r[total]))
            for r in rows[1:]
        ]
    except (ValueError, IndexError):
        return None
    creating = [(t, c) for t, c in points if 0 < c < planned and t >= 0.9]
    if not creating:
        return None
    at, created = creating[-1]
    return created / at


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
