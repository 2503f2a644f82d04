"""``vms stats``: a customer's ACM statistics from the ``data_dir`` the engines write to.

It reads ``DATA_DIR/acm-stats.sqlite`` read-only (beside running engines:
WAL readers do not block the writer) and prints the figures of
engine/acm/report.py as tables, or as the JSON the API answers. Waiting
contacts are those the events show waiting at ``--until`` (the API reads
live ones from the shared state). A window is at most
:data:`~engine.acm.report.MAX_WINDOW_DAYS` days. Bad input is one sentence
on stderr and exit status 1.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from engine.acm.model import AcmSettings
from engine.acm.report import QueueFigures, Report, as_json, compute, default_window, too_long
from engine.acm.stats import FILENAME, StatsError, open_readonly, read_events
from engine.cdr.export import ExportError, parse_time
from engine.config import Config
from engine.sites.health import iso
from routing_trees.source import did_you_mean

__all__ = ["run"]

_PROG = "vms stats"


class _InputError(Exception):
    """Bad input; the message is the sentence for the user."""


def run(config: Config, customer_id: str, since_text: str | None, until_text: str | None,
        groups: Sequence[str] | None, as_json_: bool, out: TextIO, err: TextIO,
        now: Callable[[], float] = time.time) -> int:  # fmt: skip
    """Print the customer's figures for [since, until) (today so far by default); exit status."""
    try:
        acm = _acm(config, customer_id, groups)
        since, until = _window(since_text, until_text, now())
        conn = open_readonly(config.data_dir / FILENAME)
        try:
            events = read_events(conn, customer_id, since, until)
        finally:
            conn.close()
        report = compute(events, customer_id, acm, since, until, groups)
    except (_InputError, StatsError) as exc:
        print(f"{_PROG}: {exc}", file=err)
        return 1
    except sqlite3.Error as exc:
        print(f"{_PROG}: reading {config.data_dir / FILENAME} failed ({exc}); try again",
              file=err)  # fmt: skip
        return 1
    if as_json_:
        print(json.dumps(as_json(report), indent=2), file=out)
    else:
        print("\n".join(_text(report)), file=out)
    return 0


def _acm(config: Config, customer_id: str, groups: Sequence[str] | None) -> AcmSettings:
    customer = config.customers.get(customer_id)
    if customer is None:
        raise _InputError(f"unknown customer '{customer_id}' in {config.file}"
                          + did_you_mean(customer_id, config.customers))  # fmt: skip
    if customer.acm is None:
        raise _InputError(f"customer '{customer_id}' has no ACM (no 'acm:' in customers."
                          f"{customer_id} of {config.file}), so it has no statistics")  # fmt: skip
    for group in groups or ():
        if group not in customer.acm.groups:
            hint = did_you_mean(group, customer.acm.groups) or \
                f" (groups: {', '.join(sorted(customer.acm.groups))})"  # fmt: skip
            raise _InputError(f"unknown group '{group}' of customer '{customer_id}'{hint}")
    return customer.acm


def _window(since_text: str | None, until_text: str | None, now: float) -> tuple[float, float]:
    try:
        until = parse_time(until_text, "--until") if until_text is not None else now
        since = parse_time(since_text, "--since") if since_text is not None else \
            default_window(until)[0]  # fmt: skip
    except ExportError as exc:
        raise _InputError(str(exc)) from None
    if since >= until:
        raise _InputError(f"--since ({iso(since)}) must come before --until ({iso(until)})")
    refusal = too_long(since, until)
    if refusal is not None:
        raise _InputError(refusal)
    return since, until


# -- the tables ------------------------------------------------------------------------


def _text(report: Report) -> list[str]:
    lines = [f"ACM statistics of '{report.customer}' from {iso(report.since)} to "
             f"{iso(report.until)}; service level: answered within the group's seconds, "
             f"target {report.service_target:.0%}", ""]  # fmt: skip
    queues = [*report.queues, *report.channels]
    lines += _table(("queue", "channel", "offered", "answered", "abandoned", "timeout",
                     "no agents", "waiting", "service level", "ASA", "longest wait", "AHT"),
                    [_queue_row(q) for q in queues])  # fmt: skip
    lines += ["", *_table(
        ("group", "calls/h", "AHT", "target", "operators needed", "observed"),
        [(s.group, f"{s.offered_per_hour:.2f}", _seconds(s.average_handling_time),
          f"{s.target_share:.0%} in {s.target_seconds:g} s", _or_dash(s.needed),
          f"{s.observed:.2f}") for s in report.staffing])]  # fmt: skip
    lines += ["", *_table(
        ("operator", "handled", "no answer", "talk", "wrap-up", "idle", "ringing", "break",
         "logged in"),
        [(o.operator, str(o.handled), str(o.no_answers), *map(_clock, (
            o.talk_time, o.wrap_up_time, o.idle_time, o.ringing_time, o.break_time,
            o.logged_in_time))) for o in report.operators])]  # fmt: skip
    return lines


def _queue_row(q: QueueFigures) -> tuple[str, ...]:
    return (q.group or "(all)", q.channel, *map(str, (q.offered, q.answered, q.abandoned,
            q.timeout, q.no_agents, q.waiting)),
            "-" if q.service_level is None else f"{q.service_level:.1f} %",
            _seconds(q.average_speed_of_answer), _seconds(q.longest_wait),
            _seconds(q.average_handling_time))  # fmt: skip


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> list[str]:
    """Left-aligned first column, the others right-aligned, two spaces apart."""
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(len(header))]
    return ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                      for i, (cell, w) in enumerate(zip(row, widths, strict=True))).rstrip()
            for row in (header, *rows)]  # fmt: skip


def _or_dash(value: int | None) -> str:
    return "-" if value is None else str(value)


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _clock(seconds: float) -> str:
    minutes, s = divmod(round(seconds), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{s:02d}"
