"""REGISTER in B2BUA mode: operators' softphones, with digest authentication (RFC 3261 §10.3).

An operator's ``softphone`` (``customers.ID.acm.operators.NAME.softphone``)
registers as its ``user``: the To URI's user part names the account before
anything is proved, so softphone users are unique across customers, and the
realm is the customer's id (HA1 = H(user:customer:password), ``vms passwd
--digest``). The digest username must be that same user.

Bindings go to the shared state (:class:`~engine.state.interface.Registrations`)
under the operator's address of record, ``OPERATOR@CUSTOMER``, so every
engine process reaches every phone; each binding keeps the address the
REGISTER's responses went to (its source when the phone asks for ``rport``,
RFC 3581, or uses TCP), which is where a phone behind a NAT can be reached.
The queue finds them with :func:`registered_contacts`.

A REGISTER is accepted from any source address (it authenticates), not only
from the configured peers: ``vms serve`` opens the method in the stack when
some customer has softphones. Failed attempts count per source address
(:class:`~engine.failures.FailureWindow`): past the limit, that address gets
403 without any digest work until its failures age out. Neither passwords,
HA1s nor unknown user names reach the log.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, gatherResults

from engine.acm.model import AcmSettings
from engine.failures import FailureWindow
from engine.ratelog import RateLimitedLog
from engine.sip.digest import ALGORITHMS, DigestError, DigestServer, Verdict, parse_authorization
from engine.sip.headers import parse_address
from engine.sip.message import Request
from engine.sip.transaction import ServerNonInvite
from engine.sip.validate import Refusal
from engine.state.interface import Registrations

__all__ = ["Account", "Registrar", "accounts_of", "aor_of", "registered_contacts"]

log = logging.getLogger(__name__)

Address = tuple[str, int]


@dataclass(frozen=True)
class Account:
    """A softphone as the registrar knows it: whose it is, and its HA1 per algorithm."""

    customer: str
    operator: str
    ha1: Mapping[str, str]


def aor_of(customer: str, operator: str) -> str:
    """The address of record an operator's softphone registers under."""
    return f"{operator}@{customer}"


def accounts_of(acm: Mapping[str, AcmSettings]) -> dict[str, Account]:
    """Softphone user -> account, for every customer's operators (customer id -> settings)."""
    return {
        op.softphone.user: Account(customer, op.name, op.softphone.ha1)
        for customer, settings in acm.items()
        for op in settings.operators.values()
        if op.softphone is not None
    }


def registered_contacts(
    state: Registrations, customer: str, operator: str
) -> Deferred[list[tuple[str, Address]]]:
    """Where the operator's softphone can be called now: (Contact URI, address to send to).

    Send the INVITE with the Contact as Request-URI to the address (the
    phone's public side when it is behind a NAT). Empty when no softphone is
    registered; the state's failure when it cannot be read.
    """
    d = state.bindings(aor_of(customer, operator))
    return d.addCallback(lambda found: [(b.contact, b.source) for b in found])


class _RefusedError(Exception):
    """A REGISTER answered before any binding changed: a challenge or an error."""

    def __init__(self, status: int, reason: str | None = None, *headers: tuple[str, str]):
        super().__init__(status)
        self.refusal = Refusal(status, reason, headers)


class Registrar:
    """Answers REGISTER requests: challenge, verify, store the bindings, list them."""

    def __init__(
        self,
        clock: Any,
        state: Registrations,
        accounts: Mapping[str, Account],
        *,
        digest: DigestServer | None = None,
        failures: FailureWindow | None = None,
        min_expires: int = 60,
        max_expires: int = 3600,
    ) -> None:
        self.clock = clock
        self.state = state
        self.accounts = accounts
        self.digest = digest or DigestServer(clock)
        self.failures = failures or FailureWindow(clock, limit=10, window=60.0)
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.ratelog = RateLimitedLog(log, clock)

    def register(self, txn: ServerNonInvite, request: Request, to_tag: str) -> None:
        """Answer ``request`` through ``txn``, now or once the shared state has answered."""

        def respond(refusal: Refusal) -> None:
            response = request.response(refusal.status, refusal.reason, to_tag)
            for name, value in refusal.headers:
                response.add(name, value)
            txn.respond(response)

        try:
            account = self._authenticate(txn.addr[0], request)
            changes = self._changes(request)
        except _RefusedError as refused:
            respond(refused.refusal)
            return
        d = self._apply(aor_of(account.customer, account.operator), changes, txn.addr)

        def answer(bindings: list[tuple[str, int]]) -> None:
            response = request.response(200, None, to_tag)
            for contact, expires in bindings:
                response.add("contact", f"<{contact}>;expires={expires}")
            txn.respond(response)

        def failed(failure: Any) -> None:
            log.error("REGISTER of %s: the shared state failed: %s", account.operator,
                      failure.getErrorMessage())  # fmt: skip
            respond(Refusal(500, "Registrations Unavailable", (("retry-after", "5"),)))

        d.addCallbacks(answer, failed)

    # -- authentication --------------------------------------------------------

    def _authenticate(self, ip: str, request: Request) -> Account:
        """The account the request proved; _RefusedError with a challenge (401) or an error."""
        wait = self.failures.blocked(ip)
        if wait is not None:
            self.ratelog.warning("blocked", "REGISTER from %s refused: too many failed "
                                 "attempts (for %d s more)", ip, wait)  # fmt: skip
            raise _RefusedError(403, "Too Many Failed Attempts")
        try:
            to = request.to_address().uri
        except ValueError:
            raise _RefusedError(400, "Bad To") from None
        user = to.user or ""
        account = self.accounts.get(user)
        realm = account.customer if account is not None else to.host
        algorithms = tuple(account.ha1) if account is not None else tuple(ALGORITHMS)
        credentials = None
        for value in request.headers.get("authorization", ()):
            try:
                parsed = parse_authorization(value)
            except DigestError:
                raise _RefusedError(400, "Malformed Authorization") from None
            if parsed.realm == realm:
                credentials = parsed
        if credentials is None:
            raise self._challenge(realm, algorithms, stale=False)
        verdict = Verdict.WRONG
        if credentials.username == user:
            ha1s = account.ha1 if account is not None else {}
            verdict = self.digest.verify(credentials, "REGISTER", request.uri, realm, ha1s)
        if verdict is Verdict.STALE:
            raise self._challenge(realm, algorithms, stale=True)
        if verdict is Verdict.WRONG or account is None:
            self.failures.failed(ip)
            named = f"softphone '{user}' of customer '{realm}'" if account else "an unknown user"
            self.ratelog.warning("wrong", "REGISTER from %s: wrong credentials for %s",
                                 ip, named)  # fmt: skip
            raise _RefusedError(403, "Wrong Credentials")
        return account

    def _challenge(self, realm: str, algorithms: tuple[str, ...], stale: bool) -> _RefusedError:
        challenges = self.digest.challenges(realm, algorithms, stale)
        return _RefusedError(401, None, *(("www-authenticate", value) for value in challenges))

    # -- bindings --------------------------------------------------------------

    def _changes(self, request: Request) -> list[tuple[str | None, int]]:
        """(contact or None for all, expires; 0 removes) for each Contact, checked first."""
        default = self.max_expires
        header = request.get("expires")
        if header is not None:
            default = _seconds(header.strip(), "Bad Expires")
        try:
            contacts = request.values("contact")
        except ValueError:  # an unterminated quoted string
            raise _RefusedError(400, "Bad Contact") from None
        if contacts == ["*"]:
            if header is None or default != 0:
                raise _RefusedError(400, "Wildcard Contact Needs Expires 0")
            return [(None, 0)]
        changes: list[tuple[str | None, int]] = []
        for value in contacts:
            try:
                address = parse_address(value)
            except ValueError:
                raise _RefusedError(400, "Bad Contact") from None
            given = address.params.get("expires")
            expires = default if given is None else _seconds(given, "Bad Contact Expires")
            if 0 < expires < self.min_expires:
                raise _RefusedError(423, None, ("min-expires", str(self.min_expires)))
            changes.append((str(address.uri), min(expires, self.max_expires)))
        return changes

    def _apply(
        self, aor: str, changes: list[tuple[str | None, int]], source: Address
    ) -> Deferred[list[tuple[str, int]]]:
        """Make the changes, then read the bindings back: (contact, seconds left) each."""
        pending = []
        for contact, expires in changes:
            if expires == 0 or contact is None:
                pending.append(self.state.unbind(aor, contact))
            else:
                pending.append(self.state.bind(aor, contact, source, expires))
            log.info("softphone %s %s %s from %s:%d", aor, "bound" if expires else "unbound",
                     contact or "(every contact)", source[0], source[1])  # fmt: skip
        d: Deferred[Any] = gatherResults(pending, consumeErrors=True)
        d.addCallback(lambda _r: self.state.bindings(aor))
        return d.addCallback(lambda found: [(b.contact, b.expires) for b in found])


def _seconds(text: str, reason: str) -> int:
    if not text.isdigit() or len(text) > 10:
        raise _RefusedError(400, reason)
    return int(text)
