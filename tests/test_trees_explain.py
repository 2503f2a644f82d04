"""Explain: the matched rule, why each earlier one failed, the action tree; text and JSON."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from test_trees_kit import EXAMPLES, HEAD, at, tree, workdir

from routing_trees.compile import compile_tree
from routing_trees.explain import explain
from routing_trees.facts import Facts

__all__ = ["workdir"]

A = "+3225551234"


def acme() -> Path:
    shutil.copy(EXAMPLES / "acme.yaml", "acme.yaml")
    return Path("acme.yaml")


def test_text_names_the_winner_the_losers_and_the_branches(workdir: Path) -> None:
    t = tree(acme().read_text(), name="acme.yaml")
    text = explain(compile_tree(t), Facts("+3228123456", A, at("2027-03-03T10:00"))).text()
    assert text == "\n".join(
        [
            "acme.yaml (customer acme): call from +3228123456 to +3225551234 at "
            "Wed 2027-03-03 10:00 +0100 (Europe/Brussels), mode normal",
            "rule 1 'disaster' does not hold: mode is normal, not drs",
            "rule 2 'blocked' does not hold: caller +3228123456 is not in list 'blocked'",
            "rule 3 'holidays' does not hold: 2027-03-03 is not in calendar 'holidays'",
            "rule 4 'vip' does not hold: caller +3228123456 is not in list 'vip'",
            "rule 5 'office-hours' matches: Wed 10:00 is in 'mon-fri 08:00-18:00, sat 09:00-12:00'",
            "  forward +3225550001 (ring 20 s, at most 8 calls)",
            "    on_busy: forward +32475000001 (ring 30 s); unhandled outcomes end the call",
            "    on_no_answer: queue sales (wait at most 120 s)",
            "      on_timeout: announce closed, then hang up",
            "      on_no_agents: not handled (the call ends)",
            "    on_unreachable: announce busy",
            "      then: forward +32475000002 (ring 30 s); unhandled outcomes end the call",
            "    on_overflow: split",
            "      70%: forward +3225550002 (ring 30 s); unhandled outcomes end the call",
            "      30%: queue support (wait at most 300 s); unhandled outcomes end the call",
        ]
    )


def test_anonymous_caller_and_no_conditions(workdir: Path) -> None:
    t = tree(acme().read_text(), name="acme.yaml")
    text = explain(t, Facts(None, A, at("2027-03-06T15:00"))).text()
    lines = text.splitlines()
    assert lines[0].startswith("acme.yaml (customer acme): call from an anonymous caller to")
    assert lines[2] == (
        "rule 2 'blocked' does not hold: the caller withheld its number (list 'blocked')"
    )
    assert lines[5] == (
        "rule 5 'office-hours' does not hold: "
        "Sat 15:00 is not in 'mon-fri 08:00-18:00, sat 09:00-12:00'"
    )
    assert lines[6:] == [
        "rule 6 'after-hours' matches: it has no conditions",
        "  announce closed, then hang up",
    ]


def test_no_match_says_what_the_caller_gets(workdir: Path) -> None:
    t = tree(HEAD + "routes:\n  - name: dr\n    when: {mode: drs}\n    do: {reject: 503}\n")
    text = explain(t, Facts(None, A, at("2027-03-03T10:00"))).text()
    assert text.splitlines()[1:] == [
        "rule 1 'dr' does not hold: mode is normal, not drs",
        "no rule holds: the call is refused with 480 Temporarily Unavailable",
    ]
    data = explain(t, Facts(None, A, at("2027-03-03T10:00"))).as_json()
    assert (data["route"], data["action"], data["no_match_response"]) == (None, None, 480)


def test_several_failing_criteria_are_all_named(workdir: Path) -> None:
    t = tree(
        HEAD
        + "routes:\n  - name: x\n"
        + '    when: {mode: drs, time: "sat 09:00-12:00", called: "+3225551235"}\n'
        + "    do: {reject: 503}\n"
    )
    text = explain(t, Facts(None, A, at("2027-03-03T10:00"))).text()
    assert text.splitlines()[1] == (
        "rule 1 'x' does not hold: Wed 10:00 is not in 'sat 09:00-12:00'; "
        "called +3225551234 is not +3225551235; mode is normal, not drs"
    )


def test_json(workdir: Path) -> None:
    t = tree(acme().read_text(), name="acme.yaml")
    data = explain(t, Facts("+32475123456", A, at("2026-12-24T09:00:00Z"))).as_json()
    assert json.loads(json.dumps(data)) == data
    assert data["route"] == "vip"
    assert data["rule_index"] == 4
    assert data["action"] == {
        "forward": "+32475999999",
        "timeout": 15,
        "on_no_answer": {"queue": "sales"},
    }
    assert data["facts"] == {
        "caller": "+32475123456",
        "called": A,
        "at": "2026-12-24T09:00:00Z",
        "mode": "normal",
    }
    assert data["local_time"] == "2026-12-24T10:00:00+01:00"
    assert [(r["name"], r["matched"]) for r in data["rules"]] == [
        ("disaster", False),
        ("blocked", False),
        ("holidays", False),
        ("vip", True),
    ]
    assert data["rules"][2] == {
        "index": 3,
        "name": "holidays",
        "line": 26,
        "matched": False,
        "reason": "2026-12-24 is not in calendar 'holidays'",
        "criteria": [
            {
                "criterion": "date_in",
                "holds": False,
                "reason": "2026-12-24 is not in calendar 'holidays'",
            }
        ],
    }
