"""``GET /api/v1/customers/ID/stats``: a customer's ACM statistics, as ``vms stats --json``.

Plugged into :class:`engine.api_v1.V1` with ``v1.add("stats", ("GET",),
stats_handler(...))``; the token check is V1's. Query: ``since`` and
``until`` (ISO 8601 with a zone; today so far in UTC by default), ``group``
(one name, or several separated by commas). When the window reaches now and
the shared state is given, the calls waiting and the oldest wait come from
it (what every engine's queue holds now) rather than from this engine's
events.

The report reads the window's events from SQLite on the reactor thread: a
day of a busy customer is some tens of milliseconds.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from engine.acm.report import as_json, default_window, with_live
from engine.api_v1 import Handler, Reply, error, parse_iso, query_of

if TYPE_CHECKING:
    from engine.acm.model import AcmSettings
    from engine.acm.stats import StatsStore
    from engine.state.interface import CallQueues

__all__ = ["stats_handler"]

_PARAMETERS = frozenset({"since", "until", "group"})


def stats_handler(
    settings_of: Callable[[str], AcmSettings | None], store: StatsStore, clock: Any,
    queues: CallQueues | None = None,
) -> Handler:
    """The handler of resource ``stats``: figures from ``store``, live waits from ``queues``."""

    async def stats(request: Any, customer: str, method: str, rest: tuple[str, ...]) -> Reply:
        if rest:
            return error(404, f"no such resource: {request.path.decode('latin-1')}")
        acm = settings_of(customer)
        if acm is None:
            return error(404, f"customer '{customer}' has no ACM, so it has no statistics")
        query = query_of(request)
        unknown = sorted(set(query) - _PARAMETERS)
        if unknown:
            return error(400, f"unknown parameter '{unknown[0]}': use since, until and group")
        now = clock.seconds()
        try:
            until = parse_iso(query["until"], "until") if "until" in query else now
            since = parse_iso(query["since"], "since") if "since" in query else \
                default_window(until)[0]  # fmt: skip
        except ValueError as exc:
            return error(400, str(exc))
        if since >= until:
            return error(400, f"since ({query.get('since')}) must come before until "
                              f"({query.get('until', 'now')})")  # fmt: skip
        groups = query["group"].split(",") if "group" in query else None
        for group in groups or ():
            if group not in acm.groups:
                return error(400, f"unknown group '{group}' (groups: "
                                  f"{', '.join(sorted(acm.groups))})")  # fmt: skip
        try:
            report = store.report(customer, acm, since, until, groups)
        except sqlite3.Error:
            return error(503, "the statistics database is busy or failing; try again",
                         retry_after=b"1")  # fmt: skip
        if queues is not None and until >= now:
            live: dict[str, tuple[int, float | None]] = {}
            for q in report.queues:
                if q.channel == "call":
                    oldest = await queues.oldest(customer, q.group)
                    live[q.group] = (await queues.waiting(customer, q.group),
                                     None if oldest is None else now - oldest)  # fmt: skip
            report = with_live(report, live)
        return Reply(200, as_json(report))

    return stats
