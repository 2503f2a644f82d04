"""The customer services around routing, wired for ``vms serve``: modes, DRS by phone, e-mail.

A customer's mode (normal, DRS, Voice Continuity) lives in the mode store
under ``data_dir`` (``engine.modes``), shared by every engine and the CLI
on that directory; this engine's watcher polls it four times a second, so a
change made anywhere is in force here within a second, and it ends modes
whose time is up. Every change (phone, API, CLI, expiry) is queued in the
store and claimed by exactly one watcher, whose engine e-mails the
customer's contacts: one message per change, however many engines run,
tried again for a while when the mail server refuses or is down (a stop
meanwhile loses it: the audit keeps the change).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from twisted.internet.threads import deferToThreadPool
from twisted.python.threadpool import ThreadPool

from engine.calls.drs import DrsService
from engine.config import Config, Customer
from engine.formulas import may
from engine.modes.store import ModeChange, ModeStore
from engine.modes.watcher import ModeWatcher
from engine.notify import Mailer
from engine.passwords import verify_password
from engine.ratelog import RateLimitedLog

__all__ = ["Services", "drs_prompt_paths"]

log = logging.getLogger("vms.services")

#: E-mails about a change are tried this many times, waiting MAIL_RETRY × attempt between.
MAIL_ATTEMPTS = 5
MAIL_RETRY = 60.0


def drs_prompt_paths(config: Config) -> dict[str, str]:
    """The DRS prompts by role, as the paths calls play them by."""
    return {key: str(path) for key, path in config.drs_prompts.items()}


class Services:
    """The mode store and its watcher, the mailer, and the DRS phone service (b2bua mode)."""

    def __init__(self, reactor: Any, config: Config) -> None:
        self.config = config
        self.store = ModeStore.in_data_dir(config.data_dir)
        self.store.open()
        smtp = config.smtp
        self.mailer = Mailer(reactor, smtp) if smtp is not None else None
        self.ratelog = RateLimitedLog(log, reactor)
        self.watcher = ModeWatcher(self.store, reactor, on_change=self._seen)
        self.drs: DrsService | None = None
        self.reactor = reactor
        self.configured_ported = frozenset(
            n for c in config.customers.values() for n in c.ported)  # fmt: skip
        # Password checks (scrypt, 16 MB and tens of ms each) on two threads of their own: a
        # burst of DRS calls queues here instead of starving the reactor's pool (DNS, SMTP).
        self.pool = ThreadPool(minthreads=0, maxthreads=2, name="vms-scrypt")

    def start(self) -> None:
        self.pool.start()
        self.watcher.start()
        if self.config.drs_service_number and self.config.sip.mode != "b2bua":
            log.warning("drs.service_number %s is not served in %s mode: the DRS phone service "
                        "needs b2bua mode (its calls get 404)", self.config.drs_service_number,
                        self.config.sip.mode)  # fmt: skip

    def stop(self) -> None:
        self.watcher.stop()
        self.pool.stop()
        self.store.close()

    def phone_service(self, prompts: Mapping[str, str]) -> DrsService | None:
        """The DRS phone service, when the configuration has a service number."""
        config = self.config
        if config.drs_service_number is None:
            return None
        by_number = {c.customer_number: c for c in config.customers.values()
                     if c.customer_number is not None}  # fmt: skip
        by_id = config.customers
        lockout = config.drs_lockout
        self.drs = DrsService(
            service_number=config.drs_service_number, prompts=prompts,
            max_days=config.drs_max_days, lockout=lockout, store=self.store,
            customers=by_number,
            verify=lambda password, stored: deferToThreadPool(self.reactor, self.pool,
                                                              verify_password, password, stored),
            entitled=lambda customer: may(by_id[customer.id], "drs"),
            on_change=self.changed,
        )  # fmt: skip
        return self.drs

    def ported(self, number: str) -> bool:
        return number in self.configured_ported or self.watcher.is_ported(number)

    def refused_ported(self, number: str) -> None:
        self.ratelog.warning(f"ported:{number}", "number %s is ported away: not served (404)",
                             number)  # fmt: skip

    # -- changes -----------------------------------------------------------------------------

    def changed(self, change: ModeChange) -> None:
        """A change made in this engine (phone, API): in force here at once, not at next poll."""
        self.watcher.refresh()

    def _seen(self, changes: list[ModeChange]) -> None:
        """Changes this engine's watcher claimed, whoever made them: logged and mailed."""
        for change in changes:
            log.info("customer %s: %s -> %s (%s, by %s)", change.customer, change.old.mode,
                     change.new.mode, change.via, change.new.by)  # fmt: skip
            try:
                self._mail(change)
            except Exception:  # one change's e-mail must not lose the others'
                log.exception("customer %s: the e-mail about its mode change failed",
                              change.customer)  # fmt: skip

    def _mail(self, change: ModeChange, attempt: int = 1) -> None:
        """E-mail a change; a refusal or an unreachable server is tried again a few times."""
        customer: Customer | None = self.config.customers.get(change.customer)
        if customer is None or not customer.contacts:
            return
        if self.mailer is None:
            self.ratelog.warning(f"nosmtp:{change.customer}", "customer %s: no smtp configured; "
                                 "its contacts are not told of mode changes", change.customer)
            return
        sent = self.mailer.mode_changed(change.customer, customer.contacts, change,
                                        self.config.drs_service_number)  # fmt: skip
        if sent is None:
            return

        def done(accepted: bool) -> None:
            if accepted:
                return
            if attempt >= MAIL_ATTEMPTS:
                log.error("customer %s: the e-mail about %s -> %s was not accepted after %d "
                          "attempts; it is in the audit only", change.customer, change.old.mode,
                          change.new.mode, attempt)  # fmt: skip
                return
            self.reactor.callLater(MAIL_RETRY * attempt, self._mail, change, attempt + 1)

        sent.addCallback(done)
