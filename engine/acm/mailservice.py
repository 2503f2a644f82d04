"""E-mail routing as one service for ``vms serve``: the store, the desk, the intakes, IMAP.

``start()`` opens ``DATA_DIR/email.sqlite`` (MailStoreError when it cannot),
reports as queued whatever was stored but not yet reported (an engine killed
between the two), then opens
one SMTP intake per listening address (customers sharing an address are told
apart by their domains) and one IMAP poller per mailbox. ``stop()`` closes
them before the store. The HTTP API reaches the desk through
``EmailService.desk`` (engine/api_email.py).
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from aiosmtpd.controller import Controller

from engine.acm.events import EventSink
from engine.acm.mailconfig import EmailSettings
from engine.acm.maildesk import EmailDesk
from engine.acm.mailimap import ImapPoller
from engine.acm.mailintake import SmtpHandler, smtp_intake
from engine.acm.mailstore import MailStore, MailStoreError
from engine.acm.model import AcmSettings
from engine.state.interface import Operators

if TYPE_CHECKING:
    from engine.config import Config

__all__ = ["EmailService", "listeners"]

log = logging.getLogger("vms.acm.email")


def listeners(
    customers: Mapping[str, AcmSettings],
) -> dict[tuple[str, int], dict[str, EmailSettings]]:
    """The customers of each SMTP listening address; ValueError for a domain two of them claim."""
    out: dict[tuple[str, int], dict[str, EmailSettings]] = {}
    owner: dict[tuple[str, int, str], str] = {}
    for cid, acm in customers.items():
        email = acm.email
        if email is None or email.smtp is None:
            continue
        where = (email.smtp.listen, email.smtp.port)
        for domain in email.smtp.domains:
            other = owner.setdefault((*where, domain), cid)
            if other != cid:
                raise ValueError(f"customers '{other}' and '{cid}' both take e-mail for {domain} "
                                 f"on {where[0]}:{where[1]}")  # fmt: skip
        out.setdefault(where, {})[cid] = email
    return out


class EmailService:
    """Every customer's e-mail routing in this engine (``customers.ID.acm.email``)."""

    def __init__(
        self, reactor: Any, config: Config, state: Operators, sink: EventSink,
        acm_of: Callable[[str], AcmSettings | None] | None = None,
    ) -> None:  # fmt: skip
        """``acm_of``: the live ACM of a customer (default: the file's)."""
        self.reactor = reactor
        self.customers = {cid: c.acm for cid, c in config.customers.items()
                          if c.acm is not None and c.acm.email is not None}  # fmt: skip
        self.listeners = listeners(self.customers)
        self.store = MailStore.in_data_dir(config.data_dir)
        self.desk = EmailDesk(reactor, self.store, state, sink, acm_of or self.customers.get)
        self.intakes: list[Controller] = []
        self.pollers = [
            ImapPoller(reactor, cid, acm.email, self.store, self._arrived)
            for cid, acm in self.customers.items()
            if acm.email is not None and acm.email.imap is not None
        ]

    def start(self) -> None:
        """Open the store and every intake; OSError when an SMTP address is taken."""
        self.store.open(self.reactor.seconds())
        try:
            self.desk.announce()
        except sqlite3.Error as exc:  # busy past its timeout, or failing
            self.store.close()
            raise MailStoreError(f"cannot read the e-mail database {self.store.path}: "
                                 f"{exc}") from exc  # fmt: skip
        try:
            for (listen, port), customers in self.listeners.items():
                handler = SmtpHandler(customers, self.store, self.reactor.seconds, self._arrived)
                self.intakes.append(smtp_intake(listen, port, handler))
                log.info("e-mail intake on %s:%d for %s", listen, port, ", ".join(customers))
        except BaseException:
            self.stop()
            raise
        for poller in self.pollers:
            poller.start()

    def stop(self) -> None:
        for poller in self.pollers:
            poller.stop()
        while self.intakes:
            self.intakes.pop().stop()
        self.store.close()

    def _arrived(self) -> None:
        """From any thread: new e-mails are in the store."""
        self.reactor.callFromThread(self._announce)

    def _announce(self) -> None:
        try:
            self.desk.announce()
        except (sqlite3.Error, MailStoreError) as exc:  # still unannounced: the next arrival
            log.warning("e-mail: cannot report new e-mails as queued yet: %s", exc)
