"""The bodies of ``vms tree validate`` and ``vms tree explain``.

The argument parser lives in ``engine/cli.py``; these functions take plain
values and the two output streams, and return the exit status: 0 when all is
well, 1 for bad input (an invalid tree, a number that is not one, a date
that does not parse). Bad input never raises: it is one sentence on ``err``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from .compile import compile_tree
from .explain import explain as explain_call
from .facts import Facts
from .load import check_tree
from .model import MODES, CustomerProfile
from .numbers import to_e164
from .treeset import check_files, tree_files

__all__ = ["explain", "validate"]

_ANONYMOUS = frozenset({"", "anonymous", "withheld", "private", "none"})
_FORMS = "+3225551234, 003225551234 or 025551234"


def validate(
    paths: list[str],
    customers: Mapping[str, CustomerProfile] | None,
    out: TextIO,
    err: TextIO,
) -> int:
    """Print ``FILE:LINE:COL: message`` per problem (or ``FILE: valid ...``) to
    ``out`` and a one-line summary to ``err``; 1 if any problem, else 0.

    A directory among ``paths`` stands for its ``*.yaml`` and ``*.yml`` files.
    """
    files: list[str] = []
    for name in paths:
        if Path(name).is_dir():
            found = tree_files(name)
            if not found:
                print(f"{name}: no *.yaml or *.yml tree files in this directory", file=err)
                return 1
            files.extend(str(p) for p in found)
        else:
            files.append(name)
    if not files:
        print("no tree file given: name one or more tree files or directories", file=err)
        return 1
    results = check_files(files, customers)
    failed = 0
    problems = 0
    for result in results:
        if result.problems:
            failed += 1
            problems += len(result.problems)
            for problem in result.problems:
                print(problem, file=out)
        elif result.tree is not None:
            numbers, rules = len(result.tree.numbers), len(result.tree.rules)
            print(
                f"{result.file}: valid ({_count(numbers, 'number')}, {_count(rules, 'rule')})",
                file=out,
            )
    if failed:
        print(
            f"{_count(problems, 'problem')} in {failed} of {_count(len(results), 'file')}",
            file=err,
        )
        return 1
    print(f"{_count(len(results), 'file')} valid", file=err)
    return 0


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def explain(
    path: str,
    caller: str | None,
    called: str,
    at: str | None,
    mode: str,
    as_json: bool,
    out: TextIO,
    err: TextIO,
) -> int:
    """Explain one call against one tree file; 1 with a sentence on ``err`` for bad input.

    ``caller`` empty, None or ``anonymous`` means a withheld number; numbers
    may be in any accepted form; ``at`` is ISO 8601 with an offset or ``Z``,
    naive means local time in the tree's timezone, and None or ``now`` means
    the current time.
    """
    tree, problems = check_tree(path)
    if tree is None:
        for problem in problems:
            print(problem, file=err)
        print(
            f"{path} is not a valid tree ({_count(len(problems), 'problem')}): "
            "fix it before explaining calls against it",
            file=err,
        )
        return 1
    caller_e164: str | None = None
    if caller is not None and caller.strip().lower() not in _ANONYMOUS:
        caller_e164 = to_e164(caller)
        if caller_e164 is None:
            print(
                f"--caller '{caller}' is not a phone number: give it as {_FORMS}, "
                "or 'anonymous' for a withheld number",
                file=err,
            )
            return 1
    called_e164 = to_e164(called)
    if called_e164 is None:
        print(f"--called '{called}' is not a phone number: give it as {_FORMS}", file=err)
        return 1
    if called_e164 not in tree.numbers:
        print(
            f"--called {called_e164} is not served by {path}: "
            f"give one of its numbers ({', '.join(tree.numbers)})",
            file=err,
        )
        return 1
    if mode not in MODES:
        print(f"--mode '{mode}' is not a mode: give normal, drs or continuity", file=err)
        return 1
    moment = _moment(at, tree.timezone)
    if moment is None:
        print(
            f"--at '{at}' is not an ISO 8601 date and time: give e.g. "
            "2026-12-25T10:00:00+01:00, 2026-12-25T09:00Z, or 2026-12-25T10:00 "
            f"for local time in {tree.timezone}",
            file=err,
        )
        return 1
    facts = Facts(caller_e164, called_e164, moment, mode)
    explanation = explain_call(compile_tree(tree), facts)
    if as_json:
        print(json.dumps(explanation.as_json(), indent=2, ensure_ascii=False), file=out)
    else:
        print(explanation.text(), file=out)
    return 0


def _moment(at: str | None, timezone: str) -> float | None:
    """UNIX time of an ISO 8601 string; naive means local time in ``timezone``."""
    if at is None or at.strip().lower() in ("", "now"):
        return time.time()
    try:
        moment = datetime.fromisoformat(at.strip())
    except ValueError:
        return None
    if not 1900 <= moment.year <= 9998:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    return moment.timestamp()
