"""``state:`` in the configuration, from text to an open backend.

``memory`` is the in-process backend; ``redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]``
is a Redis server and database (port 6379 and database 0 by default;
percent-escapes in the user and password are decoded): see
``engine/state/url.py``, which checks a value without connecting.
"""

from __future__ import annotations

from typing import Any

from engine.state.interface import DEFAULT_LEASE_TTL, SharedState
from engine.state.memory import MemoryState
from engine.state.redis import RedisClient
from engine.state.redis_state import RedisState
from engine.state.url import StateURL, parse_state_url

__all__ = ["StateURL", "open_state", "parse_state_url"]

def open_state(url: str, reactor: Any, *, lease_ttl: float = DEFAULT_LEASE_TTL) -> SharedState:
    """The backend ``url`` names, on ``reactor`` (its clock and its network).

    A Redis backend starts connecting at once and reconnects by itself;
    ``state.ready()`` fires when it is up.
    """
    where = parse_state_url(url)
    if where.kind == "memory":
        return MemoryState(reactor, lease_ttl=lease_ttl)
    client = RedisClient(reactor, where.host, where.port, db=where.db,
                         username=where.username, password=where.password)  # fmt: skip
    return RedisState(client, reactor, lease_ttl=lease_ttl)
