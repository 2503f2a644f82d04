"""Per-customer API tokens: ``Authorization: Bearer <customer-id>:<token>``.

The configuration holds only an scrypt hash of each token
(``customers.ID.api_token``, from ``vms passwd``). scrypt is slow on
purpose, so it runs in a thread and the reactor keeps serving; a token that
verified is remembered for a minute (as a SHA-256 of what was presented,
next to the hash it matched, so a changed hash takes effect at once), and
concurrent requests with the same token share one verification. Wrong
tokens are counted per source address: past ``max_failures`` in ``window``
seconds that address gets 429 without any scrypt work, which bounds both
guessing and the CPU a guesser can burn. Tokens never reach the log.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from twisted.internet import threads
from twisted.internet.defer import Deferred, succeed

from engine.failures import FailureWindow
from engine.passwords import DECOY_HASH, verify_password
from engine.ratelog import RateLimitedLog

__all__ = ["Auth", "TokenAuth"]

log = logging.getLogger("vms.api")


@dataclass(frozen=True)
class Auth:
    """The outcome: ``customer`` when the token is good, else an HTTP status and a sentence."""

    customer: str | None
    status: int = 200
    message: str = ""
    retry_after: int | None = None


def _verify_in_thread(reactor: Any) -> Callable[[str, str], Deferred[bool]]:
    def verify(token: str, stored: str) -> Deferred[bool]:
        pool = reactor.getThreadPool()
        result: Deferred[bool] = threads.deferToThreadPool(
            reactor, pool, verify_password, token, stored
        )
        return result

    return verify


class TokenAuth:
    """Checks bearer tokens against the customers' ``api_token`` hashes."""

    def __init__(
        self,
        reactor: Any,
        tokens: Mapping[str, str | None],
        verify: Callable[[str, str], Deferred[bool]] | None = None,
        cache_ttl: float = 60.0,
        max_failures: int = 5,
        window: float = 60.0,
    ) -> None:
        self.clock = reactor
        self.tokens = tokens
        self.verify = verify or _verify_in_thread(reactor)
        self.cache_ttl = cache_ttl
        #: customer -> (SHA-256 of the presented token, the hash it matched, valid until)
        self._verified: dict[str, tuple[bytes, str, float]] = {}
        self._pending: dict[bytes, list[Deferred[bool]]] = {}
        self._failures = FailureWindow(reactor, max_failures, window)
        #: source -> scrypt runs under way for it
        self._running: dict[str, int] = {}
        self._log = RateLimitedLog(log, reactor, interval=60.0)

    def check(self, header: bytes | None, source: str) -> Deferred[Auth]:
        """What the ``Authorization`` header from ``source`` is worth."""
        blocked = self._blocked(source)
        if blocked is not None:
            return succeed(blocked)
        if header is None:
            return succeed(Auth(None, 401, "this API needs 'Authorization: Bearer CUSTOMER:TOKEN'"))
        scheme, _, credentials = header.decode("latin-1").strip().partition(" ")
        customer, colon, token = credentials.strip().partition(":")
        if scheme.lower() != "bearer" or not colon or not token:
            return succeed(self._refuse(source, customer))
        known = self.tokens.get(customer)
        # An unknown customer costs the same scrypt as a known one: timing tells nothing.
        stored = known if known is not None else DECOY_HASH
        digest = hashlib.sha256(credentials.strip().encode()).digest()
        cached = self._verified.get(customer)
        now = self.clock.seconds()
        if (
            cached is not None
            and cached[1] == stored
            and cached[2] > now
            and hmac.compare_digest(cached[0], digest)
        ):
            return succeed(Auth(customer))
        result = self._verify_once(digest, token, stored, source)

        def decided(good: bool) -> Auth:
            if not good or known is None:
                return self._refuse(source, customer)
            self._verified[customer] = (digest, stored, self.clock.seconds() + self.cache_ttl)
            return Auth(customer)

        return result.addCallback(decided)

    def _verify_once(self, digest: bytes, token: str, stored: str, source: str) -> Deferred[bool]:
        """One scrypt run for all the requests that present the same token meanwhile.

        Runs count against ``source`` while they last, as failures do: many
        different tokens sent at once cannot queue more scrypt work than that.
        """
        waiters = self._pending.get(digest)
        mine: Deferred[bool] = Deferred()
        if waiters is not None:
            waiters.append(mine)
            return mine
        waiters = self._pending[digest] = [mine]
        self._running[source] = self._running.get(source, 0) + 1

        def share(good: bool) -> None:
            del self._pending[digest]
            self._running[source] -= 1
            if not self._running[source]:
                del self._running[source]
            for waiter in waiters:
                waiter.callback(good)

        def failed(failure: Any) -> None:
            log.error("API token check failed: %s", failure.getErrorMessage())
            share(False)

        self.verify(token, stored).addCallbacks(share, failed)
        return mine

    def _blocked(self, source: str) -> Auth | None:
        wait = self._failures.blocked(source, self._running.get(source, 0))
        if wait is None:
            return None
        return Auth(None, 429, f"too many tokens tried from {source}: wait {wait} s", wait)

    def _refuse(self, source: str, customer: str) -> Auth:
        self._failures.failed(source)
        # What came before the colon may be a token sent without one: name only known customers.
        named = f"customer '{customer}'" if customer in self.tokens else "an unknown customer"
        self._log.warning("bad-token", "API: a wrong token from %s for %s", source, named)
        return Auth(None, 401, "the API token is not valid")
