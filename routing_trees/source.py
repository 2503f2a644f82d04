"""YAML files read with their line and column marks.

Customers and operators write trees and configuration by hand, so every
problem must point at the exact spot: ``FILE:LINE:COL: message``. PyYAML's
``compose`` keeps the marks that ``safe_load`` throws away; this module reads
the composed nodes and collects every problem instead of stopping at the first.

Scalars are read from their source text, not from YAML 1.1's implicit typing:
``+3225551234`` stays a string (not the integer 3225551234) and ``18:00`` is
not the sexagesimal 1080.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

__all__ = [
    "Checker",
    "MappingNode",
    "Node",
    "Problem",
    "ScalarNode",
    "SequenceNode",
    "SourceError",
    "did_you_mean",
    "load_yaml",
]

_NULL = "tag:yaml.org,2002:null"
_BOOL = "tag:yaml.org,2002:bool"


@dataclass(frozen=True, slots=True)
class Problem:
    """One problem at one place in one file (line and column are 1-based)."""

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class SourceError(Exception):
    """A file that could not be accepted, with every problem found in it."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


def load_yaml(path: Path | str) -> Node:
    """Compose one YAML document, or raise SourceError pointing at the fault."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise SourceError([Problem(name, 1, 1, f"cannot read the file: {reason}")]) from None
    except UnicodeDecodeError as exc:
        line, col = _offset_to_mark(Path(path).read_bytes(), exc.start)
        raise SourceError([Problem(name, line, col, "the file is not valid UTF-8")]) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        what = exc.problem or exc.context or "not valid YAML"
        raise SourceError([Problem(name, line, col, f"YAML syntax error: {what}")]) from None
    except yaml.YAMLError as exc:
        raise SourceError([Problem(name, 1, 1, f"YAML error: {exc}")]) from None
    except RecursionError:  # thousands of nested [ or {: no tree is shaped like that
        raise SourceError([Problem(name, 1, 1, "the YAML is nested too deeply")]) from None
    if node is None:
        raise SourceError([Problem(name, 1, 1, "the file is empty")])
    return node


def _offset_to_mark(data: bytes, offset: int) -> tuple[int, int]:
    before = data[:offset]
    line = before.count(b"\n") + 1
    return line, offset - (before.rfind(b"\n") + 1) + 1


def did_you_mean(word: str, choices: Collection[str]) -> str:
    """A ``did you mean 'x'?`` suffix, or an empty string when nothing is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean '{close[0]}'?)" if close else ""


class Checker:
    """Reads typed values out of nodes, recording a Problem for each misfit.

    Each reader returns ``None`` after recording the problem, so callers can
    carry on and report everything wrong in a file in one pass.
    """

    def __init__(self, file: str) -> None:
        self.file = file
        self.problems: list[Problem] = []

    def problem(self, node: Node, message: str) -> None:
        mark = node.start_mark
        self.problems.append(Problem(self.file, mark.line + 1, mark.column + 1, message))

    def problem_inside(self, node: Node, offset: int, message: str) -> None:
        """A problem at ``offset`` (0-based) inside a one-line scalar's text.

        The column is exact when the scalar's source text is its value (plain
        or quoted without escapes); otherwise the problem points at the node.
        """
        mark = node.start_mark
        value = node.value if isinstance(node, ScalarNode) else None
        quote = 1 if isinstance(node, ScalarNode) and node.style in ("'", '"') else 0
        buffer = getattr(mark, "buffer", None)
        if (
            isinstance(value, str)
            and isinstance(buffer, str)
            and 0 <= offset <= len(value)
            and buffer[mark.pointer + quote : mark.pointer + quote + len(value)] == value
        ):
            column = mark.column + 1 + quote + offset
            self.problems.append(Problem(self.file, mark.line + 1, column, message))
        else:
            self.problem(node, message)

    def raise_if_problems(self) -> None:
        if self.problems:
            raise SourceError(sorted(self.problems, key=lambda p: (p.line, p.column)))

    # -- structure ---------------------------------------------------------

    def mapping(
        self,
        node: Node,
        what: str,
        allowed: Collection[str] | None = None,
        required: Collection[str] = (),
    ) -> dict[str, tuple[ScalarNode, Node]] | None:
        """A mapping with string keys; unknown keys get a did-you-mean."""
        if not isinstance(node, MappingNode):
            self.problem(node, f"{what} must be a mapping, not {describe(node)}")
            return None
        out: dict[str, tuple[ScalarNode, Node]] = {}
        for key, value in node.value:
            if not isinstance(key, ScalarNode) or key.tag == _NULL:
                self.problem(key, f"{what} has a key that is not a plain name")
                continue
            name = key.value
            if name in out:
                self.problem(key, f"duplicate key '{name}' in {what}")
                continue
            if allowed is not None and name not in allowed:
                hint = did_you_mean(name, allowed)
                self.problem(key, f"unknown key '{name}' in {what}{hint}")
                continue
            out[name] = (key, value)
        missing = [r for r in required if r not in out]
        for name in missing:
            self.problem(node, f"{what} lacks the required key '{name}'")
        return out

    def sequence(self, node: Node, what: str) -> list[Node] | None:
        if not isinstance(node, SequenceNode):
            self.problem(node, f"{what} must be a list, not {describe(node)}")
            return None
        return list(node.value)

    # -- scalars -----------------------------------------------------------

    def string(self, node: Node, what: str) -> str | None:
        """A non-empty scalar's source text (quoted or plain)."""
        if not isinstance(node, ScalarNode) or (node.tag == _NULL and not node.style):
            self.problem(node, f"{what} must be a string, not {describe(node)}")
            return None
        if node.value == "":
            self.problem(node, f"{what} must not be empty")
            return None
        return str(node.value)

    def strings(self, node: Node, what: str) -> list[tuple[Node, str]] | None:
        """One string or a list of strings, each with its node for later messages."""
        if isinstance(node, SequenceNode):
            out = []
            for item in node.value:
                value = self.string(item, f"each entry of {what}")
                if value is not None:
                    out.append((item, value))
            return out
        value = self.string(node, what)
        return None if value is None else [(node, value)]

    def integer(
        self, node: Node, what: str, minimum: int | None = None, maximum: int | None = None
    ) -> int | None:
        if not isinstance(node, ScalarNode) or node.style is not None:
            self.problem(node, f"{what} must be a whole number, not {describe(node)}")
            return None
        try:
            value = int(node.value.replace("_", ""), 10)
        except ValueError:
            self.problem(node, f"{what} must be a whole number, not '{node.value}'")
            return None
        if minimum is not None and value < minimum:
            self.problem(node, f"{what} must be at least {minimum}, not {value}")
            return None
        if maximum is not None and value > maximum:
            self.problem(node, f"{what} must be at most {maximum}, not {value}")
            return None
        return value

    def number(self, node: Node, what: str, minimum: float | None = None) -> float | None:
        """A real number (seconds, ratios): integer or decimal notation."""
        if not isinstance(node, ScalarNode) or node.style is not None:
            self.problem(node, f"{what} must be a number, not {describe(node)}")
            return None
        try:
            value = float(node.value.replace("_", ""))
        except ValueError:
            self.problem(node, f"{what} must be a number, not '{node.value}'")
            return None
        if not math.isfinite(value):
            self.problem(node, f"{what} must be a finite number")
            return None
        if minimum is not None and value < minimum:
            self.problem(node, f"{what} must be at least {minimum:g}, not {value:g}")
            return None
        return value

    def boolean(self, node: Node, what: str) -> bool | None:
        if not isinstance(node, ScalarNode) or node.style is not None or node.tag != _BOOL:
            self.problem(node, f"{what} must be true or false, not {describe(node)}")
            return None
        return node.value.lower() in ("true", "yes", "on")


def describe(node: Node) -> str:
    """How a node reads to a human: 'a list', 'a mapping', "'abc'", 'nothing'."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    if isinstance(node, ScalarNode) and node.tag == _NULL and not node.style:
        return "nothing"
    return f"'{node.value}'"
