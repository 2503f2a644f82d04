"""Evaluation of each criterion, compiled and interpreted, plus the model helpers."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_trees_kit import EXAMPLES, HEAD, at, tree, workdir

from routing_trees.compile import compile_tree
from routing_trees.evaluate import interpret
from routing_trees.facts import Decision, Facts
from routing_trees.localtime import clock_for
from routing_trees.model import Announce, Forward, Queue, Reject, Split, Tree, resolve, walk

__all__ = ["workdir"]

A, B = "+3225551234", "+3225551235"


def rule_for(t: Tree, facts: Facts) -> str | None:
    """The winning rule, checked to be the same compiled and interpreted."""
    compiled = compile_tree(t).evaluate(facts)
    assert compiled == interpret(t, facts)
    return compiled.rule


def routes(body: str) -> str:
    return HEAD + "timezone: Europe/Brussels\nroutes:\n" + body


def test_time_and_midnight_crossing(workdir: Path) -> None:
    t = tree(
        routes(
            '  - name: night\n    when: {time: "fri 22:00-06:00"}\n    do: {reject: 480}\n'
            '  - name: day\n    when: {time: "mon-fri 08:00-18:00, sat 09:00-12:00"}\n'
            "    do: {reject: 486}\n"
        )
    )
    # 2027-03-05 is a Friday, in CET (+01:00).
    assert rule_for(t, Facts(None, A, at("2027-03-05T17:59"))) == "day"
    assert rule_for(t, Facts(None, A, at("2027-03-05T18:00"))) is None
    assert rule_for(t, Facts(None, A, at("2027-03-05T23:00"))) == "night"
    assert rule_for(t, Facts(None, A, at("2027-03-06T05:59"))) == "night"
    assert rule_for(t, Facts(None, A, at("2027-03-06T06:00"))) is None
    assert rule_for(t, Facts(None, A, at("2027-03-06T11:00"))) == "day"
    assert rule_for(t, Facts(None, A, at("2027-03-06T10:00:00Z"))) == "day"  # 11:00 local


def test_dst_spring_forward_in_brussels(workdir: Path) -> None:
    # Sunday 2026-03-29: 02:00 CET jumps to 03:00 CEST; 02:xx never happens.
    t = tree(
        routes(
            '  - name: two\n    when: {time: "sun 02:00-03:00"}\n    do: {reject: 480}\n'
            '  - name: three\n    when: {time: "sun 03:00-04:00"}\n    do: {reject: 486}\n'
            '  - name: one\n    when: {time: "sun 01:00-02:00"}\n    do: {reject: 603}\n'
        )
    )
    assert rule_for(t, Facts(None, A, at("2026-03-29T00:59:59Z"))) == "one"  # 01:59 CET
    assert rule_for(t, Facts(None, A, at("2026-03-29T01:00:00Z"))) == "three"  # 03:00 CEST
    assert rule_for(t, Facts(None, A, at("2026-03-29T01:59:00Z"))) == "three"
    for minute in range(0, 24 * 60):
        moment = at("2026-03-29T00:00:00+01:00") + 60 * minute
        assert rule_for(t, Facts(None, A, moment)) != "two"


def test_dst_fall_back_in_brussels(workdir: Path) -> None:
    # Sunday 2026-10-25: 03:00 CEST falls back to 02:00 CET; 02:xx happens twice.
    t = tree(routes('  - name: two\n    when: {time: "sun 02:00-03:00"}\n    do: {reject: 480}\n'))
    assert rule_for(t, Facts(None, A, at("2026-10-25T00:30:00Z"))) == "two"  # 02:30 CEST
    assert rule_for(t, Facts(None, A, at("2026-10-25T01:30:00Z"))) == "two"  # 02:30 CET
    assert rule_for(t, Facts(None, A, at("2026-10-25T02:00:00Z"))) is None  # 03:00 CET
    clock = clock_for("Europe/Brussels")
    assert clock.local(at("2026-10-25T00:59:00Z"))[0] == 6 * 1440 + 2 * 60 + 59
    assert clock.local(at("2026-10-25T01:00:00Z"))[0] == 6 * 1440 + 2 * 60


def test_calendar_uses_the_local_date(workdir: Path) -> None:
    t = tree(
        HEAD
        + 'calendars:\n  holidays: ["2026-12-25", "2027-07-20..2027-07-21"]\n'
        + "routes:\n  - name: off\n    when: {date_in: holidays}\n    do: {reject: 480}\n"
    )
    assert rule_for(t, Facts(None, A, at("2026-12-25T00:00"))) == "off"
    assert rule_for(t, Facts(None, A, at("2026-12-24T23:30:00Z"))) == "off"  # 00:30 local
    assert rule_for(t, Facts(None, A, at("2026-12-25T23:30:00Z"))) is None  # 26th local
    assert rule_for(t, Facts(None, A, at("2027-07-21T12:00"))) == "off"
    assert rule_for(t, Facts(None, A, at("2027-07-22T12:00"))) is None


def test_lists_with_prefixes_and_exact_numbers(workdir: Path) -> None:
    t = tree(
        HEAD
        + 'lists:\n  vip: ["+32475123456", "+3226*"]\n  blocked: ["+3290*", "+44*"]\n'
        + "routes:\n"
        + "  - name: blocked\n    when: {caller_in: blocked}\n    do: {reject: 603}\n"
        + "  - name: vip\n    when: {caller_in: vip}\n    do: {reject: 486}\n"
        + '  - name: exact\n    when: {caller: ["+32475000001", "+3227*"]}\n'
        + "    do: {reject: 480}\n"
    )
    now = at("2027-03-03T10:00")
    assert rule_for(t, Facts("+32475123456", A, now)) == "vip"
    assert rule_for(t, Facts("+32475123457", A, now)) is None
    assert rule_for(t, Facts("+3226001122", A, now)) == "vip"
    assert rule_for(t, Facts("+3290123456", A, now)) == "blocked"
    assert rule_for(t, Facts("+442071234567", A, now)) == "blocked"
    assert rule_for(t, Facts("+32475000001", A, now)) == "exact"
    assert rule_for(t, Facts("+3227001122", A, now)) == "exact"
    assert rule_for(t, Facts(None, A, now)) is None


def test_caller_and_caller_in_in_one_rule_both_hold(workdir: Path) -> None:
    t = tree(
        HEAD
        + 'lists:\n  vip: ["+3226*"]\n'
        + 'routes:\n  - name: both\n    when: {caller_in: vip, caller: "+32261*"}\n'
        + "    do: {reject: 486}\n"
    )
    now = at("2027-03-03T10:00")
    assert rule_for(t, Facts("+3226123456", A, now)) == "both"
    assert rule_for(t, Facts("+3226223456", A, now)) is None


def test_anonymous(workdir: Path) -> None:
    t = tree(
        routes(
            "  - name: hidden\n    when: {anonymous: true}\n    do: {reject: 603}\n"
            "  - name: shown\n    when: {anonymous: false}\n    do: {reject: 486}\n"
        )
    )
    now = at("2027-03-03T10:00")
    assert rule_for(t, Facts(None, A, now)) == "hidden"
    assert rule_for(t, Facts("+3226123456", A, now)) == "shown"


def test_called_and_mode(workdir: Path) -> None:
    t = tree(
        routes(
            "  - name: dr\n    when: {mode: [drs, continuity]}\n    do: {reject: 503}\n"
            f'  - name: second\n    when: {{called: "{B}"}}\n    do: {{reject: 486}}\n'
            "  - name: rest\n    do: {reject: 480}\n"
        )
    )
    now = at("2027-03-03T10:00")
    assert rule_for(t, Facts(None, A, now, "drs")) == "dr"
    assert rule_for(t, Facts(None, B, now, "continuity")) == "dr"
    assert rule_for(t, Facts(None, B, now)) == "second"
    assert rule_for(t, Facts(None, A, now)) == "rest"


def test_decision_carries_the_whole_action_tree(workdir: Path) -> None:
    t = tree((EXAMPLES / "acme.yaml").read_text())
    decision = compile_tree(t).evaluate(Facts("+3226123456", A, at("2027-03-03T10:00")))
    assert decision == Decision("vip", 3, t.rules[3].do, t)
    assert decision.matched
    action = compile_tree(t).evaluate(Facts("+3228123456", A, at("2027-03-03T10:00"))).action
    assert isinstance(action, Forward)
    assert action.timeout == 20
    assert action.max_calls == 8
    assert isinstance(action.on_busy, Forward)
    assert isinstance(action.on_no_answer, Queue)
    assert isinstance(action.on_no_answer.on_timeout, Announce)
    assert isinstance(action.on_unreachable, Announce)
    assert action.on_unreachable.then == Forward("+32475000002")
    assert isinstance(action.on_overflow, Split)
    assert str(action.pos) == "t.yaml:40:7"  # the forward key of office-hours
    assert action.on_unreachable.prompt_path.endswith("prompts/busy-fr.wav")


def test_no_rule_holds(workdir: Path) -> None:
    t = tree(routes("  - when: {mode: drs}\n    do: {reject: 503}\n"))
    decision = compile_tree(t).evaluate(Facts(None, A, at("2027-03-03T10:00")))
    assert (decision.rule, decision.rule_index, decision.action, decision.matched) == (
        None,
        -1,
        None,
        False,
    )


def test_walk_paths_and_resolve(workdir: Path) -> None:
    t = tree((EXAMPLES / "acme.yaml").read_text())
    office = t.rules[4].do
    paths = [path for path, _ in walk(office)]
    assert paths == [
        "",
        "on_busy",
        "on_no_answer",
        "on_no_answer.on_timeout",
        "on_unreachable",
        "on_unreachable.then",
        "on_overflow",
        "on_overflow.split[0]",
        "on_overflow.split[1]",
    ]
    for path, action in walk(office):
        assert resolve(office, path) is action
    assert resolve(office, "on_overflow.split[2]") is None
    assert resolve(office, "nonsense") is None


def test_menu_paths(workdir: Path) -> None:
    t = tree(
        HEAD
        + "prompts:\n  closed: prompts/closed-nl.wav\nroutes:\n"
        + '  - do: {menu: closed, options: {"1": {reject: 486}, "#": {reject: 480}},'
        + " on_invalid: {reject: 603}}\n"
    )
    menu = t.rules[0].do
    assert [p for p, _ in walk(menu)] == ["", "options.1", "options.#", "on_invalid"]
    assert resolve(menu, "options.#") == Reject(480)


def test_to_json_gives_the_yaml_shape(workdir: Path) -> None:
    t = tree((EXAMPLES / "acme.yaml").read_text())
    assert t.rules[4].do.to_json() == {
        "forward": "+3225550001",
        "timeout": 20,
        "max_calls": 8,
        "on_busy": {"forward": "+32475000001"},
        "on_no_answer": {"queue": "sales", "max_wait": 120, "on_timeout": {"announce": "closed"}},
        "on_unreachable": {"announce": "busy", "then": {"forward": "+32475000002"}},
        "on_overflow": {
            "split": [
                {"weight": 70, "do": {"forward": "+3225550002"}},
                {"weight": 30, "do": {"queue": "support"}},
            ]
        },
    }


@pytest.mark.parametrize(("roll", "index"), [(0, 0), (69, 0), (70, 1), (99, 1)])
def test_split_choose_follows_weights(roll: int, index: int) -> None:
    branches = ((70, Reject(486)), (30, Reject(480)))
    assert Split(branches).choose(roll) is branches[index][1]


def test_split_roll_distribution() -> None:
    split = Split(((70, Reject(486)), (20, Reject(480)), (10, Reject(603))))
    counts = [0, 0, 0]
    for roll in range(100):
        counts[[486, 480, 603].index(split.choose(roll).code)] += 1  # type: ignore[union-attr]
    assert counts == [70, 20, 10]
