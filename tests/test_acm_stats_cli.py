"""``vms stats``: the scripted day from the data_dir, as tables or JSON; one-sentence errors."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from acmdaykit import ACM, DAY_EVENTS, SINCE, UNTIL, at, stats_store, write_config
from twisted.internet.task import Clock

from engine.acm.report import as_json, compute
from engine.acm.stats_command import run
from engine.cli import main
from engine.config import load_config

Capsys = pytest.CaptureFixture[str]
WINDOW = ["--since", "2026-12-01T09:00:00Z", "--until", "2026-12-01T18:00:00+01:00"]


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = write_config(tmp_path)
    stats_store(tmp_path / "var", Clock(), DAY_EVENTS).close()
    return path


def stats(capsys: Capsys, config: Path, *argv: str) -> tuple[int, str, str]:
    try:
        status = main(["stats", "--config", str(config), *argv])
    except SystemExit as exc:  # argparse
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


def refused(capsys: Capsys, config: Path, *argv: str) -> str:
    """The one sentence of a refusal (exit status 1, nothing on stdout)."""
    status, out, err = stats(capsys, config, *argv)
    assert (status, out) == (1, ""), (status, out, err)
    assert err.count("\n") == 1 and err.startswith("vms stats: ")
    return err.strip()


def test_json_is_the_report_of_the_day(capsys: Capsys, config: Path) -> None:
    status, out, err = stats(capsys, config, "--customer", "acme", "--json", *WINDOW)
    assert (status, err) == (0, "")
    assert json.loads(out) == as_json(compute(DAY_EVENTS, "acme", ACM, SINCE, UNTIL))
    assert json.loads(out)["queues"][0]["service_level"] == 25.0


def test_the_tables(capsys: Capsys, config: Path) -> None:
    status, out, err = stats(capsys, config, "--customer", "acme", *WINDOW)
    assert (status, err) == (0, "")
    lines = out.splitlines()
    assert lines[0] == ("ACM statistics of 'acme' from 2026-12-01T09:00:00Z to "
                        "2026-12-01T17:00:00Z; service level: answered within the group's "
                        "seconds, target 80%")  # fmt: skip
    row = {line.split()[0] + " " + line.split()[1]: line.split()[2:] for line in lines[3:8]}
    assert row["sales call"] == ["6", "2", "2", "1", "0", "1", "25.0", "%", "17.5", "s",
                                 "300.0", "s", "475.0", "s"]  # fmt: skip
    assert row["(all) email"][:6] == ["1", "1", "0", "0", "0", "0"]
    sales = next(line for line in lines[9:] if line.startswith("sales"))
    assert sales.split() == ["sales", "0.75", "475.0", "s", "80%", "in", "20", "s", "1", "1.75"]
    anna = next(line for line in lines if line.startswith("anna"))
    assert anna.split() == ["anna", "2", "1", "0:10:00", "0:00:30", "6:24:10", "0:00:20",
                            "0:30:00", "7:00:00"]  # fmt: skip


def test_one_group(capsys: Capsys, config: Path) -> None:
    status, out, _ = stats(capsys, config, "--customer", "acme", "--group", "support",
                           "--json", *WINDOW)  # fmt: skip
    assert status == 0
    body = json.loads(out)
    assert [q["group"] for q in body["queues"]] == ["support"]
    assert [o["operator"] for o in body["operators"]] == ["bert"]


def test_today_so_far_by_default(config: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    status = run(load_config(config), "acme", None, None, None, True, out, err,
                 now=lambda: at("10:00:00"))  # fmt: skip
    assert (status, err.getvalue()) == (0, "")
    body = json.loads(out.getvalue())
    assert (body["since"], body["until"]) == ("2026-12-01T00:00:00Z", "2026-12-01T10:00:00Z")
    assert body["channels"][0]["offered"] == 2  # c0 and c1; c2 came at 10:00, excluded


@pytest.mark.parametrize(("argv", "message"), [
    (["--customer", "acmee"], "unknown customer 'acmee' in "),
    (["--customer", "initech"], "customer 'initech' has no ACM (no 'acm:' in customers.initech"),
    (["--customer", "acme", "--group", "sale"],
     "unknown group 'sale' of customer 'acme' (did you mean 'sales'?)"),
    (["--customer", "acme", "--since", "yesterday"],
     "--since 'yesterday' is not an ISO 8601 time; write it like 2026-12-01T08:00:00Z"),
    (["--customer", "acme", "--since", "2026-12-02", "--until", "2026-12-01"],
     "--since (2026-12-02T00:00:00Z) must come before --until (2026-12-01T00:00:00Z)"),
    (["--customer", "acme", "--since", "2026-01-01"],
     "the window from 2026-01-01T00:00:00Z to "),
    (["--customer", "acme", "--since", "2026-01-01", "--until", "2026-04-03T00:00:01Z"],
     "is 92.0 days; statistics cover at most 92 days at a time, so ask for shorter windows"),
])  # fmt: skip
def test_bad_input_is_one_sentence(
    capsys: Capsys, config: Path, argv: list[str], message: str
) -> None:
    assert message in refused(capsys, config, *argv)


def test_no_statistics_yet(capsys: Capsys, tmp_path: Path) -> None:
    config = write_config(tmp_path / "empty")
    assert f"there are no ACM statistics in {tmp_path / 'empty' / 'var'}" in \
        refused(capsys, config, "--customer", "acme")  # fmt: skip
