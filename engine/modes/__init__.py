"""Customer modes (normal, DRS, Voice Continuity) and ported numbers, shared by every process.

- :mod:`engine.modes.store`: :class:`ModeStore`, ``DATA_DIR/modes.sqlite``:
  modes with their end, ported numbers, the DRS password lockout, the audit;
- :mod:`engine.modes.migrations`: its schema, as numbered migrations;
- :mod:`engine.modes.watcher`: :class:`ModeWatcher`, an engine's in-memory
  view, polled, that ends modes when due and reports each change once;
- :mod:`engine.modes.entitlement`: which formulas may use DRS and Voice Continuity;
- :mod:`engine.modes.command`: ``vms drs``, ``vms continuity``, ``vms number``.

Only the store is imported here: it needs neither Twisted nor the configuration.
"""

from engine.modes.store import (
    MODES,
    AuditEntry,
    ModeChange,
    ModeState,
    ModeStore,
    ModeStoreError,
)

__all__ = ["MODES", "AuditEntry", "ModeChange", "ModeState", "ModeStore", "ModeStoreError"]
