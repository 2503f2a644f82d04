"""Helpers for the call-record tests: stores on task.Clock, legs, reading rows back."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from twisted.internet import task

from engine.cdr.record import FIELDS, LegRecord
from engine.cdr.store import CdrStore

T0 = 1_796_112_000.0  # 2026-12-01T08:00:00Z
CALLER = "+3226001122"
CALLED = "+3225551234"


def clock_at(t: float = T0) -> task.Clock:
    clock = task.Clock()
    clock.advance(t)
    return clock


def open_store(path: Path, clock: task.Clock | None = None, **options: Any) -> CdrStore:
    """An open store on ``path`` (no checkpointer thread unless asked: tests stay on one thread)."""
    options.setdefault("checkpoint_interval", None)
    store = CdrStore(path, clock or clock_at(), **options)
    store.open()
    return store


def leg(call_id: str, number: int = 0, start: float = T0, **fields: Any) -> LegRecord:
    if number > 0:
        fields.setdefault("destination", "+3225559999")
        fields.setdefault("billed_to", "acme")
    fields.setdefault("route", "office hours")
    return LegRecord(call_id, number, "acme", fields.pop("caller", CALLER), CALLED, start,
                     **fields)  # fmt: skip


def rows(path: Path, table: str = "legs") -> dict[tuple[str, int], dict[str, Any]]:
    """The rows of ``table`` as seen by a second connection, by (call_id, leg)."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        found = conn.execute(f"SELECT * FROM {table}").fetchall()
    finally:
        conn.close()
    return {(r["call_id"], r["leg"]): dict(r) for r in found}


def record_of(row: dict[str, Any]) -> LegRecord:
    values = {name: row[name] for name in FIELDS}
    values["other_operator"] = bool(values["other_operator"])
    return LegRecord(**values)


def owners(path: Path) -> dict[str, dict[str, Any]]:
    """The owners table by owner id, as seen by a second connection."""
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    try:
        return {r["owner"]: dict(r) for r in conn.execute("SELECT * FROM owners")}
    finally:
        conn.close()


def start(path: Path, clock: task.Clock, **options: Any) -> tuple[CdrStore, int]:
    """A store opened on ``path``, and how many dead owners' legs its open() closed."""
    options.setdefault("checkpoint_interval", None)
    store = CdrStore(path, clock, **options)
    return store, store.open()
