"""E-mail to a customer's contacts when its DRS or Voice Continuity mode changes.

Whoever makes the change (a phone call, the command line, the HTTP API or
the expiry schedule), the customer must learn at once that its calls are
rerouted, or no longer are, and how to undo it. Mail is best effort: a
server that is down or refuses is logged (at most once a minute) and never
stops or fails the change itself. SMTP passwords and session logs (which
hold the AUTH exchange) never reach the log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from io import BytesIO
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.mail.smtp import ESMTPSenderFactory, SMTPClientError
from twisted.python.failure import Failure

from engine.ratelog import RateLimitedLog

if TYPE_CHECKING:
    from engine.config import SmtpSettings
    from engine.modes.store import ModeChange

__all__ = ["Mailer", "compose"]

log = logging.getLogger("vms.notify")

_NAMES = {"normal": "normal routing", "drs": "DRS", "continuity": "Voice Continuity"}
_OFF = {"drs": "vms drs deactivate", "continuity": "vms continuity off"}
_VERBS = {"drs": ("activated", "deactivated"), "continuity": ("switched on", "switched off")}


class Mailer:
    """Sends plain-text mail through the configured SMTP server (``smtp:``)."""

    def __init__(self, reactor: Any, settings: SmtpSettings, timeout: float = 30.0) -> None:
        self.reactor = reactor
        self.settings = settings
        self.timeout = timeout
        self._failures = RateLimitedLog(log, reactor, interval=60.0)

    def send(self, to: Sequence[str], subject: str, body: str) -> Deferred[bool]:
        """Fires True once the server accepted the message, False (logged) when it did not.

        Never errbacks: a notification must not break what triggered it.
        """
        s = self.settings
        done: Deferred[Any] = Deferred()
        try:
            message = self._message(to, subject, body)
            tls = _tls_options(s.host) if s.starttls else None
        except (ValueError, ImportError) as exc:  # a header with a line break; no TLS support
            done.errback(exc)
        else:
            factory = ESMTPSenderFactory(  # type: ignore[no-untyped-call]
                s.username.encode() if s.username else None,
                s.password.encode() if s.password else None,
                s.sender,
                list(to),
                BytesIO(message),
                done,
                retries=0,  # Twisted retries at once, which does not help a server that is down
                timeout=self.timeout,
                contextFactory=tls,
                heloFallback=True,
                requireAuthentication=s.username is not None,
                requireTransportSecurity=s.starttls,
            )
            self.reactor.connectTCP(s.host, s.port, factory, timeout=self.timeout)
        return done.addCallbacks(lambda _: True, self._failed, errbackArgs=(list(to), subject))

    def _message(self, to: Sequence[str], subject: str, body: str) -> bytes:
        message = EmailMessage()
        message["From"] = self.settings.sender
        message["To"] = ", ".join(to)
        message["Subject"] = subject
        message["Date"] = formatdate(self.reactor.seconds(), usegmt=True)
        message["Message-ID"] = make_msgid(domain=self.settings.sender.rpartition("@")[2] or "vms")
        message["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies
        message.set_content(body)
        return bytes(message)

    def _failed(self, failure: Failure, to: list[str], subject: str) -> bool:
        self._failures.warning(
            "smtp", "could not e-mail %r to %s through %s:%d: %s", subject, ", ".join(to),
            self.settings.host, self.settings.port, _describe(failure),
        )  # fmt: skip
        return False

    def mode_changed(
        self,
        customer: str,
        contacts: Sequence[str],
        change: ModeChange,
        service_number: str | None,
    ) -> Deferred[bool] | None:
        """E-mails ``change`` to ``contacts``; None (nothing sent) when there are none."""
        if not contacts:
            return None
        subject, body = compose(customer, change, service_number)
        return self.send(contacts, subject, body)


def _tls_options(host: str) -> Any:
    """Certificate-checking client TLS; ImportError when pyOpenSSL is not installed."""
    try:
        from twisted.internet.ssl import optionsForClientTLS  # noqa: PLC0415 - optional
    except ImportError as exc:
        raise ImportError("smtp.starttls needs pyOpenSSL (pip install 'twisted[tls]')") from exc
    return optionsForClientTLS(host)


def _describe(failure: Failure) -> str:
    """The server's answers, without the session log (it holds the AUTH exchange)."""
    error = failure.value
    # A failed AUTH or STARTTLS reaches us wrapped in a connection error.
    for candidate in (error, error.__cause__ if error is not None else None):
        if isinstance(candidate, SMTPClientError):
            return _answers(candidate)
    return failure.getErrorMessage()


def _answers(error: SMTPClientError) -> str:
    resp = error.resp.decode("utf-8", "replace")
    said = [f"{error.code:03d} {resp}" if error.code > 0 else resp]
    addresses: Any = error.addresses or ()  # (address, code, answer) for each RCPT
    for address, code, answer in addresses:
        if not 200 <= code < 300:
            said.append(f"{address.decode('utf-8', 'replace')}: {code:03d} "
                        f"{answer.decode('utf-8', 'replace')}")  # fmt: skip
    return "; ".join(said)


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(at))


def _who(via: str, by: str) -> str:
    """How a change was made, from the store's ``via`` and ``by`` ("phone +32...", "cli alice")."""
    if via == "expiry":
        return "automatically: its end date was reached"
    if via == "phone":
        caller = by.removeprefix("phone").strip()
        known = caller and caller != "anonymous"
        return f"by telephone, from {caller}" if known else "by telephone, from a hidden number"
    if via == "cli":
        user = by.removeprefix("cli").strip()
        return "with the vms command line" + (f", by {user}" if user else "")
    if via == "api":
        return "through the HTTP API"
    return f"via {via} ({by})"


def compose(customer: str, change: ModeChange, service_number: str | None) -> tuple[str, str]:
    """Subject and body of the message that tells ``customer`` about ``change``."""
    old, new = change.old, change.new
    mode = new.mode if new.mode != "normal" else old.mode
    name = _NAMES[mode]
    on, off = _VERBS.get(mode, ("activated", "deactivated"))
    end = _when(new.until) if new.until is not None else None
    until = f" until {end}" if end else ""
    if new.mode == "normal":
        what = f"{name} {'expired' if change.via == 'expiry' else off}"
        subject = f"VMS: {what} for {customer}"
    elif old.mode == new.mode:
        what = f"{name} changed"
        subject = f"VMS: {name} for {customer} now{until or ' without an end date'}"
    else:
        what = f"{name} {on}"
        if old.mode != "normal":
            what += f" (replacing {_NAMES[old.mode]})"
        subject = f"VMS: {what} for {customer}{until}"
    lines = [
        f"{what} for customer {customer}.",
        "",
        f"When:    {_when(new.since) if new.since is not None else 'just now'}",
        f"How:     {_who(change.via, new.by)}",
    ]
    if new.mode == "normal":
        lines += ["", "Calls to your numbers follow your normal routing again."]
    else:
        lines += [
            f"Until:   {f'{end}, when it ends by itself' if end else 'no end date'}",
            "",
            f"Calls to your numbers now follow the '{new.mode}' rules of your routing trees.",
            "",
            "To end it before then:" if end else "To end it:",
        ]
        if new.mode == "drs" and service_number:
            lines.append(
                f"- call {service_number}, key your customer number and your DRS password, "
                "each followed by #, then press 1"
            )
        lines += [
            f"- through the HTTP API: PUT /api/v1/customers/{customer}/mode "
            'with {"mode": "normal"}',
            f"- or ask your VMS operator ({_OFF[new.mode]} --customer {customer})",
        ]
    lines += ["", "This message was sent automatically by VMS; do not reply to it."]
    return subject, "\n".join(lines) + "\n"
