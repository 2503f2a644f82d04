"""``GET /api/v1/customers/ID/stats``: a customer's ACM statistics, as ``vms stats --json``.

Plugged into :class:`engine.api_v1.V1` with ``v1.add("stats", ("GET",),
stats_handler(...))``; the token check is V1's. Query: ``since`` and
``until`` (ISO 8601 with a zone; today so far in UTC by default), ``group``
(one name, or several separated by commas). When the window reaches now and
the shared state is given, the calls waiting and the oldest wait come from
it (what every engine's queue holds now) rather than from this engine's
events. A window is at most :data:`~engine.acm.report.MAX_WINDOW_DAYS` days
(a longer one is refused with 400).

The report is read and computed in a thread of the reactor's pool, on a
read-only connection of its own; the reactor thread only takes the store's
snapshot (the last id committed and the events not committed yet) before,
and asks the shared state for the live waits after.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.internet.threads import deferToThreadPool

from engine.acm.report import Report, as_json, compute, default_window, too_long, with_live
from engine.acm.stats import StatsError, open_readonly, read_events
from engine.api_v1 import Handler, Reply, error, parse_iso, query_of

if TYPE_CHECKING:
    from engine.acm.events import AcmEvent
    from engine.acm.model import AcmSettings
    from engine.acm.stats import StatsStore
    from engine.state.interface import CallQueues

log = logging.getLogger("vms.api.stats")

__all__ = ["stats_handler"]

_PARAMETERS = frozenset({"since", "until", "group"})


def stats_handler(
    settings_of: Callable[[str], AcmSettings | None],
    store: StatsStore,
    clock: Any,
    queues: CallQueues | None = None,
    reactor: Any = None,
) -> Handler:
    """The handler of resource ``stats``: figures from ``store``, live waits from ``queues``.

    ``reactor``: whose thread pool computes the reports (the global reactor by default).
    """
    if reactor is None:
        from twisted.internet import reactor as installed  # noqa: PLC0415 - installed late

        reactor = installed

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
        refusal = too_long(since, until)
        if refusal is not None:
            return error(400, refusal)
        groups = query["group"].split(",") if "group" in query else None
        for group in groups or ():
            if group not in acm.groups:
                return error(400, f"unknown group '{group}' (groups: "
                                  f"{', '.join(sorted(acm.groups))})")  # fmt: skip
        try:
            upto, pending = store.snapshot(customer, until)
            report = await deferToThreadPool(reactor, reactor.getThreadPool(), _report,
                                             store.path, customer, acm, (since, until), groups,
                                             upto, pending)  # fmt: skip
        except (sqlite3.Error, StatsError) as exc:
            log.warning("statistics of %s not read: %s", customer, exc)
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


def _report(
    path: Path, customer: str, acm: AcmSettings, window: tuple[float, float],
    groups: Collection[str] | None, upto: int, pending: list[AcmEvent],
) -> Report:  # fmt: skip
    """In a worker thread: the committed events up to ``upto`` and ``pending``, computed."""
    since, until = window
    conn = open_readonly(path)
    try:
        events = read_events(conn, customer, since, until, upto)
    finally:
        conn.close()
    return compute(events + pending, customer, acm, since, until, groups)
