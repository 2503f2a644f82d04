"""Mode-change e-mail: composed for a person, delivered to a real SMTP server (aiosmtpd).

The server runs in a thread on a free loopback port; the Twisted client
runs on the real reactor. A server that refuses, is down or lacks what the
settings demand (AUTH, STARTTLS) costs a log line, never an exception.
"""

from __future__ import annotations

import base64
import logging
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any

import pytest
import pytest_twisted
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from twisted.internet import reactor
from twisted.logger import formatEvent, globalLogPublisher

from engine.config import SmtpSettings
from engine.modes.store import ModeChange, ModeState
from engine.notify import Mailer, compose

DEC_23 = datetime(2026, 12, 23, 10, tzinfo=UTC).timestamp()
NOV_22 = datetime(2026, 11, 22, 10, tzinfo=UTC).timestamp()
PASSWORD = "s3cret-smtp-Pa55"


@dataclass
class Inbox:
    """An aiosmtpd handler that keeps what it accepts, or refuses every recipient."""

    refuse: str | None = None
    messages: list[Any] = field(default_factory=list)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          options: list[str]) -> str:  # fmt: skip
        if self.refuse:
            return self.refuse
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope)
        return "250 Message accepted for delivery"


def _check_login(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
    good = isinstance(data, LoginPassword) and (data.login, data.password) == (
        b"vms",
        PASSWORD.encode(),
    )
    return AuthResult(success=good, handled=False)  # aiosmtpd answers 235 or 535


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_server(inbox: Inbox, **options: Any) -> Iterator[int]:
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port, **options)
    controller.start()
    try:
        yield port
    finally:
        controller.stop()


@pytest.fixture
def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
def smtp(inbox: Inbox) -> Iterator[int]:
    yield from start_server(inbox)


def settings(port: int, **changes: Any) -> SmtpSettings:
    return SmtpSettings(**{"host": "127.0.0.1", "port": port, "sender": "vms@example.net",
                           **changes})  # fmt: skip


def parsed(envelope: Any) -> EmailMessage:
    """The message as sent, with the wire's CRLF line ends made local again."""
    assert b"\r\r" not in envelope.content
    message = message_from_bytes(envelope.content.replace(b"\r\n", b"\n"), policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def change(old: str, new: str, via: str, by: str, until: float | None = None) -> ModeChange:
    return ModeChange(
        customer="acme",
        old=ModeState("acme", old, NOV_22 - 86400, None, "cli"),
        new=ModeState("acme", new, NOV_22, until, by),
        via=via,
    )


@pytest_twisted.ensureDeferred
async def test_a_message_reaches_every_recipient(inbox: Inbox, smtp: int) -> None:
    mailer = Mailer(reactor, settings(smtp))
    sent = await mailer.send(["ops@acme.example", "boss@acme.example"], "VMS: test", "Hello.\n")
    assert sent is True
    [envelope] = inbox.messages
    assert envelope.mail_from == "vms@example.net"
    assert envelope.rcpt_tos == ["ops@acme.example", "boss@acme.example"]
    message = parsed(envelope)
    assert message["Subject"] == "VMS: test"
    assert message["To"] == "ops@acme.example, boss@acme.example"
    assert message["Auto-Submitted"] == "auto-generated"
    assert message.get_content() == "Hello.\n"


@pytest_twisted.ensureDeferred
async def test_drs_activation_by_phone_is_mailed_to_the_contacts(inbox: Inbox, smtp: int) -> None:
    mailer = Mailer(reactor, settings(smtp))
    done = mailer.mode_changed(
        "acme", ["ops@acme.example"], change("normal", "drs", "phone", "phone +3226001122", DEC_23),
        "+3278150000",
    )  # fmt: skip
    assert done is not None
    assert await done is True
    [envelope] = inbox.messages
    message = parsed(envelope)
    assert message["Subject"] == "VMS: DRS activated for acme until 2026-12-23 10:00 UTC"
    body = message.get_content()
    assert "DRS activated for customer acme." in body
    assert "When:    2026-11-22 10:00 UTC" in body
    assert "How:     by telephone, from +3226001122" in body
    assert "Until:   2026-12-23 10:00 UTC, when it ends by itself" in body
    assert "call +3278150000, key your customer number and your DRS password" in body
    assert "vms drs deactivate --customer acme" in body


@pytest_twisted.ensureDeferred
async def test_no_contacts_no_mail(inbox: Inbox, smtp: int) -> None:
    mailer = Mailer(reactor, settings(smtp))
    assert mailer.mode_changed("acme", [], change("normal", "drs", "cli", "cli"), None) is None
    assert inbox.messages == []


def test_deactivation_expiry_and_continuity_read_right() -> None:
    subject, body = compose("acme", change("drs", "normal", "cli", "cli alice"), "+3278150000")
    assert subject == "VMS: DRS deactivated for acme"
    assert "How:     with the vms command line, by alice" in body
    assert "follow your normal routing again" in body
    assert "+3278150000" not in body  # nothing left to switch off

    subject, body = compose("acme", change("drs", "normal", "expiry", "expiry"), None)
    assert subject == "VMS: DRS expired for acme"
    assert "automatically: its end date was reached" in body

    subject, body = compose("acme", change("normal", "continuity", "api", "api"), "+3278150000")
    assert subject == "VMS: Voice Continuity switched on for acme"
    assert "How:     through the HTTP API" in body
    assert "Until:   no end date" in body
    assert 'PUT /api/v1/customers/acme/mode with {"mode": "normal"}' in body
    assert "vms continuity off --customer acme" in body
    assert "+3278150000" not in body  # the phone path is for DRS only

    subject, _ = compose("acme", change("continuity", "normal", "api", "api"), None)
    assert subject == "VMS: Voice Continuity switched off for acme"

    subject, body = compose("acme", change("continuity", "drs", "phone", "phone anonymous",
                                           DEC_23), "+3278150000")  # fmt: skip
    assert subject == (
        "VMS: DRS activated (replacing Voice Continuity) for acme until 2026-12-23 10:00 UTC"
    )
    assert "How:     by telephone, from a hidden number" in body

    subject, _ = compose("acme", change("drs", "drs", "cli", "cli", DEC_23), None)
    assert subject == "VMS: DRS for acme now until 2026-12-23 10:00 UTC"


@pytest_twisted.ensureDeferred
async def test_a_refusing_server_is_logged_not_raised(caplog: pytest.LogCaptureFixture) -> None:
    refusing = Inbox(refuse="550 5.1.1 mailbox unavailable")
    for port in start_server(refusing):
        mailer = Mailer(reactor, settings(port))
        with caplog.at_level(logging.WARNING, "vms.notify"):
            sent = await mailer.send(["nobody@acme.example"], "VMS: test", "Hello.\n")
    assert sent is False
    assert refusing.messages == []
    [record] = caplog.records
    assert "could not e-mail 'VMS: test' to nobody@acme.example" in record.getMessage()
    assert "550 5.1.1 mailbox unavailable" in record.getMessage()


@pytest_twisted.ensureDeferred
async def test_a_server_that_is_down_is_logged_once_a_minute(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mailer = Mailer(reactor, settings(free_port()))
    with caplog.at_level(logging.WARNING, "vms.notify"):
        assert await mailer.send(["ops@acme.example"], "first", "x\n") is False
        assert await mailer.send(["ops@acme.example"], "second", "x\n") is False
    [record] = caplog.records
    assert "'first'" in record.getMessage()
    assert "refused" in record.getMessage().lower()


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
@pytest_twisted.ensureDeferred
async def test_authentication(caplog: pytest.LogCaptureFixture) -> None:
    guarded = Inbox()
    for port in start_server(guarded, authenticator=_check_login, auth_required=True,
                             auth_require_tls=False):  # fmt: skip
        good = Mailer(reactor, settings(port, username="vms", password=PASSWORD))
        assert await good.send(["ops@acme.example"], "with login", "x\n") is True
        wrong = Mailer(reactor, settings(port, username="vms", password="not-" + PASSWORD))
        anonymous = Mailer(reactor, settings(port))
        twisted_log: list[dict[str, Any]] = []
        globalLogPublisher.addObserver(twisted_log.append)
        try:
            with caplog.at_level(logging.DEBUG, "vms"):
                assert await wrong.send(["ops@acme.example"], "wrong login", "x\n") is False
                assert await anonymous.send(["ops@acme.example"], "no login", "x\n") is False
        finally:
            globalLogPublisher.removeObserver(twisted_log.append)
    assert [parsed(e)["Subject"] for e in guarded.messages] == ["with login"]
    logged = caplog.text + "".join(str(formatEvent(e)) for e in twisted_log)
    assert "could not e-mail 'wrong login'" in logged
    assert "could not e-mail 'no login'" in logged
    wrong_password = ("not-" + PASSWORD).encode()
    for secret in (wrong_password, base64.b64encode(wrong_password),  # LOGIN
                   base64.b64encode(b"\0vms\0" + wrong_password)):  # PLAIN  # fmt: skip
        assert secret.decode() not in logged


@pytest_twisted.ensureDeferred
async def test_starttls_demanded_but_not_offered_sends_nothing(
    inbox: Inbox, smtp: int, caplog: pytest.LogCaptureFixture
) -> None:
    mailer = Mailer(reactor, settings(smtp, starttls=True))
    with caplog.at_level(logging.WARNING, "vms.notify"):
        assert await mailer.send(["ops@acme.example"], "VMS: test", "x\n") is False
    assert inbox.messages == []
    assert "could not e-mail 'VMS: test'" in caplog.text


@pytest_twisted.ensureDeferred
async def test_a_header_with_a_line_break_is_refused_not_raised(
    inbox: Inbox, smtp: int, caplog: pytest.LogCaptureFixture
) -> None:
    mailer = Mailer(reactor, settings(smtp))
    with caplog.at_level(logging.WARNING, "vms.notify"):
        sent = await mailer.send(["ops@acme.example"], "VMS\nBcc: all@example.net", "x\n")
    assert sent is False
    assert inbox.messages == []
    assert "linefeed" in caplog.text
