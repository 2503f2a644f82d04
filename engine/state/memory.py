"""The in-process backend: the embedded default for a single ``vms serve``.

Plain dictionaries, answered at once with Deferreds that have already
fired. It keeps exactly the semantics of the Redis backend (the contract
tests run against both), leases and expiry included: in one process a
lease only expires if its holder forgot to release and stopped renewing,
and that must heal the same way everywhere. Lease times are whole
milliseconds of the injected clock, as in the Redis scripts, so the two
agree at the boundaries too.
"""

from __future__ import annotations

from collections.abc import Iterable

from twisted.internet.defer import Deferred, succeed

from engine.state.interface import DEFAULT_LEASE_TTL, Clock, expiry_ms, now_ms, ttl_ms

__all__ = ["MemoryState"]


class MemoryState:
    """A :class:`~engine.state.interface.SharedState` held in this process."""

    def __init__(self, clock: Clock, *, lease_ttl: float = DEFAULT_LEASE_TTL) -> None:
        self.clock = clock
        self._ttl = ttl_ms(lease_ttl)
        self.lease_ttl = lease_ttl
        # key -> lease -> expiry (ms); a lease is live while now < expiry.
        self._slots: dict[str, dict[str, int]] = {}

    def _live(self, key: str, now: int) -> dict[str, int]:
        """The key's holders with the expired ones dropped (as the acquire script does)."""
        holders = self._slots.get(key)
        if holders is None:
            return {}
        expired = [lease for lease, expiry in holders.items() if expiry <= now]
        for lease in expired:
            del holders[lease]
        if not holders:
            del self._slots[key]
        return holders

    def acquire(self, key: str, limit: int, lease: str) -> Deferred[bool]:
        now, expiry = expiry_ms(self.clock, self._ttl)
        holders = self._live(key, now)
        if lease in holders:
            holders[lease] = expiry
            return succeed(True)
        if len(holders) >= limit:
            return succeed(False)
        self._slots.setdefault(key, holders)[lease] = expiry
        return succeed(True)

    def release(self, key: str, lease: str) -> Deferred[None]:
        holders = self._slots.get(key)
        if holders is not None:
            holders.pop(lease, None)
            if not holders:
                del self._slots[key]
        return succeed(None)

    def count(self, key: str) -> Deferred[int]:
        return succeed(len(self._live(key, now_ms(self.clock))))

    def renew(self, leases: Iterable[tuple[str, str]]) -> Deferred[None]:
        now, expiry = expiry_ms(self.clock, self._ttl)
        for key, lease in leases:
            holders = self._slots.get(key)
            if holders is not None and holders.get(lease, now) > now:
                holders[lease] = expiry
        return succeed(None)

    def ready(self) -> Deferred[None]:
        return succeed(None)

    def close(self) -> Deferred[None]:
        self._slots.clear()
        return succeed(None)
