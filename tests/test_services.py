"""The services' e-mail of mode changes: sent once per change, tried again when refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from twisted.internet.defer import succeed
from twisted.internet.task import Clock

from engine.config import load_config
from engine.modes.store import ModeChange, ModeState
from engine.services import MAIL_ATTEMPTS, MAIL_RETRY, Services


class Mailer:
    def __init__(self, answers: list[bool]) -> None:
        self.answers = answers
        self.sent: list[tuple[str, tuple[str, ...]]] = []

    def mode_changed(self, customer: str, contacts: Any, change: Any, number: Any) -> Any:
        self.sent.append((customer, tuple(contacts)))
        return succeed(self.answers.pop(0) if self.answers else False)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    (tmp_path / "trees").mkdir()
    config = tmp_path / "vms.yaml"
    config.write_text("trees: trees/\ndata_dir: var/\ncustomers:\n"
                      "  acme: {formula: drs, numbers: ['+3225551234'],"
                      " contacts: [ops@acme.example]}\n"
                      "  quiet: {formula: drs, numbers: ['+3225551235']}\n")  # fmt: skip
    made = Services(Clock(), load_config(config))
    yield made
    made.store.close()


def change(customer: str) -> ModeChange:
    old = ModeState(customer, "normal", None, None, "")
    return ModeChange(customer, old, ModeState(customer, "drs", 1.0, 2.0, "cli"), "cli")


def test_a_refused_mail_is_tried_again_then_given_up(services: Services) -> None:
    mailer = Mailer([False, False, True])
    services.mailer = mailer  # type: ignore[assignment]
    clock: Clock = services.reactor
    services._seen([change("acme")])
    assert len(mailer.sent) == 1
    clock.advance(MAIL_RETRY)
    clock.advance(2 * MAIL_RETRY)
    assert len(mailer.sent) == 3  # accepted at the third try: no more
    clock.advance(100 * MAIL_RETRY)
    assert len(mailer.sent) == 3
    never = Mailer([])
    services.mailer = never  # type: ignore[assignment]
    services._seen([change("acme")])
    clock.pump([MAIL_RETRY * n for n in range(1, MAIL_ATTEMPTS + 2)])
    assert len(never.sent) == MAIL_ATTEMPTS


def test_customers_without_contacts_get_nothing(services: Services) -> None:
    mailer = Mailer([True])
    services.mailer = mailer  # type: ignore[assignment]
    services._seen([change("quiet")])
    assert mailer.sent == []
