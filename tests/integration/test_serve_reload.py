"""Trees reload while the engine runs: on a file change, on SIGHUP, and not when invalid.

The watcher polls the trees directory every second, so a changed tree is in
force within about two seconds. A reload that does not validate leaves the
running trees in force and logs each problem as ``FILE:LINE:COL: message``.
Transactions answered before a reload keep their answer.
"""

from __future__ import annotations

import re
import signal
import time

import pytest

from vmskit import TRUNK, ServeFactory, Server, UdpPeer, ack_for, contacts, tree

pytestmark = pytest.mark.integration

NUMBER, OLD, NEW, NEWER = "+3225550800", "+3225550801", "+3225550802", "+3225550803"


def desk(number: str) -> str:
    return tree(NUMBER, f'  - name: desk\n    do: {{forward: "{number}"}}\n')


def contact(number: str) -> list[str]:
    return [f"<sip:{number}@{TRUNK[0]}:{TRUNK[1]}>"]


def wait_for_contact(server: Server, number: str, timeout: float) -> float:
    """Call until the 302 names ``number``; the seconds it took."""
    start = time.monotonic()
    with UdpPeer() as peer:
        while True:
            response = peer.call(NUMBER, server.sip)
            if contacts(response) == contact(number):
                return time.monotonic() - start
            assert time.monotonic() - start < timeout, (
                f"still {contacts(response)} {timeout} s after the change")  # fmt: skip
            time.sleep(0.05)


@pytest.fixture
def server(serve: ServeFactory) -> Server:
    return serve({"desk.yaml": desk(OLD)}, [NUMBER])


def test_a_changed_tree_file_is_in_force_within_seconds(server: Server) -> None:
    with UdpPeer() as before:
        invite, answered = before.invite(NUMBER, server.sip)  # not acknowledged yet
        assert contacts(answered) == contact(OLD)
        (server.trees / "desk.yaml").write_text(desk(NEW))
        wait_for_contact(server, NEW, timeout=2.5)
        server.wait_stderr(r"trees reloaded \(files changed\)")
        # The INVITE answered before the reload, sent again: its old answer.
        before.drain()
        before.send(invite, server.sip)
        again = before.final(answered.branch or "")
        assert again.raw == answered.raw
        before.send(ack_for(invite, answered), server.sip)


def test_sighup_with_an_invalid_tree_keeps_the_running_one(server: Server) -> None:
    path = server.trees / "desk.yaml"
    path.write_text(desk(NEW).replace("forward:", "forwrd:"))
    mark = len(server.stderr())
    server.proc.send_signal(signal.SIGHUP)
    server.wait_stderr(r"trees not reloaded \(SIGHUP\)", after=mark)
    where = re.escape(str(path.resolve()))
    server.wait_stderr(rf"ERROR vms: {where}:7:10: unknown key 'forwrd'", after=mark)
    with UdpPeer() as peer:
        assert contacts(peer.call(NUMBER, server.sip)) == contact(OLD)
    assert server.proc.poll() is None
    # Fixed and signalled again, the new tree is in force at once.
    path.write_text(desk(NEWER))
    mark = len(server.stderr())
    server.proc.send_signal(signal.SIGHUP)
    server.wait_stderr(r"trees reloaded \(SIGHUP\)", after=mark)
    with UdpPeer() as peer:
        assert contacts(peer.call(NUMBER, server.sip)) == contact(NEWER)
