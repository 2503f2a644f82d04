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
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from email import policy
from email.message import Message
from email.parser import BytesHeaderParser
from email.utils import getaddresses, parseaddr
from typing import Any

from aiosmtpd.controller import Controller

from engine.acm.mailconfig import EmailSettings
from engine.acm.mailstore import MailStore

__all__ = ["SmtpHandler", "keep", "recipients_of", "smtp_intake"]

log = logging.getLogger("vms.acm.email")

_PARSER = BytesHeaderParser(policy=policy.default)


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


def smtp_intake(
    listen: str, port: int, handler: SmtpHandler, ready_timeout: float = 5.0
) -> Controller:
    """A started intake on ``listen:port`` (stop it with ``.stop()``); OSError when taken."""
    largest = max(s.max_size for s in handler.customers.values())
    controller = Controller(handler, hostname=listen, port=port, ready_timeout=ready_timeout,
                            data_size_limit=largest, enable_SMTPUTF8=True,
                            ident="VMS e-mail intake")  # fmt: skip
    controller.start()
    return controller
