"""The four transaction state machines of RFC 3261 §17, as tables.

Everything that changes a transaction's state lives in this file. Each
machine is a table ``(state, event) -> (next state, actions)`` to hold
against the RFC's figure (Figures 5 to 8, with the Accepted state that
RFC 6026 adds to both INVITE machines); actions are the small methods named
in the table. An event with no row is absorbed (a late retransmission, a
response after the end). The client INVITE machine also ends 64*T1 after
the TU's CANCEL if no final response came (§9.1: nothing else would end it
in Proceeding). Two things are decided in code beside the tables:
timers G, E, A are not run on reliable transports, and timers D, I, J, K are
zero on them (RFC 3261 Table 4).

Events come from the transaction layer (``engine/sip/stack.py``): messages
received, responses the TU sends, timers and transport errors. Sends go
through the transaction's ``transport``; what the TU must learn goes to the
layer (server side) or to the transaction's ``user`` (client side).
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from engine.sip.message import Request, Response
from engine.sip.timers import Timer, TimerQueue
from engine.tables import Machine, Row

__all__ = [
    "ClientInvite",
    "ClientNonInvite",
    "ClientUser",
    "Layer",
    "ServerInvite",
    "ServerNonInvite",
    "Transaction",
    "Transport",
]

Address = tuple[str, int]

TERMINATED = "terminated"


class Transport(Protocol):
    """Where a transaction's bytes go: a UDP port or a TCP connection."""

    reliable: bool
    name: str

    def send(self, data: bytes, addr: Address) -> None: ...


class Layer(Protocol):
    """What a transaction needs from the layer that owns it."""

    timers: TimerQueue
    t1: float
    t2: float
    t4: float

    def forget(self, txn: Transaction) -> None: ...

    def server_failed(self, txn: Transaction, reason: str) -> None: ...


class ClientUser(Protocol):
    """Who learns what a client transaction brings back."""

    def response_received(self, txn: Transaction, response: Response) -> None: ...

    def transaction_failed(self, txn: Transaction, reason: str) -> None: ...


class Transaction(Machine):
    """Shared machinery: named timers, sending, and the end of a transaction."""

    __slots__ = ("addr", "intervals", "key", "layer", "request", "timers", "transport")

    def __init__(
        self, layer: Layer, key: Any, request: Request, transport: Transport, addr: Address
    ) -> None:
        self.layer = layer
        self.key = key
        self.request = request
        self.transport = transport
        self.addr = addr
        self.state = self.INITIAL
        self.timers: dict[str, Timer] = {}
        self.intervals: dict[str, float] = {}

    def _end(self, _arg: Any = None) -> None:
        for timer in self.timers.values():
            timer.cancel()
        self.timers.clear()
        self.layer.forget(self)

    def _start(self, name: str, delay: float) -> None:
        old = self.timers.get(name)
        if old is not None:
            old.cancel()
        self.timers[name] = self.layer.timers.call_later(delay, self.handle, "timer_" + name)

    def _stop(self, name: str) -> None:
        timer = self.timers.pop(name, None)
        if timer is not None:
            timer.cancel()

    def _double(self, name: str, first: float, cap: float) -> None:
        """(Re)start a retransmission timer at ``first``, then twice the last, up to ``cap``."""
        last = self.intervals.get(name)
        interval = first if last is None else min(2 * last, cap)
        self.intervals[name] = interval
        self._start(name, interval)

    def _report_transport_error(self, _arg: Any) -> None:
        self._fail("transport")

    def _report_timeout(self, _arg: Any) -> None:
        self._fail("timeout")

    def _fail(self, reason: str) -> None:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.request.method} {self.state} key={self.key!r}>"


# -- server side ---------------------------------------------------------------


class _Server(Transaction):
    """Remembers the last response so a retransmitted request gets it again."""

    __slots__ = ("last", "raw_via", "to_tag")

    def __init__(
        self, layer: Layer, key: Any, request: Request, transport: Transport, addr: Address
    ) -> None:
        super().__init__(layer, key, request, transport, addr)
        self.last: bytes | None = None
        self.to_tag: str | None = None
        self.raw_via: bytes | None = None  # the top Via as received, to match ACKs by

    def respond(self, response: Response) -> None:
        """The TU's response: a provisional, success or failure event."""
        status = response.status
        event = "provisional" if status < 200 else "success" if status < 300 else "failure"
        if not self.handle(event, response):
            raise RuntimeError(f"cannot send {status} in state {self.state}")

    def _send(self, response: Response) -> None:
        data = response.to_bytes()
        self.last = data
        self.transport.send(data, self.addr)

    def _resend(self, _arg: Any) -> None:
        if self.last is not None:
            self.transport.send(self.last, self.addr)

    def _fail(self, reason: str) -> None:
        self.layer.server_failed(self, reason)


class ServerInvite(_Server):
    """RFC 3261 Figure 7 with RFC 6026's Accepted state."""

    INITIAL = "proceeding"

    __slots__ = ()

    def _send_trying(self, _arg: Any) -> None:
        if self.last is None:
            self._send(self.request.response(100))

    def _start_g(self, _arg: Any) -> None:
        if not self.transport.reliable:
            self._double("g", self.layer.t1, self.layer.t2)

    def _start_h(self, _arg: Any) -> None:
        self._start("h", 64 * self.layer.t1)

    def _start_i(self, _arg: Any) -> None:
        self._start("i", 0.0 if self.transport.reliable else self.layer.t4)

    def _start_l(self, _arg: Any) -> None:
        self._start("l", 64 * self.layer.t1)

    def _start_trying(self, _arg: Any) -> None:
        self._start("trying", 0.2)

    def _stop_g(self, _arg: Any) -> None:
        self._stop("g")

    def _stop_h(self, _arg: Any) -> None:
        self._stop("h")

    TABLE: ClassVar[dict[tuple[str, str], Row]] = {
        ("proceeding", "request"): ("proceeding", ("resend",)),
        ("proceeding", "tu_pending"): ("proceeding", ("start_trying",)),
        ("proceeding", "timer_trying"): ("proceeding", ("send_trying",)),
        ("proceeding", "provisional"): ("proceeding", ("send",)),
        ("proceeding", "success"): ("accepted", ("send", "start_l")),
        ("proceeding", "failure"): ("completed", ("send", "start_g", "start_h")),
        ("proceeding", "transport_error"): (TERMINATED, ("report_transport_error", "end")),
        ("completed", "request"): ("completed", ("resend",)),
        ("completed", "timer_g"): ("completed", ("resend", "start_g")),
        ("completed", "ack"): ("confirmed", ("stop_g", "stop_h", "start_i")),
        ("completed", "timer_h"): (TERMINATED, ("report_timeout", "end")),
        ("completed", "transport_error"): (TERMINATED, ("report_transport_error", "end")),
        ("confirmed", "request"): ("confirmed", ()),
        ("confirmed", "ack"): ("confirmed", ()),
        ("confirmed", "timer_i"): (TERMINATED, ("end",)),
        ("accepted", "request"): ("accepted", ()),
        ("accepted", "success"): ("accepted", ("send",)),
        ("accepted", "timer_l"): (TERMINATED, ("end",)),
    }


class ServerNonInvite(_Server):
    """RFC 3261 Figure 8."""

    INITIAL = "trying"

    __slots__ = ()

    def _start_j(self, _arg: Any) -> None:
        self._start("j", 0.0 if self.transport.reliable else 64 * self.layer.t1)

    TABLE: ClassVar[dict[tuple[str, str], Row]] = {
        ("trying", "request"): ("trying", ()),
        ("trying", "provisional"): ("proceeding", ("send",)),
        ("trying", "success"): ("completed", ("send", "start_j")),
        ("trying", "failure"): ("completed", ("send", "start_j")),
        ("proceeding", "request"): ("proceeding", ("resend",)),
        ("proceeding", "provisional"): ("proceeding", ("send",)),
        ("proceeding", "success"): ("completed", ("send", "start_j")),
        ("proceeding", "failure"): ("completed", ("send", "start_j")),
        ("proceeding", "transport_error"): (TERMINATED, ("report_transport_error", "end")),
        ("completed", "request"): ("completed", ("resend",)),
        ("completed", "timer_j"): (TERMINATED, ("end",)),
        ("completed", "transport_error"): (TERMINATED, ("report_transport_error", "end")),
    }


# -- client side ---------------------------------------------------------------


class _Client(Transaction):
    """Sends the request, retransmits it, and hands responses to its user."""

    __slots__ = ("data", "user")

    def __init__(
        self,
        layer: Layer,
        key: Any,
        request: Request,
        transport: Transport,
        addr: Address,
        user: ClientUser,
    ) -> None:
        super().__init__(layer, key, request, transport, addr)
        self.user = user
        self.data = request.to_bytes()

    def receive(self, response: Response) -> None:
        status = response.status
        self.handle("provisional" if status < 200 else "success" if status < 300 else "failure",
                    response)  # fmt: skip

    def _retransmit(self, _arg: Any) -> None:
        self.transport.send(self.data, self.addr)

    def _pass_up(self, response: Response) -> None:
        self.user.response_received(self, response)

    def _fail(self, reason: str) -> None:
        self.user.transaction_failed(self, reason)


class ClientInvite(_Client):
    """RFC 3261 Figure 5 with RFC 6026's Accepted state and §9.1's end after a CANCEL."""

    INITIAL = "calling"

    __slots__ = ()

    def start(self) -> None:
        """Send the INVITE and run timers A and B."""
        self.transport.send(self.data, self.addr)
        if not self.transport.reliable:
            self._double("a", self.layer.t1, float("inf"))
        self._start("b", 64 * self.layer.t1)

    def _start_a(self, _arg: Any) -> None:
        self._double("a", self.layer.t1, float("inf"))  # no T2 cap (§17.1.1.2)

    def _stop_a(self, _arg: Any) -> None:
        self._stop("a")

    def cancel_sent(self) -> None:
        """The TU sent a CANCEL for this INVITE: run the guard of RFC 3261 §9.1.

        With no final response within 64*T1 of the CANCEL, the INVITE counts as
        cancelled and ends (reported as a timeout), so a callee that answers
        neither the CANCEL nor the INVITE cannot hold its call for ever.
        """
        self.handle("cancel")

    def _stop_b(self, _arg: Any) -> None:
        self._stop("b")

    def _start_cancelled(self, _arg: Any) -> None:
        self._start("cancelled", 64 * self.layer.t1)

    def _stop_cancelled(self, _arg: Any) -> None:
        self._stop("cancelled")

    def _start_d(self, _arg: Any) -> None:
        self._start("d", 0.0 if self.transport.reliable else 32.0)

    def _start_m(self, _arg: Any) -> None:
        self._start("m", 64 * self.layer.t1)

    def _send_ack(self, response: Response) -> None:
        """ACK for a non-2xx final: same branch, To from the response (§17.1.1.3)."""
        request = self.request
        src = request.headers
        headers: dict[str, list[str]] = {"via": src["via"][:1]}
        if "route" in src:
            headers["route"] = src["route"][:]
        headers["max-forwards"] = ["70"]
        headers["from"] = src["from"][:]
        headers["to"] = response.headers.get("to", src["to"])[:]
        headers["call-id"] = src["call-id"][:]
        headers["cseq"] = [f"{request.cseq()[0]} ACK"]
        ack = Request("ACK", request.uri, headers)
        self.transport.send(ack.to_bytes(), self.addr)

    TABLE: ClassVar[dict[tuple[str, str], Row]] = {
        ("calling", "timer_a"): ("calling", ("retransmit", "start_a")),
        ("calling", "timer_b"): (TERMINATED, ("report_timeout", "end")),
        ("calling", "provisional"): ("proceeding", ("stop_a", "stop_b", "pass_up")),
        ("calling", "success"): ("accepted", ("stop_a", "stop_b", "pass_up", "start_m")),
        ("calling", "failure"): ("completed", ("stop_a", "stop_b", "send_ack", "pass_up",
                                               "start_d")),
        ("calling", "transport_error"): (TERMINATED, ("report_transport_error", "end")),
        ("proceeding", "provisional"): ("proceeding", ("pass_up",)),
        ("proceeding", "success"): ("accepted", ("stop_cancelled", "pass_up", "start_m")),
        ("proceeding", "failure"): ("completed", ("stop_cancelled", "send_ack", "pass_up",
                                                  "start_d")),
        # No transport error once the callee has answered at all (Figure 5 has none): an
        # ICMP error then is stale or spoofed, and must not end a ringing call.
        # Only once a provisional came is there a CANCEL (§9.1); Timer B guards "calling".
        ("proceeding", "cancel"): ("proceeding", ("start_cancelled",)),
        ("proceeding", "timer_cancelled"): (TERMINATED, ("report_timeout", "end")),
        ("completed", "failure"): ("completed", ("send_ack",)),
        ("completed", "timer_d"): (TERMINATED, ("end",)),
        ("completed", "transport_error"): (TERMINATED, ("report_transport_error", "end")),
        ("accepted", "success"): ("accepted", ("pass_up",)),
        ("accepted", "timer_m"): (TERMINATED, ("end",)),
    }  # fmt: skip


class ClientNonInvite(_Client):
    """RFC 3261 Figure 6."""

    INITIAL = "trying"

    __slots__ = ()

    def start(self) -> None:
        """Send the request and run timers E and F."""
        self.transport.send(self.data, self.addr)
        self._start_e(None)
        self._start("f", 64 * self.layer.t1)

    def _start_e(self, _arg: Any) -> None:
        if not self.transport.reliable:
            self._double("e", self.layer.t1, self.layer.t2)

    def _start_e_t2(self, _arg: Any) -> None:
        if not self.transport.reliable:
            self.intervals["e"] = self.layer.t2
            self._start("e", self.layer.t2)

    def _stop_e(self, _arg: Any) -> None:
        self._stop("e")

    def _stop_f(self, _arg: Any) -> None:
        self._stop("f")

    def _start_k(self, _arg: Any) -> None:
        self._start("k", 0.0 if self.transport.reliable else self.layer.t4)

    TABLE: ClassVar[dict[tuple[str, str], Row]] = {
        ("trying", "timer_e"): ("trying", ("retransmit", "start_e")),
        ("trying", "timer_f"): (TERMINATED, ("report_timeout", "end")),
        ("trying", "provisional"): ("proceeding", ("pass_up",)),
        ("trying", "success"): ("completed", ("stop_e", "stop_f", "pass_up", "start_k")),
        ("trying", "failure"): ("completed", ("stop_e", "stop_f", "pass_up", "start_k")),
        ("trying", "transport_error"): (TERMINATED, ("report_transport_error", "end")),
        ("proceeding", "timer_e"): ("proceeding", ("retransmit", "start_e_t2")),
        ("proceeding", "timer_f"): (TERMINATED, ("report_timeout", "end")),
        ("proceeding", "provisional"): ("proceeding", ("pass_up",)),
        ("proceeding", "success"): ("completed", ("stop_e", "stop_f", "pass_up", "start_k")),
        ("proceeding", "failure"): ("completed", ("stop_e", "stop_f", "pass_up", "start_k")),
        ("proceeding", "transport_error"): (TERMINATED, ("report_transport_error", "end")),
        ("completed", "timer_k"): (TERMINATED, ("end",)),
    }
