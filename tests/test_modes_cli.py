"""``vms drs``, ``vms continuity``, ``vms number``: output, exit status, one-sentence errors."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest

from engine.cli import main
from engine.config import load_config
from engine.modes.entitlement import mode_problem
from engine.modes.store import FILENAME, ModeStore

ROOT = Path(__file__).resolve().parents[1]
Capsys = pytest.CaptureFixture[str]
DAY = 86400.0
HASH = "scrypt$16384$8$1$yZWgIdAZCvEmhQ1N1PjPMg$Jef0DibS8my1GD/K3hqPP61Gb7Sqi5EA2NbQVH/ClaA"

CUSTOMERS = f"""\
customers:
  acme:                 # Classic with a DRS password: DRS included
    formula: classic
    numbers: ["+3225551234", "+3225551235"]
    customer_number: "4711"
    drs_password: "{HASH}"
  globex: {{formula: drs, numbers: ["+3222001000"]}}
  initech: {{formula: classic, numbers: ["+3250123456"]}}
  umbrella: {{formula: continuity, numbers: ["+3292001000"]}}
  hooli: {{formula: outbound, numbers: ["+3232012000"]}}
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "vms.yaml"
    path.write_text(f"data_dir: var/\ntrees: {ROOT}/routing_trees/examples/\n"
                    f"drs: {{max_days: 31}}\n{CUSTOMERS}")  # fmt: skip
    return path


def run(capsys: Capsys, *argv: str) -> tuple[int, str, str]:
    try:
        status = main(list(argv))
    except SystemExit as exc:  # argparse
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


def vms(capsys: Capsys, config: Path, *argv: str) -> tuple[int, str, str]:
    return run(capsys, *argv, "--config", str(config))


def as_json(capsys: Capsys, config: Path, *argv: str) -> dict[str, object]:
    status, out, err = vms(capsys, config, *argv, "--json")
    assert (status, err) == (0, ""), err
    document: dict[str, object] = json.loads(out)
    return document


def seconds(iso: object) -> float:
    assert isinstance(iso, str) and iso.endswith("Z")
    return datetime.fromisoformat(iso).timestamp()


def store(config: Path) -> ModeStore:
    s = ModeStore.in_data_dir(config.parent / "var")
    s.open()
    return s


def refused(capsys: Capsys, config: Path, *argv: str) -> str:
    """The one sentence of a refusal (exit status 1)."""
    status, out, err = vms(capsys, config, *argv)
    assert (status, out) == (1, "")
    assert err.count("\n") == 1 and "Traceback" not in err
    return err.rstrip("\n")


# -- vms drs ------------------------------------------------------------------------------


def test_status_of_a_customer_never_switched(capsys: Capsys, config: Path) -> None:
    got = as_json(capsys, config, "drs", "status", "--customer", "acme")
    assert {k: got[k] for k in ("customer", "mode", "until")} == \
        {"customer": "acme", "mode": "normal", "until": None}  # fmt: skip
    status, out, _ = vms(capsys, config, "drs", "status", "--customer", "acme")
    assert (status, out) == (0, "customer 'acme' is in normal mode\n")


def test_activate_lasts_max_days_and_is_shared(capsys: Capsys, config: Path) -> None:
    before = time.time()
    got = as_json(capsys, config, "drs", "activate", "--customer", "globex")
    assert (got["mode"], got["changed"]) == ("drs", True)
    assert str(got["by"]).startswith("cli")
    assert before + 31 * DAY - 1 <= seconds(got["until"]) <= time.time() + 31 * DAY
    state = store(config).get("globex")  # what every engine on the data_dir reads
    assert state.mode == "drs" and state.until is not None
    assert abs(state.until - seconds(got["until"])) < 1  # printed to the second
    assert as_json(capsys, config, "drs", "status", "--customer", "globex")["until"] == \
        got["until"]  # fmt: skip
    assert (config.parent / "var" / FILENAME).is_file()


def test_activate_for_some_days_then_deactivate(capsys: Capsys, config: Path) -> None:
    status, out, err = vms(capsys, config, "drs", "activate", "--customer", "acme", "--days", "2")
    assert (status, err) == (0, "")
    assert out.startswith("customer 'acme' is in DRS mode since ")
    assert out.endswith("; every engine on this data_dir applies it within a second\n")
    until = store(config).get("acme").until
    assert until is not None and abs(until - time.time() - 2 * DAY) < 5
    got = as_json(capsys, config, "drs", "deactivate", "--customer", "acme")
    assert (got["mode"], got["until"], got["changed"]) == ("normal", None, True)
    assert store(config).get("acme").mode == "normal"


def test_deactivate_when_drs_is_not_active_is_refused(capsys: Capsys, config: Path) -> None:
    assert refused(capsys, config, "drs", "deactivate", "--customer", "acme") == (
        "vms drs deactivate: DRS is not on for customer 'acme' (its mode is normal), "
        "so there is nothing to switch off")


@pytest.mark.parametrize("days", ["0", "-1", "31.5", "nan"])
def test_days_beyond_max_days_are_refused(capsys: Capsys, config: Path, days: str) -> None:
    message = refused(capsys, config, "drs", "activate", "--customer", "acme", "--days", days)
    assert message.startswith(f"vms drs activate: --days {float(days):g} is out of range: DRS "
                              "lasts more than 0 and at most drs.max_days (31) days")  # fmt: skip
    assert not (config.parent / "var").exists()  # refused before touching anything


def test_an_unknown_customer_is_refused(capsys: Capsys, config: Path) -> None:
    message = refused(capsys, config, "drs", "activate", "--customer", "acmee")
    assert message == (f"vms drs activate: unknown customer 'acmee' in {config} "
                       "(did you mean 'acme'?)")


@pytest.mark.parametrize(("argv", "customer", "mode"), [
    (["drs", "activate"], "initech", "drs"),          # Classic without a DRS password
    (["drs", "deactivate"], "hooli", "drs"),
    (["continuity", "on"], "globex", "continuity"),
])  # fmt: skip
def test_formulas_without_the_service_are_refused(
    capsys: Capsys, config: Path, argv: list[str], customer: str, mode: str
) -> None:
    entry = load_config(config).customers[customer]
    problem = mode_problem(entry, mode)
    assert problem is not None and f"'{customer}'" in problem and entry.formula in problem
    message = refused(capsys, config, *argv, "--customer", customer)
    assert message == f"vms {' '.join(argv)}: {problem}"


@pytest.mark.parametrize(("argv", "customer"), [(["drs", "status"], "umbrella"),
                                                (["continuity", "status"], "acme")])  # fmt: skip
def test_status_answers_for_every_customer(capsys: Capsys, config: Path, argv: list[str],
                                           customer: str) -> None:  # fmt: skip
    got = as_json(capsys, config, *argv, "--customer", customer)
    assert (got["customer"], got["mode"], got["until"]) == (customer, "normal", None)


def test_status_shows_an_expiry_that_no_engine_has_run(capsys: Capsys, config: Path) -> None:
    hour_ago = time.time() - 3600
    modes = ModeStore.in_data_dir(config.parent / "var", clock=lambda: hour_ago)
    modes.open()
    modes.set_mode("acme", "drs", hour_ago + 60, "test", "cli")  # ended 59 minutes ago
    got = as_json(capsys, config, "drs", "status", "--customer", "acme")
    assert (got["mode"], got["until"]) == ("normal", None)
    assert [e.action for e in modes.audit_log("acme")][-1] == "drs-expire"


@pytest.mark.parametrize(("customer", "mode"), [("acme", "drs"), ("globex", "drs"),
                                                ("umbrella", "continuity")])  # fmt: skip
def test_formulas_with_the_service_may_use_it(
    capsys: Capsys, config: Path, customer: str, mode: str
) -> None:
    on = ["drs", "activate"] if mode == "drs" else ["continuity", "on"]
    assert as_json(capsys, config, *on, "--customer", customer)["mode"] == mode


def test_a_mode_left_from_another_formula_can_still_be_seen_and_ended(
    capsys: Capsys, config: Path
) -> None:
    store(config).set_mode("umbrella", "drs", time.time() + DAY, "cli", "cli")
    assert as_json(capsys, config, "drs", "status", "--customer", "umbrella")["mode"] == "drs"
    got = as_json(capsys, config, "drs", "deactivate", "--customer", "umbrella")
    assert got["mode"] == "normal"
    assert "does not include DRS" in refused(capsys, config, "drs", "activate", "--customer",
                                             "umbrella")  # fmt: skip


def test_audit_lists_changes_and_attempts_oldest_first(capsys: Capsys, config: Path) -> None:
    vms(capsys, config, "drs", "activate", "--customer", "acme")
    store(config).audit("acme", "+3226001122", "drs-login", "wrong password", "phone")
    vms(capsys, config, "drs", "deactivate", "--customer", "acme")
    vms(capsys, config, "drs", "activate", "--customer", "globex")
    got = as_json(capsys, config, "drs", "audit", "--customer", "acme")
    entries = got["entries"]
    assert isinstance(entries, list)
    assert [(e["action"], e["outcome"], e["via"], e["caller"]) for e in entries] == [
        ("drs-activate", "ok", "cli", None),
        ("drs-login", "wrong password", "phone", "+3226001122"),
        ("drs-deactivate", "ok", "cli", None),
    ]
    status, out, err = vms(capsys, config, "drs", "audit")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 4 and "  globex  -  drs-activate  ok  via cli  by cli" in lines[3]


def test_an_empty_audit_says_so_on_stderr(capsys: Capsys, config: Path) -> None:
    assert vms(capsys, config, "drs", "audit") == (0, "", "vms drs audit: nothing audited yet\n")


# -- vms continuity -----------------------------------------------------------------------


def test_continuity_on_until_then_off(capsys: Capsys, config: Path) -> None:
    got = as_json(capsys, config, "continuity", "on", "--customer", "umbrella",
                  "--until", "2099-01-01T12:00:00+01:00")  # fmt: skip
    assert (got["mode"], got["until"]) == ("continuity", "2099-01-01T11:00:00Z")
    got = as_json(capsys, config, "continuity", "status", "--customer", "umbrella")
    assert (got["mode"], got["until"]) == ("continuity", "2099-01-01T11:00:00Z")
    got = as_json(capsys, config, "continuity", "on", "--customer", "umbrella")
    assert (got["until"], got["changed"]) == (None, True)  # on again: now with no end
    got = as_json(capsys, config, "continuity", "off", "--customer", "umbrella")
    assert got["mode"] == "normal"
    assert refused(capsys, config, "continuity", "off", "--customer", "umbrella") == (
        "vms continuity off: Voice Continuity is not on for customer 'umbrella' (its mode is "
        "normal), so there is nothing to switch off")


def test_a_naive_until_is_utc(capsys: Capsys, config: Path) -> None:
    got = as_json(capsys, config, "continuity", "on", "--customer", "umbrella",
                  "--until", "2099-01-01T12:00")  # fmt: skip
    assert got["until"] == "2099-01-01T12:00:00Z"


@pytest.mark.parametrize(("until", "message"), [
    ("tomorrow", "vms continuity on: --until 'tomorrow' is not an ISO 8601 time; write it like "
                 "2026-12-01T18:00:00Z or 2026-12-01T19:00:00+01:00 (naive times are UTC)"),
    ("2020-01-01", "vms continuity on: --until 2020-01-01 is past; give a time to come, or no "
                   "--until for no end"),
])  # fmt: skip
def test_bad_until_is_refused(capsys: Capsys, config: Path, until: str, message: str) -> None:
    argv = ("continuity", "on", "--customer", "umbrella", "--until", until)
    assert refused(capsys, config, *argv) == message


# -- vms number ---------------------------------------------------------------------------


def test_port_out_and_in_any_written_form(capsys: Capsys, config: Path) -> None:
    assert vms(capsys, config, "number", "port-out", "02 555 12 34") == (0, (
        "+3225551234 (customer 'acme') is marked ported away: its calls get 404 from now on\n"),
        "")  # fmt: skip
    assert store(config).ported() == frozenset({"+3225551234"})
    assert vms(capsys, config, "number", "port-out", "+3225551234")[1] == \
        "+3225551234 (customer 'acme') was already marked ported away\n"  # fmt: skip
    assert vms(capsys, config, "number", "port-in", "0032 2 555 12 34")[1] == \
        "+3225551234 (customer 'acme') is served again\n"  # fmt: skip
    assert store(config).ported() == frozenset()
    assert vms(capsys, config, "number", "port-in", "+3225551234")[1] == \
        "+3225551234 (customer 'acme') was not marked ported away\n"  # fmt: skip


@pytest.mark.parametrize(("number", "message"), [
    ("hello", "vms number port-out: 'hello' is not a phone number; write it like +3225551234 or "
              "025551234"),
    ("025559999", "vms number port-out: +3225559999 is not a number of any customer in "
                  "{config}; only numbers VMS serves can be ported"),
])  # fmt: skip
def test_port_out_refuses_numbers_not_served(
    capsys: Capsys, config: Path, number: str, message: str
) -> None:
    assert refused(capsys, config, "number", "port-out", number) == message.format(config=config)


# -- errors -------------------------------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["drs", "activate", "--config", "x.yaml"],                            # no --customer
    ["drs", "status", "--customer", "acme", "--config", "x.yaml", "--days", "3"],
    ["drs", "pause", "--customer", "acme", "--config", "x.yaml"],
    ["continuity", "off", "--customer", "acme", "--config", "x.yaml", "--until", "2099-01-01"],
    ["number", "port-out", "--config", "x.yaml"],                         # no number
    ["drs", "activate", "--customer", "acme", "--days", "many", "--config", "x.yaml"],
])  # fmt: skip
def test_bad_usage_is_status_2(capsys: Capsys, argv: list[str]) -> None:
    status, out, err = run(capsys, *argv)
    assert (status, out) == (2, "") and "usage: vms" in err


def test_a_bad_configuration_is_status_1(capsys: Capsys, tmp_path: Path) -> None:
    path = tmp_path / "vms.yaml"
    path.write_text("customers: {acme: {formula: gold, numbers: []}}\n")
    status, out, err = vms(capsys, path, "drs", "status", "--customer", "acme")
    assert (status, out) == (1, "")
    assert err.startswith(f"{path}:1:") and "Traceback" not in err


def test_an_unusable_data_dir_is_one_sentence(capsys: Capsys, config: Path) -> None:
    (config.parent / "var").write_text("a file where the data_dir should be")
    message = refused(capsys, config, "drs", "status", "--customer", "acme")
    assert message.startswith(f"vms drs status: cannot open the mode database "
                              f"{config.parent / 'var' / FILENAME}: ")  # fmt: skip


def test_the_installed_command(config: Path) -> None:
    vms_bin = str(Path(sys.executable).with_name("vms"))
    argv = [vms_bin, "drs", "status", "--customer", "globex", "--config", str(config), "--json"]
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    assert (done.returncode, done.stderr) == (0, "")
    assert json.loads(done.stdout)["mode"] == "normal"
