"""A real IMAP4 server on a loopback port: Twisted's IMAP4Server over one in-memory mailbox.

The mailbox implements just what a client polling for UNSEEN mail needs
(SELECT, UID SEARCH, UID FETCH, UID STORE) and records what was asked of it,
so tests can check which messages were fetched (any item: ``fetched``), whose
bytes were sent (``downloaded``) and which flags they carry.
Login goes through twisted.cred with one user and password; every attempt is
counted and tests can wait (on a Deferred) for the Nth one.

    server = await ImapServer.start(reactor, "desk", "secret")
    uid = server.inbox.deliver(b"From: ...\\r\\n\\r\\nhi\\r\\n")
    ...
    await server.stop()
"""

from __future__ import annotations

from collections.abc import Iterable
from email.parser import BytesHeaderParser
from io import BytesIO
from typing import Any

from twisted.cred.checkers import InMemoryUsernamePasswordDatabaseDontUse
from twisted.cred.portal import IRealm, Portal
from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import ServerFactory
from twisted.mail import imap4
from zope.interface import implementer

__all__ = ["ImapServer", "Mailbox", "StoredMessage"]

SEEN = "\\Seen"


@implementer(imap4.IMessage, imap4.IMessageFile)
class StoredMessage:
    """One message of the mailbox: its exact bytes, UID and flags.

    ``downloads`` gets the UID each time the whole message is sent (BODY[], RFC822).
    """

    def __init__(self, uid: int, raw: bytes, flags: Iterable[str] = (),
                 downloads: list[int] | None = None) -> None:  # fmt: skip
        self.uid = uid
        self.raw = raw
        self.flags = set(flags)
        self.downloads = [] if downloads is None else downloads

    # IMessageFile: BODY[] and RFC822 are sent byte for byte.
    def open(self) -> BytesIO:
        self.downloads.append(self.uid)
        return BytesIO(self.raw)

    # IMessage
    def getUID(self) -> int:
        return self.uid

    def getFlags(self) -> list[str]:
        return sorted(self.flags)

    def getInternalDate(self) -> str:
        return "Mon, 01 Jan 2024 12:00:00 +0000"

    def getHeaders(self, negate: bool, *names: bytes) -> dict[str, str]:
        parsed = BytesHeaderParser().parsebytes(self.raw)
        wanted = {n.decode().lower() for n in names}
        return {k.lower(): str(v) for k, v in parsed.items()
                if not wanted or (k.lower() in wanted) != negate}  # fmt: skip

    def getBodyFile(self) -> BytesIO:
        body = self.raw.partition(b"\r\n\r\n")[2]
        return BytesIO(body)

    def getSize(self) -> int:
        return len(self.raw)

    def isMultipart(self) -> bool:
        return False

    def getSubPart(self, part: int) -> Any:
        raise TypeError("not a multipart message")


@implementer(imap4.IMailboxInfo, imap4.IMailbox, imap4.ISearchableMailbox)
class Mailbox:
    """INBOX: messages in UID order; ``fetched`` lists the UIDs each FETCH returned.

    ``downloaded`` lists the UIDs whose bytes were sent, in order (a FETCH of
    RFC822.SIZE or FLAGS is in ``fetched``, not here).
    """

    def __init__(self) -> None:
        self.messages: list[StoredMessage] = []
        self.next_uid = 1
        self.fetched: list[int] = []
        self.downloaded: list[int] = []
        self.stored: list[tuple[int, tuple[str, ...], int]] = []  # (uid, flags, mode)
        self.listeners: list[Any] = []

    # -- for tests --------------------------------------------------------------------

    def deliver(self, raw: bytes, flags: Iterable[str] = ()) -> int:
        """A new message (its UID); CRLF line ends as on the wire."""
        message = StoredMessage(self.next_uid, raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"),
                                flags, self.downloaded)  # fmt: skip
        self.next_uid += 1
        self.messages.append(message)
        return message.uid

    def by_uid(self, uid: int) -> StoredMessage:
        return next(m for m in self.messages if m.uid == uid)

    def unseen(self) -> list[int]:
        return [m.uid for m in self.messages if SEEN not in m.flags]

    # -- IMailboxInfo / IMailbox ------------------------------------------------------

    def getFlags(self) -> tuple[str, ...]:
        return ("\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft")

    def getHierarchicalDelimiter(self) -> str:
        return "/"

    def getUIDValidity(self) -> int:
        return 42

    def getUIDNext(self) -> int:
        return self.next_uid

    def getUID(self, message: int) -> int:
        return self.messages[message - 1].uid

    def getMessageCount(self) -> int:
        return len(self.messages)

    def getRecentCount(self) -> int:
        return 0

    def getUnseenCount(self) -> int:
        return len(self.unseen())

    def isWriteable(self) -> bool:
        return True

    def destroy(self) -> None:
        self.messages.clear()

    def requestStatus(self, names: Iterable[str]) -> Deferred[dict[str, int]]:
        status = {"MESSAGES": self.getMessageCount(), "RECENT": 0,
                  "UIDNEXT": self.next_uid, "UIDVALIDITY": 42, "UNSEEN": self.getUnseenCount()}
        return succeed({name: status[name] for name in names if name in status})

    def addListener(self, listener: Any) -> None:
        self.listeners.append(listener)

    def removeListener(self, listener: Any) -> None:
        self.listeners.remove(listener)

    def addMessage(
        self, message: Any, flags: Iterable[str] = (), date: Any = None
    ) -> Deferred[int]:
        return succeed(self.deliver(message.read(), flags))

    def expunge(self) -> list[int]:
        gone = [m.uid for m in self.messages if "\\Deleted" in m.flags]
        self.messages = [m for m in self.messages if m.uid not in gone]
        return gone

    def _select(self, messages: imap4.MessageSet, uid: bool) -> list[tuple[int, StoredMessage]]:
        """(sequence number, message) of each message in the set."""
        if self.messages:
            messages.last = self.messages[-1].uid if uid else len(self.messages)
        else:
            return []
        return [(seq, m) for seq, m in enumerate(self.messages, 1)
                if (m.uid if uid else seq) in messages]  # fmt: skip

    def fetch(self, messages: imap4.MessageSet, uid: bool) -> list[tuple[int, StoredMessage]]:
        found = self._select(messages, uid)
        self.fetched.extend(m.uid for _, m in found)
        return found

    def store(
        self, messages: imap4.MessageSet, flags: list[str], mode: int, uid: bool
    ) -> dict[int, list[str]]:
        out = {}
        for seq, message in self._select(messages, uid):
            self.stored.append((message.uid, tuple(flags), mode))
            if mode == 1:
                message.flags.update(flags)
            elif mode == -1:
                message.flags.difference_update(flags)
            else:
                message.flags = set(flags)
            out[seq] = message.getFlags()
        return out

    # -- ISearchableMailbox: the few keys a poller uses -----------------------------

    def search(self, query: list[Any], uid: bool) -> list[int]:
        """Sequence numbers (the server turns them into UIDs for UID SEARCH)."""
        keys = [key.upper() for key in query]
        wanted = []
        for seq, message in enumerate(self.messages, 1):
            ok = True
            for key in keys:
                if key == b"UNSEEN":
                    ok = ok and SEEN not in message.flags
                elif key == b"SEEN":
                    ok = ok and SEEN in message.flags
                elif key != b"ALL":
                    raise imap4.IllegalQueryError(f"this test server does not search {key!r}")
            if ok:
                wanted.append(seq)
        return wanted


@implementer(IRealm)
class _Realm:
    def __init__(self, account: imap4.MemoryAccount) -> None:
        self.account = account

    def requestAvatar(self, avatar_id: Any, mind: Any, *interfaces: Any) -> Any:
        if imap4.IAccount not in interfaces:
            raise NotImplementedError("only IMAP accounts here")
        return imap4.IAccount, self.account, lambda: None


class _Account(imap4.MemoryAccount):
    def _emptyMailbox(self, name: str, id: int) -> Mailbox:
        return Mailbox()


class _Server(imap4.IMAP4Server):
    factory: ImapServer

    def authenticateLogin(self, user: bytes, passwd: bytes) -> Any:
        self.factory.login_attempt(user, passwd)
        return super().authenticateLogin(user, passwd)


class ImapServer(ServerFactory):
    """The server: ``inbox`` is the one user's INBOX; ``port`` where it listens."""

    protocol = _Server

    def __init__(self, user: str, password: str) -> None:
        self.inbox = Mailbox()
        account = _Account(user)
        account.addMailbox("INBOX", self.inbox)
        checker = InMemoryUsernamePasswordDatabaseDontUse()
        checker.addUser(user.encode(), password.encode())
        self.portal = Portal(_Realm(account), [checker])
        self.password = password.encode()
        self.logins: list[tuple[bytes, bool]] = []  # (user, right password)
        self._waiting: list[tuple[int, Deferred[None]]] = []
        self._port: Any = None
        self.port = 0

    @classmethod
    async def start(cls, reactor: Any, user: str, password: str) -> ImapServer:
        server = cls(user, password)
        server._port = reactor.listenTCP(0, server, interface="127.0.0.1")
        server.port = server._port.getHost().port
        return server

    async def stop(self) -> None:
        if self._port is not None:
            await self._port.stopListening()
            self._port = None

    def buildProtocol(self, addr: Any) -> _Server:
        protocol = _Server()
        protocol.factory = self
        protocol.portal = self.portal
        return protocol

    def login_attempt(self, user: bytes, passwd: bytes) -> None:
        self.logins.append((user, passwd == self.password))
        ready = [(n, d) for n, d in self._waiting if len(self.logins) >= n]
        self._waiting = [(n, d) for n, d in self._waiting if len(self.logins) < n]
        for _, waiter in ready:
            waiter.callback(None)

    def logged_in(self, count: int) -> Deferred[None]:
        """Fires once the server has seen ``count`` login attempts (right or wrong)."""
        if len(self.logins) >= count:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._waiting.append((count, waiter))
        return waiter
