"""All the trees an engine serves, indexed by number.

Each file is checked on its own (``load.check_tree``), then against the
others: a number belongs to one tree only, and a forward into a number that
another tree of the same customer serves is a loop as much as one into the
tree's own numbers. Every problem of every file is collected before anything
is refused, so one ``vms tree validate`` run shows them all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .compile import CompiledTree, compile_tree
from .load import inspect_tree
from .model import CustomerProfile, Forward, Pos, Tree, walk
from .source import Problem, SourceError

__all__ = ["FileCheck", "TreeSet", "check_files", "load_directory", "load_files", "tree_files"]


@dataclass(slots=True)
class FileCheck:
    """One file's outcome: its tree when valid, else its problems."""

    file: str
    tree: Tree | None
    problems: list[Problem] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class TreeSet:
    """Compiled trees and the number index the engine looks calls up in."""

    trees: tuple[CompiledTree, ...]
    """In file order; each knows its source file (``.file``) and customer."""
    by_number: Mapping[str, CompiledTree]

    def lookup(self, e164: str) -> CompiledTree | None:
        """The tree serving ``e164`` (None: no tree does, answer 404)."""
        return self.by_number.get(e164)


def tree_files(directory: Path | str) -> list[Path]:
    """The ``*.yaml`` and ``*.yml`` files of a directory, sorted by name."""
    folder = Path(directory)
    return sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())


def check_files(
    paths: Iterable[Path | str], customers: Mapping[str, CustomerProfile] | None = None
) -> list[FileCheck]:
    """Check each file, then the files against each other."""
    checks = [(str(path), inspect_tree(path, customers)) for path in paths]
    results = [FileCheck(name, check.tree, list(check.problems)) for name, check in checks]
    owners: dict[str, tuple[str, Pos]] = {}
    for result, (name, check) in zip(results, checks, strict=True):
        for number, at in check.numbers.items():
            first = owners.setdefault(number, (name, at))
            if first[0] != name:
                result.problems.append(
                    Problem(
                        at.file,
                        at.line,
                        at.column,
                        f"number {number} is also served by {first[0]} (line {first[1].line}); "
                        "a number belongs to one tree",
                    )
                )
    trees = {number: tree for r in results if (tree := r.tree) for number in tree.numbers}
    for result in results:
        if result.tree is not None:
            result.problems.extend(_cross_loops(result.tree, trees))
        if result.problems:
            result.problems.sort(key=lambda p: (p.line, p.column))
            result.tree = None
    return results


def _cross_loops(tree: Tree, owners: Mapping[str, Tree]) -> list[Problem]:
    problems = []
    for rule in tree.rules:
        for _, action in walk(rule.do):
            if not isinstance(action, Forward):
                continue
            other = owners.get(action.number)
            if other is not None and other is not tree and other.customer == tree.customer:
                at = action.pos
                problems.append(
                    Problem(
                        at.file,
                        at.line,
                        at.column,
                        f"forward to {action.number} loops back into customer "
                        f"'{tree.customer}' (a number of {other.file})",
                    )
                )
    return problems


def load_files(
    paths: Iterable[Path | str], customers: Mapping[str, CustomerProfile] | None = None
) -> TreeSet:
    """A TreeSet of these files, or SourceError with every problem of every file."""
    results = check_files(paths, customers)
    problems = [p for r in results for p in r.problems]
    if problems:
        raise SourceError(problems)
    compiled = tuple(compile_tree(r.tree) for r in results if r.tree is not None)
    index = {number: c for c in compiled for number in c.numbers}
    return TreeSet(compiled, index)


def load_directory(
    path: Path | str, customers: Mapping[str, CustomerProfile] | None = None
) -> TreeSet:
    """Every tree file of a directory (an empty directory gives an empty set)."""
    if not Path(path).is_dir():
        raise SourceError([Problem(str(path), 1, 1, "not a directory of tree files")])
    return load_files(tree_files(path), customers)
