"""Where e-mails enter: an SMTP intake (aiosmtpd) and the one way both sources store them.

The intake is a small MX for the customers' ``smtp.domains``: any other
recipient gets 550 (it relays nothing), a message over the customer's
``max_size`` gets 552, and 250 comes only once the message is committed to
the e-mail store (engine/acm/mailstore.py); a store that fails gets 451, so
the sending server keeps the message and tries again. Several customers may
share one listening address: their domains tell them apart, and a message
for two customers is kept once for each.

aiosmtpd runs its own asyncio loop in a thread (``Controller``); the store
write runs in that loop's executor, and ``arrived`` (the engine passes
``reactor.callFromThread`` of the desk's ``announce``) brings the news to
the Twisted reactor.

Each listening address takes at most ``MAX_SESSIONS`` SMTP sessions at once
(each may hold up to ``max_size`` bytes in memory while it sends DATA): one
more is greeted with ``421`` and closed, which a sending server takes as
"try again later". aiosmtpd has no such setting; the cap is a subclass of its
``SMTP`` counting ``connection_made``/``connection_lost`` in the intake's own
loop thread. It is a cap per address, not per client: a client that holds
many idle sessions (aiosmtpd closes them after 5 idle minutes) delays others'
mail, it does not lose it.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Mapping
from email import policy
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses, parseaddr
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from engine.acm.mailconfig import EmailSettings
from engine.acm.mailstore import MailStore

__all__ = [
    "MAX_SESSIONS",
    "IntakeController",
    "SmtpHandler",
    "keep",
    "recipients_of",
    "smtp_intake",
]

log = logging.getLogger("vms.acm.email")

_PARSER = BytesHeaderParser(policy=policy.default)

#: SMTP sessions one listening address takes at once; one more gets 421.
MAX_SESSIONS = 50
_BUSY = b"421 4.7.0 too many connections to this intake; try again later\r\n"


def _header(message: Message, name: str) -> str:
    """A header's decoded text, or "" when it is missing or malformed (bad input is normal)."""
    try:
        value = message.get(name)
        return "" if value is None else " ".join(str(value).split())
    except Exception:  # the email package raises many things on broken headers
        return ""


def recipients_of(raw: bytes) -> list[str]:
    """The addresses of To, Cc and Delivered-To: a fetched message has no envelope."""
    message = _PARSER.parsebytes(raw)
    fields = [_header(message, name) for name in ("to", "cc", "delivered-to")]
    return [address for _, address in getaddresses(fields) if "@" in address]


def keep(
    store: MailStore,
    customer: str,
    settings: EmailSettings,
    raw: bytes,
    *,
    recipients: Iterable[str],
    envelope_sender: str,
    source: str,
    now: float,
) -> int | None:
    """Route and store one message for ``customer``: its id, or None for a copy already kept.

    The rules' ``from`` reads the From header (what the customer's people see),
    the envelope sender only when From is missing (bounces have an empty one).
    """
    message = _PARSER.parsebytes(raw)
    sender = parseaddr(_header(message, "from"))[1] or envelope_sender
    subject = _header(message, "subject")
    message_id = _header(message, "message-id") or None
    wanted = list(recipients)
    group = settings.group_for(wanted, sender, subject)
    return store.add(customer, message_id=message_id, received=now, source=source,
                     sender=sender, recipients=wanted, subject=subject, group=group,
                     raw=raw)  # fmt: skip


class SmtpHandler:
    """aiosmtpd's handler for one listening address, shared by the customers listening there."""

    def __init__(
        self,
        customers: Mapping[str, EmailSettings],
        store: MailStore,
        clock: Callable[[], float],
        arrived: Callable[[], None],
    ) -> None:
        self.customers = customers
        self.domains = {domain: cid for cid, email in customers.items()
                        if email.smtp is not None for domain in email.smtp.domains}  # fmt: skip
        self.store = store
        self.clock = clock
        self.arrived = arrived

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's name
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.rpartition("@")[2].lower() not in self.domains:
            return f"550 5.7.1 <{address}>: not a domain of this server (no relaying)"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        raw: bytes = envelope.original_content or envelope.content
        mine: dict[str, list[str]] = {}
        for address in envelope.rcpt_tos:
            mine.setdefault(self.domains[address.rpartition("@")[2].lower()], []).append(address)
        for customer in mine:
            if len(raw) > self.customers[customer].max_size:
                return f"552 5.3.4 the message is larger than {self.customers[customer].max_size}" \
                       " bytes"  # fmt: skip
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(None, self._keep, mine, raw, envelope.mail_from or "")
        except (sqlite3.Error, RuntimeError) as exc:
            log.error("e-mail intake: cannot store a message from %s: %s", envelope.mail_from, exc)
            return "451 4.3.0 the message cannot be stored now; try again later"
        self.arrived()
        return "250 2.0.0 OK: kept"

    def _keep(self, mine: Mapping[str, list[str]], raw: bytes, sender: str) -> None:
        now = self.clock()
        for customer, recipients in mine.items():
            keep(self.store, customer, self.customers[customer], raw, recipients=recipients,
                 envelope_sender=sender, source="smtp", now=now)  # fmt: skip


class _Sessions:
    """The sessions of one listening address (touched in its loop thread only)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self.refused = 0
        self._logged = 0.0

    def refuse(self, peer: Any) -> None:
        self.refused += 1
        now = time.monotonic()
        if now - self._logged >= 60.0:  # at most a line a minute under a flood
            self._logged = now
            log.warning("e-mail intake: %d sessions open, the most allowed: %s gets 421 "
                        "(%d refused so far)", self.count, peer, self.refused)  # fmt: skip


class _CappedSMTP(SMTP):
    """aiosmtpd's SMTP that greets with 421 and closes when ``sessions`` is full."""

    def __init__(self, handler: Any, sessions: _Sessions, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self._sessions = sessions
        self._counted = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self.transport is None and not self._counted:  # not a STARTTLS upgrade
            if self._sessions.count >= self._sessions.limit:
                self._sessions.refuse(transport.get_extra_info("peername"))
                if isinstance(transport, asyncio.WriteTransport):
                    transport.write(_BUSY)
                transport.close()
                return
            self._sessions.count += 1
            self._counted = True
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        if not self._counted:
            return  # refused: aiosmtpd never saw it
        self._counted = False
        self._sessions.count -= 1
        super().connection_lost(error)


class IntakeController(Controller):
    """aiosmtpd's Controller whose sessions are capped (``sessions.count`` of ``limit``)."""

    def __init__(self, handler: Any, max_sessions: int, **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.sessions = _Sessions(max_sessions)

    def factory(self) -> SMTP:
        return _CappedSMTP(self.handler, self.sessions, **self.SMTP_kwargs)


def smtp_intake(
    listen: str, port: int, handler: SmtpHandler, ready_timeout: float = 5.0,
    max_sessions: int = MAX_SESSIONS,
) -> IntakeController:  # fmt: skip
    """A started intake on ``listen:port`` (stop it with ``.stop()``); OSError when taken."""
    largest = max(s.max_size for s in handler.customers.values())
    controller = IntakeController(handler, max_sessions, hostname=listen, port=port,
                                  ready_timeout=ready_timeout, data_size_limit=largest,
                                  enable_SMTPUTF8=True, ident="VMS e-mail intake")  # fmt: skip
    controller.start()
    return controller
