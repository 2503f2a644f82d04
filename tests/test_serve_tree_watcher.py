"""The tree watcher of ``vms serve``: a reload that fails in any way keeps the running trees."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from engine.serve import TreeWatcher
from routing_trees.treeset import TreeSet


def test_an_unexpected_error_while_loading_keeps_the_trees_and_the_watching(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    installed: list[TreeSet] = []
    outcomes: list[Exception | TreeSet] = [RuntimeError("a bug in a loader"), TreeSet((), {})]

    def load() -> TreeSet:
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    watcher = TreeWatcher(tmp_path, load, installed.append)
    (tmp_path / "a.yaml").write_text("version: 1\n")
    with caplog.at_level(logging.ERROR):
        watcher.poll()  # raises nothing: a LoopingCall would stop polling for good
    assert installed == [] and "the running trees stay in force" in caplog.text
    (tmp_path / "a.yaml").write_text("version: 1  # edited\n")
    watcher.poll()
    assert len(installed) == 1
