"""Agent Contact Management in one engine: its pieces built, started and stopped together.

The directory (operators and groups, with the API's changes on top of the
configuration), the statistics store, the queue desk, the e-mail intake and
desk, and the HTTP resources over them. ``vms serve`` builds one in b2bua mode when some
customer has ACM; the queue desk reads the live settings from the
directory, so a change through any engine's API reaches every queue within
the directory's poll.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.threads import deferToThreadPool

from engine.acm.command import act
from engine.acm.desk import QueueDesk
from engine.acm.directory import AcmDirectory, DirectoryError
from engine.acm.mailservice import EmailService
from engine.acm.mailstore import MailStoreError
from engine.acm.stats import StatsError, StatsStore
from engine.api_acm import METHODS as ACM_METHODS
from engine.api_acm import acm_handler
from engine.api_email import EmailApi
from engine.api_stats import stats_handler
from engine.calls.operator_phone import OperatorPhone
from engine.failures import FailureWindow

if TYPE_CHECKING:
    from engine.acm.directory import Auditor
    from engine.acm.model import Operator
    from engine.api_v1 import Handler
    from engine.config import Config
    from engine.state.interface import SharedState

__all__ = ["AcmRuntime", "AcmStartError"]

log = logging.getLogger("vms.acm")


class AcmStartError(Exception):
    """A database ACM needs cannot be opened: the engine does not start."""


class AcmRuntime:
    """The directory, statistics and queue desk of this engine, and their API resources."""

    def __init__(self, reactor: Any, config: Config, state: SharedState,
                 auditor: Auditor | None = None) -> None:  # fmt: skip
        self.reactor = reactor
        self.config = config
        self.state = state
        self.auditor = auditor
        self.directory = AcmDirectory.in_data_dir(config, reactor, auditor=auditor)
        self.stats = StatsStore.in_data_dir(config.data_dir, reactor)
        self.desk = QueueDesk(reactor, state, self.directory.settings, self.stats)
        try:
            self.email = EmailService(reactor, config, state, self.stats, self.directory.settings)
        except ValueError as exc:  # two customers claim one domain on one intake
            raise AcmStartError(str(exc)) from exc

    def start(self) -> None:
        """Open the databases (AcmStartError) and start polling and dispatching."""
        try:
            self.directory.open()
            self.stats.open()
            self.email.start()
        except (DirectoryError, StatsError, MailStoreError) as exc:
            raise AcmStartError(str(exc)) from exc
        except OSError as exc:
            raise AcmStartError(f"cannot open the e-mail intake: {exc}") from exc
        self.directory.start()
        self.desk.start()

    def stop(self) -> None:
        """Stop dispatching; every statistics event taken is written before the store closes."""
        self.desk.stop()
        self.email.stop()
        self.directory.close()
        self.stats.close()

    def phone(self, prompts: Mapping[str, str], pool: Any) -> OperatorPhone | None:
        """The operators' phone service on the customers' feature numbers (PINs on ``pool``)."""
        numbers = {c.acm.feature_number: cid for cid, c in self.config.customers.items()
                   if c.acm is not None and c.acm.feature_number is not None}  # fmt: skip
        if not numbers:
            return None
        directory = self.directory

        def verify(customer: str, operator: str, digits: str) -> Deferred[bool]:
            return deferToThreadPool(self.reactor, pool, directory.verify_pin, customer,
                                     operator, digits)  # fmt: skip

        def change(customer: str, operator: Operator, target: str) -> Deferred[Any]:
            settings = directory.settings(customer)
            assert settings is not None  # a feature number belongs to a customer with ACM
            reason = "phone" if target == "break" else None
            return ensureDeferred(act(self.state, self.reactor, customer, settings, [operator],
                                      target, reason, self.stats))  # fmt: skip

        def audit(customer: str, caller: str, action: str, outcome: str, detail: str) -> None:
            if self.auditor is not None:
                self.auditor.audit(customer, caller, action, outcome, "phone", detail)

        return OperatorPhone(numbers, prompts, directory.settings, verify, change, audit,
                             FailureWindow(self.reactor, limit=5, window=900.0))  # fmt: skip

    def resources(self) -> dict[str, tuple[tuple[str, ...], Handler]]:
        """``/api/v1/customers/ID/acm``, ``.../stats`` and ``.../email``."""
        stats = stats_handler(self.directory.settings, self.stats, self.reactor, self.state)
        return {
            "acm": (ACM_METHODS, acm_handler(self.reactor, self.state, self.directory,
                                             self.stats)),
            "stats": (("GET",), stats),
            "email": (("GET", "POST"), EmailApi(self.email.desk).answer),
        }
