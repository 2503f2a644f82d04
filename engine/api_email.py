"""``/api/v1/customers/ID/email``: the operators' e-mail desk over HTTP (engine/acm/maildesk.py).

- ``GET email``: each group's queue (waiting, oldest, in hand);
- ``GET email?operator=NAME``: the e-mail the operator is to handle now,
  ``{"email": null}`` when none waits for them (409 when they are not
  available); asking again renews their hold and gives the same one;
- ``GET email/ID``: one e-mail with its text;
- ``POST email/ID/done`` and ``POST email/ID/release`` (``?operator=NAME``
  optional: then it must be theirs): handled, or given back to the queue.

The desktop polls ``?operator=`` (every few seconds while idle, at least once
per ``email.hold`` while handling one).
"""

from __future__ import annotations

from email import policy
from email.parser import BytesParser
from typing import Any

from engine.acm.maildesk import ConflictError, EmailDesk, NotFoundError
from engine.acm.mailstore import Email
from engine.api_v1 import V1, Reply, error, query_of
from engine.sites.health import iso
from engine.state.interface import StateError

__all__ = ["EmailApi"]

#: Characters of an e-mail's text the API returns (the desktop shows the start of long ones).
MAX_TEXT = 100_000


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
    try:
        body = message.get_body(preferencelist=("plain", "html"))
        text = "" if body is None else str(body.get_content())
    except (LookupError, ValueError, AttributeError):  # unknown charset, broken MIME
        text = ""
    names = [part.get_filename() or "" for part in message.iter_attachments()]
    return text.replace("\r\n", "\n")[:MAX_TEXT], names  # SMTP keeps CRLF line ends


class EmailApi:
    """Plugs the ``email`` resource into /api/v1 (:meth:`plug`)."""

    def __init__(self, desk: EmailDesk) -> None:
        self.desk = desk

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
            if not rest[0].isdigit():
                return error(404, f"no such e-mail: '{rest[0]}'")
            email_id = int(rest[0])
            if method == "GET" and len(rest) == 1:
                return self._one(customer, email_id)
            if method == "POST" and len(rest) == 2 and rest[1] in ("done", "release"):
                act = self.desk.done if rest[1] == "done" else self.desk.release
                return Reply(200, _summary(await act(customer, email_id, operator)))
            return error(404, f"no such e-mail resource: {'/'.join(rest)} (GET email[/ID], "
                              "POST email/ID/done or email/ID/release)")  # fmt: skip
        except NotFoundError as exc:
            return error(404, str(exc))
        except ConflictError as exc:
            return error(409, str(exc))
        except StateError as exc:
            return error(503, f"the operators' shared state is not reachable: {exc}",
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

    def _one(self, customer: str, email_id: int) -> Reply:
        email = self.desk.get(customer, email_id)
        raw = self.desk.store.raw(customer, email_id) or b""
        text, attachments = _text(raw)
        return Reply(200, {**_summary(email), "text": text, "attachments": attachments})
