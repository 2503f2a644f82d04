"""Helpers shared by the routing-tree tests (no tests here).

Trees are written as ``t.yaml`` into a temporary working directory (with the
example prompts beside them), so problems read ``t.yaml:LINE:COL: message``.
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from routing_trees.load import check_tree, load_tree
from routing_trees.model import CustomerProfile, Tree

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "routing_trees" / "examples"
BRUSSELS = ZoneInfo("Europe/Brussels")

HEAD = """\
version: 1
customer: acme
numbers: ["+3225551234", "+3225551235"]
"""


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    shutil.copytree(EXAMPLES / "prompts", tmp_path / "prompts")
    monkeypatch.chdir(tmp_path)
    yield tmp_path


def write(text: str, name: str = "t.yaml") -> str:
    Path(name).write_text(textwrap.dedent(text), encoding="utf-8")
    return name


def problems(
    text: str, customers: Mapping[str, CustomerProfile] | None = None, name: str = "t.yaml"
) -> list[str]:
    tree, found = check_tree(write(text, name), customers)
    assert (tree is None) == bool(found)
    return [str(p) for p in found]


def tree(text: str, name: str = "t.yaml") -> Tree:
    return load_tree(write(text, name))


def at(text: str) -> float:
    """UNIX time of an ISO string; naive means Brussels local time."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=BRUSSELS)
    return moment.timestamp()
