"""The transaction layer: match messages to transactions, make new ones, answer errors.

Sans-IO apart from the clock: messages arrive through :meth:`SipStack.receive`
with the transport they came on and their source address; everything sent
goes through a transport's ``send``. The transaction user (the redirect
service, later the call controller) sees only requests that passed RFC 3261
§8.2 and came from a configured peer, with a server transaction to answer
through; retransmissions, ACKs for non-2xx answers and CANCEL matching are
handled here and never reach it.
"""

from __future__ import annotations

import itertools
import logging
import secrets
from dataclasses import dataclass
from typing import Any, Protocol

from engine.ratelog import RateLimitedLog
from engine.sip.grammar import is_ip_address
from engine.sip.headers import Via, parse_cseq
from engine.sip.message import Request, Response
from engine.sip.parser import ParseError, parse_datagram
from engine.sip.peers import PeerFilter
from engine.sip.timers import Clock, TimerQueue
from engine.sip.transaction import (
    ClientInvite,
    ClientNonInvite,
    ClientUser,
    ServerInvite,
    ServerNonInvite,
    Transaction,
    Transport,
)
from engine.sip.validate import MAGIC_COOKIE, Policy, Refusal, check_request, reason_phrase

__all__ = ["Counters", "SipStack", "TransactionUser"]

log = logging.getLogger(__name__)

Address = tuple[str, int]
ServerTransaction = ServerInvite | ServerNonInvite
ClientTransaction = ClientInvite | ClientNonInvite


class TransactionUser(Protocol):
    """The application above the transaction layer."""

    policy: Policy

    def request_received(self, txn: ServerTransaction, request: Request) -> None:
        """A new request, to be answered through ``txn.respond``."""

    def ack_received(self, request: Request, transport: Transport, source: Address) -> None:
        """An ACK no transaction absorbed (it acknowledges a 2xx)."""

    def cancel_received(self, txn: ServerInvite) -> None:
        """A CANCEL for an INVITE still unanswered: the TU must end it (487)."""

    def server_failed(self, txn: ServerTransaction, reason: str) -> None:
        """A final response was never acknowledged (Timer H).

        Transport errors reach client transactions only (an ICMP error names
        the address we sent to); the server tables keep their transport-error
        rows as RFC 3261 draws them.
        """

    def stray_response(self, response: Response, transport: Transport, source: Address) -> None:
        """A response no client transaction matches (2xx retransmissions)."""


@dataclass(slots=True)
class Counters:
    """What the layer saw, for logs, statistics and tests."""

    requests: int = 0
    responses: int = 0
    retransmissions: int = 0
    malformed: int = 0
    refused: int = 0
    forbidden: int = 0
    overload_rejected: int = 0


class SipStack:
    """RFC 3261 §17 transaction layer with §18 response routing."""

    def __init__(
        self,
        clock: Clock,
        tu: TransactionUser,
        *,
        peers: PeerFilter | None = None,
        t1: float = 0.5,
        t2: float = 4.0,
        t4: float = 5.0,
        retry_after: int = 5,
    ) -> None:
        self.clock = clock
        self.tu = tu
        self.peers = peers or PeerFilter(None)
        #: Methods served from any source, not only the peers: the TU authenticates them
        #: itself (REGISTER of softphones, digest).
        self.open_methods: frozenset[str] = frozenset()
        self.t1, self.t2, self.t4 = t1, t2, t4
        self.retry_after = retry_after
        self.timers = TimerQueue(clock)
        self.server: dict[Any, ServerTransaction] = {}
        self.client: dict[Any, ClientTransaction] = {}
        #: Client transactions by where they send, so a transport error fails only those.
        self.client_to: dict[Address, dict[Any, ClientTransaction]] = {}
        #: INVITE server transactions by their raw top Via line, for ACKs.
        self.acks: dict[bytes, ServerInvite] = {}
        self.counters = Counters()
        self.ratelog = RateLimitedLog(log, clock)
        self._prefix = secrets.token_hex(4)
        self._serial = itertools.count(1)

    # -- identifiers -------------------------------------------------------------

    def new_tag(self) -> str:
        """A To/From tag unique to this process run."""
        return f"{self._prefix}{next(self._serial):x}"

    def new_branch(self) -> str:
        return f"{MAGIC_COOKIE}{self._prefix}{next(self._serial):x}"

    # -- receiving ---------------------------------------------------------------

    def receive_datagram(
        self, data: bytes, transport: Transport, source: Address, overloaded: bool = False
    ) -> None:
        """One UDP datagram: parse it and hand it on, answering 400 if malformed."""
        if data.startswith(b"ACK "):
            txn = self._prematch(data)
            if txn is not None:
                txn.handle("ack")
                return
        try:
            message = parse_datagram(data)
        except ParseError as exc:
            self._malformed(exc, transport, source)
            return
        self.receive(message, transport, source, overloaded)

    def _prematch(self, data: bytes) -> ServerTransaction | None:
        """The INVITE transaction an ACK belongs to, found without parsing the ACK.

        An ACK for a non-2xx final carries the INVITE's top Via (RFC 3261
        §17.1.1.3), and peers copy it byte for byte, so the raw Via line is
        enough to find the transaction; every INVITE transaction is indexed by
        it. An ACK whose Via line differs in any way takes the full path.
        """
        at = data.find(b"\r\nVia: ")
        if at < 0:
            return None
        end = data.find(b"\r\n", at + 7)
        return self.acks.get(data[at + 7 : end])

    def receive(
        self, message: Request | Response, transport: Transport, source: Address,
        overloaded: bool = False,
    ) -> None:  # fmt: skip
        if isinstance(message, Response):
            self._response(message, transport, source)
        else:
            self._request(message, transport, source, overloaded)

    def malformed(self, exc: ParseError, transport: Transport, source: Address) -> None:
        """A stream transport's framing error: answer it if it was a request."""
        self._malformed(exc, transport, source)

    def _malformed(self, exc: ParseError, transport: Transport, source: Address) -> None:
        self.counters.malformed += 1
        self.ratelog.warning("malformed", "malformed SIP message from %s:%d: %s",
                             source[0], source[1], exc.reason)  # fmt: skip
        partial = exc.partial
        # Without a Via there is nowhere a SIP response could be routed: it was
        # not a SIP request (or too broken to be one) and gets no answer.
        if isinstance(partial, Request) and partial.method != "ACK" and "via" in partial.headers:
            self._stateless(partial, transport, source, exc.status, exc.reason)

    def _stateless(
        self, request: Request, transport: Transport, source: Address, status: int, reason: str
    ) -> None:
        """Answer without a transaction (the request could not be matched).

        The top Via is stamped with ``received``/``rport`` first, as for any
        request (RFC 3261 §18.2.1, RFC 3581), so the answer goes to the
        address the request came from, never to a name to be resolved.
        """
        try:
            via = request.top_via()
            if via.host != source[0] or via.params.get("rport", "") is None:
                _stamp(request, via, source)
            addr = self._response_address(request, transport, source)
        except (ValueError, KeyError, IndexError):
            addr = source
        response = request.response(status, reason, self.new_tag())
        transport.send(response.to_bytes(), addr)

    def _request(
        self, request: Request, transport: Transport, source: Address, overloaded: bool
    ) -> None:
        self.counters.requests += 1
        method = request.method
        try:
            via = request.top_via()
            request.cseq()
        except ValueError as exc:
            self.counters.malformed += 1
            if method != "ACK":
                phrase = reason_phrase(exc, "Bad Via or CSeq")
                self._stateless(request, transport, source, 400, phrase)
            return
        raw_via = request.headers["via"][0]
        if via.host != source[0] or via.params.get("rport", "") is None:
            _stamp(request, via, source)
        branch = via.params.get("branch")
        if branch is not None and branch.startswith(MAGIC_COOKIE):
            key: Any = (branch, via.host, via.port, "INVITE" if method == "ACK" else method)
        else:
            key = self._server_key(request, via)
        txn = self.server.get(key)
        if txn is not None:
            if method != "ACK":
                self.counters.retransmissions += 1
            txn.handle("ack" if method == "ACK" else "request")
            return
        if method == "ACK":
            self.tu.ack_received(request, transport, source)
            return
        txn = self._new_server(key, request, transport, source)
        if isinstance(txn, ServerInvite) and "," not in raw_via:
            txn.raw_via = raw_via.encode("utf-8", "surrogateescape")
            self.acks[txn.raw_via] = txn
        # Requests inside a dialog (a To tag) may come from where the dialog's
        # remote target is (RFC 3261 §12.2): the TU checks them against its
        # dialogs, whose identifiers outsiders cannot guess.
        if (not self.peers.allows(source[0]) and method not in self.open_methods
                and not _in_dialog(request)):  # fmt: skip
            self.counters.forbidden += 1
            self.ratelog.warning("peer", "refused SIP from %s: not a configured peer", source[0])
            self._refuse(txn, Refusal(403, "Not A Configured Peer"))
            return
        if method == "CANCEL":
            self._cancel(txn, request, via)
            return
        if overloaded and method == "INVITE":  # shed before spending anything on it
            self.counters.overload_rejected += 1
            self._refuse(txn, Refusal(503, "Overloaded", (("retry-after", str(self.retry_after)),)))
            return
        refusal = check_request(request, self.tu.policy)
        if refusal is not None:
            self.counters.refused += 1
            self._refuse(txn, refusal)
            return
        try:
            self.tu.request_received(txn, request)
        except Exception:
            log.exception("failed to handle %r", request)
            if txn.state in ("trying", "proceeding"):
                self._refuse(txn, Refusal(500))
            return
        if txn.last is None and isinstance(txn, ServerInvite) and txn.state == "proceeding":
            txn.handle("tu_pending")

    def _server_key(self, request: Request, via: Via) -> Any:
        method = request.method
        kind = "INVITE" if method == "ACK" else method
        branch = via.branch
        if branch is not None and branch.startswith(MAGIC_COOKIE):
            return (branch, via.host, via.port, kind)
        # RFC 2543 matching (§17.2.3): no reliable branch, use the dialog data.
        try:
            from_tag = request.from_address().tag
        except ValueError:
            from_tag = None
        return (request.uri, from_tag, request.get("call-id"), request.cseq()[0],
                str(via), kind)  # fmt: skip

    def _new_server(
        self, key: Any, request: Request, transport: Transport, source: Address
    ) -> ServerTransaction:
        cls = ServerInvite if request.method == "INVITE" else ServerNonInvite
        addr = self._response_address(request, transport, source)
        txn = cls(self, key, request, transport, addr)
        self.server[key] = txn
        return txn

    def _response_address(self, request: Request, transport: Transport, source: Address) -> Address:
        """Where responses go (RFC 3261 §18.2.2 with RFC 3581 rport).

        The host is the source address: it is what ``received`` says once the
        Via is stamped, and it is never a name to resolve (a blocking lookup
        on the reactor) nor an address a sender wrote to reflect our answers
        at someone else; ``maddr`` is honoured only from a configured peer and
        only as an IP address.
        """
        if transport.reliable:
            return source
        via = request.top_via()
        params = via.params
        maddr = params.get("maddr")
        if maddr and self.peers.allows(source[0]) and is_ip_address(maddr):
            return (maddr, via.port or 5060)
        rport = params.get("rport")
        if rport:
            return (source[0], int(rport))
        return (source[0], via.port or 5060)

    def _refuse(self, txn: ServerTransaction, refusal: Refusal) -> None:
        response = txn.request.response(refusal.status, refusal.reason, self.to_tag(txn))
        for name, value in refusal.headers:
            response.add(name, value)
        txn.respond(response)

    def to_tag(self, txn: ServerTransaction) -> str:
        """The To tag of every response this transaction sends (one dialog)."""
        if txn.to_tag is None:
            txn.to_tag = self.new_tag()
        return txn.to_tag

    def _cancel(self, txn: ServerTransaction, request: Request, via: Via) -> None:
        """RFC 3261 §9.2: 200 to a CANCEL that matches, 481 otherwise."""
        key = (via.branch, via.host, via.port, "INVITE")
        invite = self.server.get(key) if via.branch else None
        if invite is None:
            key = self._server_key(_as_invite(request), via)
            invite = self.server.get(key)
        if not isinstance(invite, ServerInvite):
            self._refuse(txn, Refusal(481))
            return
        txn.respond(request.response(200, None, self.to_tag(txn)))
        if invite.state == "proceeding":
            self.tu.cancel_received(invite)

    # -- responses -----------------------------------------------------------------

    def _response(self, response: Response, transport: Transport, source: Address) -> None:
        self.counters.responses += 1
        try:
            via = response.top_via()
            method = parse_cseq(response.headers["cseq"][0])[1]
        except (ValueError, KeyError, IndexError):
            self.counters.malformed += 1
            return
        txn = self.client.get((via.branch, method))
        if txn is None:
            self.tu.stray_response(response, transport, source)
            return
        txn.receive(response)

    # -- sending requests --------------------------------------------------------------

    def send_request(
        self, request: Request, transport: Transport, addr: Address, user: ClientUser,
        local: Address,
    ) -> ClientTransaction:  # fmt: skip
        """Start a client transaction; adds our Via (with a fresh branch and rport)."""
        branch = self._add_via(request, transport, local)
        request.headers.setdefault("max-forwards", ["70"])
        cls = ClientInvite if request.method == "INVITE" else ClientNonInvite
        txn = cls(self, (branch, request.method), request, transport, addr, user)
        self._add_client(txn)
        txn.start()
        return txn

    def cancel(self, invite: ClientInvite, user: ClientUser) -> ClientNonInvite:
        """CANCEL a pending INVITE (RFC 3261 §9.1): its Request-URI, Call-ID,
        From, To, CSeq number, Route and top Via, so it matches its transaction."""
        src = invite.request.headers
        headers: dict[str, list[str]] = {"via": src["via"][:1]}
        if "route" in src:
            headers["route"] = src["route"][:]
        headers["max-forwards"] = ["70"]
        for name in ("from", "to", "call-id"):
            headers[name] = src[name][:]
        headers["cseq"] = [f"{invite.request.cseq()[0]} CANCEL"]
        request = Request("CANCEL", invite.request.uri, headers)
        key = (invite.key[0], "CANCEL")
        txn = ClientNonInvite(self, key, request, invite.transport, invite.addr, user)
        self._add_client(txn)
        txn.start()
        return txn

    def _add_client(self, txn: ClientTransaction) -> None:
        self.client[txn.key] = txn
        to = self.client_to.get(txn.addr)
        if to is None:
            to = self.client_to[txn.addr] = {}
        to[txn.key] = txn

    def send_ack(self, ack: Request, transport: Transport, addr: Address, local: Address) -> None:
        """Send the ACK of a 2xx: a request of its own, outside any transaction."""
        self._add_via(ack, transport, local)
        ack.headers.setdefault("max-forwards", ["70"])
        transport.send(ack.to_bytes(), addr)

    def _add_via(self, request: Request, transport: Transport, local: Address) -> str:
        branch = self.new_branch()
        host, port = local
        request.headers.setdefault("via", []).insert(
            0, f"SIP/2.0/{transport.name} {host}:{port};branch={branch};rport"
        )
        return branch

    def transport_error(self, transport: Transport, addr: Address,
                        branch: str | None = None) -> None:  # fmt: skip
        """A send to ``addr`` failed (ICMP unreachable, TCP connect): fail the client
        transactions that send there on ``transport`` (only those of ``branch``
        when the error names the datagram), so their users learn it now rather
        than at Timer B or F (RFC 3261 §18.4, §17.1.4)."""
        to = self.client_to.get(addr)
        if to is not None:
            failed = [t for t in to.values() if t.transport is transport
                      and (branch is None or t.key[0] == branch)]  # fmt: skip
            for txn in failed:
                try:
                    txn.handle("transport_error")
                except Exception:  # a user's fault: not the other users', nor the transport's
                    log.exception("transport error on %r", txn)
                    self.forget(txn)

    # -- the Layer protocol --------------------------------------------------------------

    def forget(self, txn: Transaction) -> None:
        if isinstance(txn, ClientInvite | ClientNonInvite):
            if self.client.get(txn.key) is txn:
                del self.client[txn.key]
                to = self.client_to[txn.addr]
                del to[txn.key]
                if not to:
                    del self.client_to[txn.addr]
            return
        if self.server.get(txn.key) is txn:
            del self.server[txn.key]
        raw_via = getattr(txn, "raw_via", None)
        if raw_via is not None and self.acks.get(raw_via) is txn:
            del self.acks[raw_via]

    def server_failed(self, txn: Transaction, reason: str) -> None:
        assert isinstance(txn, ServerInvite | ServerNonInvite)
        self.tu.server_failed(txn, reason)


def _stamp(request: Request, via: Via, source: Address) -> None:
    """RFC 3261 §18.2.1 ``received`` and RFC 3581 ``rport`` on the top Via."""
    params = dict(via.params)
    if "rport" in params and params["rport"] is None:
        params["rport"] = str(source[1])
        params["received"] = source[0]
    elif via.host != source[0]:
        params["received"] = source[0]
    request.set_top_via(Via(via.transport, via.host, via.port, params))


def _in_dialog(request: Request) -> bool:
    try:
        return request.to_address().tag is not None
    except ValueError:
        return False


def _as_invite(cancel: Request) -> Request:
    """The INVITE a CANCEL refers to, for RFC 2543 matching (same Request-URI, CSeq number)."""
    headers = dict(cancel.headers)
    headers["cseq"] = [f"{cancel.cseq()[0]} INVITE"]
    return Request("INVITE", cancel.uri, headers)
