"""Site health: OPTIONS probes, up/down states, and the destinations behind down sites.

- ``health.py``: the sans-IO core (:class:`SiteTable`, the state table);
- ``prober.py``: the Twisted edge that probes and writes ``DATA_DIR/sites.json``;
- ``command.py``: ``vms sites``, which reads that file.

Only the sans-IO core is imported here, so the configuration can use
:class:`Site` without pulling in Twisted.
"""

from engine.sites.health import DOWN, UNKNOWN, UP, Site, SiteTable, Transition, probe_succeeded

__all__ = ["DOWN", "UNKNOWN", "UP", "Site", "SiteTable", "Transition", "probe_succeeded"]
