"""Keeping this process's leases alive, so only a dead process loses them.

Slots are held under leases that expire ``lease_ttl`` seconds after their
last renewal: that is what frees the slots of a process that crashed. A
living process must therefore renew what it holds, and must know what it
holds. :class:`LeaseKeeper` is the front the call controller uses: it
passes acquire and release through to the state, remembers the leases
that are (or may be) held, and renews them all every ``lease_ttl / 3``
seconds in one call, so a lease survives two lost renewals in a row.

A lease is remembered from the moment its acquire is sent, not when the
answer comes: a release sent meanwhile forgets it, and the late answer
does not bring it back. Renewing a lease the backend no longer holds is
harmless (renewal never takes a slot).
"""

from __future__ import annotations

import logging
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from engine.state.interface import CallCounters, Clock

__all__ = ["LeaseKeeper"]

log = logging.getLogger("vms.state")


class LeaseKeeper:
    """Acquire and release through this, and ``start()`` it, to keep held slots alive."""

    def __init__(self, state: CallCounters, clock: Clock, interval: float | None = None) -> None:
        self.state = state
        self.interval = state.lease_ttl / 3 if interval is None else interval
        self.clock = clock
        self._held: dict[tuple[str, str], None] = {}
        self._call: Any = None
        self._running = False

    @property
    def held(self) -> list[tuple[str, str]]:
        """The ``(key, lease)`` pairs held or being acquired, oldest first."""
        return list(self._held)

    def acquire(self, key: str, limit: int, lease: str) -> Deferred[bool]:
        """:meth:`SharedState.acquire`, remembering the lease while it is held."""
        pair = (key, lease)
        self._held[pair] = None

        def answered(ok: bool) -> bool:
            if not ok:
                self._held.pop(pair, None)
            return ok

        def failed(failure: Failure) -> Failure:
            # The acquire may have taken effect: the lease expires on its own.
            self._held.pop(pair, None)
            return failure

        return self.state.acquire(key, limit, lease).addCallbacks(answered, failed)

    def release(self, key: str, lease: str) -> Deferred[None]:
        """:meth:`SharedState.release`, forgetting the lease at once."""
        self._held.pop((key, lease), None)
        return self.state.release(key, lease)

    def renew(self) -> Deferred[None]:
        """Renew every held lease now; a failure is logged, the next round tries again."""

        def failed(failure: Failure) -> None:
            log.warning("renewing %d lease(s) failed: %s", len(self._held),
                        failure.getErrorMessage())  # fmt: skip

        return self.state.renew(self.held).addErrback(failed)

    def start(self) -> None:
        """Renew every ``interval`` seconds from now on (the first renewal after one interval)."""
        if not self._running:
            self._running = True
            self._call = self.clock.callLater(self.interval, self._tick)

    def stop(self) -> None:
        """Stop renewing (at shutdown, after the calls are released)."""
        self._running = False
        if self._call is not None and self._call.active():
            self._call.cancel()
        self._call = None

    def _tick(self) -> None:
        # The next round is counted from the end of this one: rounds never overlap.
        self._call = None
        self.renew().addBoth(self._next)

    def _next(self, _result: object) -> None:
        if self._running and self._call is None:
            self._call = self.clock.callLater(self.interval, self._tick)

    def __repr__(self) -> str:
        return f"<LeaseKeeper {len(self._held)} lease(s) every {self.interval:g} s>"
