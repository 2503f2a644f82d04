"""Helpers every benchmark needs: ports, processes, /proc counters, tables.

The benchmarks drive a server on loopback from a load generator pinned to the
other core, so each needs the same few things: free ports (someone may be
running ``make run`` on 5060 meanwhile), a server started in its own session
so that all of its processes can be stopped by its id, the CPU time of a
server's whole process tree read from /proc (Kamailio forks several
processes, Python may start threads), the kernel's UDP counters (drops
there look like a slow server but are not), how busy the machine was
besides (another process on a pinned core skews every figure), plain text
tables, and the keys every JSON summary starts with. Nothing here asserts:
the runner prints figures.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

__all__ = [
    "CLK_TCK",
    "BenchError",
    "Column",
    "ManagedProcess",
    "Sample",
    "column",
    "core_speed",
    "cpu_snapshot",
    "free_port",
    "machine_load",
    "percentile",
    "rows_table",
    "start_logged",
    "summary_head",
    "table",
    "tree_cpu_ticks",
    "tree_runtime_ns",
    "udp_bound",
    "udp_counters",
    "wait_until",
]

#: utime and stime in /proc are counted in these ticks (usually 100 per second).
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """Something a benchmark needs could not run; the message is one sentence for the user."""


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 right now.

    Both, because a server may listen on either with the same number; the
    small race until the server binds it is accepted.
    """
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.bind(("127.0.0.1", 0))
            port: int = udp.getsockname()[1]
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
                try:
                    tcp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port
    raise BenchError("no free port on 127.0.0.1 could be found for the benchmark")


def udp_bound(port: int) -> bool:
    """Whether some socket is bound to this UDP port (from /proc/net/udp{,6})."""
    wanted = f":{port:04X}"
    for name in ("/proc/net/udp", "/proc/net/udp6"):
        try:
            lines = Path(name).read_text().splitlines()[1:]
        except OSError:
            continue
        if any(line.split()[1].endswith(wanted) for line in lines if line.strip()):
            return True
    return False


def wait_until(
    ready: Callable[[], bool],
    timeout: float,
    what: str,
    process: ManagedProcess | None = None,
) -> None:
    """Poll until ``ready()``; a process that exits meanwhile ends the wait at once."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if ready():
            return
        if process is not None and not process.alive():
            raise BenchError(
                f"{what}: the process exited with status "
                f"{process.returncode()} ({process.log_tail()})"
            )
        time.sleep(0.05)
    tail = f" ({process.log_tail()})" if process is not None else ""
    raise BenchError(f"{what}: not ready after {timeout:.0f} s{tail}")


def start_logged(
    argv: Sequence[str],
    log: Path,
    cwd: Path,
    env: dict[str, str] | None = None,
    new_session: bool = False,
) -> subprocess.Popen[bytes]:
    """``argv`` started in ``cwd`` with no input, all its output in ``log`` (OSError if it cannot).

    ``new_session``: in a session of its own, so that its whole group can be signalled.
    """
    with log.open("wb") as out:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=new_session,
            env=env,
        )


class ManagedProcess:
    """A server process started in its own session, its output in a log file.

    Its own session makes its process group id equal to its pid, so stopping
    it reaches every process it forked, by that one id, and nothing else.
    """

    def __init__(
        self, argv: Sequence[str], log: Path, cwd: Path, env: dict[str, str] | None = None
    ) -> None:
        self.argv = list(argv)
        self.log = log
        try:
            self.popen = start_logged(self.argv, log, cwd, env, new_session=True)
        except OSError as exc:
            raise BenchError(f"cannot start {self.argv[0]}: {exc.strerror}") from None

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def returncode(self) -> int | None:
        return self.popen.poll()

    def log_tail(self, lines: int = 3) -> str:
        try:
            text = self.log.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no log"
        return " | ".join(text[-lines:]) if text else "empty log"

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM to the process group we created, SIGKILL after ``grace`` seconds."""
        if self.alive():
            self._signal(signal.SIGTERM)
            try:
                self.popen.wait(grace)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.popen.wait(grace)
        else:  # children of a dead leader may linger in its group
            self._signal(signal.SIGKILL)

    def _signal(self, sig: signal.Signals) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, sig)


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (which may hold spaces)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def cpu_snapshot() -> dict[int, tuple[int, int]]:
    """Every process: pid -> (parent pid, utime+stime in CLK_TCK ticks).

    A process's own figures already include all its threads. Kernel threads
    (softirq work, for one) are processes here too.
    """
    out: dict[int, tuple[int, int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None:  # after the name: state(0) ppid(1) ... utime(11) stime(12)
            out[int(entry)] = (int(fields[1]), int(fields[11]) + int(fields[12]))
    return out


def tree_pids(root: int, snapshot: dict[int, tuple[int, int]]) -> set[int]:
    """A process and all its descendants, found through every process's parent pid."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in snapshot.items():
        children.setdefault(ppid, []).append(pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        found.add(pid)
        todo.extend(children.get(pid, ()))
    return found & snapshot.keys()


def tree_cpu_ticks(root: int, snapshot: dict[int, tuple[int, int]] | None = None) -> int:
    """utime+stime of a process and all its descendants, in CLK_TCK ticks.

    Figures of descendants that have exited are lost, which suits servers
    whose workers live as long as they do (Kamailio's).
    """
    snapshot = cpu_snapshot() if snapshot is None else snapshot
    return sum(snapshot[pid][1] for pid in tree_pids(root, snapshot))


def tree_runtime_ns(root: int) -> int:
    """Nanoseconds on a CPU of a process tree's threads (/proc/PID/task/TID/schedstat).

    For short idle windows, where utime+stime (10 ms ticks) would round a
    few milliseconds of background work to zero or to a whole tick.
    """
    total = 0
    for pid in tree_pids(root, cpu_snapshot()):
        for task in Path(f"/proc/{pid}/task").glob("*/schedstat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                total += int(task.read_text().split()[0])
    return total


def core_speed(cpu: int, loops: int = 1_000_000) -> float:
    """Millions of iterations of a fixed Python loop per CPU second, on core ``cpu``.

    This machine is a virtual one: the same code ran 2 to 4 times faster in
    one run than in another an hour later (host load, frequency), which
    moves every CPU-per-call figure. Timed in this thread's CPU time, so
    only the core's speed counts, not the time it was away; taken before
    each step, it shows whether two servers measured one after the other
    ran on an equally fast machine.
    """
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, {cpu})  # this thread only
    try:
        start = time.thread_time()
        total = 0
        for i in range(loops):
            total += i & 7
        used = time.thread_time() - start
    finally:
        os.sched_setaffinity(0, before)
    return loops / used / 1e6 if used > 0 else float("nan")


def udp_counters() -> dict[str, int]:
    """The kernel's UDP counters (InDatagrams, InErrors, RcvbufErrors, ...) from /proc/net/snmp."""
    rows = [
        line.split()
        for line in Path("/proc/net/snmp").read_text().splitlines()
        if line.startswith("Udp:")
    ]
    if len(rows) < 2:
        return {}
    return {name: int(value) for name, value in zip(rows[0][1:], rows[1][1:], strict=False)}


def percentile(ordered: Sequence[float], fraction: float) -> float | None:
    """Nearest-rank percentile of an already sorted sequence; None when empty."""
    if not ordered:
        return None
    rank = math.ceil(fraction * len(ordered))
    return ordered[max(0, min(len(ordered), rank) - 1)]


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain text table: the first column left-aligned, the others right-aligned."""
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)
    ]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            c.ljust(w) if i == 0 else c.rjust(w)
            for i, (c, w) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


#: A column of a table printed from JSON rows: its header, and its cell in one row.
Column = tuple[str, Callable[[Mapping[str, Any]], str]]


def column(header: str, key: str, fmt: Callable[[Any], str] = str) -> Column:
    """The column that shows ``row[key]`` through ``fmt``."""
    return header, lambda row: fmt(row[key])


def rows_table(columns: Sequence[Column], rows: Sequence[Mapping[str, Any]]) -> str:
    """:func:`table` of rows as a summary saves them, so that the text never disagrees with it."""
    return table(
        [header for header, _ in columns], [[cell(r) for _, cell in columns] for r in rows]
    )


def summary_head(benchmark: str, options: dict[str, Any]) -> dict[str, Any]:
    """The keys a JSON summary starts with: which benchmark ran, when, with what options."""
    return {
        "benchmark": benchmark,
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": options,
    }


@dataclass(frozen=True)
class Sample:
    """What /proc says at one instant, for deltas over a step.

    The CPU time of every process alive at that instant is kept, so that
    the delta less the server's is what the rest of the machine used
    meanwhile (a load generator that has exited counts in neither sample).
    """

    at: float
    server_ticks: int
    server_pids: frozenset[int]
    ticks: dict[int, int]  # every process: pid -> utime+stime
    udp: dict[str, int]

    @classmethod
    def take(cls, server_pid: int | None) -> Sample:
        snapshot = cpu_snapshot()
        pids = tree_pids(server_pid, snapshot) if server_pid is not None else set()
        return cls(
            at=time.monotonic(),
            server_ticks=sum(snapshot[pid][1] for pid in pids),
            server_pids=frozenset(pids),
            ticks={pid: ticks for pid, (_, ticks) in snapshot.items()},
            udp=udp_counters(),
        )

    def others_since(
        self, earlier: Sample, exclude: Collection[int] = ()
    ) -> tuple[int, list[tuple[str, int]]]:
        """Ticks used by processes other than the server since ``earlier``, and the top users.

        ``exclude``: more processes not to count (a load generator that runs
        through both samples).
        """
        used = {
            pid: t - earlier.ticks.get(pid, 0)
            for pid, t in self.ticks.items()
            if pid not in self.server_pids and pid not in exclude and t > earlier.ticks.get(pid, 0)
        }
        top = sorted(used, key=used.__getitem__, reverse=True)[:3]
        return sum(used.values()), [(_command(pid), used[pid]) for pid in top]


def machine_load(seconds: float) -> tuple[float, list[tuple[str, float]]]:
    """% of one core other processes use over ``seconds``, and the busiest of them."""
    before = Sample.take(None)
    time.sleep(seconds)
    after = Sample.take(None)
    ticks, top = after.others_since(before)
    scale = 100 / CLK_TCK / (after.at - before.at)
    return ticks * scale, [(name, t * scale) for name, t in top]


def _command(pid: int) -> str:
    """A process's command line, or its [name] for a kernel thread, for notes."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        text = " ".join(a.decode(errors="replace") for a in argv if a)
        text = text or f"[{Path(f'/proc/{pid}/comm').read_text().strip()}]"
    except OSError:
        return f"pid {pid} (exited)"
    return f"pid {pid} {text[:70]}"
