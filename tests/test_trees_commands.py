"""The CLI bodies: ``vms tree validate`` and ``vms tree explain``, output and exit codes."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
from test_trees_kit import EXAMPLES, HEAD, workdir, write

from routing_trees import commands
from routing_trees.model import CustomerProfile

__all__ = ["workdir"]


def run_validate(
    paths: list[str], customers: dict[str, CustomerProfile] | None = None
) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = commands.validate(paths, customers, out, err)
    return code, out.getvalue(), err.getvalue()


def run_explain(*args: object, as_json: bool = False) -> tuple[int, str, str]:
    path, caller, called, at, mode = args
    out, err = io.StringIO(), io.StringIO()
    code = commands.explain(
        str(path),
        caller,
        str(called),
        at,
        str(mode),
        as_json,
        out,
        err,  # type: ignore[arg-type]
    )
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def examples(workdir: Path) -> Path:
    for name in ("acme.yaml", "globex.yaml"):
        shutil.copy(EXAMPLES / name, name)
    return workdir


def test_validate_valid_files(examples: Path) -> None:
    assert run_validate(["acme.yaml", "globex.yaml"]) == (
        0,
        "acme.yaml: valid (2 numbers, 6 rules)\nglobex.yaml: valid (2 numbers, 7 rules)\n",
        "2 files valid\n",
    )


def test_validate_a_directory(examples: Path) -> None:
    code, out, _ = run_validate(["."])
    assert code == 0
    assert out.splitlines() == [
        "acme.yaml: valid (2 numbers, 6 rules)",
        "globex.yaml: valid (2 numbers, 7 rules)",
    ]


def test_validate_reports_problems_on_stdout_and_summary_on_stderr(examples: Path) -> None:
    write(HEAD + "routes:\n  - do: {reject: 200}\n  - do: {rejet: 486}\n", "bad.yaml")
    assert run_validate(["acme.yaml", "bad.yaml"]) == (
        1,
        "acme.yaml: valid (2 numbers, 6 rules)\n"
        "bad.yaml:3:11: number +3225551234 is also served by acme.yaml (line 3); "
        "a number belongs to one tree\n"
        "bad.yaml:3:26: number +3225551235 is also served by acme.yaml (line 3); "
        "a number belongs to one tree\n"
        "bad.yaml:5:18: reject needs a SIP final response code from 400 to 699, not 200\n"
        "bad.yaml:6:10: unknown key 'rejet' in the action of rule 'rule-2' "
        "(did you mean 'reject'?)\n",
        "4 problems in 1 of 2 files\n",
    )


def test_validate_with_customers(examples: Path) -> None:
    acme = CustomerProfile("acme", "classic", frozenset(), frozenset({"+3225551234"}))
    code, out, err = run_validate(["acme.yaml"], {"acme": acme, "globex": acme})
    assert code == 1
    assert out.splitlines() == [
        "acme.yaml:3:26: +3225551235 is not a number of customer 'acme' (formula classic): "
        "add it to the customer's numbers in the configuration, or remove it here",
        "acme.yaml:35:22: queue needs Agent Contact Management, but customer 'acme' "
        "(formula classic) lacks the 'acm' option",
        "acme.yaml:45:9: queue needs Agent Contact Management, but customer 'acme' "
        "(formula classic) lacks the 'acm' option",
        "acme.yaml:50:47: queue needs Agent Contact Management, but customer 'acme' "
        "(formula classic) lacks the 'acm' option",
    ]
    assert err == "4 problems in 1 of 1 file\n"


def test_validate_missing_file_and_empty_directory(workdir: Path) -> None:
    assert run_validate(["nope.yaml"]) == (
        1,
        "nope.yaml:1:1: cannot read the file: No such file or directory\n",
        "1 problem in 1 of 1 file\n",
    )
    Path("empty").mkdir()
    assert run_validate(["empty"]) == (
        1,
        "",
        "empty: no *.yaml or *.yml tree files in this directory\n",
    )


def test_explain_text(examples: Path) -> None:
    code, out, err = run_explain(
        "acme.yaml", "0475 12 34 56", "02 555 12 34", "2027-03-03T19:30", "normal"
    )
    assert (code, err) == (0, "")
    assert "rule 4 'vip' matches: caller +32475123456 is in list 'vip'" in out
    assert (
        out.splitlines()[-1]
        == "    on_busy, on_unreachable, on_overflow: not handled (the call ends)"
    )


def test_explain_json(examples: Path) -> None:
    code, out, err = run_explain(
        "acme.yaml", "anonymous", "+3225551234", "2027-03-03T09:00:00Z", "drs", as_json=True
    )
    assert (code, err) == (0, "")
    data = json.loads(out)
    assert data["route"] == "disaster"
    assert data["action"] == {"forward": "+3238889999"}
    assert data["facts"]["caller"] is None
    assert data["local_time"] == "2027-03-03T10:00:00+01:00"


@pytest.mark.parametrize("caller", ["", "anonymous", "Anonymous", None])
def test_explain_withheld_caller_spellings(examples: Path, caller: str | None) -> None:
    code, out, _ = run_explain(
        "acme.yaml", caller, "+3225551234", "2027-03-03T10:00", "normal", as_json=True
    )
    assert code == 0
    assert json.loads(out)["facts"]["caller"] is None


def test_explain_naive_time_is_local_to_the_tree(examples: Path) -> None:
    code, out, _ = run_explain(
        "acme.yaml", None, "+3225551234", "2027-07-01T17:59", "normal", as_json=True
    )
    assert code == 0
    data = json.loads(out)
    assert (data["route"], data["local_time"]) == ("office-hours", "2027-07-01T17:59:00+02:00")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("acme.yaml", "12ab", "+3225551234", "2027-03-03T10:00", "normal"),
            "--caller '12ab' is not a phone number: give it as +3225551234, 003225551234 or "
            "025551234, or 'anonymous' for a withheld number\n",
        ),
        (
            ("acme.yaml", None, "hello", "2027-03-03T10:00", "normal"),
            "--called 'hello' is not a phone number: "
            "give it as +3225551234, 003225551234 or 025551234\n",
        ),
        (
            ("acme.yaml", None, "+3225559999", "2027-03-03T10:00", "normal"),
            "--called +3225559999 is not served by acme.yaml: "
            "give one of its numbers (+3225551234, +3225551235)\n",
        ),
        (
            ("acme.yaml", None, "+3225551234", "yesterday", "normal"),
            "--at 'yesterday' is not an ISO 8601 date and time: give e.g. "
            "2026-12-25T10:00:00+01:00, 2026-12-25T09:00Z, or 2026-12-25T10:00 "
            "for local time in Europe/Brussels\n",
        ),
        (
            ("acme.yaml", None, "+3225551234", "2027-03-03T10:00", "panic"),
            "--mode 'panic' is not a mode: give normal, drs or continuity\n",
        ),
        (
            ("nope.yaml", None, "+3225551234", "2027-03-03T10:00", "normal"),
            "nope.yaml:1:1: cannot read the file: No such file or directory\n"
            "nope.yaml is not a valid tree (1 problem): "
            "fix it before explaining calls against it\n",
        ),
    ],
)
def test_explain_bad_input_is_one_sentence_and_exit_1(
    examples: Path, args: tuple[object, ...], message: str
) -> None:
    assert run_explain(*args) == (1, "", message)
