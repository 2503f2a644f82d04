"""Who may switch to DRS or Voice Continuity: the formula table, read per mode.

The rule is :mod:`engine.formulas`' (DRS needs the DRS formula, Voice
Continuity the Voice Continuity formula; Classic and Outbound have
neither), so the phone service, the command line and the HTTP API refuse
the same customers with the same sentence. Going back to normal is never
refused.
"""

from __future__ import annotations

from engine.formulas import Component, Entitled, may

__all__ = ["SERVICES", "mode_problem"]

#: What each mode other than normal is called for a user.
SERVICES = {"drs": "DRS", "continuity": "Voice Continuity"}

_COMPONENTS: dict[str, Component] = {"drs": "drs", "continuity": "continuity"}


def mode_problem(customer: Entitled, mode: str) -> str | None:
    """Why ``customer`` may not be switched to ``mode``, or None when it may."""
    if mode == "normal":
        return None
    return may(customer, _COMPONENTS[mode])
