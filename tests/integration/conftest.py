"""Fixtures of the integration tests: a real ``vms serve`` on free loopback ports, and SIPp.

``serve(...)`` (function scope) and ``serve_module(...)`` (module scope)
write a configuration and a trees directory under a temporary directory,
start ``vms serve --config ...``, wait for ``GET /api/health`` to say
``{"status": "ok"}`` and hand back a :class:`vmskit.Server`. At teardown each
server gets SIGTERM and must exit 0 within a few seconds, except one killed
on purpose (``server.kill()``, a crash); ``serve.restart(server)`` starts its
configuration again (same ports, same data_dir).

``sipp_peers(scenario)`` and ``sipp_peers_module(scenario)`` start SIPp UASes
in the background (a trunk, a site: a file of ``tests/sipp/`` or a SIPp
built-in such as ``uas``), each tracing its messages, and stop them at
teardown. ``redis_server`` (tests/conftest.py) is a real redis-server on a free port.

When a test fails, the stderr of the servers it used and the last messages of
the SIPp peers are attached to the report.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from vmskit import (
    SIPP_DIR,
    ServeFactory,
    Server,
    SippServer,
    launch,
    start_sipp_server,
    wait_healthy,
    write_config,
)

#: Servers started and not yet stopped, for the failure report.
LIVE: list[Server] = []
#: SIPp peers in the background (trunks, sites) not yet stopped, for the failure report.
PEERS: list[SippServer] = []
STOP_TIMEOUT = 5.0


@pytest.fixture(scope="session")
def sipp() -> str:
    """The SIPp binary; its absence is a failure, not a skip (``make test`` installs it)."""
    path = shutil.which("sipp")
    if path is None:
        pytest.fail(
            "sipp is not installed: the integration tests drive vms with SIPp, Debian package "
            "'sip-tester'. `make test` installs it when run as root; otherwise run "
            "`apt-get install sip-tester`.",
            pytrace=False,
        )
    return path


class _Factory:
    def __init__(self, base: Path) -> None:
        self.base = base
        self.servers: list[Server] = []

    def __call__(
        self,
        trees: dict[str, str],
        numbers: list[str],
        *,
        sip: dict[str, Any] | None = None,
        args: tuple[str, ...] = (),
        name: str | None = None,
        files: dict[str, bytes] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Server:
        directory = self.base / (name or f"vms{len(self.servers)}")
        config = write_config(directory, trees, numbers, sip=sip, files=files, extra=extra)
        return self._start(config, *args)

    def _start(self, config: Path, *args: str) -> Server:
        server = launch(config, *args)
        self.servers.append(server)
        LIVE.append(server)
        wait_healthy(server)
        return server

    def restart(self, server: Server, *args: str) -> Server:
        """Start the same configuration again (after ``server.kill()`` or ``stop()``)."""
        assert server.proc.poll() is not None, "stop or kill the server before restarting it"
        if server in LIVE:
            LIVE.remove(server)
        return self._start(server.config, *args)

    def close(self) -> None:
        problems = []
        for server in self.servers:
            if server.killed:  # a crash on purpose: no clean exit to check
                if server in LIVE:
                    LIVE.remove(server)
                continue
            try:
                status = server.stop(STOP_TIMEOUT)
            except AssertionError as exc:
                problems.append(f"{exc}\n--- stderr ---\n{server.stderr()}")
                continue
            finally:
                if server in LIVE:
                    LIVE.remove(server)
            if status != 0:
                problems.append(f"vms serve exited {status} after SIGTERM, not 0\n"
                                f"--- stderr ---\n{server.stderr()}")  # fmt: skip
            elif "Traceback (most recent call last)" in server.stderr():
                problems.append(f"vms serve logged a traceback (an unhandled error)\n"
                                f"--- stderr ---\n{server.stderr()}")  # fmt: skip
        if problems:
            pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[ServeFactory]:
    """Start servers for one test: ``serve(trees, numbers, sip=..., args=..., files=...)``."""
    factory = _Factory(tmp_path)
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def serve_module(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServeFactory]:
    """The same, shared by the tests of a module."""
    factory = _Factory(tmp_path_factory.mktemp("vms"))
    yield factory
    factory.close()


class _Peers:
    """SIPp UASes in the background: ``peers(scenario, port=..., transport=...)``."""

    def __init__(self, sipp: str, work: Path) -> None:
        self.sipp = sipp
        self.work = work
        self.started: list[SippServer] = []

    def __call__(self, scenario: str, *, port: int | None = None, transport: str = "u1",
                 extra: tuple[str, ...] = ()) -> SippServer:  # fmt: skip
        """``scenario``: a file of tests/sipp (``b2bua_trunk.xml``) or a SIPp built-in (``uas``)."""
        source: Path | str = SIPP_DIR / scenario if scenario.endswith(".xml") else scenario
        peer = start_sipp_server(self.sipp, self.work, source, port=port, transport=transport,
                                 extra=extra)  # fmt: skip
        self.started.append(peer)
        PEERS.append(peer)
        return peer

    def close(self) -> None:
        for peer in self.started:
            peer.stop()
            if peer in PEERS:
                PEERS.remove(peer)


@pytest.fixture
def sipp_peers(sipp: str, tmp_path: Path) -> Iterator[_Peers]:
    """Start SIPp UASes (trunks, sites) for one test; stopped at its end."""
    peers = _Peers(sipp, tmp_path)
    yield peers
    peers.close()


@pytest.fixture(scope="module")
def sipp_peers_module(sipp: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Peers]:
    """The same, shared by the tests of a module."""
    peers = _Peers(sipp, tmp_path_factory.mktemp("sipp"))
    yield peers
    peers.close()



@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for server in LIVE:
            text = server.stderr()
            report.sections.append((f"vms serve stderr ({server.config})", text[-20000:]))
        for peer in PEERS:
            trace = "\n".join(repr(m) for m in peer.messages()[-60:])
            report.sections.append((f"SIPp {peer.hostport}: last messages", trace))
            if peer.errors():
                report.sections.append((f"SIPp {peer.hostport}: errors", peer.errors()[-5000:]))
