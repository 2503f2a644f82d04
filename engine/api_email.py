"""``/api/v1/customers/ID/email``: the operators' e-mail desk over HTTP (engine/acm/maildesk.py).

- ``GET email``: each group's queue (waiting, oldest, in hand);
- ``GET email?operator=NAME``: the e-mail the operator is to handle now,
  ``{"email": null}`` when none waits for them (409 when they are not
  available); asking again renews their hold and gives the same one;
- ``GET email/ID``: one e-mail with its text (read and parsed in a pool
  thread: up to ``max_size`` bytes, not on the reactor);
- ``POST email/ID/done?operator=NAME`` and ``POST email/ID/release?operator=NAME``:
  handled, or given back to the queue. ``operator`` is required (400 without
  it) and must be the one who has the e-mail (409 otherwise).

The desktop polls ``?operator=`` (every few seconds while idle, at least once
per ``email.hold`` while handling one).

Who may act: the customer's API token, which every operator's desktop holds.
Naming the operator for ``done`` and ``release`` keeps one desktop from
closing another's e-mail by mistake, but it is not authentication: anyone
with the customer token can name any operator. Per-operator tokens are to
come with the operators' portal; until then this is the best the API can do.

E-mail ids are whole numbers from 1 to 2**63-1 (SQLite's); anything else is
404. A database that is busy or failing is 503 with ``Retry-After``.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from email import policy
from email.parser import BytesParser
from typing import Any

from twisted.internet.threads import deferToThreadPool

from engine.acm.maildesk import ConflictError, EmailDesk, NotFoundError
from engine.acm.mailstore import Email, MailStoreError
from engine.api_v1 import V1, Reply, error, query_of
from engine.ratelog import RateLimitedLog
from engine.sites.health import iso
from engine.state.interface import StateError

__all__ = ["MAX_ID", "EmailApi"]

log = logging.getLogger("vms.acm.email")

#: Characters of an e-mail's text the API returns (the desktop shows the start of long ones).
MAX_TEXT = 100_000
#: The largest e-mail id (SQLite's INTEGER PRIMARY KEY is a signed 64-bit number).
MAX_ID = 2**63 - 1
_ID = re.compile(r"[0-9]{1,19}")  # ASCII digits only: str.isdigit() takes "²" and "١"
_USAGE = "GET email[/ID], POST email/ID/done?operator=NAME or email/ID/release?operator=NAME"


def _summary(email: Email) -> dict[str, Any]:
    return {
        "id": email.id,
        "group": email.group,
        "from": email.sender,
        "to": list(email.recipients),
        "subject": email.subject,
        "received": iso(email.received),
        "state": email.state,
        "operator": email.operator,
        "assigned": None if email.assigned is None else iso(email.assigned),
        "done": None if email.done is None else iso(email.done),
    }


def _text(raw: bytes) -> tuple[str, list[str]]:
    """The plain text (or HTML as a fallback) of a message, and its attachments' names."""
    message = BytesParser(policy=policy.default).parsebytes(raw)
    # Bad input is normal here, and the email package raises many things on it
    # (an unknown charset, broken MIME, a malformed header): the rest still shows.
    try:
        body = message.get_body(preferencelist=("plain", "html"))
        text = "" if body is None else str(body.get_content())
    except Exception:
        text = ""
    try:
        names = [part.get_filename() or "" for part in message.iter_attachments()]
    except Exception:
        names = []
    return text.replace("\r\n", "\n")[:MAX_TEXT], names  # SMTP keeps CRLF line ends


def _email_id(text: str) -> int | None:
    """The id named in the path, or None when it cannot name an e-mail."""
    if not _ID.fullmatch(text):
        return None
    number = int(text)
    return number if 1 <= number <= MAX_ID else None


class EmailApi:
    """Plugs the ``email`` resource into /api/v1 (:meth:`plug`).

    ``reactor``: whose thread pool reads and parses single e-mails (default: the global one).
    """

    def __init__(self, desk: EmailDesk, reactor: Any = None) -> None:
        self.desk = desk
        if reactor is None:
            # Not at module level: importing it installs the default reactor.
            from twisted.internet import reactor  # noqa: PLC0415
        self.reactor = reactor
        self._failures = RateLimitedLog(log, reactor, interval=60.0)

    def plug(self, v1: V1) -> None:
        v1.add("email", ("GET", "POST"), self.answer)

    async def answer(
        self, request: Any, customer: str, method: str, rest: tuple[str, ...]
    ) -> Reply:
        operator = query_of(request).get("operator") or None
        try:
            if method == "GET" and not rest:
                if operator is None:
                    return self._queues(customer)
                email = await self.desk.next_for(customer, operator)
                return Reply(200, {"email": None if email is None else _summary(email)})
            if not rest:
                return error(404, f"POST needs an e-mail and what to do with it ({_USAGE})")
            email_id = _email_id(rest[0])
            if email_id is None:
                return error(404, f"no such e-mail: '{rest[0]}' (e-mail ids are whole numbers "
                                  f"from 1 to {MAX_ID})")  # fmt: skip
            if method == "GET" and len(rest) == 1:
                return await self._one(customer, email_id)
            if method == "POST" and len(rest) == 2 and rest[1] in ("done", "release"):
                if operator is None:
                    return error(400, f"POST email/{email_id}/{rest[1]} needs ?operator=NAME: "
                                      "the operator who has the e-mail")  # fmt: skip
                act = self.desk.done if rest[1] == "done" else self.desk.release
                return Reply(200, _summary(await act(customer, email_id, operator)))
            return error(404, f"no such e-mail resource: {'/'.join(rest)} ({_USAGE})")
        except NotFoundError as exc:
            return error(404, str(exc))
        except ConflictError as exc:
            return error(409, str(exc))
        except StateError as exc:
            return error(503, f"the operators' shared state is not reachable: {exc}",
                         retry_after=b"1")  # fmt: skip
        except (sqlite3.Error, MailStoreError) as exc:
            self._failures.warning("db", "API: the e-mail database failed: %s", exc)
            return error(503, "the e-mail database is busy or failing; try again",
                         retry_after=b"1")  # fmt: skip

    def _queues(self, customer: str) -> Reply:
        acm, _ = self.desk.settings(customer)
        queues = self.desk.store.queues(customer)
        groups = {}
        for name in sorted(set(acm.groups) | set(queues)):
            queue = queues.get(name)
            groups[name] = {
                "waiting": 0 if queue is None else queue.waiting,
                "oldest": None if queue is None or queue.oldest is None else iso(queue.oldest),
                "assigned": 0 if queue is None else queue.assigned,
            }
        return Reply(200, {"groups": groups})

    async def _one(self, customer: str, email_id: int) -> Reply:
        self.desk.settings(customer)  # the live settings are the reactor's to read
        body: dict[str, Any] = await deferToThreadPool(
            self.reactor, self.reactor.getThreadPool(), self._read, customer, email_id
        )
        return Reply(200, body)

    def _read(self, customer: str, email_id: int) -> dict[str, Any]:
        """One e-mail with its text (a pool thread: the store's lock guards its connection)."""
        found = self.desk.store.read(customer, email_id)
        if found is None:
            raise NotFoundError(f"customer '{customer}' has no e-mail {email_id}")
        email, raw = found
        text, attachments = _text(raw)
        return {**_summary(email), "text": text, "attachments": attachments}
