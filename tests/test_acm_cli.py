"""``vms acm``: operator presence set from the command line, against a real redis-server."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import pytest_twisted
from acmdirkit import write_acme
from twisted.internet import reactor

from engine.acm import command
from engine.acm.stats import open_readonly, read_events
from engine.cli import main
from engine.config import load_config
from engine.state.factory import open_state
from engine.state.interface import OperatorInfo
from rediskit import RedisServer, free_port

ROOT = Path(__file__).resolve().parents[1]
Capsys = pytest.CaptureFixture[str]

CONFIG = """\
    acm:
      groups:
        sales: {}
        support: {}
      operators:
        anna: {numbers: ["+32470001104"], pin: "1234", groups: {sales: 3}}
        bert: {numbers: ["+32470001105"], pin: "1234", groups: {sales: 1, support: 2}}
  initech: {formula: classic, numbers: ["+3250123456"]}
"""



def write(tmp_path: Path, state: str) -> Path:
    return write_acme(tmp_path, CONFIG, state)


@pytest.fixture
def config(tmp_path: Path, redis_server: RedisServer) -> Path:
    return write(tmp_path, redis_server.url)


def acm(capsys: Capsys, config: Path, *argv: str) -> tuple[int, str, str]:
    try:
        status = main(["acm", *argv, "--config", str(config)])
    except SystemExit as exc:  # argparse
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


def ok(capsys: Capsys, config: Path, *argv: str) -> str:
    status, out, err = acm(capsys, config, *argv)
    assert (status, err) == (0, ""), err
    return out


def refused(capsys: Capsys, config: Path, *argv: str) -> str:
    """The one sentence of a refusal (exit status 1, nothing on stdout)."""
    status, out, err = acm(capsys, config, *argv)
    assert (status, out) == (1, ""), (status, out, err)
    assert err.count("\n") == 1 and err.endswith("\n")
    return err.strip()


async def engine_view(url: str, group: str) -> dict[str, OperatorInfo]:
    """The group's operators as an engine reads them through the state API."""
    state = open_state(url, reactor)
    try:
        await state.ready()
        return {info.operator: info for info in await state.operators("acme", group)}
    finally:
        await state.close()


async def engine_sets(url: str, operator: str, state_name: str) -> None:
    """What an engine does: a call reserves the operator and moves her on."""
    state = open_state(url, reactor)
    try:
        await state.ready()
        await state.set_operator("acme", operator, "available", {"sales": 3}, 1000.0)
        assert await state.reserve("acme", [operator], "call-1", 60) == operator
        if state_name != "reserved":
            assert await state.move_operator("acme", operator, "call-1", state_name, 60)
    finally:
        await state.close()


# -- each command ----------------------------------------------------------------


def test_login_logout_and_break_print_the_state_per_group(capsys: Capsys, config: Path) -> None:
    out = ok(capsys, config, "login", "--customer", "acme", "--operator", "bert")
    assert out == ("customer 'acme': operator 'bert' is available; sales (level 1): available, "
                   "support (level 2): available\n")  # fmt: skip
    out = ok(capsys, config, "break", "--customer", "acme", "--operator", "bert",
             "--reason", "lunch")  # fmt: skip
    assert out.startswith("customer 'acme': operator 'bert' is on break (lunch); sales")
    out = ok(capsys, config, "logout", "--customer", "acme", "--operator", "bert")
    assert out.startswith("customer 'acme': operator 'bert' is logged out; sales (level 1): "
                          "logged out")  # fmt: skip


def test_changes_are_counted_in_the_statistics_of_the_data_dir(
    capsys: Capsys, config: Path
) -> None:
    ok(capsys, config, "login", "--customer", "acme", "--operator", "bert")
    ok(capsys, config, "login", "--customer", "acme", "--operator", "bert")  # no change
    ok(capsys, config, "break", "--customer", "acme", "--operator", "bert", "--reason", "lunch")
    data_dir = load_config(config).data_dir
    conn = open_readonly(Path(data_dir) / "acm-stats.sqlite")
    events = read_events(conn, "acme", 0, 2**40)
    conn.close()
    assert [(e.kind, e.operator, e.detail) for e in events] == [
        ("operator", "bert", "available"), ("operator", "bert", "break|lunch")]


def test_status_lists_every_operator_never_logged_in_as_logged_out(
    capsys: Capsys, config: Path
) -> None:
    ok(capsys, config, "login", "--customer", "acme", "--operator", "anna")
    out = ok(capsys, config, "status", "--customer", "acme")
    assert out.splitlines() == [
        "customer 'acme': operator 'anna' is available; sales (level 3): available",
        "customer 'acme': operator 'bert' is logged out; sales (level 1): logged out, "
        "support (level 2): logged out",
    ]
    out = ok(capsys, config, "status", "--customer", "acme", "--operator", "bert")
    assert out.count("\n") == 1 and "'bert' is logged out" in out


def test_json_shapes(capsys: Capsys, config: Path) -> None:
    doc = json.loads(ok(capsys, config, "break", "--customer", "acme", "--operator", "bert",
                        "--reason", "training", "--json"))  # fmt: skip
    assert doc == {"customer": "acme", "operator": "bert", "state": "break",
                   "groups": {"sales": {"level": 1, "state": "break"},
                              "support": {"level": 2, "state": "break"}},
                   "reason": "training"}  # fmt: skip
    doc = json.loads(ok(capsys, config, "login", "--customer", "acme", "--operator", "anna",
                        "--json"))  # fmt: skip
    assert doc == {"customer": "acme", "operator": "anna", "state": "available",
                   "groups": {"sales": {"level": 3, "state": "available"}}}  # fmt: skip
    listed = json.loads(ok(capsys, config, "status", "--customer", "acme", "--json"))
    assert [(d["operator"], d["state"]) for d in listed] == [("anna", "available"),
                                                             ("bert", "break")]  # fmt: skip


# -- what an engine reads back -----------------------------------------------------


@pytest_twisted.ensureDeferred
async def test_an_engine_reads_what_the_cli_sets(capsys: Capsys, config: Path,
                                                 redis_server: RedisServer) -> None:  # fmt: skip
    ok(capsys, config, "login", "--customer", "acme", "--operator", "bert")
    sales = await engine_view(redis_server.url, "sales")
    support = await engine_view(redis_server.url, "support")
    assert (sales["bert"].state, sales["bert"].level) == ("available", 1)
    assert (support["bert"].state, support["bert"].level) == ("available", 2)
    assert "anna" not in sales
    idle = sales["bert"].idle_since
    # Logging in again keeps the idle time the longest-idle strategy sorts on.
    ok(capsys, config, "login", "--customer", "acme", "--operator", "bert")
    assert (await engine_view(redis_server.url, "sales"))["bert"].idle_since == idle
    ok(capsys, config, "break", "--customer", "acme", "--operator", "bert", "--reason", "x")
    assert (await engine_view(redis_server.url, "support"))["bert"].state == "break"
    ok(capsys, config, "logout", "--customer", "acme", "--operator", "bert")
    assert (await engine_view(redis_server.url, "sales"))["bert"].state == "logged_out"


@pytest.mark.parametrize(("action", "engine_state", "words"), [
    ("logout", "ringing", "ringing, so it cannot be logged out now"),
    ("break", "on_call", "on a call, so it cannot be put on break now"),
    ("login", "on_call", "on a call, so it cannot be logged in now"),
])  # fmt: skip
@pytest_twisted.ensureDeferred
async def test_an_operator_in_a_call_is_left_alone(
    capsys: Capsys, config: Path, redis_server: RedisServer, action: str, engine_state: str,
    words: str,
) -> None:
    await engine_sets(redis_server.url, "anna", engine_state)
    extra = ["--reason", "lunch"] if action == "break" else []
    err = refused(capsys, config, action, "--customer", "acme", "--operator", "anna", *extra)
    assert err == (f"vms acm {action}: operator 'anna' of customer 'acme' is {words}; try "
                   "again once the call is over")  # fmt: skip
    assert (await engine_view(redis_server.url, "sales"))["anna"].state == engine_state


# -- refusals ----------------------------------------------------------------------


def test_unknown_customer_and_operator_suggest_the_near_name(
    capsys: Capsys, config: Path
) -> None:
    err = refused(capsys, config, "login", "--customer", "acmee", "--operator", "anna")
    assert err == f"vms acm login: unknown customer 'acmee' in {config} (did you mean 'acme'?)"
    err = refused(capsys, config, "status", "--customer", "acme", "--operator", "ana")
    assert err == ("vms acm status: unknown operator 'ana' of customer 'acme' "
                   "(did you mean 'anna'?)")  # fmt: skip


def test_customer_without_acm_is_refused(capsys: Capsys, config: Path) -> None:
    err = refused(capsys, config, "status", "--customer", "initech")
    assert err == (f"vms acm status: customer 'initech' has no ACM (no 'acm:' in "
                   f"customers.initech of {config}), so it has no operators")  # fmt: skip


def test_break_needs_a_reason_and_only_break_takes_one(capsys: Capsys, config: Path) -> None:
    err = refused(capsys, config, "break", "--customer", "acme", "--operator", "anna")
    assert err == ("vms acm break: a break needs a reason: add --reason TEXT "
                   "(e.g. --reason lunch)")  # fmt: skip
    err = refused(capsys, config, "break", "--customer", "acme", "--operator", "anna",
                  "--reason", "  ")  # fmt: skip
    assert "a break needs a reason" in err
    err = refused(capsys, config, "login", "--customer", "acme", "--operator", "anna",
                  "--reason", "lunch")  # fmt: skip
    assert err == "vms acm login: --reason goes with break only, not with login"


def test_memory_state_is_refused_before_anything_connects(
    capsys: Capsys, tmp_path: Path
) -> None:
    config = write(tmp_path, "memory")
    err = refused(capsys, config, "login", "--customer", "acme", "--operator", "anna")
    assert err == (f"vms acm login: {config} has 'state: memory', which lives inside each "
                   "engine process where no command can reach it; set 'state: "
                   "redis://HOST:PORT/DB' for the engines and this command to share operator "
                   "states")  # fmt: skip


def test_unreachable_redis_is_one_sentence(
    capsys: Capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(command, "CONNECT_TIMEOUT", 0.5)
    port = free_port()  # nothing listens there
    config = write(tmp_path, f"redis://:secret@127.0.0.1:{port}/0")
    err = refused(capsys, config, "status", "--customer", "acme")
    assert err == (f"vms acm status: Redis at 127.0.0.1:{port}/0 did not answer within 0.5 s; "
                   "check that it is running and reachable")  # fmt: skip
    assert "secret" not in err


def test_missing_operator_is_a_usage_error(capsys: Capsys, config: Path) -> None:
    status, out, err = acm(capsys, config, "login", "--customer", "acme")
    assert (status, out) == (2, "") and "--operator" in err


# -- the installed command ---------------------------------------------------------


def test_vms_acm_runs_as_a_program(config: Path) -> None:
    run = [sys.executable, "-m", "engine.cli", "acm"]
    done = subprocess.run([*run, "login", "--customer", "acme", "--operator", "anna",
                           "--config", str(config)], check=False, cwd=ROOT, capture_output=True,
                          text=True, timeout=60)  # fmt: skip
    assert (done.returncode, done.stderr) == (0, "")
    done = subprocess.run([*run, "status", "--customer", "acme", "--config", str(config),
                           "--json"], check=False, cwd=ROOT, capture_output=True, text=True,
                          timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert [d["state"] for d in json.loads(done.stdout)] == ["available", "logged_out"]
