"""A customer's mailbox, polled for UNSEEN messages that become ACM e-mails.

Every ``imap.poll`` seconds a pool thread logs in (imaplib: the poll is rare
and short, a thread is simpler than an IMAP client on the reactor), stores
each UNSEEN message and only then marks it ``\\Seen``: a crash between the
two fetches the message again, and the store keeps one copy (same bytes).
The password is read from ``imap.password_file`` at each poll, so it can be
rotated without a restart.

Each message's ``RFC822.SIZE`` is asked before its body, so one over
``max_size`` is never downloaded: it is marked ``\\Seen`` and logged (one
warning naming its UID and size), not stored. It could never be accepted,
and left unseen it would be asked about and logged at every poll; it stays
in the mailbox for a person to see. The size a server gives is a promise,
not a proof: a body that turns out larger is refused the same way. Failures
(server down, wrong password) are logged at most once a minute; the next
poll tries again.
"""

from __future__ import annotations

import contextlib
import imaplib
import logging
import re
import sqlite3
import ssl
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure

from engine.acm.mailconfig import EmailSettings
from engine.acm.mailintake import keep, recipients_of
from engine.acm.mailstore import MailStore
from engine.ratelog import RateLimitedLog

__all__ = ["ImapPoller"]

log = logging.getLogger("vms.acm.email")

_TIMEOUT = 30.0


class ImapPoller:
    """Polls ``settings.imap`` for ``customer``; ``arrived()`` after each poll that kept some."""

    def __init__(
        self,
        reactor: Any,
        customer: str,
        settings: EmailSettings,
        store: MailStore,
        arrived: Callable[[], None],
    ) -> None:
        if settings.imap is None:
            raise ValueError(f"customer '{customer}' has no imap mailbox")
        self.reactor = reactor
        self.customer = customer
        self.settings = settings
        self.imap = settings.imap
        self.store = store
        self.arrived = arrived
        self._loop = LoopingCall(self.poll)
        self._loop.clock = reactor
        self._failures = RateLimitedLog(log, reactor, interval=60.0)

    def start(self) -> None:
        self._loop.start(self.imap.poll, now=True)

    def stop(self) -> None:
        if self._loop.running:
            self._loop.stop()

    def poll(self) -> Deferred[None]:
        """One poll in a pool thread; never fails (the loop goes on)."""
        done: Deferred[int] = deferToThreadPool(self.reactor, self.reactor.getThreadPool(),
                                                self.fetch)  # fmt: skip
        return done.addCallbacks(self._fetched, self._failed)

    def _fetched(self, kept: int) -> None:
        if kept:
            self.arrived()

    def _failed(self, failure: Failure) -> None:
        self._failures.warning(
            "imap", "e-mail: cannot fetch %s's mailbox %s@%s:%d: %s", self.customer,
            self.imap.user, self.imap.host, self.imap.port, _reason(failure.value),
        )  # fmt: skip

    def fetch(self) -> int:
        """Store the UNSEEN messages, then mark each seen; how many were stored (a thread)."""
        imap = self.imap
        # A verified certificate: the mailbox password must not go to whoever answers.
        client = (imaplib.IMAP4_SSL(imap.host, imap.port, timeout=_TIMEOUT,
                                    ssl_context=ssl.create_default_context()) if imap.tls
                  else imaplib.IMAP4(imap.host, imap.port, timeout=_TIMEOUT))  # fmt: skip
        try:
            client.login(imap.user, imap.password_file.read_text().strip())
            _check(client.select(_quoted(imap.mailbox)), f"select {imap.mailbox}")
            found = _check(client.uid("SEARCH", "UNSEEN"), "search")
            kept = 0
            for uid in found[0].split() if found and found[0] else []:
                size = _size(_check(client.uid("FETCH", uid, "(RFC822.SIZE)"), "fetch size"),
                             uid)  # fmt: skip
                raw = b""
                if size is None or size <= self.settings.max_size:
                    fetched = _message(_check(client.uid("FETCH", uid, "(BODY.PEEK[])"),
                                              "fetch"))  # fmt: skip
                    if fetched is None:
                        continue  # gone meanwhile (another client expunged it)
                    raw, size = fetched, len(fetched)
                if size > self.settings.max_size:
                    log.warning("e-mail: %s's message UID %s in %s is over max_size (%d bytes, "
                                "max_size %d): not stored, marked seen, left in the mailbox",
                                self.customer, uid.decode(), imap.mailbox, size,
                                self.settings.max_size)  # fmt: skip
                elif keep(self.store, self.customer, self.settings, raw,
                          recipients=recipients_of(raw), envelope_sender="", source="imap",
                          now=self.reactor.seconds()) is not None:  # fmt: skip
                    kept += 1
                _check(client.uid("STORE", uid, "+FLAGS", "(\\Seen)"), "store \\Seen")
            return kept
        except sqlite3.Error as exc:
            raise imaplib.IMAP4.error(f"the e-mail store failed: {exc}") from exc
        finally:
            with contextlib.suppress(imaplib.IMAP4.error, OSError):
                client.logout()


def _quoted(mailbox: str) -> str:
    return '"' + mailbox.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _check(answer: tuple[str, list[Any]], what: str) -> list[Any]:
    status, data = answer
    if status != "OK":
        raise imaplib.IMAP4.error(f"{what}: {status} {_text(data)}")
    return data


def _reason(exc: BaseException | None) -> str:
    """An error's text; imaplib gives the server's answer as bytes (not "b'LOGIN failed'")."""
    args = () if exc is None else exc.args
    return _text(args) if any(isinstance(arg, bytes) for arg in args) else str(exc)


def _text(parts: Any) -> str:
    return " ".join(p.decode("utf-8", "replace") if isinstance(p, bytes) else str(p)
                    for p in parts)  # fmt: skip


_UID = re.compile(rb"\bUID (\d+)")
_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")


def _size(data: list[Any], uid: bytes) -> int | None:
    """The RFC822.SIZE of ``uid`` in a FETCH answer; None when the server gave none.

    Answers for other messages (unsolicited flag changes) are passed over.
    """
    for part in data:
        line = part[0] if isinstance(part, tuple) and part else part
        if not isinstance(line, bytes):
            continue
        size = _SIZE.search(line)
        which = _UID.search(line)
        if size is not None and (which is None or which.group(1) == uid):
            return int(size.group(1))
    return None


def _message(data: list[Any]) -> bytes | None:
    """The message bytes of a FETCH answer (the first literal)."""
    for part in data:
        if isinstance(part, tuple) and len(part) >= 2 and isinstance(part[1], bytes):
            return part[1]
    return None
