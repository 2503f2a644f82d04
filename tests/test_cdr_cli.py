"""``vms cdr export``: exit status, output and one-sentence errors (contract.md)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from cdrkit import T0, clock_at, leg, open_store
from engine.cli import main

ROOT = Path(__file__).resolve().parents[1]
Capsys = pytest.CaptureFixture[str]


def config(tmp_path: Path, data_dir: str = "var/") -> Path:
    path = tmp_path / "vms.yaml"
    path.write_text(f"data_dir: {data_dir}\ntrees: {ROOT}/routing_trees/examples/\n")
    return path


def with_records(tmp_path: Path) -> Path:
    store = open_store(tmp_path / "var" / "cdr.sqlite", clock_at())
    for i in range(3):
        start = T0 + i * 3600
        store.leg_ended(leg(f"c{i}", 0, start=start).finish(start + 5, "no_answer", 480))
    store.close()
    return config(tmp_path)


def run(argv: list[str], capsys: Capsys) -> tuple[int, str, str]:
    try:
        status = main(argv)
    except SystemExit as exc:  # argparse
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


def test_export_csv(tmp_path: Path, capsys: Capsys) -> None:
    status, out, err = run(["cdr", "export", "--config", str(with_records(tmp_path)),
                            "--format", "csv"], capsys)  # fmt: skip
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith("call_id,leg,customer,caller,called,destination,route,outcome,")
    assert [line.split(",")[0] for line in lines[1:]] == ["c0", "c1", "c2"]


def test_export_jsonl_with_a_period(tmp_path: Path, capsys: Capsys) -> None:
    status, out, err = run(["cdr", "export", "--config", str(with_records(tmp_path)),
                            "--from", "2026-12-01T10:00:00+01:00", "--to", "2026-12-01T10:00:00Z",
                            "--format", "jsonl"], capsys)  # fmt: skip
    assert (status, err) == (0, "")
    got = [json.loads(line) for line in out.splitlines()]
    assert [(r["call_id"], r["start"]) for r in got] == [
        ("c1", "2026-12-01T09:00:00.000Z")]  # from 09:00Z included, 10:00Z excluded


def test_an_empty_period_is_only_the_header(tmp_path: Path, capsys: Capsys) -> None:
    status, out, _ = run(["cdr", "export", "--config", str(with_records(tmp_path)),
                          "--from", "2030-01-01", "--format", "csv"], capsys)  # fmt: skip
    assert status == 0 and out.count("\n") == 1


@pytest.mark.parametrize(("extra", "message"), [
    (["--from", "yesterday"],
     "vms cdr export: --from 'yesterday' is not an ISO 8601 time; write it like "
     "2026-12-01T08:00:00Z, 2026-12-01T09:00:00+01:00 or 2026-12-01 (naive times are UTC)\n"),
    (["--to", "2026-02-30"], "vms cdr export: --to '2026-02-30' is not an ISO 8601 time"),
    (["--from", "2026-12-02", "--to", "2026-12-01"],
     "vms cdr export: --from (2026-12-02T00:00:00.000Z) is after --to "
     "(2026-12-01T00:00:00.000Z); the period runs from --from to --to\n"),
])  # fmt: skip
def test_bad_times_are_one_sentence_and_status_1(
    tmp_path: Path, capsys: Capsys, extra: list[str], message: str
) -> None:
    status, out, err = run(["cdr", "export", "--config", str(with_records(tmp_path)),
                            "--format", "csv", *extra], capsys)  # fmt: skip
    assert (status, out) == (1, "")
    assert err.startswith(message) and err.count("\n") == 1
    assert "Traceback" not in err


def nothing(fmt: str, out: str) -> bool:
    """Whether ``out`` is an export of no legs: the CSV header alone, or no JSONL line."""
    if fmt == "jsonl":
        return out == ""
    return out.startswith("call_id,leg,customer,") and out.endswith("\r\n") and out.count("\n") == 1


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_fresh_data_dir_exports_nothing_and_succeeds(
    tmp_path: Path, capsys: Capsys, fmt: str
) -> None:
    """A scheduled export must not fail before the engine has handled a call."""
    status, out, err = run(["cdr", "export", "--config", str(config(tmp_path)),
                            "--format", fmt], capsys)  # fmt: skip
    assert status == 0 and nothing(fmt, out)
    assert err == (f"vms cdr export: there are no call records in {tmp_path / 'var'} yet (no "
                   "cdr.sqlite: the engine writes it once it has handled calls); nothing "
                   "exported\n")  # fmt: skip
    assert not (tmp_path / "var").exists()  # exporting created nothing


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_database_with_no_ended_legs_yet_exports_nothing_and_succeeds(
    tmp_path: Path, capsys: Capsys, fmt: str
) -> None:
    store = open_store(tmp_path / "var" / "cdr.sqlite")
    store.leg_started(leg("up"))
    store.close()
    status, out, err = run(["cdr", "export", "--config", str(config(tmp_path)),
                            "--format", fmt], capsys)  # fmt: skip
    assert status == 0 and nothing(fmt, out)
    assert err.count("\n") == 1 and "no ended call legs); nothing exported" in err


def test_a_newer_schema_is_still_an_error(tmp_path: Path, capsys: Capsys) -> None:
    with_records(tmp_path)
    conn = sqlite3.connect(tmp_path / "var" / "cdr.sqlite")
    with conn:
        conn.execute("INSERT INTO schema_version VALUES (999, 'future', 0)")
    conn.close()
    status, out, err = run(["cdr", "export", "--config", str(config(tmp_path)),
                            "--format", "csv"], capsys)  # fmt: skip
    assert (status, out) == (1, "")
    assert "is at schema version 999, newer than this vms knows" in err


def test_a_file_that_is_not_a_database(tmp_path: Path, capsys: Capsys) -> None:
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "cdr.sqlite").write_text("not a database " * 100)
    status, _, err = run(["cdr", "export", "--config", str(config(tmp_path)),
                          "--format", "csv"], capsys)  # fmt: skip
    assert status == 1 and err.count("\n") == 1
    assert "cannot be read as a call-record database (file is not a database)" in err


def test_a_config_that_does_not_validate(tmp_path: Path, capsys: Capsys) -> None:
    path = tmp_path / "vms.yaml"
    path.write_text("data_dir: var/\ntrees: trees/\nstate: mysql://x\n")
    status, out, err = run(["cdr", "export", "--config", str(path), "--format", "csv"], capsys)
    assert (status, out) == (1, "")
    assert err.startswith(f"{path}:3:8: state must be 'memory' or redis://")
    assert "Traceback" not in err


@pytest.mark.parametrize("argv", [
    ["cdr", "export", "--config", "x.yaml"],                       # --format is required
    ["cdr", "export", "--config", "x.yaml", "--format", "xml"],
    ["cdr", "export", "--format", "csv"],                          # --config is required
    ["cdr"],                                                       # an action is required
    ["cdr", "import"],
])  # fmt: skip
def test_usage_errors_are_status_2(argv: list[str], capsys: Capsys) -> None:
    status, _, err = run(argv, capsys)
    assert status == 2 and "usage: vms cdr" in err


def test_help_says_naive_times_are_utc(capsys: Capsys) -> None:
    status, out, _ = run(["cdr", "export", "--help"], capsys)
    assert status == 0
    assert "without one is UTC" in " ".join(out.split())
    assert "--format {csv,jsonl}" in out


def test_the_call_record_modules_do_not_load_twisted() -> None:
    # The store takes any IReactorTime; the export needs no reactor at all.
    code = ("import sys, engine.cdr.export, engine.cdr.store, engine.cdr.billing; "
            "print(sorted(m for m in sys.modules if m.startswith('twisted')))")  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, check=True)  # fmt: skip
    assert done.stdout.strip() == "[]"
