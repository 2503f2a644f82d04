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
    xml: Path,
    target: tuple[str, int],
    *,
    service: str,
    calls: int = 1,
    rate: int = 10,
    transport: str = "u1",
    keys: dict[str, str] | None = None,
    timeout: float = 20.0,
    extra: tuple[str, ...] = (),
) -> SippResult:
    """Run one SIPp client to completion and read its statistics file."""
    stem = xml.stem
    stat, errors = work / f"{stem}.stat.csv", work / f"{stem}.errors.log"
    args = [
        sipp,
        f"{target[0]}:{target[1]}",
        "-sf",
        str(xml),
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
    for key, value in (keys or {}).items():
        args += ["-key", key, value]
    args += extra
    proc = subprocess.run(args, capture_output=True, text=True, timeout=timeout + 15,
                          cwd=work, check=False)  # fmt: skip
    rows: list[dict[str, str]] = []
    if stat.exists():
        with stat.open(newline="") as f:
            rows = list(csv.DictReader(f, delimiter=";"))
    text = errors.read_text(errors="replace") if errors.exists() else ""
    return SippResult(proc.returncode, rows[-1] if rows else {}, text,
                      proc.stdout + proc.stderr)  # fmt: skip


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
