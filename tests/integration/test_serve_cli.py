"""``vms`` as a user meets it: startup errors, the other commands, the HTTP face.

Bad input ends with exit status 1 and ``FILE:LINE:COL: message`` lines or one
sentence on stderr, never a Python traceback (contract.md).
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import signal
import socket
from pathlib import Path

import pytest

from engine.passwords import verify_password
from vmskit import (
    REPO,
    ServeFactory,
    UdpPeer,
    contacts,
    free_port,
    http_get,
    launch,
    ports_of,
    run_vms,
    tree,
    wait_healthy,
    write_config,
)

pytestmark = pytest.mark.integration

NUMBER = "+3225550600"
GOOD = tree(NUMBER, '  - name: desk\n    do: {forward: "+3225550601"}\n')
#: Line 7, column 10 is the misspelt key.
BAD = tree(NUMBER, '  - name: desk\n    do: {forwrd: "+3225550601"}\n')
PROBLEM = re.compile(r"^(?P<file>\S+?):(?P<line>\d+):(?P<col>\d+): (?P<message>\S.*)$", re.M)


def no_traceback(text: str) -> None:
    assert "Traceback" not in text and 'File "' not in text, text


def one_sentence(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    no_traceback(text)
    return lines[0]


def test_a_tree_with_a_problem_stops_the_start(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"desk.yaml": BAD}, [NUMBER])
    result = run_vms("serve", "--config", str(config))
    assert result.returncode == 1, result.stderr
    no_traceback(result.stderr)
    problems = [m.groupdict() for m in PROBLEM.finditer(result.stderr)]
    assert problems == [{
        "file": str((tmp_path / "trees" / "desk.yaml").resolve()), "line": "7", "col": "10",
        "message": "unknown key 'forwrd' in the action of rule 'desk' (did you mean 'forward'?)",
    }], result.stderr  # fmt: skip


def test_a_queue_of_a_customer_without_acm_groups_is_refused(tmp_path: Path) -> None:
    media = tree(NUMBER, '  - name: desk\n    when: {caller: "+3226*"}\n    do: {queue: sales}\n'
                 '  - name: closed\n    do: {reject: 480}\n')
    config = write_config(tmp_path, {"desk.yaml": media}, [NUMBER])
    result = run_vms("serve", "--config", str(config), "--mode", "b2bua")
    assert result.returncode == 1
    no_traceback(result.stderr)
    problems = PROBLEM.findall(result.stderr)
    assert problems and problems[0][3] == ("undefined ACM group 'sales' of customer 'itest': "
                                           "customer 'itest' has no ACM groups")  # fmt: skip


@pytest.mark.parametrize("taken", ["sip-udp", "sip-tcp", "portal"])
def test_a_port_in_use_is_refused_with_a_sentence(tmp_path: Path, taken: str) -> None:
    config = write_config(tmp_path, {"desk.yaml": GOOD}, [NUMBER])
    sip, portal = ports_of(config)
    port = portal if taken == "portal" else sip
    kind = socket.SOCK_DGRAM if taken == "sip-udp" else socket.SOCK_STREAM
    with socket.socket(socket.AF_INET, kind) as blocker:
        blocker.bind(("127.0.0.1", port))
        if kind == socket.SOCK_STREAM:
            blocker.listen()
        result = run_vms("serve", "--config", str(config))
    assert result.returncode == 1
    line = one_sentence(result.stderr)
    assert f"127.0.0.1:{port}" in line and "in use" in line, line


def test_config_validate_reports_each_problem_with_its_place(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"desk.yaml": GOOD}, [NUMBER],
                          sip={"mode": "proxy", "peers": ["10.0.0.0/33"]})  # fmt: skip
    result = run_vms("config", "validate", str(config))
    assert result.returncode == 1
    no_traceback(result.stdout + result.stderr)
    problems = [m.groupdict() for m in PROBLEM.finditer(result.stderr)]
    assert [p["file"] for p in problems] == [str(config)] * 2, result.stderr
    assert "mode" in problems[0]["message"] and "proxy" in problems[0]["message"]
    assert "10.0.0.0/33" in problems[1]["message"]
    lines = config.read_text().splitlines()
    for problem in problems:  # the place is the offending value's
        line = lines[int(problem["line"]) - 1]
        assert line[int(problem["col"]) - 1 :].startswith(("proxy", "- 10.0.0.0/33", "10.0.")), (
            problem, line)  # fmt: skip


def test_config_validate_checks_the_trees_it_points_to(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"desk.yaml": BAD}, [NUMBER])
    result = run_vms("config", "validate", str(config))
    assert result.returncode == 1
    no_traceback(result.stdout + result.stderr)
    assert re.search(r"desk\.yaml:7:10: unknown key 'forwrd'", result.stderr), result.stderr
    (tmp_path / "trees" / "desk.yaml").write_text(GOOD)
    assert run_vms("config", "validate", str(config)).returncode == 0


def test_the_demo_configuration_and_example_trees_validate() -> None:
    assert run_vms("config", "validate", "config/vms.yaml").returncode == 0
    examples = sorted(str(p) for p in (REPO / "routing_trees" / "examples").glob("*.yaml"))
    result = run_vms("tree", "validate", *examples, "--config", "config/vms.yaml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_passwd_prints_a_scrypt_hash_of_the_password(tmp_path: Path) -> None:
    result = run_vms("passwd", stdin="correct horse\n")
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()
    kind, n, r, p, salt, digest = line.split("$")
    assert kind == "scrypt"

    def unb64(text: str) -> bytes:
        return base64.b64decode(text + "=" * (-len(text) % 4))

    expected = hashlib.scrypt(b"correct horse", salt=unb64(salt), n=int(n), r=int(r), p=int(p),
                              dklen=len(unb64(digest)))  # fmt: skip
    assert expected == unb64(digest)
    # ... and the configuration takes it as a customer's DRS password.
    config = write_config(tmp_path, {"desk.yaml": GOOD}, [NUMBER])
    text = config.read_text()
    config.write_text(
        text.replace("formula: classic", f"formula: classic\n    drs_password: '{line}'")
    )
    assert run_vms("config", "validate", str(config)).returncode == 0


def test_passwd_refuses_an_empty_password() -> None:
    result = run_vms("passwd", stdin="\n")
    assert result.returncode == 1
    one_sentence(result.stderr)


@pytest.mark.parametrize(("password", "ok"), [("135790", True), ("12345", False),
                                              ("1234-demo", False), ("٣٣٣٣٣٣", False)])  # fmt: skip
def test_a_drs_password_must_be_keyable(password: str, ok: bool) -> None:
    result = run_vms("passwd", "--drs", stdin=password + "\n")
    assert result.returncode == (0 if ok else 1), result.stderr
    if ok:
        assert verify_password(password, result.stdout.strip())
    else:
        assert "6 to 16 digits" in one_sentence(result.stderr)


@pytest.mark.parametrize(("example", "caller", "called", "at", "route", "forward"), [
    ("acme.yaml", "+32475123456", "+3225551234", "2026-11-23T10:00", "vip", "+32475999999"),
    ("acme.yaml", "+3227001122", "025551234", "2026-11-23T10:00", "office-hours", "+3225550001"),
    ("globex.yaml", "+32475101010", "+3222001000", "2026-11-23T10:00", "vip", "+32475111111"),
])  # fmt: skip
def test_tree_explain_prints_json_with_route_and_action(
    example: str, caller: str, called: str, at: str, route: str, forward: str
) -> None:
    path = REPO / "routing_trees" / "examples" / example
    result = run_vms("tree", "explain", str(path), "--caller", caller, "--called", called,
                     "--at", at, "--json")  # fmt: skip
    assert result.returncode == 0, result.stderr
    explained = json.loads(result.stdout)
    assert explained["route"] == route
    assert explained["action"]["forward"] == forward


def test_health_and_openapi(serve: ServeFactory) -> None:
    server = serve({"desk.yaml": GOOD}, [NUMBER])
    status, body = http_get(server.url("/api/health"))
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    status, body = http_get(server.url("/api/openapi.json"))
    assert status == 200
    document = json.loads(body)
    assert document["openapi"].startswith("3.")
    assert "get" in document["paths"]["/api/health"]
    status, body = http_get(server.url("/api/v1/no-such-thing"))
    assert status == 404
    no_traceback(body.decode(errors="replace"))


def test_flags_override_the_file(tmp_path: Path) -> None:
    """``--sip``, ``--portal``, ``--trunk`` and ``--trees`` win over the configuration."""
    config = write_config(tmp_path, {"desk.yaml": BAD}, [NUMBER])  # the file's trees: invalid
    other = tmp_path / "other-trees"
    other.mkdir()
    (other / "desk.yaml").write_text(GOOD)
    taken = set(ports_of(config))
    sip, portal = free_port(taken), free_port(taken)
    server = launch(config, "--sip", f"127.0.0.1:{sip}", "--portal", f"127.0.0.1:{portal}",
                    "--trunk", "203.0.113.5:5070", "--trees", str(other))  # fmt: skip
    server.sip_port, server.portal_port = sip, portal
    try:
        wait_healthy(server)
        with UdpPeer() as peer:
            response = peer.call(NUMBER, server.sip)
        assert contacts(response) == ["<sip:+3225550601@203.0.113.5:5070>"]
    finally:
        status = server.stop()
    assert status == 0, server.stderr()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_and_sigterm_stop_cleanly(tmp_path: Path, signum: int) -> None:
    config = write_config(tmp_path, {"desk.yaml": GOOD}, [NUMBER])
    server = launch(config)
    try:
        wait_healthy(server)
        server.proc.send_signal(signum)
        assert server.proc.wait(10) == 0, server.stderr()
    finally:
        server.stop()
    no_traceback(server.stderr())
    assert "stopped" in server.stderr().splitlines()[-1]


@pytest.mark.parametrize("trunk", ["localhost:5080", "[::1]:5080"])
def test_the_trunk_is_named_in_the_contact_as_configured(serve: ServeFactory, trunk: str) -> None:
    """``TRUNKHOST`` as configured (a name is resolved by the upstream, RFC 3263; the
    engine only checks at start that it resolves); an IPv6 address in brackets."""
    server = serve({"desk.yaml": GOOD}, [NUMBER], sip={"trunk": trunk})
    with UdpPeer() as peer:
        response = peer.call(NUMBER, server.sip)
    assert contacts(response) == [f"<sip:+3225550601@{trunk}>"]


def test_a_trunk_that_does_not_resolve_is_refused_with_a_sentence(tmp_path: Path) -> None:
    config = write_config(tmp_path, {"desk.yaml": GOOD}, [NUMBER])
    result = run_vms("serve", "--config", str(config), "--trunk", "no-such-host.invalid:5060")
    assert result.returncode == 1
    assert "no-such-host.invalid" in one_sentence(result.stderr)


def test_a_udp_port_held_by_another_engine_is_refused(serve: ServeFactory, tmp_path: Path) -> None:
    first = serve({"desk.yaml": GOOD}, [NUMBER], sip={"transports": ["udp"]})
    config = write_config(tmp_path / "second", {"desk.yaml": GOOD}, [NUMBER],
                          sip={"transports": ["udp"]})  # fmt: skip
    text = config.read_text().replace(f":{ports_of(config)[0]}", f":{first.sip_port}", 1)
    config.write_text(text)
    second = launch(config)
    try:
        wait_healthy(second, timeout=10)
        status = None  # it runs, on the first engine's port
    except AssertionError:  # it exited (or never became healthy)
        status = second.proc.poll()
    finally:
        second.stop()
    assert status == 1, "a second engine started on a UDP port already in use"
    assert f"127.0.0.1:{first.sip_port}" in one_sentence(second.stderr())
