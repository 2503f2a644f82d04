"""State machines written as tables: ``(state, event) -> (next state, actions)``.

The SIP transactions and the call legs read best as tables a reviewer can
hold against the RFC figure or the spec, with tests that walk every row.
A subclass declares ``TABLE`` with action *names*; each name ``x`` is the
method ``_x(self, arg)``. The table is compiled to bound functions once, when
the class is created, so handling an event is a dict lookup and the calls.
An event with no row for the current state is absorbed and ``handle``
returns False (a late retransmission, a response after the end).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

__all__ = ["Machine", "Row"]

Row = tuple[str, tuple[str, ...]]


class Machine:
    """The table dispatch every state machine of the engine shares."""

    TABLE: ClassVar[dict[tuple[str, str], Row]]
    INITIAL: ClassVar[str]
    _compiled: ClassVar[dict[tuple[str, str], tuple[str, tuple[Callable[..., None], ...]]]]

    __slots__ = ("state",)
    state: str

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "TABLE" not in cls.__dict__:
            return  # an abstract intermediate class
        cls._compiled = {
            key: (nxt, tuple(getattr(cls, "_" + action) for action in actions))
            for key, (nxt, actions) in cls.TABLE.items()
        }

    def handle(self, event: str, arg: Any = None) -> bool:
        """Apply one event; False when the table has no row for it (absorbed)."""
        row = self._compiled.get((self.state, event))
        if row is None:
            return False
        self.state = row[0]
        for action in row[1]:
            action(self, arg)
        return True

    @classmethod
    def states(cls) -> set[str]:
        return {s for s, _ in cls.TABLE} | {nxt for nxt, _ in cls.TABLE.values()}
