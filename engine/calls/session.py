"""Session timers (RFC 4028) towards each side of a call, as that side asks.

A B2BUA negotiates a session timer with each peer on its own. Towards the
caller: when its INVITE asks (Session-Expires, and it supports ``timer``),
the 2xx confirms the interval and the caller refreshes (``refresher=uac``
unless it asked otherwise); an interval below our Min-SE is refused with
422. Towards the callee: our INVITE says we support ``timer``; when the
callee's 2xx sets a Session-Expires, we refresh if it names us
(``refresher=uac``), with UPDATE when the callee allows it, else with a
re-INVITE repeating the session description we last sent. Either way a side
that stops refreshing has the call ended before the session expires
(``interval - min(32, interval/3)``, §10).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from engine.sip.message import Request, Response
from engine.sip.timers import Timer

if TYPE_CHECKING:
    from engine.calls.call import Call
    from engine.calls.dialog import Dialog

__all__ = ["SessionTimers", "parse_session_expires"]

CALLER, CALLEE = "caller", "callee"


def parse_session_expires(message: Request | Response) -> tuple[int, str | None] | None:
    """``Session-Expires: 1800;refresher=uac`` -> (1800, "uac"); None if absent or bad."""
    value = message.get("session-expires")
    if value is None:
        return None
    delta, _, params = value.partition(";")
    delta = delta.strip()
    if not delta.isdigit():
        return None
    refresher = None
    for param in params.split(";"):
        name, _, val = param.partition("=")
        if name.strip().lower() == "refresher":
            refresher = val.strip().lower() or None
    return int(delta), refresher


def _supports_timer(message: Request | Response) -> bool:
    tags = {t.lower() for t in message.values("supported")} | {
        t.lower() for t in message.values("require")
    }
    return "timer" in tags


class SessionTimers:
    """The refresh and expiry timers of one call."""

    def __init__(self, call: Call) -> None:
        self.call = call
        self.timers: dict[str, Timer] = {}

    def too_small(self, invite: Request) -> int | None:
        """The Min-SE to answer 422 with, when the caller asks for less than it (§5)."""
        asked = parse_session_expires(invite)
        min_se = self.call.ctx.settings.min_se
        if asked is not None and asked[0] < min_se:
            return min_se
        return None

    def answer_caller(self, invite: Request, response: Response) -> None:
        asked = parse_session_expires(invite)
        if asked is None or not _supports_timer(invite):
            return
        interval, refresher = asked
        refresher = refresher or "uac"
        response.headers["session-expires"] = [f"{interval};refresher={refresher}"]
        requires = [t for t in response.values("require") if t.lower() != "timer"]
        response.headers["require"] = [", ".join([*requires, "timer"])]
        if refresher == "uac":
            self._watch(CALLER, interval)
        else:
            self._refresh_every(CALLER, interval)

    def answer_refresh(self, side: str, request: Request, response: Response) -> None:
        """Our own 2xx to a re-INVITE or UPDATE (media anchored): grant the interval asked (§9)."""
        asked = parse_session_expires(request)
        if asked is None or not _supports_timer(request):
            self.refreshed(side)
            return
        interval, refresher = asked
        refresher = refresher or "uac"  # unsaid: the one refreshing now goes on doing it
        response.headers["session-expires"] = [f"{interval};refresher={refresher}"]
        response.headers["require"] = ["timer"]
        if refresher == "uac":
            self._watch(side, interval)
        else:
            self._refresh_every(side, interval)

    def callee_answered(self, response: Response) -> None:
        granted = parse_session_expires(response)
        if granted is None:
            return
        interval, refresher = granted
        if refresher == "uac":
            self._refresh_every(CALLEE, interval)
        else:
            self._watch(CALLEE, interval)

    def refreshed(self, side: str) -> None:
        """A refresh (re-INVITE or UPDATE) from ``side`` succeeded: its session lives on."""
        watch = self.timers.get(f"watch-{side}")
        if watch is not None:
            interval = watch.args[1]
            self._watch(side, interval)

    def stop(self) -> None:
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()

    def _watch(self, side: str, interval: int) -> None:
        limit = interval - min(32, interval / 3)
        self._set(f"watch-{side}", limit, self._expired, side, interval)

    def _expired(self, side: str, _interval: int) -> None:
        self.call.session_expired(side)

    def _refresh_every(self, side: str, interval: int) -> None:
        self._set(f"refresh-{side}", interval / 2, self._refresh, side, interval)

    def _refresh(self, side: str, interval: int) -> None:
        self.call.refresh_session(side, interval)
        self._refresh_every(side, interval)

    def _set(self, name: str, delay: float, fn: object, side: str, interval: int) -> None:
        old = self.timers.pop(name, None)
        if old is not None:
            old.cancel()
        self.timers[name] = self.call.ctx.stack.timers.call_later(delay, fn, side, interval)  # type: ignore[arg-type]


def refresh_request(dialog: Dialog, allow_update: bool, interval: int, sdp: bytes) -> Request:
    """The request that refreshes a session we are the refresher of (§7.4)."""
    if allow_update:
        request = dialog.request("UPDATE")
    else:
        request = dialog.request("INVITE", sdp, "application/sdp" if sdp else None)
    request.headers["session-expires"] = [f"{interval};refresher=uac"]
    request.headers["supported"] = ["timer"]
    return request
