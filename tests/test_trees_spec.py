"""Every example of routing-trees.md is valid as written, and the shipped examples load."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
from test_trees_kit import EXAMPLES, HEAD, ROOT, at, tree, workdir

from routing_trees.compile import compile_tree
from routing_trees.facts import Facts
from routing_trees.load import load_tree
from routing_trees.model import Forward, Reject, Split, walk
from routing_trees.timewindows import parse_windows

__all__ = ["workdir"]

SPEC = ROOT.parent / "shared" / "spec" / "routing-trees.md"


@pytest.mark.skipif(not SPEC.is_file(), reason="shared/ is not beside the checkout")
def test_acme_example_is_the_spec_example_verbatim() -> None:
    block = re.search(r"```yaml\n(.*?)```", SPEC.read_text(), re.S)
    assert block is not None
    assert (EXAMPLES / "acme.yaml").read_text() == block.group(1)


def test_shipped_examples_are_valid() -> None:
    acme = load_tree(EXAMPLES / "acme.yaml")
    assert [r.name for r in acme.rules] == [
        "disaster",
        "blocked",
        "holidays",
        "vip",
        "office-hours",
        "after-hours",
    ]
    globex = load_tree(EXAMPLES / "globex.yaml")
    assert globex.numbers == ("+3222001000", "+3232012000")


def test_globex_is_servable_by_a_redirect_server() -> None:
    globex = load_tree(EXAMPLES / "globex.yaml")
    for rule in globex.rules:
        for _, action in walk(rule.do):
            assert isinstance(action, Forward | Reject | Split)
            if isinstance(action, Forward):
                assert action.max_calls is None


def test_globex_routes(workdir: Path) -> None:
    shutil.copy(EXAMPLES / "globex.yaml", "globex.yaml")
    compiled = compile_tree(load_tree("globex.yaml"))
    antwerp, brussels = "+3232012000", "+3222001000"

    def route(caller: str | None, called: str, when: str) -> str | None:
        return compiled.evaluate(Facts(caller, called, at(when))).rule

    assert route("+3270123456", brussels, "2027-03-03T10:00") == "nuisance"
    assert route("+3226000000", brussels, "2027-08-05T10:00") == "closed-days"
    assert route("+3225550012", brussels, "2027-03-03T10:00") == "vip"
    assert route("+3226000000", antwerp, "2027-03-03T10:00") == "antwerp-office"
    assert route("+3226000000", brussels, "2027-03-03T10:00") == "brussels-office"
    assert route(None, antwerp, "2027-03-06T10:00") == "brussels-office"  # Saturday
    assert route(None, brussels, "2027-03-03T19:00") == "evenings"
    assert route(None, brussels, "2027-03-03T23:00") == "night"


@pytest.mark.parametrize(
    "window", ["mon-fri 08:00-18:00, sat 09:00-12:00", "fri 22:00-06:00", "fri-mon 10:00-11:00"]
)
def test_spec_time_windows(window: str) -> None:
    assert parse_windows(window).intervals


def test_spec_fragments(workdir: Path) -> None:
    """The fragments of the criteria and actions tables, in one tree."""
    text = HEAD + (
        'lists:\n  vip: ["+32475123456", "+3226*"]\n'
        "prompts:\n  closed: prompts/closed-nl.wav\n"
        "routes:\n"
        "  - when: {mode: continuity}\n    do: {reject: 486}\n"
        "  - when: {anonymous: true}\n    do: {reject: 480}\n"
        '  - when: {caller: "+3226*", called: "+3225551235"}\n    do: {reject: 603}\n'
        "  - when: {caller_in: vip}\n"
        '    do: {menu: closed, options: {"1": {forward: "+3225550001"}},'
        " on_timeout: {queue: sales}, on_invalid: {announce: closed}}\n"
        "  - do: {split: [{weight: 70, do: {queue: sales, max_wait: 60,"
        " on_no_agents: {reject: 480}}}, {weight: 30, do: {announce: closed}}]}\n"
    )
    assert len(tree(text).rules) == 5
