"""Call detail records: one row per call leg, durable across crashes, exported for billing.

- :mod:`engine.cdr.record`: :class:`LegRecord`, the outcomes and field order;
- :mod:`engine.cdr.store`: :class:`CdrStore`, SQLite under ``data_dir`` with
  group commit and crash recovery, called by the call controller;
- :mod:`engine.cdr.migrations`: the schema, as numbered migrations;
- :mod:`engine.cdr.export`: ``vms cdr export`` (CSV, JSONL), streamed;
- :mod:`engine.cdr.billing`: who a leg is billed to.

Nothing here imports Twisted: the store takes any ``IReactorTime``.
"""

from engine.cdr.record import FIELDS, OUTCOMES, LegRecord
from engine.cdr.store import CdrStore, StoreError

__all__ = ["FIELDS", "OUTCOMES", "CdrStore", "LegRecord", "StoreError"]
