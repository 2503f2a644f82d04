"""Helpers for the integration tests: a real ``vms serve``, SIPp runs, raw SIP sockets.

Nothing here imports the engine: the server is a subprocess, driven over
loopback, and the responses are read by a small parser of our own, so the
tests judge the engine from the outside only.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape
from zoneinfo import ZoneInfo

import yaml

REPO = Path(__file__).resolve().parents[2]
SIPP_DIR = REPO / "tests" / "sipp"
TORTURE = REPO / "tests" / "data" / "rfc4475"
#: The venv's ``vms``: the script installed beside the interpreter running the tests.
VMS = str(Path(sys.executable).with_name("vms"))
LOCAL = "127.0.0.1"
#: Where forwarded calls go; an address nothing listens on, so that a
#: Contact carrying it can only come from the configuration.
TRUNK = ("198.51.100.7", 5099)
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


# -- ports -------------------------------------------------------------------------------


def free_port(taken: set[int] | None = None) -> int:
    """A loopback port free for both UDP and TCP at the time of asking."""
    taken = taken if taken is not None else set()
    for _ in range(200):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind((LOCAL, 0))
            port = tcp.getsockname()[1]
            if port in taken:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((LOCAL, port))
                except OSError:
                    continue
        taken.add(port)
        return port
    raise RuntimeError("no free loopback port for both UDP and TCP")


# -- configuration and trees -------------------------------------------------------------


def write_config(
    directory: Path,
    trees: dict[str, str],
    numbers: list[str],
    *,
    sip: dict[str, Any] | None = None,
    extra: dict[str, Any] | None = None,
    files: dict[str, bytes] | None = None,
) -> Path:
    """Write ``vms.yaml`` and a ``trees/`` directory under ``directory``.

    The configuration serves SIP on a free loopback port (UDP and TCP) and the
    portal on another; customer ``itest`` owns ``numbers``. ``files`` are
    written into the trees directory too (prompts).
    """
    directory.mkdir(parents=True, exist_ok=True)
    tree_dir = directory / "trees"
    tree_dir.mkdir(exist_ok=True)
    for name, text in trees.items():
        (tree_dir / name).write_text(text)
    for name, data in (files or {}).items():  # prompts and the like, beside the trees
        (tree_dir / name).parent.mkdir(parents=True, exist_ok=True)
        (tree_dir / name).write_bytes(data)
    taken: set[int] = set()
    sip_port, portal_port = free_port(taken), free_port(taken)
    settings: dict[str, Any] = {
        "listen": f"{LOCAL}:{sip_port}",
        "trunk": f"{TRUNK[0]}:{TRUNK[1]}",
        "mode": "redirect",
        "peers": ["127.0.0.0/8"],
    }
    settings.update(sip or {})
    config: dict[str, Any] = {
        "sip": settings,
        "state": "memory",
        "data_dir": "var/",
        "trees": "trees/",
        "portal": {"listen": f"{LOCAL}:{portal_port}"},
        "customers": {
            "itest": {"formula": "classic", "options": ["acm"], "numbers": numbers},
        },
    }
    config.update(extra or {})
    path = directory / "vms.yaml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def b2bua(trunk: str, **sip: Any) -> dict[str, Any]:
    """``sip:`` settings of an engine in b2bua mode whose trunk is ``HOST:PORT``.

    The overload guard is set far off: these tests judge call flows, and on a
    loaded machine a late event loop must not turn their INVITEs into 503s.
    """
    return {"mode": "b2bua", "trunk": trunk, "overload": {"max_delay_ms": 10000}, **sip}


def tree(number: str | list[str], routes: str, *, timezone: str = "Europe/Brussels",
         head: str = "") -> str:  # fmt: skip
    """A tree of customer ``itest``; ``routes`` is the YAML of its ``routes:`` list."""
    numbers = json.dumps([number] if isinstance(number, str) else number)
    return (f"version: 1\ncustomer: itest\nnumbers: {numbers}\ntimezone: {timezone}\n"
            f"{head}routes:\n{routes}")  # fmt: skip


@dataclass(frozen=True)
class Clockwork:
    """Time windows and calendars around the present, in one timezone.

    Every window keeps at least an hour between the present and its edges,
    so a test takes far less than the margin it relies on.
    """

    timezone: str
    now: datetime

    @classmethod
    def at_present(cls, timezone: str) -> Clockwork:
        return cls(timezone, datetime.now(ZoneInfo(timezone)))

    def open_window(self) -> str:
        """A window on the present weekday holding now (from an hour ago to in an hour).

        Before 01:00 it starts the day before and crosses midnight.
        """
        start, end = self.now - timedelta(hours=1), self.now + timedelta(hours=1)
        return f"{DAYS[start.weekday()]} {start:%H:%M}-{end:%H:%M}"

    def closed_window(self) -> str:
        """A window that does not hold now: from two to three hours ahead."""
        start, end = self.now + timedelta(hours=2), self.now + timedelta(hours=3)
        return f"{DAYS[start.weekday()]} {start:%H:%M}-{end:%H:%M}"

    def crossing_windows(self) -> tuple[str, str]:
        """Two windows that cross midnight: one holds now, the other does not."""
        today, yesterday = DAYS[self.now.weekday()], DAYS[(self.now.weekday() - 1) % 7]
        if self.now.hour >= 12:  # tonight's window has begun; last night's is over
            start = f"{self.now - timedelta(hours=1):%H:%M}"
            return f"{today} {start}-03:00", f"{yesterday} {start}-03:00"
        end = f"{self.now + timedelta(hours=1):%H:%M}"  # last night's runs on; tonight's not yet
        return f"{yesterday} 21:00-{end}", f"{today} 21:00-{end}"

    def today(self) -> date:
        return self.now.date()


#: ``serve(trees, numbers, sip=..., args=..., name=...)`` (conftest.py's fixtures).
ServeFactory = Callable[..., "Server"]


# -- the server ----------------------------------------------------------------------------


@dataclass
class Server:
    """A running ``vms serve``; its stderr goes to a file the tests can read."""

    config: Path
    proc: subprocess.Popen[bytes]
    stderr_path: Path
    sip_port: int
    portal_port: int
    stderr_file: Any = field(repr=False, default=None)
    #: Killed on purpose (:meth:`kill`): its exit status is not checked.
    killed: bool = False

    @property
    def sip(self) -> tuple[str, int]:
        return (LOCAL, self.sip_port)

    @property
    def trees(self) -> Path:
        return self.config.parent / "trees"

    def url(self, path: str) -> str:
        return f"http://{LOCAL}:{self.portal_port}{path}"

    def stderr(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_stderr(self, pattern: str, timeout: float = 5.0, after: int = 0) -> re.Match[str]:
        """Poll stderr (from character ``after``) until ``pattern`` appears."""
        deadline = time.monotonic() + timeout
        regex = re.compile(pattern, re.MULTILINE)
        while True:
            match = regex.search(self.stderr(), after)
            if match:
                return match
            if time.monotonic() > deadline:
                raise AssertionError(f"/{pattern}/ not on the server's stderr within {timeout} s")
            time.sleep(0.05)

    def kill(self) -> None:
        """SIGKILL: a crash. The fixtures then expect no clean exit from it."""
        self.killed = True
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        if self.stderr_file is not None:
            self.stderr_file.close()

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then the exit status (killed and None-safe on timeout)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError(f"vms serve did not stop within {timeout} s of SIGTERM")  # noqa: B904
        if self.stderr_file is not None:
            self.stderr_file.close()
        return self.proc.returncode


def ports_of(config: Path) -> tuple[int, int]:
    data = yaml.safe_load(config.read_text())
    sip = int(str(data["sip"]["listen"]).rpartition(":")[2])
    portal = int(str(data["portal"]["listen"]).rpartition(":")[2])
    return sip, portal


def launch(config: Path, *args: str) -> Server:
    """Start ``vms serve --config CONFIG`` without waiting for it."""
    sip_port, portal_port = ports_of(config)
    stderr_path = config.parent / f"serve-{secrets.token_hex(3)}.stderr"
    stderr_file = stderr_path.open("wb")
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTHONDONTWRITEBYTECODE="1")
    proc = subprocess.Popen(
        [VMS, "serve", "--config", str(config), *args],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr_file,
        cwd=config.parent, env=env,
    )  # fmt: skip
    return Server(config, proc, stderr_path, sip_port, portal_port, stderr_file)


def http_get(url: str, timeout: float = 2.0) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:
            return reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def api_call(server: Server, token: str, method: str, path: str, body: Any = None,
             timeout: float = 10.0) -> tuple[int, Any]:
    """``METHOD /api/v1/customers/CUSTOMER/PATH`` with ``token`` (``CUSTOMER:SECRET``).

    ``body`` goes as JSON; returns the status and the JSON answered (None if empty).
    """
    customer = token.split(":", 1)[0]
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(server.url(f"/api/v1/customers/{customer}/{path}"),
                                     data=data, method=method,
                                     headers={"authorization": f"Bearer {token}"})  # fmt: skip
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            status, raw = reply.status, reply.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    return status, json.loads(raw) if raw else None


def wait_healthy(server: Server, timeout: float = 20.0) -> None:
    """Poll ``GET /api/health`` until 200 ``{"status": "ok"}``; fail if the server dies."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(
                f"vms serve exited with {server.proc.returncode} before it was healthy:\n"
                f"{server.stderr()}"
            )
        try:
            status, body = http_get(server.url("/api/health"), 1.0)
        except OSError as exc:
            last = str(exc)
        else:
            if status == 200 and json.loads(body) == {"status": "ok"}:
                return
            last = f"{status} {body!r}"
        time.sleep(0.05)
    raise AssertionError(f"vms serve not healthy within {timeout} s ({last}):\n{server.stderr()}")


def run_vms(*args: str, stdin: str | None = None, timeout: float = 30.0,
            cwd: Path | None = None) -> subprocess.CompletedProcess[str]:  # fmt: skip
    """Run ``vms ARGS`` to completion."""
    return subprocess.run(
        [VMS, *args], input=stdin, capture_output=True, text=True, timeout=timeout,
        cwd=cwd or REPO, check=False,
    )  # fmt: skip


# -- SIPp ----------------------------------------------------------------------------------


@dataclass
class SippResult:
    returncode: int
    stats: dict[str, str]
    errors: str
    output: str
    #: What SIPp sent and received, when it ran with ``trace=True``.
    messages: list[Traced] = field(default_factory=list)

    @property
    def successful(self) -> int:
        return int(self.stats.get("SuccessfulCall(C)", -1))

    @property
    def failed(self) -> int:
        return int(self.stats.get("FailedCall(C)", -1))

    def explain(self) -> str:
        counters = {k: v for k, v in self.stats.items()
                    if k.startswith(("Failed", "Successful", "Retransmissions", "DeadCall",
                                     "OutOfCall")) and k.endswith("(C)") and v != "0"}  # fmt: skip
        return (f"sipp exit {self.returncode}, counters {counters}\n"
                f"--- sipp errors ---\n{self.errors[-3000:]}\n"
                f"--- sipp output ---\n{self.output[-2000:]}")  # fmt: skip


def scenario(work: Path, name: str, **placeholders: str) -> Path:
    """Copy ``tests/sipp/NAME`` into ``work``, filling its placeholders.

    SIPp does not substitute keywords inside attributes such as ``ereg``'s
    ``regexp`` or ``recv``'s ``response``, so the test writes them in; the
    values are escaped for an XML attribute.
    """
    text = (SIPP_DIR / name).read_text(encoding="iso-8859-1")
    for key, value in placeholders.items():
        assert key in text, f"{name} has no placeholder {key}"
        text = text.replace(key, escape(value, {'"': "&quot;"}))
    path = work / f"{Path(name).stem}-{secrets.token_hex(3)}.xml"
    path.write_text(text, encoding="iso-8859-1")
    return path


def run_sipp(
    sipp: str,
    work: Path,
    xml: Path | str,
    target: tuple[str, int],
    *,
    service: str,
    calls: int = 1,
    rate: int = 10,
    transport: str = "u1",
    keys: dict[str, str] | None = None,
    timeout: float = 20.0,
    extra: tuple[str, ...] = (),
    trace: bool = False,
) -> SippResult:
    """Run one SIPp client to completion and read its statistics file (see start_sipp)."""
    return start_sipp(sipp, work, xml, target, service=service, calls=calls, rate=rate,
                      transport=transport, keys=keys, timeout=timeout, extra=extra,
                      trace=trace).wait()  # fmt: skip


@dataclass
class SippRun:
    """A SIPp client started in the background (:func:`start_sipp`); ``wait()`` for its result."""

    proc: subprocess.Popen[bytes]
    stat: Path
    errors: Path
    messages_path: Path | None
    output: Path
    timeout: float

    def wait(self) -> SippResult:
        try:
            self.proc.wait(self.timeout + 15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        return self._result()

    def kill(self) -> SippResult:
        """Stop it now (SIGKILL): a caller that goes away in the middle of its call."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        return self._result()

    def messages(self) -> list[Traced]:
        """What it sent and received so far (``trace=True``)."""
        assert self.messages_path is not None, "start SIPp with trace=True to read its messages"
        return read_trace(self.messages_path)

    def wait_acked(self, timeout: float = 10.0) -> list[Traced]:
        """Until it has acknowledged a 200 to its INVITE (``trace=True``): its call is up."""

        def acked() -> list[Traced] | None:
            if self.proc.poll() is not None:
                explained = self._result().explain()
                raise AssertionError(f"SIPp ended before its call was up:\n{explained}")
            messages = self.messages()
            return messages if "ACK" in requests(messages, sent=True) else None

        messages: list[Traced] = wait_until("the SIPp caller's call up (its ACK sent)", acked,
                                            timeout)  # fmt: skip
        return messages

    def _result(self) -> SippResult:
        output = self.output.read_text(errors="replace") if self.output.exists() else ""
        rows: list[dict[str, str]] = []
        if self.stat.exists():
            with self.stat.open(newline="") as f:
                rows = list(csv.DictReader(f, delimiter=";"))
        text = self.errors.read_text(errors="replace") if self.errors.exists() else ""
        trace = read_trace(self.messages_path) if self.messages_path is not None else []
        return SippResult(self.proc.returncode, rows[-1] if rows else {}, text, output, trace)


def start_sipp(
    sipp: str,
    work: Path,
    xml: Path | str,
    target: tuple[str, int],
    *,
    service: str,
    calls: int = 1,
    rate: int = 10,
    transport: str = "u1",
    keys: dict[str, str] | None = None,
    timeout: float = 20.0,
    extra: tuple[str, ...] = (),
    trace: bool = False,
) -> SippRun:
    """Start one SIPp client against ``target``; ``trace`` keeps its messages.

    ``xml`` is a scenario file (``-sf``) or the name of a SIPp built-in (``-sn uac``).
    """
    name = xml.stem if isinstance(xml, Path) else xml
    stem = f"{name}-{secrets.token_hex(3)}"
    stat, errors = work / f"{stem}.stat.csv", work / f"{stem}.errors.log"
    messages = work / f"{stem}.messages.log" if trace else None
    args = [
        sipp,
        f"{target[0]}:{target[1]}",
        *(["-sf", str(xml)] if isinstance(xml, Path) else ["-sn", xml]),
        "-s",
        service,
        "-m",
        str(calls),
        "-r",
        str(rate),
        "-l",
        str(max(calls, 1)),
        "-timeout",
        f"{int(timeout)}s",
        "-timeout_error",
        "-trace_stat",
        "-stf",
        str(stat),
        "-fd",
        "1",
        "-trace_err",
        "-error_file",
        str(errors),
        "-nostdin",
        "-i",
        LOCAL,
        "-p",
        str(free_port()),
        "-t",
        transport,
    ]
    if messages is not None:
        args += ["-trace_msg", "-message_file", str(messages)]
    for key, value in (keys or {}).items():
        args += ["-key", key, value]
    args += extra
    output = work / f"{stem}.out"
    with output.open("wb") as sink:  # a file, not a pipe: a long run never blocks on it
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=sink,
                                stderr=subprocess.STDOUT, cwd=work)  # fmt: skip
    return SippRun(proc, stat, errors, messages, output, timeout)


# -- SIPp message traces -----------------------------------------------------------------

#: ``-trace_msg``: each message follows a line of dashes with the local time, then
#: ``UDP message sent (N bytes):`` or ``TCP message received [N] bytes :``.
_TRACE_HEAD = re.compile(
    r"^-{20,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\n(\w+) message (sent|received)[^\n]*\n\n",
    re.MULTILINE,
)


@dataclass
class Traced:
    """One message in a SIPp message trace: which way it went, when, and the message."""

    sent: bool
    at: float  # seconds since the epoch (SIPp writes local time)
    transport: str
    message: Message

    @property
    def call_id(self) -> str | None:
        return self.message.get("call-id")

    @property
    def method(self) -> str | None:
        """The request's method, None for a response."""
        return None if self.message.status is not None else self.message.start.split(" ", 1)[0]

    @property
    def cseq_method(self) -> str:
        return (self.message.get("cseq") or " ").split()[-1]

    def __repr__(self) -> str:
        way = "->" if self.sent else "<-"
        return f"{way} {self.message.start} ({self.message.get('cseq')}, {self.call_id})"


def read_trace(path: Path) -> list[Traced]:
    """The messages of a SIPp ``-trace_msg`` file, in order (none while it does not exist)."""
    try:
        text = path.read_bytes().decode("utf-8", "replace")
    except FileNotFoundError:
        return []
    heads = list(_TRACE_HEAD.finditer(text))
    out = []
    ends = [h.start() for h in heads[1:]] + [len(text)] if heads else []
    for head, end in zip(heads, ends, strict=True):
        chunk = text[head.end() : end]
        if "\r\n\r\n" not in chunk:  # a message still being written, or SIPp's own notes
            continue
        message = parse(chunk.encode())
        length = message.get("content-length")
        if length is not None and length.strip().isdigit():
            message.body = message.body[: int(length)]
        at = datetime.strptime(head.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        out.append(Traced(head.group(3) == "sent", at, head.group(2), message))
    return out


def dialogue(messages: list[Traced], call_id: str) -> list[Traced]:
    """The messages of one SIP call (Call-ID) in a trace."""
    return [m for m in messages if m.call_id == call_id]


def statuses(messages: list[Traced], method: str = "INVITE", sent: bool = False) -> list[int]:
    """The status codes of the responses to ``method`` received (or sent), in order."""
    return [status for m in messages if (status := m.message.status) is not None
            and m.sent == sent and m.cseq_method == method]  # fmt: skip


def requests(messages: list[Traced], sent: bool = False) -> list[str]:
    """The methods of the requests received (or sent), in order."""
    return [m.method for m in messages if m.method is not None and m.sent == sent]


@dataclass
class SippServer:
    """A SIPp UAS in the background (:func:`start_sipp_server`): a trunk, a site."""

    proc: subprocess.Popen[bytes]
    port: int
    transport: str
    messages_path: Path
    errors_path: Path
    args: list[str] = field(repr=False)
    work: Path = field(repr=False)

    @property
    def address(self) -> tuple[str, int]:
        return (LOCAL, self.port)

    @property
    def hostport(self) -> str:
        return f"{LOCAL}:{self.port}"

    def messages(self) -> list[Traced]:
        return read_trace(self.messages_path)

    def dialogue(self, call_id: str) -> list[Traced]:
        return dialogue(self.messages(), call_id)

    def invites(self) -> list[Traced]:
        """The initial INVITEs it received (no To tag), in order."""
        return [m for m in self.messages() if not m.sent and m.method == "INVITE"
                and m.message.to_tag is None]  # fmt: skip

    def errors(self) -> str:
        try:
            return self.errors_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def running(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        """SIGTERM (SIGKILL if it lingers); its port is free again when this returns."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def restart(self) -> None:
        """Start it again on the same port, with the same scenario (its trace goes on)."""
        self.stop()
        self.proc = _spawn_sipp_server(self.args, self.work)
        _wait_bound(self.proc, self.port, self.transport, self.errors_path)


def _spawn_sipp_server(args: list[str], work: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, cwd=work)  # fmt: skip


def _port_taken(port: int, transport: str) -> bool:
    kind = socket.SOCK_STREAM if transport.startswith("t") else socket.SOCK_DGRAM
    with socket.socket(socket.AF_INET, kind) as sock:
        try:
            sock.bind((LOCAL, port))
        except OSError:
            return True
    return False


def _wait_bound(proc: subprocess.Popen[bytes], port: int, transport: str, errors: Path,
                timeout: float = 10.0) -> None:  # fmt: skip
    """Until SIPp holds its port (it takes calls from then on), or fail if it exits."""
    deadline = time.monotonic() + timeout
    while not _port_taken(port, transport):
        if proc.poll() is not None:
            text = errors.read_text(errors="replace") if errors.exists() else ""
            raise AssertionError(f"SIPp exited with {proc.returncode} before binding port "
                                 f"{port}:\n{text[-2000:]}")  # fmt: skip
        if time.monotonic() > deadline:
            raise AssertionError(f"SIPp did not bind port {port} within {timeout} s")
        time.sleep(0.02)


def start_sipp_server(
    sipp: str,
    work: Path,
    scenario_: Path | str,
    *,
    port: int | None = None,
    transport: str = "u1",
    extra: tuple[str, ...] = (),
) -> SippServer:
    """Start a SIPp UAS: ``scenario_`` is an XML file, or the name of a built-in (``uas``).

    It traces every message (``SippServer.messages()``) and is ready when this returns.
    """
    port = port or free_port()
    name = scenario_.stem if isinstance(scenario_, Path) else scenario_
    stem = f"{name}-{port}"
    messages, errors = work / f"{stem}.messages.log", work / f"{stem}.errors.log"
    args = [sipp, *(["-sf", str(scenario_)] if isinstance(scenario_, Path) else ["-sn", scenario_]),
            "-i", LOCAL, "-p", str(port), "-t", transport, "-nostdin",
            "-trace_msg", "-message_file", str(messages),
            "-trace_err", "-error_file", str(errors), *extra]  # fmt: skip
    proc = _spawn_sipp_server(args, work)
    _wait_bound(proc, port, transport, errors)
    return SippServer(proc, port, transport, messages, errors, args, work)


# -- waiting -------------------------------------------------------------------------------


def wait_until(what: str, probe: Callable[[], Any], timeout: float = 10.0,
               interval: float = 0.05) -> Any:  # fmt: skip
    """Poll ``probe()`` until it returns something truthy and return that; fail at ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(interval)


# -- call detail records -------------------------------------------------------------------


def cdr_export(config: Path) -> list[dict[str, Any]]:
    """``vms cdr export --format jsonl``: every ended leg (none while there are none yet)."""
    done = run_vms("cdr", "export", "--config", str(config), "--format", "jsonl")
    if done.returncode != 0:
        assert "there are no call records" in done.stderr, done.stderr
        return []
    return [json.loads(line) for line in done.stdout.splitlines() if line.strip()]


def call_legs(records: list[dict[str, Any]], caller_call_id: str) -> list[dict[str, Any]]:
    """The legs of the call whose caller's leg had SIP Call-ID ``caller_call_id``, by leg."""
    ids = {r["call_id"] for r in records if r["leg"] == 0 and r["sip_call_id"] == caller_call_id}
    return sorted((r for r in records if r["call_id"] in ids), key=lambda r: r["leg"])


def wait_legs(config: Path, caller_call_id: str, legs: int,
              timeout: float = 10.0) -> list[dict[str, Any]]:  # fmt: skip
    """Poll the export until the call has ``legs`` ended legs (records are group-committed)."""
    return wait_calls(config, {caller_call_id: legs}, timeout)[caller_call_id]


def wait_calls(config: Path, legs: dict[str, int],
               timeout: float = 10.0) -> dict[str, list[dict[str, Any]]]:  # fmt: skip
    """Poll the export until each call (caller's Call-ID) has as many ended legs as given."""

    def probe() -> dict[str, list[dict[str, Any]]] | None:
        records = cdr_export(config)
        found = {call_id: call_legs(records, call_id) for call_id in legs}
        for call_id, count in legs.items():
            assert len(found[call_id]) <= count, f"more legs than {count}: {found[call_id]}"
        return found if all(len(found[c]) == n for c, n in legs.items()) else None

    found: dict[str, list[dict[str, Any]]] = wait_until(
        f"the ended legs {legs} in the records", probe, timeout, interval=0.1)  # fmt: skip
    return found


def caller_call_ids(messages: list[Traced]) -> list[str]:
    """The Call-IDs of the initial INVITEs a SIPp caller sent, in order."""
    out: list[str] = []
    for m in messages:
        if m.sent and m.method == "INVITE" and m.message.to_tag is None and m.call_id not in out:
            out.append(m.call_id or "")
    return out


def contact_regexp(number: str, trunk: tuple[str, int] = TRUNK) -> str:
    """SIPp's ``hdr`` search yields the value with its leading blank."""
    return rf"^ *<sip:{re.escape(number)}@{re.escape(trunk[0])}:{trunk[1]}>$"


# -- raw SIP -------------------------------------------------------------------------------


@dataclass
class Message:
    """A SIP message as received: start line, headers by lower-case name, body."""

    raw: bytes
    start: str
    headers: dict[str, list[str]]
    body: bytes

    @property
    def status(self) -> int | None:
        parts = self.start.split(" ", 2)
        return int(parts[1]) if parts[0] == "SIP/2.0" and parts[1].isdigit() else None

    def get(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    @property
    def branch(self) -> str | None:
        via = self.get("via") or ""
        match = re.search(r";\s*branch=([^;,\s]+)", via)
        return match.group(1) if match else None

    @property
    def to_tag(self) -> str | None:
        match = re.search(r";\s*tag=([^;,\s]+)", self.get("to") or "")
        return match.group(1) if match else None


_COMPACT = {"v": "via", "f": "from", "t": "to", "i": "call-id", "m": "contact",
            "l": "content-length"}  # fmt: skip


def parse(raw: bytes) -> Message:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("utf-8", "replace").split("\r\n")
    headers: dict[str, list[str]] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        key = name.strip().lower()
        headers.setdefault(_COMPACT.get(key, key), []).append(value.strip())
    return Message(raw, lines[0], headers, body)


def split_stream(buffer: bytes) -> tuple[list[bytes], bytes]:
    """Complete messages framed by Content-Length from a TCP stream, and the rest."""
    out = []
    while True:
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return out, buffer
        match = re.search(rb"(?im)^(?:content-length|l)\s*:\s*(\d+)", buffer[:end])
        size = end + 4 + (int(match.group(1)) if match else 0)
        if len(buffer) < size:
            return out, buffer
        out.append(buffer[:size])
        buffer = buffer[size:]


def request(
    method: str,
    number: str,
    server: tuple[str, int],
    local: tuple[str, int],
    *,
    branch: str | None = None,
    caller: str = "+3227001122",
    from_header: str | None = None,
    call_id: str | None = None,
    cseq: int = 1,
    to_tag: str | None = None,
    extra: str = "",
    transport: str = "UDP",
) -> bytes:
    """A well-formed request from ``local`` to ``number`` at ``server``."""
    branch = branch or f"z9hG4bK-{secrets.token_hex(6)}"
    call_id = call_id or f"{secrets.token_hex(8)}@itest"
    uri = f"sip:{number}@{server[0]}:{server[1]}"
    to = f"<{uri}>" + (f";tag={to_tag}" if to_tag else "")
    frm = from_header or f"<sip:{caller}@{local[0]}>;tag=f{secrets.token_hex(4)}"
    return (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {local[0]}:{local[1]};branch={branch}\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: {frm}\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {'INVITE' if method == 'ACK' else method}\r\n"
        f"Contact: <sip:itest@{local[0]}:{local[1]}>\r\n"
        f"{extra}"
        f"Content-Length: 0\r\n\r\n"
    ).encode()


def ack_for(invite: bytes, response: Message) -> bytes:
    """The ACK of a non-2xx final response: the INVITE's Via, the response's To."""
    text = invite.decode()
    head = text.split("\r\n\r\n", 1)[0].split("\r\n")
    method_line = head[0].replace("INVITE ", "ACK ", 1)
    lines = [method_line]
    for line in head[1:]:
        name = line.partition(":")[0].lower()
        if name == "to":
            lines.append(f"To: {response.get('to')}")
        elif name == "cseq":
            lines.append(line.replace("INVITE", "ACK"))
        elif name not in ("contact", "content-length"):
            lines.append(line)
    return ("\r\n".join(lines) + "\r\nContent-Length: 0\r\n\r\n").encode()


class UdpPeer:
    """A UDP socket on loopback that sends requests and collects responses."""

    def __init__(self, host: str = LOCAL, port: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.local: tuple[str, int] = self.sock.getsockname()

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> UdpPeer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes, to: tuple[str, int]) -> None:
        self.sock.sendto(data, to)

    def receive(self, timeout: float) -> Message | None:
        """The next datagram within ``timeout`` seconds, else None."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65535)
        except TimeoutError:
            return None
        return parse(data)

    def drain(self) -> list[Message]:
        out = []
        while (message := self.receive(0.0001)) is not None:
            out.append(message)
        return out

    def final(self, branch: str, timeout: float = 5.0) -> Message:
        """The next final response for ``branch`` (others are skipped)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            message = self.receive(left)
            if message is None:
                break
            if message.branch == branch and (message.status or 0) >= 200:
                return message
        raise AssertionError(f"no final response for branch {branch} within {timeout} s")

    def invite(self, number: str, server: tuple[str, int], timeout: float = 5.0,
               **kw: Any) -> tuple[bytes, Message]:  # fmt: skip
        """Send an INVITE and return it with its final response (not acknowledged)."""
        data = request("INVITE", number, server, self.local, **kw)
        self.send(data, server)
        return data, self.final(parse(data).branch or "", timeout)

    def call(self, number: str, server: tuple[str, int], **kw: Any) -> Message:
        """INVITE, final response, ACK: one whole redirect call."""
        data, response = self.invite(number, server, **kw)
        self.send(ack_for(data, response), server)
        return response


def contacts(response: Message) -> list[str]:
    """Every Contact value, in order, whether on separate lines or comma-separated."""
    out = []
    for value in response.headers.get("contact", []):
        out += [part.strip() for part in re.split(r",(?=\s*<)", value)]
    return out


@contextlib.contextmanager
def tcp_connection(server: tuple[str, int], timeout: float = 5.0) -> Iterator[socket.socket]:
    sock = socket.create_connection(server, timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        yield sock
    finally:
        sock.close()


def read_messages(sock: socket.socket, count: int, timeout: float = 5.0) -> list[Message]:
    """Read ``count`` whole messages from a TCP stream."""
    deadline = time.monotonic() + timeout
    buffer, out = b"", []
    while len(out) < count:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(65535)
        except TimeoutError:
            break
        if not chunk:
            break
        buffer += chunk
        done, buffer = split_stream(buffer)
        out += [parse(m) for m in done]
    assert len(out) >= count, f"got {len(out)} of {count} messages on the connection"
    return out
