"""Operators log in, log out and take breaks by phone: a feature number, their id and PIN.

A customer's ``acm.feature_number`` is answered by the engine: the operator
keys the operator number (``operators.NAME.id``) and the PIN, each ended by
``#`` (RFC 4733, in-band tones or SIP INFO, type-ahead kept, ``*`` starts an
entry over), then one key: 1 log in, 2 log out, 3 break, 4 resume. The change
goes to the shared state through the same code as ``vms acm`` and the API,
so an operator in a call is refused in the same way; the engine says what
happened and hangs up.

Guessing is slowed three ways: three wrong tries end the call; wrong tries
are counted per calling number and per operator number of the customer
(``FailureWindow``), and past the limit the engine answers "locked" without
checking anything; an unknown operator number costs the same PIN check as a
known one, so the answers do not tell which ids exist. The PIN is checked
off the reactor (it may be an scrypt hash), never logged, and every attempt
is audited.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.acm.command import BusyError
from engine.calls.entry import PhoneService
from engine.failures import FailureWindow

if TYPE_CHECKING:
    from engine.acm.model import AcmSettings, Operator
    from engine.calls.call import Call
    from engine.calls.media import CallMedia

__all__ = ["PHONE_PROMPTS", "PHONE_PROMPT_DIR", "OperatorPhone", "OperatorPhoneRun"]

log = logging.getLogger("vms.acm")

#: The service's prompts by key (``media/prompts/operator/KEY.wav``).
PHONE_PROMPTS = ("operator_id", "pin", "choose", "logged_in", "logged_out", "on_break",
                 "refused", "wrong", "locked", "goodbye")  # fmt: skip
#: The shipped prompts (English, made with espeak-ng and sox; see DEVELOPERS.md).
PHONE_PROMPT_DIR = Path(__file__).resolve().parents[2] / "media" / "prompts" / "operator"
#: Wrong operator number or PIN tries in one call before the engine hangs up.
MAX_TRIES = 3
#: The key chosen -> the operator's new state, and what the engine says then.
CHOICES = {"1": ("available", "logged_in"), "2": ("logged_out", "logged_out"),
           "3": ("break", "on_break"), "4": ("available", "logged_in")}  # fmt: skip


@dataclass
class OperatorPhone:
    """What the service needs, gathered once by ``vms serve``."""

    #: Feature number -> the customer whose operators call it.
    numbers: Mapping[str, str]
    #: Prompt paths by key (PHONE_PROMPTS), loaded with the trees' prompts.
    prompts: Mapping[str, str]
    #: The customer's live ACM settings (the directory).
    settings_of: Callable[[str], AcmSettings | None]
    #: ``verify(customer, operator, digits)``: a Deferred firing True or False, off the reactor.
    verify: Callable[[str, str, str], Any]
    #: ``act(customer, operator, state)``: a Deferred; BusyError when the operator is in a call.
    act: Callable[[str, Operator, str], Any]
    #: ``audit(customer, caller, action, outcome, detail)``.
    audit: Callable[[str, str, str, str, str], None]
    #: Wrong tries per caller and per customer's operator number.
    failures: FailureWindow
    #: PIN checks under way per source: they count as failures until they are not, so
    #: parallel calls get no more tries than the limit.
    pending: dict[str, int] = field(default_factory=dict)


class OperatorPhoneRun(PhoneService):
    """The service on one call."""

    NAME = "operator phone service"

    def __init__(self, call: Call, media: CallMedia, svc: OperatorPhone) -> None:
        super().__init__(call, media, svc.prompts)
        self.svc = svc
        self.customer = call.customer
        self.caller = call.caller or "anonymous"
        self.operator: Operator | None = None
        self.keyed = ""
        self.tries = 0

    def start(self) -> None:
        if self._locked(""):
            return
        self._ask("operator_id", self._id_keyed)

    # -- the dialogue ---------------------------------------------------------------------

    def _bye(self, why: str) -> None:
        self._say("goodbye", lambda: self._end(why))

    def _sources(self, keyed: str) -> list[str]:
        return [f"caller {self.caller}", f"operator {self.customer}/{keyed}"]

    def _locked(self, keyed: str) -> bool:
        sources = self._sources(keyed) if keyed else self._sources("")[:1]
        pending = self.svc.pending
        if all(self.svc.failures.blocked(s, pending.get(s, 0)) is None for s in sources):
            return False
        self.svc.audit(self.customer, self.caller, "operator-login", "locked", keyed)
        self._say("locked", lambda: self._end("locked after wrong tries"))
        return True

    def _id_keyed(self, keyed: str | None) -> None:
        if keyed is None:
            self._bye("no operator number keyed")
            return
        self.keyed = keyed
        if self._locked(keyed):
            return
        settings = self.svc.settings_of(self.customer)
        operators = settings.operators.values() if settings is not None else ()
        self.operator = next((op for op in operators if op.id == keyed), None)
        self._ask("pin", self._pin_keyed)

    def _pin_keyed(self, pin: str | None) -> None:
        if pin is None:
            self._bye("no PIN keyed")
            return
        if self._locked(self.keyed):  # other calls' checks may have locked it meanwhile
            return
        name = self.operator.name if self.operator is not None else ""
        sources = self._sources(self.keyed)
        for source in sources:
            self.svc.pending[source] = self.svc.pending.get(source, 0) + 1
        d = self.svc.verify(self.customer, name, pin)  # an unknown id costs the same
        d.addBoth(self._settled, sources)
        d.addCallback(self._checked)
        d.addErrback(self._failed)

    def _settled(self, result: Any, sources: list[str]) -> Any:
        for source in sources:
            left = self.svc.pending.get(source, 1) - 1
            if left > 0:
                self.svc.pending[source] = left
            else:
                self.svc.pending.pop(source, None)
        return result

    def _checked(self, right: bool) -> None:
        if not right or self.operator is None:  # counted and audited even if the caller left
            for source in self._sources(self.keyed):
                self.svc.failures.failed(source)
            self.svc.audit(self.customer, self.caller, "operator-login", "refused",
                           f"operator number {self.keyed}: wrong number or PIN")  # fmt: skip
            if self.stopped:
                return
            self.tries += 1
            if self.tries >= MAX_TRIES:
                self._say("wrong", lambda: self._bye("too many wrong tries"))
            else:
                self._say("wrong", lambda: self._ask("operator_id", self._id_keyed))
            return
        self.svc.audit(self.customer, self.caller, "operator-login", "ok", self.operator.name)
        if not self.stopped:
            self._ask("choose", self._chosen, terminator=None, max_keys=1)

    def _chosen(self, key: str | None) -> None:
        choice = CHOICES.get(key or "")
        if choice is None or self.operator is None:
            self._bye("no choice keyed" if key is None else f"key {key} chooses nothing")
            return
        state, said = choice
        operator = self.operator
        d = self.svc.act(self.customer, operator, state)

        def done(_: Any) -> None:
            self.svc.audit(self.customer, self.caller, f"operator-{state}", "ok", operator.name)
            log.info("ACM: %s/%s is %s (by phone from %s)", self.customer, operator.name,
                     state, self.caller)  # fmt: skip
            if not self.stopped:
                self._say(said, lambda: self._bye("done"))

        def refused(failure: Any) -> None:
            if not failure.check(BusyError):
                self._failed(failure)
                return
            self.svc.audit(self.customer, self.caller, f"operator-{state}", "refused",
                           f"{operator.name}: {failure.getErrorMessage()}")  # fmt: skip
            if not self.stopped:
                self._say("refused", lambda: self._bye("refused"))

        d.addCallbacks(done, refused)

    def _failed(self, failure: Any) -> None:
        log.error("call %s: the operator phone service failed: %s", self.call.call_id,
                  failure.getErrorMessage())  # fmt: skip
        if not self.stopped:
            self._say("refused", lambda: self._bye("the state could not be changed"))
