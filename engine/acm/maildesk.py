"""The e-mail desk: which operator handles which stored e-mail, and what statistics hear of it.

E-mail is the deferrable channel, so operators *pull*: the desktop asks for
the next e-mail of an operator (:meth:`EmailDesk.next_for`) and gets the
oldest one waiting in a group where the operator is eligible by that group's
rules for calls, applied through :func:`engine.acm.strategies.select`: the
operator must be ``available`` in the shared presence (the same presence the
phone side reads) and at or above the group's tier level for how long the
e-mail has waited. Asking is accepting: the e-mail is ``offered`` and
``answered`` at once, ``ended`` when done (or given back).

While an operator handles an e-mail, the phone side does not offer them calls
(voice would otherwise pre-empt e-mail work, which breaks handling times and
the e-mail service level): the desk reserves the operator for the e-mail
and holds them ``on_call`` under a lease of ``email.hold`` seconds, renewed
each time the desktop asks again. An operator who walks away from an open
e-mail comes back to calls when the lease runs out; the e-mail stays theirs.
A logout or break (``set_operator``) ends the hold the same way. One e-mail
at a time: an operator with an e-mail in hand is given that one again.

Only the operator who has an e-mail may end it (``done``, ``release``): the
caller names the operator, and another's e-mail is refused. Until the portal
brings per-operator tokens, the API's customer token is what authenticates,
so this guards against mistakes (a stale desktop, a wrong id), not against
someone holding the customer's token.

Finding the next e-mail reads the oldest waiting e-mail of each of the
operator's groups only (:meth:`MailStore.oldest_waiting`), never the whole
queue: tiers only widen with waiting, so an operator not eligible for a
group's oldest e-mail is not eligible for any younger one of that group.
"""

from __future__ import annotations

from collections.abc import Callable

from engine.acm.events import AcmEvent, EventSink
from engine.acm.mailconfig import EmailSettings
from engine.acm.mailstore import Email, MailStore
from engine.acm.model import AcmSettings
from engine.acm.strategies import Candidate, select
from engine.state.interface import Clock, Operators

__all__ = ["RESERVE_TTL", "ConflictError", "DeskError", "EmailDesk", "NotFoundError"]

#: Seconds between reserving an operator and holding them for the e-mail (one round trip).
RESERVE_TTL = 10.0

#: E-mails another engine may take from under an operator's ask before it answers "none now".
_ATTEMPTS = 5


class DeskError(Exception):
    """A request the desk refuses; the message is one sentence for the operator's screen."""


class NotFoundError(DeskError):
    """No such customer e-mail routing, operator or e-mail."""


class ConflictError(DeskError):
    """The operator or the e-mail is not in a state that allows it."""


class EmailDesk:
    """Hands stored e-mails to operators; emits ``channel="email"`` events to ``sink``.

    ``acm_of`` gives a customer's ACM as it is now (the run-time directory's
    ``settings``, or the file's), read at each request.
    """

    def __init__(
        self,
        clock: Clock,
        store: MailStore,
        state: Operators,
        sink: EventSink,
        acm_of: Callable[[str], AcmSettings | None],
    ) -> None:
        self.clock = clock
        self.store = store
        self.state = state
        self.sink = sink
        self.acm_of = acm_of

    def announce(self) -> None:
        """Report newly stored e-mails as queued (the intake calls it after each arrival)."""
        for email in self.store.unannounced():
            self._event("queued", email, operator="", detail="0")

    def settings(self, customer: str) -> tuple[AcmSettings, EmailSettings]:
        acm = self.acm_of(customer)
        if acm is None or acm.email is None:
            raise NotFoundError(f"customer '{customer}' has no e-mail routing "
                                f"(customers.{customer}.acm.email)")  # fmt: skip
        return acm, acm.email

    async def next_for(self, customer: str, operator: str) -> Email | None:
        """The e-mail the operator is to handle now: in hand already, or newly taken; or None."""
        acm, settings = self.settings(customer)
        member = acm.operators.get(operator)
        if member is None:
            raise NotFoundError(f"customer '{customer}' has no operator '{operator}'")
        held = self.store.assigned_to(customer, operator)
        if held is not None:
            await self._hold(customer, operator, held, settings.hold)
            return held
        candidates: dict[str, list[Candidate]] = {}
        presence = "logged_out"
        for group in sorted(member.groups):
            infos = await self.state.operators(customer, group)
            candidates[group] = [Candidate(i.operator, i.level, i.state, i.idle_since,
                                           i.calls_handled) for i in infos]  # fmt: skip
            presence = next((i.state for i in infos if i.operator == operator), presence)
        if presence != "available":
            raise ConflictError(f"operator '{operator}' is {presence.replace('_', ' ')}: "
                                "e-mails go to available operators")  # fmt: skip
        for _ in range(_ATTEMPTS):
            # Each group's oldest only: if the operator is below the group's level for it,
            # they are below it for every younger one (tiers widen with waiting).
            email = next((e for e in self.store.oldest_waiting(customer, candidates)
                          if self._eligible(acm, e, operator, candidates[e.group])),
                         None)  # fmt: skip
            if email is None:
                return None
            if await self.state.reserve(customer, [operator], email.contact, RESERVE_TTL) is None:
                raise ConflictError(f"operator '{operator}' was just given a call")
            taken = self.store.assign(customer, email.id, operator, self.clock.seconds())
            if taken is None:  # another engine on this data_dir gave it away meanwhile
                await self.state.move_operator(customer, operator, email.contact, "available")
                continue
            await self.state.move_operator(customer, operator, email.contact, "on_call",
                                           settings.hold)  # fmt: skip
            self._event("offered", taken)
            self._event("answered", taken)
            return taken
        return None

    def _eligible(
        self, acm: AcmSettings, email: Email, operator: str, candidates: list[Candidate]
    ) -> bool:
        """The group's rules for calls offer ``email`` to ``operator`` now."""
        group = acm.groups.get(email.group)
        if group is None:  # a group removed since the e-mail came: nobody is eligible
            return False
        rounds = select(group, self.clock.seconds() - email.received, candidates)
        return any(c.name == operator for offer in rounds for c in offer)

    async def done(self, customer: str, email_id: int, operator: str) -> Email:
        """The operator has handled their e-mail: ``ended``, and they are free for calls."""
        return await self._end(customer, email_id, operator, "done")

    async def release(self, customer: str, email_id: int, operator: str) -> Email:
        """The operator gives their e-mail back unhandled: it waits again, in its old place."""
        return await self._end(customer, email_id, operator, "released")

    def get(self, customer: str, email_id: int) -> Email:
        self.settings(customer)
        email = self.store.get(customer, email_id)
        if email is None:
            raise NotFoundError(f"customer '{customer}' has no e-mail {email_id}")
        return email

    async def _end(self, customer: str, email_id: int, operator: str, how: str) -> Email:
        email = self.get(customer, email_id)
        if email.state != "assigned":
            raise ConflictError(f"e-mail {email_id} is {email.state}, not in anyone's hands")
        if operator != email.operator:
            raise ConflictError(f"e-mail {email_id} is in the hands of '{email.operator}', "
                                f"not '{operator}'")  # fmt: skip
        now = self.clock.seconds()
        after = (self.store.finish(customer, email_id, now, operator) if how == "done"
                 else self.store.give_back(customer, email_id, operator))  # fmt: skip
        if after is None:
            raise ConflictError(f"e-mail {email_id} changed hands meanwhile; ask again")
        assert email.operator is not None
        await self.state.move_operator(customer, email.operator, email.contact, "available")
        self._event("ended", email, detail=how)
        return after

    async def _hold(self, customer: str, operator: str, email: Email, hold: float) -> None:
        """Renew the operator's hold for ``email``, or take it again (after a restart) if free."""
        if await self.state.move_operator(customer, operator, email.contact, "on_call", hold):
            return
        if await self.state.reserve(customer, [operator], email.contact, RESERVE_TTL):
            await self.state.move_operator(customer, operator, email.contact, "on_call", hold)

    def _event(self, kind: str, email: Email, operator: str | None = None,
               detail: str = "") -> None:  # fmt: skip
        who = (email.operator or "") if operator is None else operator
        self.sink.record(AcmEvent(self.clock.seconds(), email.customer, kind, "email",
                                  email.group, email.contact, who, detail))  # fmt: skip
