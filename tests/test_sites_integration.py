"""Site health end to end: the prober on a real SipStack and UDP socket against SIPp.

SIPp plays the site (``tests/sipp/options_uas.xml`` answers OPTIONS with
200). The prober runs in a child process on the real reactor (this file run
as a script: ``python tests/test_sites_integration.py CONFIG``), built from a
configuration file the way the engine builds it, and logs to stdout. The test
kills SIPp and sees the site go down after ``down_after`` probes, starts it
again and sees it come back after ``up_after``, then reads the result with
``vms sites``' code. Short intervals keep it to a few seconds.
"""

from __future__ import annotations

import json
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from io import StringIO
from pathlib import Path
from typing import Any

import pytest

LOCAL = "127.0.0.1"
SCENARIO = Path(__file__).resolve().parent / "sipp" / "options_uas.xml"
INTERVAL, TIMEOUT, DOWN_AFTER, UP_AFTER = 0.3, 0.25, 3, 2


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOCAL, 0))
        return int(sock.getsockname()[1])


class Lines:
    """The child's stdout, line by line, read on a thread so waits can time out."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.queue: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        assert proc.stdout is not None
        stream = proc.stdout
        threading.Thread(target=lambda: [self.queue.put(line) for line in stream],
                         daemon=True).start()  # fmt: skip

    def wait_for(self, pattern: str, timeout: float) -> tuple[str, float]:
        """The first new line matching ``pattern``, and when it arrived."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no line matching {pattern!r} within {timeout} s; "
                                     f"saw: {self.seen}")  # fmt: skip
            try:
                line = self.queue.get(timeout=left).rstrip("\n")
            except queue.Empty:
                continue
            self.seen.append(line)
            if re.search(pattern, line):
                return line, time.monotonic()


def _start_sipp(sipp: str, port: int, work: Path) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [sipp, "-sf", str(SCENARIO), "-i", LOCAL, "-p", str(port), "-t", "u1", "-nostdin",
         "-trace_err", "-error_file", str(work / "sipp.errors.log")],
        cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    time.sleep(0.2)
    assert proc.poll() is None, "SIPp did not start"
    return proc


@pytest.mark.integration
def test_a_site_goes_down_when_sipp_stops_and_comes_back(tmp_path: Path) -> None:
    sipp = shutil.which("sipp")
    if sipp is None:
        pytest.fail("sipp is not installed (Debian package 'sip-tester'; `make test` installs "
                    "it when run as root)", pytrace=False)  # fmt: skip
    port = _free_udp_port()
    config = tmp_path / "vms.yaml"
    config.write_text(f"""\
trees: trees/
data_dir: var/
sites:
  pbx-acme:
    address: "{LOCAL}:{port}"
    numbers: ["+3225550*"]
    interval: {INTERVAL}
    timeout: {TIMEOUT}
    down_after: {DOWN_AFTER}
    up_after: {UP_AFTER}
""")
    site = sipp_proc = _start_sipp(sipp, port, tmp_path)
    child = subprocess.Popen([sys.executable, __file__, str(config)], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)  # fmt: skip
    lines = Lines(child)
    try:
        lines.wait_for(rf"^site pbx-acme \({LOCAL}:{port}\) is up \(200 OK\)$", 3)
        site.kill()
        site.wait()
        stopped = time.monotonic()
        line, at = lines.wait_for(r"is down", 3)
        # SIPp's port is closed: each probe fails at once on the ICMP port unreachable
        # (loopback never rate-limits ICMP), so the third failure comes with the third probe.
        assert line == f"site pbx-acme ({LOCAL}:{port}) is down: 3 probes failed (transport)"
        assert (DOWN_AFTER - 1) * INTERVAL - 0.1 < at - stopped < DOWN_AFTER * INTERVAL + 1.0
        down = json.loads((tmp_path / "var" / "sites.json").read_text())
        assert down["sites"]["pbx-acme"]["state"] == "down"
        site = _start_sipp(sipp, port, tmp_path)
        line, _ = lines.wait_for(r"is up again", 3)
        assert line == f"site pbx-acme ({LOCAL}:{port}) is up again after 2 probes"
        from engine.sites.command import run

        out, err = StringIO(), StringIO()
        assert run(str(config), False, out, err) == 0, err.getvalue()
        text = out.getvalue()
        assert text.startswith(f"pbx-acme  {LOCAL}:{port} udp  up  since ")
        assert "last 200 OK at" in text and "0 failed, 2 ok in a row" in text
    finally:
        child.send_signal(signal.SIGTERM)
        try:
            child.wait(5)
        finally:
            site.kill()
            sipp_proc.kill()
    line, _ = lines.wait_for(r"^client transactions left", 2)
    assert line == "client transactions left: 0"  # timeouts ended theirs, stop() the last one
    assert child.returncode == 0
    assert not any("Traceback" in seen for seen in lines.seen), "\n".join(lines.seen)


# -- the child: the prober on the real reactor -----------------------------------------------


class _User:
    """The transaction user of the child's stack: it serves nothing."""

    def __init__(self) -> None:
        from engine.sip.validate import Policy

        self.policy = Policy(allowed=frozenset({"OPTIONS"}))

    def request_received(self, txn: Any, request: Any) -> None:
        txn.respond(request.response(405))

    def ack_received(self, *args: Any) -> None:
        pass

    def cancel_received(self, txn: Any) -> None:
        pass

    def server_failed(self, *args: Any) -> None:
        pass

    def stray_response(self, *args: Any) -> None:
        pass


def _child(config_path: str) -> int:
    import logging

    from twisted.internet import reactor

    from engine.config import load_config
    from engine.sip.overload import Overload
    from engine.sip.stack import SipStack
    from engine.sip.transport import UdpTransport
    from engine.sites.health import SiteTable
    from engine.sites.prober import SiteProber

    logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(message)s")
    config = load_config(config_path)
    stack = SipStack(reactor, _User())
    udp = UdpTransport(reactor, stack, Overload(0.2), LOCAL, 0)
    udp.start()
    table = SiteTable(config.sites.values(), reactor)
    prober = SiteProber(stack, table, {"udp": udp}, udp.local, config.data_dir,
                        config.sip.trunk)  # fmt: skip

    def stop() -> None:
        prober.stop()
        # Answered ones wait out Timer K (T4) in "completed", as RFC 3261 wants.
        pending = [t for t in stack.client.values() if t.state in ("trying", "proceeding")]
        print(f"client transactions left: {len(pending)}", flush=True)

    reactor.callWhenRunning(prober.start)  # type: ignore[attr-defined]
    reactor.addSystemEventTrigger("before", "shutdown", stop)  # type: ignore[attr-defined]
    reactor.run()  # type: ignore[attr-defined]
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    sys.exit(_child(sys.argv[1]))
