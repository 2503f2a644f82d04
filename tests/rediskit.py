"""A real ``redis-server`` on a free loopback port, for the state tests and its benchmark.

The server runs in a temporary directory with persistence off
(``--save '' --appendonly no``), logs to a pipe that a thread drains, and is
ready once it says so: no sleeping and polling. ``restart()`` starts it
again on the same port, as an operator would after a crash.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import socket
import subprocess
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["MISSING", "RedisServer", "find_redis_server", "free_port", "running_redis"]

MISSING = (
    "redis-server is not installed: the state tests run the Redis backend against a real "
    "Redis (Debian package 'redis-server'). `make test` installs it when run as root; "
    "otherwise run `apt-get install redis-server`."
)

READY = "Ready to accept connections"


def find_redis_server() -> str | None:
    return shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """One redis-server process; ``start()`` waits until it accepts connections."""

    def __init__(self, binary: str, directory: Path, *extra: str) -> None:
        self.binary = binary
        self.directory = directory
        self.extra = extra
        self.port = free_port()
        self.process: subprocess.Popen[str] | None = None
        self.output: list[str] = []
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._ready.clear()
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.directory), *self.extra],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        threading.Thread(target=self._drain, args=(self.process,), daemon=True).start()
        if not self._ready.wait(timeout) or self.process.poll() is not None:
            self.stop()
            log = "".join(self.output[-20:])
            raise RuntimeError(f"redis-server on port {self.port} did not start:\n{log}")

    def _drain(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self.output.append(line)
            if READY in line:
                self._ready.set()
        self._ready.set()  # exited: start() looks at poll()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)

    def kill(self) -> None:
        """SIGKILL: a crash, connections reset without a goodbye."""
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGKILL)
            process.wait(5)

    def restart(self) -> None:
        self.stop()
        self.start()


@contextmanager
def running_redis(directory: Path) -> Iterator[RedisServer]:
    """A real redis-server in ``directory`` while the block runs; its absence is a failure."""
    import pytest  # the benchmark uses this module too, without pytest

    binary = find_redis_server()
    if binary is None:
        pytest.fail(MISSING, pytrace=False)
    server = RedisServer(binary, directory)
    server.start()
    try:
        yield server
    finally:
        server.stop()
