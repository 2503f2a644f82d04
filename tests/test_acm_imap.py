"""The IMAP poller against a real IMAP4 server (Twisted's, on a free loopback port).

The poller runs imaplib in the reactor's thread pool, over plain TCP
(``tls: false``), against tests/imapkit.py's one-mailbox server; e-mails go to
a real SQLite store. Each poll is driven by calling ``poll()`` and waiting on
its Deferred, except where the poller's own loop is the point (a wrong
password), where the test waits on the server's count of login attempts.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_twisted
from imapkit import SEEN, ImapServer
from test_acm_email import message, write
from twisted.internet import reactor
from twisted.internet.defer import Deferred

from engine.acm.mailconfig import EmailSettings
from engine.acm.mailimap import ImapPoller
from engine.acm.mailstore import MailStore
from engine.config import load_config

PASSWORD = "s3cret pass"  # a space: imaplib must quote it

EMAIL = """\
        imap: {host: 127.0.0.1, port: {port}, tls: false, user: desk, password_file: imap.pw,
               poll: 5}
        rules:
          - {to: sales@initech.example, group: sales}
          - {subject: "invoice|billing", group: support}
        default_group: sales
"""

TIMEOUT = 5.0  # for any one wait; the whole module takes well under a second


class Poller(ImapPoller):
    """An ImapPoller that lets the test wait for the poll under way (its loop's included)."""

    polling: Deferred[None] | None = None

    def poll(self) -> Deferred[None]:
        done = super().poll()
        self.polling = Deferred()
        done.addBoth(self._polled, self.polling)
        return done

    def _polled(self, result: Any, polling: Deferred[None]) -> Any:
        polling.callback(None)
        if self.polling is polling:
            self.polling = None
        return result


class Desk:
    """A poller, its store and server, and how many times it reported arrivals."""

    def __init__(self, tmp_path: Path, server: ImapServer) -> None:
        self.server = server
        self.password_file = tmp_path / "imap.pw"
        self.password_file.write_text(PASSWORD + "\n")
        config = load_config(write(tmp_path, EMAIL, server.port))
        acm = config.customers["initech"].acm
        assert acm is not None and acm.email is not None and acm.email.imap is not None
        self.settings: EmailSettings = acm.email
        self.store = MailStore.in_data_dir(config.data_dir)
        self.store.open(reactor.seconds())
        self.arrivals = 0
        self._arrived: list[Deferred[None]] = []
        self.poller = self.make()

    def make(self, max_size: int | None = None, **imap: Any) -> ImapPoller:
        settings = self.settings
        if max_size is not None:
            settings = dataclasses.replace(settings, max_size=max_size)
        if imap:
            assert settings.imap is not None
            settings = dataclasses.replace(settings, imap=dataclasses.replace(settings.imap,
                                                                              **imap))
        return Poller(reactor, "initech", settings, self.store, self.arrived)

    async def stop(self) -> None:
        """Stops the poller's loop and waits for a poll under way (its thread uses the store)."""
        self.poller.stop()
        if isinstance(self.poller, Poller) and self.poller.polling is not None:
            await within(self.poller.polling)
        self.store.close()

    def arrived(self) -> None:
        self.arrivals += 1
        waiters, self._arrived = self._arrived, []
        for waiter in waiters:
            waiter.callback(None)

    def next_arrival(self) -> Deferred[None]:
        waiter: Deferred[None] = Deferred()
        self._arrived.append(waiter)
        return waiter

    def deliver(self, subject: str, to: str = "info@initech.example",
                message_id: str | None = None, flags: tuple[str, ...] = ()) -> int:  # fmt: skip
        return self.server.inbox.deliver(message(subject, to, message_id=message_id).as_bytes(),
                                         flags)  # fmt: skip

    async def poll(self) -> None:
        await within(self.poller.poll())

    def kept(self) -> list[tuple[str, str, str, tuple[str, ...]]]:
        """(subject, group, source, recipients) of every stored e-mail, in arrival order."""
        queues = self.store.queues("initech")
        emails = [e for grp in queues for e in self.store.waiting("initech", [grp])]
        return [(e.subject, e.group, e.source, e.recipients)
                for e in sorted(emails, key=lambda e: e.id)]  # fmt: skip


async def within(waiting: Deferred[Any]) -> Any:
    """The result of ``waiting``, or a failed test after TIMEOUT seconds (no sleeping)."""
    return await waiting.addTimeout(TIMEOUT, reactor)


@pytest_twisted.async_yield_fixture
async def server() -> AsyncIterator[ImapServer]:
    running = await ImapServer.start(reactor, "desk", PASSWORD)
    yield running
    await running.stop()


@pytest_twisted.async_yield_fixture
async def desk(tmp_path: Path, server: ImapServer) -> AsyncIterator[Desk]:
    made = Desk(tmp_path, server)
    yield made
    await made.stop()


@pytest.fixture
def warnings(caplog: pytest.LogCaptureFixture) -> Callable[[], list[str]]:
    caplog.set_level(logging.WARNING, logger="vms.acm.email")
    return lambda: [r.getMessage() for r in caplog.records if r.name == "vms.acm.email"]


def test_the_mailbox_is_read_over_plain_imap(desk: Desk) -> None:
    imap = desk.settings.imap
    assert imap is not None
    assert (imap.host, imap.port, imap.tls, imap.mailbox) == \
        ("127.0.0.1", desk.server.port, False, "INBOX")  # fmt: skip


@pytest_twisted.ensureDeferred
async def test_unseen_messages_are_stored_routed_then_marked_seen(desk: Desk) -> None:
    invoice = desk.deliver("Your INVOICE 42")
    # To sales@ and about an invoice: the first rule that matches wins.
    quote = desk.deliver("Invoice for a quote", to="Sales <Sales@initech.example>")
    arrived = desk.next_arrival()
    await desk.poll()
    assert arrived.called and desk.arrivals == 1  # once per poll that kept some
    assert desk.kept() == [
        ("Your INVOICE 42", "support", "imap", ("info@initech.example",)),
        ("Invoice for a quote", "sales", "imap", ("Sales@initech.example",)),
    ]
    inbox = desk.server.inbox
    assert inbox.unseen() == []
    assert [(uid, flags, mode) for uid, flags, mode in inbox.stored] == \
        [(invoice, (SEEN,), 1), (quote, (SEEN,), 1)]  # fmt: skip
    # The body came byte for byte, and fetching it did not mark it (BODY.PEEK).
    email = desk.store.waiting("initech", ["support"])[0]
    assert desk.store.raw("initech", email.id) == inbox.by_uid(invoice).raw
    assert desk.server.logins == [(b"desk", True)]

    await desk.poll()  # nothing new: nothing fetched, nothing reported
    assert inbox.downloaded == [invoice, quote] and desk.arrivals == 1
    # Each one's size was asked before its body (a FETCH of RFC822.SIZE, then of BODY.PEEK[]).
    assert inbox.fetched == [invoice, invoice, quote, quote]


@pytest_twisted.ensureDeferred
async def test_a_seen_message_is_not_fetched(desk: Desk) -> None:
    read = desk.deliver("already read", flags=(SEEN, "\\Answered"))
    new = desk.deliver("new")
    await desk.poll()
    assert desk.server.inbox.downloaded == [new] and set(desk.server.inbox.fetched) == {new}
    assert [subject for subject, *_ in desk.kept()] == ["new"]
    assert desk.server.inbox.by_uid(read).flags == {SEEN, "\\Answered"}


@pytest_twisted.ensureDeferred
async def test_a_store_that_fails_leaves_the_message_unseen(
    desk: Desk, warnings: Callable[[], list[str]]
) -> None:
    first = desk.deliver("first")
    second = desk.deliver("second")
    # Another writer holds the database: the poller's insert waits, then fails.
    desk.store.busy_timeout = 0.05
    desk.store.close()
    desk.store.open(reactor.seconds())
    holder = sqlite3.connect(desk.store.path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        await desk.poll()  # never fails: the loop must go on
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert desk.server.inbox.unseen() == [first, second]
    assert desk.server.inbox.stored == [] and desk.arrivals == 0
    assert warnings() == [
        f"e-mail: cannot fetch initech's mailbox desk@127.0.0.1:{desk.server.port}: "
        "the e-mail store failed: database is locked"
    ]

    # A closed store is a failure too, not a message lost.
    desk.store.close()
    await desk.poll()
    assert desk.server.inbox.unseen() == [first, second]

    desk.store.open(reactor.seconds())
    await desk.poll()
    assert [subject for subject, *_ in desk.kept()] == ["first", "second"]
    assert desk.server.inbox.unseen() == [] and desk.arrivals == 1


@pytest_twisted.ensureDeferred
async def test_a_message_fetched_twice_is_kept_once(desk: Desk) -> None:
    uid = desk.deliver("billing question", message_id="<q1@client.example>")
    await desk.poll()
    # A crash before \Seen, a person marking it unread, a second copy: offered again.
    desk.server.inbox.by_uid(uid).flags.clear()
    copy = desk.deliver("billing question", message_id="<q1@client.example>")
    await desk.poll()
    assert desk.server.inbox.downloaded == [uid, uid, copy]
    assert desk.server.inbox.unseen() == []  # marked seen again, not left to be re-fetched
    assert desk.kept() == [("billing question", "support", "imap", ("info@initech.example",))]
    assert desk.arrivals == 1  # the second poll kept nothing new


@pytest_twisted.ensureDeferred
async def test_a_wrong_password_is_logged_and_the_polls_go_on(
    desk: Desk, warnings: Callable[[], list[str]]
) -> None:
    desk.password_file.write_text("wrong\n")
    desk.deliver("hello")
    desk.poller = desk.make(poll=0.01)
    desk.poller.start()
    await within(desk.server.logged_in(3))  # three polls, three refusals
    assert desk.server.logins[:3] == [(b"desk", False)] * 3
    # One line a minute at most, saying whose mailbox, where, and why.
    assert warnings() == [
        f"e-mail: cannot fetch initech's mailbox desk@127.0.0.1:{desk.server.port}: "
        "LOGIN failed"
    ]
    assert desk.kept() == []

    # The password file is read at each poll: a rotated password works without a restart.
    arrived = desk.next_arrival()
    desk.password_file.write_text(PASSWORD + "\n")
    await within(arrived)
    assert desk.server.logins[-1] == (b"desk", True)
    assert [subject for subject, *_ in desk.kept()] == ["hello"]
    assert desk.server.inbox.unseen() == []


@pytest_twisted.ensureDeferred
async def test_a_missing_mailbox_is_said_plainly(
    desk: Desk, warnings: Callable[[], list[str]]
) -> None:
    desk.deliver("hello")
    desk.poller = desk.make(mailbox="Old Archive")  # quoted for SELECT, and not there
    await desk.poll()
    assert warnings() == [
        f"e-mail: cannot fetch initech's mailbox desk@127.0.0.1:{desk.server.port}: "
        "select Old Archive: NO No such mailbox"
    ]
    assert desk.server.inbox.unseen() == [1] and desk.kept() == []


@pytest_twisted.ensureDeferred
async def test_the_same_message_id_on_other_bytes_is_another_email(desk: Desk) -> None:
    # A sender choosing the Message-ID of someone else's message does not make it vanish.
    desk.deliver("billing question", message_id="<q1@client.example>")
    desk.deliver("something else", message_id="<q1@client.example>")
    # Without a Message-ID, a message fetched again (a crash before \\Seen) is kept once.
    bare = desk.deliver("no id at all")
    await desk.poll()
    desk.server.inbox.by_uid(bare).flags.clear()
    await desk.poll()
    assert [subject for subject, *_ in desk.kept()] == \
        ["billing question", "something else", "no id at all"]  # fmt: skip
    assert desk.server.inbox.downloaded == [1, 2, bare, bare]


@pytest_twisted.ensureDeferred
async def test_a_message_over_max_size_is_never_downloaded(
    desk: Desk, warnings: Callable[[], list[str]]
) -> None:
    desk.poller = desk.make(max_size=2048)
    inbox = desk.server.inbox
    big = inbox.deliver(message("a big one", size=5000).as_bytes())
    small = desk.deliver("a small one")
    await desk.poll()
    size = len(inbox.by_uid(big).raw)
    assert size > 2048
    # Its size was asked, its body never: marked seen (it can never be accepted) and told once.
    assert inbox.downloaded == [small] and big in inbox.fetched
    assert inbox.unseen() == [] and inbox.by_uid(big).flags == {SEEN}
    assert [subject for subject, *_ in desk.kept()] == ["a small one"]
    assert warnings() == [
        f"e-mail: initech's message UID {big} in INBOX is over max_size ({size} bytes, "
        "max_size 2048): not stored, marked seen, left in the mailbox"
    ]
    await desk.poll()  # seen now: not asked about again
    assert inbox.downloaded == [small] and len(warnings()) == 1
