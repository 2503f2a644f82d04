"""DRS by phone: a customer keys its customer number and password and reroutes all its numbers.

Calls to ``drs.service_number`` are answered by the engine, which asks for
the customer number, then the password, each ended by ``#`` (RFC 4733,
in-band tones or SIP INFO; type-ahead kept, ``*`` starts an entry over). A
right password switches the customer to ``drs`` mode in the shared mode
store (``engine.modes``) until ``max_days`` from now: every engine sees it
within a second and the trees' ``mode: drs`` rules take effect. When DRS is
active already, the caller is told so and ``1`` switches it off. Wrong
passwords are counted for the customer and for the calling number; at the
limit the phone path locks for a while, whatever password comes next. Every
attempt is audited. A customer number nobody has is answered exactly like a
wrong password, after the same password check, and locks the same way, so
the answers do not tell which numbers exist. Each attempt is counted before
its check, in one transaction with the lock test, so parallel calls (or
engines) get no more tries than the limit. The password is checked off the reactor thread (scrypt
is slow on purpose) and never logged.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from engine.calls.entry import PhoneService
from engine.passwords import DECOY_HASH

if TYPE_CHECKING:
    from engine.calls.call import Call
    from engine.calls.media import CallMedia

__all__ = ["DrsRun", "DrsService"]

log = logging.getLogger(__name__)

DAY = 86400.0
#: Passwords tried in one call before the engine hangs up (the lock counts across calls).
MAX_TRIES = 3


class Customer(Protocol):
    """A configured customer, as far as the service reads it."""

    @property
    def id(self) -> str: ...

    @property
    def drs_password(self) -> str | None: ...


class Modes(Protocol):
    """The part of ``engine.modes.store.ModeStore`` the service uses."""

    def get(self, customer: str) -> Any: ...

    def set_mode(self, customer: str, mode: str, until: float | None, by: str,
                 via: str) -> Any: ...  # fmt: skip

    def audit(self, customer: str | None, caller: str | None, action: str, outcome: str,
              via: str, detail: str = "") -> None: ...  # fmt: skip

    def locked_until(self, customer: str | None, caller: str | None, attempts: int = 3,
                     minutes: float = 15) -> float | None: ...  # fmt: skip

    def begin_attempt(self, customer: str, caller: str, attempts: int = 3,
                      minutes: float = 15) -> tuple[int | None, float | None]: ...  # fmt: skip

    def attempt_succeeded(self, attempt: int, customer: str) -> None: ...


@dataclass
class DrsService:
    """What the DRS phone service needs, gathered once by ``vms serve``."""

    service_number: str
    #: Prompt paths by role (customer_number, password, activated, already_active,
    #: deactivated, wrong_password, locked, goodbye), loaded with the trees' prompts.
    prompts: Mapping[str, str]
    max_days: int
    lockout: tuple[int, float]  # wrong passwords, minutes
    store: Modes
    #: Customers by the number they key in.
    customers: Mapping[str, Customer]
    #: ``verify(password, hash)``: a Deferred firing True or False, computed off the reactor.
    verify: Callable[[str, str], Any]
    #: Why a customer may not use DRS (its formula), or None.
    entitled: Callable[[Customer], str | None]
    #: Told of every mode change (the e-mails, the engine's own refresh).
    on_change: Callable[[Any], None]


class DrsRun(PhoneService):
    """The service on one call."""

    NAME = "DRS service"

    def __init__(self, call: Call, media: CallMedia) -> None:
        assert call.ctx.drs is not None
        super().__init__(call, media, call.ctx.drs.prompts)
        self.svc = call.ctx.drs
        self.customer: Customer | None = None
        self.caller = call.caller
        self.keyed = ""  # the customer number as keyed
        self.tries = 0

    def start(self) -> None:
        self._ask("customer_number", self._customer_keyed)

    # -- the dialogue ---------------------------------------------------------------------

    def _customer_keyed(self, number: str | None) -> None:
        if number is None:
            self._audit(None, "login", "abandoned", "no customer number keyed")
            self._end("no customer number")
            return
        self.keyed = number
        self.customer = self.svc.customers.get(number)
        self._ask("password", self._password_keyed)

    def _password_keyed(self, password: str | None) -> None:
        customer = self.customer
        cid = customer.id if customer is not None else None
        if password is None:
            self._audit(cid, "login", "abandoned", "no password keyed")
            self._end("no password")
            return
        self.tries += 1
        attempts, minutes = self.svc.lockout
        # An unknown customer number is counted under its own key and locks the same way,
        # and callers who withhold their number share one count: no oracle, no free tries.
        keys = (cid or f"unknown {self.keyed}", self.caller or "anonymous")
        try:
            attempt, _ = self.svc.store.begin_attempt(*keys, attempts, minutes)
        except sqlite3.Error as exc:
            self._store_failed(exc)
            return
        if attempt is None:
            self._audit(cid, "login", "locked", "attempt while locked")
            self._say("locked", lambda: self._end("locked"))
            return
        keyed_at = self.entry.ended_at if self.entry is not None else None
        stored = customer.drs_password if customer is not None else None
        d = self.svc.verify(password, stored or DECOY_HASH)
        d.addCallback(lambda ok: self._checked(bool(ok) and stored is not None, keyed_at,
                                               attempt, keys))  # fmt: skip
        d.addErrback(self._check_failed)

    def _check_failed(self, failure: Any) -> None:
        log.error("DRS service: the password check failed: %s", failure.getErrorMessage())
        if not self.stopped:
            self._end("the password check failed")

    def _store_failed(self, exc: Exception) -> None:
        log.error("DRS service: the mode store failed: %s", exc)
        if not self.stopped:
            self._say("goodbye", lambda: self._end("the mode store failed"))

    def _checked(self, right: bool, keyed_at: float | None, attempt: int,
                 keys: tuple[str, str]) -> None:  # fmt: skip
        try:
            self._decide(right, keyed_at, attempt, keys)
        except sqlite3.Error as exc:
            self._store_failed(exc)

    def _decide(self, right: bool, keyed_at: float | None, attempt: int,
                keys: tuple[str, str]) -> None:  # fmt: skip
        customer = self.customer
        store = self.svc.store
        if not right or customer is None:  # counted already, by begin_attempt
            self._audit(None if customer is None else customer.id, "login", "wrong password",
                        "" if customer is not None else f"customer number {self.keyed}")
            if self.stopped:
                return
            attempts, minutes = self.svc.lockout
            if store.locked_until(*keys, attempts, minutes) is not None:
                self._audit(None if customer is None else customer.id, "login", "locked",
                            f"{attempts} wrong passwords")  # fmt: skip
                self._say("locked", lambda: self._end("locked"))
            elif self.tries >= MAX_TRIES:
                self._say("goodbye", lambda: self._end(f"{MAX_TRIES} wrong passwords in one call"))
            else:
                self._say("wrong_password", lambda: self._ask("customer_number",
                                                               self._customer_keyed))  # fmt: skip
            return
        store.attempt_succeeded(attempt, customer.id)
        if self.stopped:  # hung up during the check: nothing switched, nothing counted
            self._audit(customer.id, "login", "abandoned", "hung up during the password check")
            return
        problem = self.svc.entitled(customer)
        if problem is not None:
            self._audit(customer.id, "login", "not entitled", problem)
            self._say("goodbye", lambda: self._end("not entitled"))
            return
        if store.get(customer.id).mode == "drs":
            self._audit(customer.id, "login", "ok", "DRS already active")
            self._ask("already_active", self._choice, terminator=None, max_keys=1)
            return
        self._switch(customer.id, "drs", keyed_at)

    def _choice(self, key: str | None) -> None:
        customer = self.customer
        assert customer is not None
        if key == "1":
            keyed_at = self.entry.ended_at if self.entry is not None else None
            self._switch(customer.id, "normal", keyed_at)
        else:
            self._audit(customer.id, "deactivate", "declined", "")
            self._say("goodbye", lambda: self._end("DRS left active"))

    def _switch(self, cid: str, mode: str, keyed_at: float | None) -> None:
        now = self.call.ctx.now()
        until = now + self.svc.max_days * DAY if mode == "drs" else None
        by = f"phone {self.caller or 'anonymous'}"
        change = self.svc.store.set_mode(cid, mode, until, by, "phone")
        latency = f"{now - keyed_at:.3f} s after the last key" if keyed_at is not None else ""
        log.info("DRS service: customer %s switched to %s by phone from %s (%s)", cid, mode,
                 self.caller or "anonymous", latency)  # fmt: skip
        if change is not None:
            self.svc.on_change(change)
        prompt = "activated" if mode == "drs" else "deactivated"
        self._say(prompt, lambda: self._end(f"{prompt}"))

    def _audit(self, cid: str | None, action: str, outcome: str, detail: str) -> None:
        self.svc.store.audit(cid, self.caller, f"drs-{action}", outcome, "phone", detail)
