"""REGISTER in B2BUA mode: operators' softphones, with digest authentication (RFC 3261 §10.3).

An operator's ``softphone`` (``customers.ID.acm.operators.NAME.softphone``)
registers as its ``user``: the To URI's user part names the account before
anything is proved, so softphone users are unique across customers, and the
realm is the customer's id (HA1 = H(user:customer:password), ``vms passwd
--digest``). The digest username must be that same user. The accounts are
read at each REGISTER from a callable: ``vms serve`` gives the live ACM
(:func:`live_accounts`), so a softphone added, changed or deleted through
the API (or with its operator) takes effect at the next REGISTER.

The realm is the price of HA1s that work unchanged: a 401 names the
customer of a known user and the To host for an unknown one (and offers the
account's algorithms), so anyone can learn which users exist and their
customer's id; one realm for everyone would hide that but change every HA1
already configured (they are computed with the customer as realm), so users
and customer ids are not secrets, the passwords are.

Bindings go to the shared state (:class:`~engine.state.interface.Registrations`)
under the operator's address of record, ``OPERATOR@CUSTOMER``, so every
engine process reaches every phone; each binding keeps the address the
REGISTER's responses went to (its source when the phone asks for ``rport``,
RFC 3581, or uses TCP), which is where a phone behind a NAT can be reached.
The queue finds them with :func:`registered_contacts`.

A REGISTER is accepted from any source address (it authenticates), not only
from the configured peers: ``vms serve`` opens the method in the stack when
some customer has ACM. Failed attempts at a known account count per
(source address, To user) (:class:`~engine.failures.FailureWindow`): past
the limit, that pair gets 403 without any digest work until its failures
age out. Not per address alone: UDP sources are forged at will, and junk
credentials sent "from" an office's NAT address would lock out every
softphone behind it. (An unknown user costs no digest work and is not
counted, so it cannot crowd the accounts out of the bounded window.) Wrong
credentials for a known account are audited (``audit``, at most once per
account every ``audit_interval`` seconds, with the count of those in
between, so a forged flood cannot turn into a flood of writes). Neither
passwords, HA1s, responses nor unknown user names reach the log or the
audit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

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

__all__ = ["Account", "Registrar", "accounts_of", "aor_of", "live_accounts",
           "registered_contacts"]  # fmt: skip

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
    """Softphone user -> account, for every customer's operators (customer id -> settings).

    A user two customers claim (the checks of the file and of the API keep
    them apart; a file reloaded under API changes might not) belongs to
    neither: it is logged and left out rather than given to one at random.
    """
    out: dict[str, Account] = {}
    claimed: dict[str, list[str]] = {}
    for customer, settings in acm.items():
        for op in settings.operators.values():
            if op.softphone is not None:
                out[op.softphone.user] = Account(customer, op.name, op.softphone.ha1)
                claimed.setdefault(op.softphone.user, []).append(customer)
    for user, customers in claimed.items():
        if len(customers) > 1:
            del out[user]
            log.warning("softphone user '%s' is claimed by customers %s: it may not register "
                        "until only one has it", user, ", ".join(sorted(customers)))  # fmt: skip
    return out


def live_accounts(
    customers: Callable[[], Iterable[str]], settings: Callable[[str], AcmSettings | None]
) -> Callable[[], Mapping[str, Account]]:
    """The accounts of the live ACM settings (``AcmDirectory.settings``), as a callable.

    Rebuilt only when some customer's settings object changed (the directory
    replaces them on every change it loads), so a REGISTER costs one lookup
    per customer.
    """
    cached: list[Any] = [None, {}]

    def accounts() -> Mapping[str, Account]:
        current = tuple((cid, settings(cid)) for cid in customers())
        if current != cached[0]:  # identity first: equal objects compare only after a change
            acm = {cid: found for cid, found in current if found is not None}
            cached[:] = [current, accounts_of(acm)]
        found: Mapping[str, Account] = cached[1]
        return found

    return accounts


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


class Auditor(Protocol):
    """``audit(customer, caller, action, outcome, via, detail)``: ``ModeStore.audit``."""

    def __call__(self, customer: str | None, caller: str | None, action: str, outcome: str,
                 via: str, detail: str = "") -> None: ...  # fmt: skip


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
        accounts: Callable[[], Mapping[str, Account]],
        *,
        digest: DigestServer | None = None,
        failures: FailureWindow | None = None,
        min_expires: int = 60,
        max_expires: int = 3600,
        audit: Auditor | None = None,
        audit_interval: float = 10.0,
    ) -> None:
        self.clock = clock
        self.state = state
        self.accounts = accounts
        self.digest = digest or DigestServer(clock)
        self.failures = failures if failures is not None else \
            FailureWindow(clock, limit=10, window=60.0)  # fmt: skip
        self.min_expires = min_expires
        self.max_expires = max_expires
        self.audit = audit
        self.audit_interval = audit_interval
        #: (customer, operator) -> (when last audited, wrong attempts not audited since)
        self._audited: dict[tuple[str, str], tuple[float, int]] = {}
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
        try:
            to = request.to_address().uri
        except ValueError:
            raise _RefusedError(400, "Bad To") from None
        user = to.user or ""
        account = self.accounts().get(user)
        wait = self.failures.blocked((ip, user))
        if wait is not None:
            named = f"softphone '{user}'" if account is not None else "an unknown user"
            self.ratelog.warning("blocked", "REGISTER from %s for %s refused: too many failed "
                                 "attempts (for %d s more)", ip, named, wait)  # fmt: skip
            raise _RefusedError(403, "Too Many Failed Attempts")
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
            named = f"softphone '{user}' of customer '{realm}'" if account else "an unknown user"
            self.ratelog.warning("wrong", "REGISTER from %s: wrong credentials for %s",
                                 ip, named)  # fmt: skip
            if account is not None:  # an unknown user costs no digest work: not counted, so
                self.failures.failed((ip, user))  # junk cannot crowd the accounts out
                self._audit_wrong(account, user, ip)
            raise _RefusedError(403, "Wrong Credentials")
        return account

    def _audit_wrong(self, account: Account, user: str, ip: str) -> None:
        """Audit wrong credentials for ``account``: once per ``audit_interval`` at most."""
        if self.audit is None:
            return
        key = (account.customer, account.operator)
        now = self.clock.seconds()
        last, skipped = self._audited.get(key, (None, 0))
        if last is not None and now - last < self.audit_interval:
            self._audited[key] = (last, skipped + 1)
            return
        self._audited[key] = (now, 0)
        detail = f"{account.operator}: wrong credentials for softphone '{user}'"
        if skipped:
            detail += f" ({skipped} more since the last entry)"
        try:
            self.audit(account.customer, ip, "softphone-register", "refused", "sip", detail)
        except Exception as exc:  # the audit store failing must not fail the answer
            log.error("customer %s: a refused REGISTER of %s was not audited: %s",
                      account.customer, account.operator, exc)  # fmt: skip

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
