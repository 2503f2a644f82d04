"""Tree sets: a directory of trees, numbers served once, lookup by number."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_trees_kit import EXAMPLES, HEAD, workdir, write

from routing_trees.source import SourceError
from routing_trees.treeset import load_directory, load_files

__all__ = ["workdir"]


def test_load_directory_and_lookup(workdir: Path) -> None:
    Path("trees").mkdir()
    for name in ("acme.yaml", "globex.yaml"):
        shutil.copy(EXAMPLES / name, Path("trees") / name)
    shutil.copytree("prompts", "trees/prompts")
    Path("trees/notes.txt").write_text("not a tree")
    trees = load_directory("trees")
    assert [(t.file, t.customer) for t in trees.trees] == [
        ("trees/acme.yaml", "acme"),
        ("trees/globex.yaml", "globex"),
    ]
    acme = trees.lookup("+3225551235")
    assert acme is not None
    assert acme.customer == "acme"
    globex = trees.lookup("+3232012000")
    assert globex is not None
    assert globex.file == "trees/globex.yaml"
    assert trees.lookup("+3225559999") is None


def test_number_served_by_two_trees(workdir: Path) -> None:
    write(HEAD + "routes:\n  - do: {reject: 480}\n", "a.yaml")
    write(HEAD.replace("acme", "other") + "routes:\n  - do: {reject: 486}\n", "b.yml")
    with pytest.raises(SourceError) as caught:
        load_directory(".")
    assert [str(p) for p in caught.value.problems] == [
        "b.yml:3:11: number +3225551234 is also served by a.yaml (line 3); "
        "a number belongs to one tree",
        "b.yml:3:26: number +3225551235 is also served by a.yaml (line 3); "
        "a number belongs to one tree",
    ]


def test_forward_into_another_tree_of_the_same_customer_loops(workdir: Path) -> None:
    write(HEAD + 'routes:\n  - do: {forward: "+3225557777"}\n', "a.yaml")
    write('version: 1\ncustomer: acme\nnumbers: ["+3225557777"]\nroutes:\n'
          '  - do: {forward: "+3225550001"}\n', "b.yaml")  # fmt: skip
    with pytest.raises(SourceError) as caught:
        load_files(["a.yaml", "b.yaml"])
    assert [str(p) for p in caught.value.problems] == [
        "a.yaml:5:10: forward to +3225557777 loops back into customer 'acme' (a number of b.yaml)"
    ]
    write('version: 1\ncustomer: other\nnumbers: ["+3225557777"]\nroutes:\n'
          '  - do: {forward: "+3225550001"}\n', "b.yaml")  # fmt: skip
    assert len(load_files(["a.yaml", "b.yaml"]).trees) == 2


def test_every_problem_of_every_file(workdir: Path) -> None:
    write(HEAD + "routes:\n  - do: {reject: 200}\n", "a.yaml")
    write(HEAD.replace("+32255512", "+32255599") + "routs: []\n", "b.yaml")
    with pytest.raises(SourceError) as caught:
        load_directory(".")
    assert [str(p) for p in caught.value.problems] == [
        "a.yaml:5:18: reject needs a SIP final response code from 400 to 699, not 200",
        "b.yaml:1:1: the tree lacks the required key 'routes'",
        "b.yaml:4:1: unknown key 'routs' in the tree (did you mean 'routes'?)",
    ]


def test_not_a_directory_and_empty_directory(workdir: Path) -> None:
    with pytest.raises(SourceError) as caught:
        load_directory("missing")
    assert [str(p) for p in caught.value.problems] == ["missing:1:1: not a directory of tree files"]
    Path("empty").mkdir()
    assert load_directory("empty").trees == ()
