"""SIP over UDP and TCP on Twisted: bytes in, bytes out, nothing else.

UDP is read by our own reactor reader rather than Twisted's ``udp.Port``:
it asks the kernel for the receive time of the first datagram of each batch
(SO_TIMESTAMP), which is how :class:`Overload` knows how long the oldest
waiting request has waited, and it sends with a bare ``sendto`` (Twisted's
``write`` re-validates the address on every call). Several engine processes
can share one port with SO_REUSEPORT. ICMP errors about the datagrams it sent
are read from the socket's error queue (IP_RECVERR) and fail the client
transactions to that address at once, not at Timer B or F. TCP connections
are pooled by remote address, both the ones peers open to us and the ones we
open, so requests to a peer reuse a live connection (RFC 3261 §18.1.1); idle
ones are closed.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import struct
from collections.abc import Callable
from typing import Any

from twisted.internet import protocol
from twisted.internet.interfaces import IHalfCloseableDescriptor, IReadDescriptor
from twisted.internet.task import LoopingCall
from zope.interface import implementer

from engine.sip.overload import Overload
from engine.sip.parser import ParseError, StreamParser
from engine.sip.stack import SipStack

__all__ = ["TcpConnection", "TcpTransport", "UdpTransport", "listen_tcp"]

log = logging.getLogger(__name__)

Address = tuple[str, int]
_DROP = (errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOBUFS, errno.ECONNREFUSED, errno.EHOSTUNREACH,
         errno.ENETUNREACH)  # fmt: skip
SO_TIMESTAMP = getattr(socket, "SO_TIMESTAMP", 29)
_TIMEVAL = struct.Struct("@ll")
# Linux's values; Python's socket module does not name them.
IP_RECVERR, IPV6_RECVERR = 11, 25
SO_EE_ORIGIN_ICMP, SO_EE_ORIGIN_ICMP6 = 2, 3
#: The control messages of the error queue, by (level, type).
_RECVERR = {(socket.IPPROTO_IP, IP_RECVERR), (socket.IPPROTO_IPV6, IPV6_RECVERR)}
#: struct sock_extended_err up to ee_code: errno, origin, ICMP type and code.
_EXTENDED_ERR = struct.Struct("=IBBB")
#: How much of a failed datagram an error-queue read takes: its request line and top Via.
_QUOTED = 512
_BRANCH_ENDS = frozenset(b";,\r\n \t")
#: What an ICMP error turns into (icmp_err_convert, icmpv6_err_convert): with
#: IP_RECVERR, the next send fails with it, whatever its destination.
_ICMP_ERRNOS = frozenset((errno.ECONNREFUSED, errno.EHOSTUNREACH, errno.ENETUNREACH,
                          errno.EHOSTDOWN, errno.ENOPROTOOPT, errno.EPROTO, errno.EMSGSIZE,
                          errno.EOPNOTSUPP, errno.EACCES))  # fmt: skip


def _socket(kind: int, host: str, port: int, reuse_port: bool) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, kind)
    if kind == socket.SOCK_STREAM:
        # Rebind over TIME_WAIT after a restart. Not for UDP: there it would let
        # a second engine silently take over a port that is in use.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if kind == socket.SOCK_DGRAM:
        # ICMP errors to the error queue: without it an unconnected socket never
        # hears of them. A v6 socket sends to v4-mapped addresses over IPv4.
        sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, IPV6_RECVERR, 1)
    sock.bind((host, port))
    sock.setblocking(False)
    return sock


@implementer(IReadDescriptor, IHalfCloseableDescriptor)
class UdpTransport:
    """One UDP socket, read in batches by the reactor; datagrams go to the stack.

    Half-closeable only so that the reactor calls :meth:`readConnectionLost`
    rather than :meth:`connectionLost` when it sees an ICMP error alone.
    """

    reliable = False
    name = "UDP"
    #: Datagrams read per reactor wake-up before timers get their turn.
    BATCH = 64

    def __init__(
        self,
        reactor: Any,
        stack: SipStack,
        overload: Overload,
        host: str,
        port: int,
        *,
        reuse_port: bool = False,
        receive_buffer: int = 4 * 1024 * 1024,
    ) -> None:
        self.reactor = reactor
        self.stack = stack
        self.overload = overload
        self.sock = _socket(socket.SOCK_DGRAM, host, port, reuse_port)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        self.sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMP, 1)
        self.local: Address = self.sock.getsockname()[:2]
        self.send_errors = 0

    def start(self) -> None:
        self.reactor.addReader(self)

    def stop(self) -> None:
        self.reactor.removeReader(self)
        self.sock.close()

    def fileno(self) -> int:
        return self.sock.fileno()

    def logPrefix(self) -> str:  # noqa: N802 - Twisted's name
        return "SIP/UDP"

    def connectionLost(self, reason: Any) -> None:  # noqa: N802
        self.sock.close()

    def readConnectionLost(self, reason: Any) -> None:  # noqa: N802
        """EPOLLERR without EPOLLIN: not an end, an ICMP error in the queue.

        Twisted's poll reactors take it for the end of the read side and have
        already stopped reading: read the queue and read on. An error the queue
        had no room for (a full receive buffer) is pending without a message in
        the queue, and would wake the reactor at once again: SO_ERROR clears it.
        """
        try:
            self.read_errors()
            self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        finally:  # whatever happened, UDP must not stay unread
            self.reactor.addReader(self)

    def doRead(self) -> None:  # noqa: N802
        sock = self.sock
        try:
            data, ancillary, _flags, addr = sock.recvmsg(65535, 64)
        except InterruptedError:
            return
        except OSError:
            # A pending ICMP error fails the receive (or, once a send has taken it,
            # leaves a wake-up with nothing to read): the queue says what it was,
            # and it keeps the socket readable until it is read.
            self.read_errors()
            return
        now = self.reactor.seconds()
        age = 0.0
        for level, kind, raw in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMP and len(raw) >= _TIMEVAL.size:
                sec, usec = _TIMEVAL.unpack_from(raw)
                age = now - (sec + usec / 1e6)
        overloaded = self.overload.note_queue_age(age, now)
        receive = self.stack.receive_datagram
        addr = addr[:2]
        try:
            receive(data, self, addr, overloaded)
        except Exception:
            _failed_in_stack(self.stack, self.name, addr)
        for _ in range(self.BATCH - 1):
            try:
                data, addr = sock.recvfrom(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self.read_errors()
                return
            try:
                receive(data, self, addr[:2], overloaded)
            except Exception:
                _failed_in_stack(self.stack, self.name, addr)

    def read_errors(self) -> None:
        """Read the error queue; fail the client transaction each ICMP error is about.

        Each message carries the destination of the datagram that failed, the
        ICMP type and the start of that datagram as the ICMP quoted it: the
        branch in its top Via names the one transaction it was sent for. Linux
        queues such errors from anyone, so an error that quotes no branch of
        ours fails nothing (Timer B or F still will). Reading the last one
        clears the socket's pending error.
        """
        sock = self.sock
        for _ in range(self.BATCH):
            try:
                data, ancillary, _flags, addr = sock.recvmsg(_QUOTED, 256, socket.MSG_ERRQUEUE)
            except OSError:  # empty (EAGAIN), or the socket is gone
                return
            for level, kind, raw in ancillary:
                if (level, kind) in _RECVERR and len(raw) >= _EXTENDED_ERR.size:
                    code, origin, icmp_type, icmp_code = _EXTENDED_ERR.unpack_from(raw)
                    branch = _quoted_branch(data)
                    if branch is not None and _fails_send(origin, icmp_type, icmp_code):
                        self.stack.ratelog.warning("udp-icmp", "UDP to %s:%s failed: %s",
                                                   addr[0], addr[1], os.strerror(code))  # fmt: skip
                        self.stack.transport_error(self, addr[:2], branch)

    def send(self, data: bytes, addr: Address) -> None:
        try:
            self.sock.sendto(data, addr)
        except OSError as exc:
            self._send_failed(exc, data, addr)
        except (OverflowError, ValueError, TypeError) as exc:  # an address no socket takes
            self.send_errors += 1
            self.stack.ratelog.warning("udp-send", "UDP send to %r refused: %s", addr, exc)

    def _send_failed(self, exc: OSError, data: bytes, addr: Address) -> None:
        if exc.errno in _ICMP_ERRNOS:
            # Most likely the pending error of an ICMP message about an earlier
            # datagram (IP_RECVERR), which this send took in its place: this one
            # did not go out, and the error queue still says where that one went.
            try:
                self.sock.sendto(data, addr)
                return
            except OSError as again:
                exc = again
        self.send_errors += 1
        if exc.errno not in _DROP:
            self.stack.ratelog.warning("udp-send", "UDP send to %s:%s failed: %s",
                                       addr[0], addr[1], exc)  # fmt: skip


class TcpConnection(protocol.Protocol):
    """One TCP connection, either direction; frames messages out of the stream."""

    reliable = True
    name = "TCP"

    def __init__(self, pool: TcpTransport) -> None:
        self.pool = pool
        self.parser = StreamParser()
        self.addr: Address = ("", 0)
        self.last_used = 0.0
        self.pending: list[bytes] = []
        self.open = False

    def connectionMade(self) -> None:  # noqa: N802
        peer = self.transport.getPeer()
        self.addr = (peer.host, peer.port)
        self.open = True
        self.last_used = self.pool.clock.seconds()
        self.pool.register(self)
        for data in self.pending:
            self.transport.write(data)
        self.pending.clear()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        pool = self.pool
        self.last_used = pool.clock.seconds()
        parser = self.parser
        items = parser.feed(data)
        if parser.pings:
            self.transport.write(b"\r\n" * parser.pings)  # RFC 5626 pong
            parser.pings = 0
        overloaded = pool.overload.overloaded(self.last_used)
        stack = pool.stack
        for item in items:  # in order: a 400 for an invalid one, the others served
            try:
                if isinstance(item, ParseError):
                    stack.malformed(item, self, self.addr)
                else:
                    stack.receive(item, self, self.addr, overloaded)
            except Exception:  # as on UDP: one message must not take the connection down
                _failed_in_stack(stack, self.name, self.addr)
        if parser.broken:  # its framing is lost: nothing more can be read from it
            self.transport.loseConnection()

    def send(self, data: bytes, addr: Address) -> None:
        self.last_used = self.pool.clock.seconds()
        if self.open:
            self.transport.write(data)
        else:
            self.pending.append(data)

    def connectionLost(self, reason: Any = None) -> None:  # noqa: N802
        self.open = False
        self.pool.unregister(self)


class TcpTransport(protocol.Factory):
    """The pool of TCP connections, and the transport client transactions use."""

    reliable = True
    name = "TCP"

    def __init__(
        self, stack: SipStack, overload: Overload, reactor: Any, idle_timeout: float = 180.0
    ) -> None:
        self.stack = stack
        self.overload = overload
        self.reactor = reactor
        self.clock = stack.clock
        self.idle_timeout = idle_timeout
        self.connections: dict[Address, TcpConnection] = {}
        self.local: Address = ("", 0)
        self._reaper = LoopingCall(self.close_idle)
        self._reaper.clock = reactor

    def buildProtocol(self, addr: Any) -> TcpConnection:  # noqa: N802
        return TcpConnection(self)

    def startFactory(self) -> None:  # noqa: N802
        if not self._reaper.running:
            self._reaper.start(max(1.0, self.idle_timeout / 4), now=False)

    def stopFactory(self) -> None:  # noqa: N802
        if self._reaper.running:
            self._reaper.stop()

    def register(self, conn: TcpConnection) -> None:
        self.connections[conn.addr] = conn

    def unregister(self, conn: TcpConnection) -> None:
        if self.connections.get(conn.addr) is conn:
            del self.connections[conn.addr]

    def send(self, data: bytes, addr: Address) -> None:
        """Send on the live connection to ``addr``, or open one."""
        conn = self.connections.get(addr)
        if conn is None:
            conn = self._connect(addr)
        conn.send(data, addr)

    def _connect(self, addr: Address) -> TcpConnection:
        conn = TcpConnection(self)
        conn.addr = addr
        self.connections[addr] = conn
        creator = protocol.ClientCreator(self.reactor, lambda: conn)
        d = creator.connectTCP(addr[0], addr[1], timeout=int(max(1, 64 * self.stack.t1)))
        d.addErrback(self._failed, conn, addr)
        return conn

    def _failed(self, failure: Any, conn: TcpConnection, addr: Address) -> None:
        self.unregister(conn)
        self.stack.ratelog.warning("tcp-connect", "TCP connection to %s:%d failed: %s",
                                   addr[0], addr[1], failure.getErrorMessage())  # fmt: skip
        self.stack.transport_error(self, addr)

    def close_idle(self) -> None:
        limit = self.clock.seconds() - self.idle_timeout
        for conn in list(self.connections.values()):
            if conn.open and conn.last_used < limit:
                conn.transport.loseConnection()


def listen_tcp(reactor: Any, pool: TcpTransport, host: str, port: int, reuse_port: bool) -> Any:
    """Listen for SIP over TCP (with SO_REUSEPORT when asked, via an adopted socket)."""
    sock = _socket(socket.SOCK_STREAM, host, port, reuse_port)
    sock.listen(1024)
    pool.local = sock.getsockname()[:2]
    listening = reactor.adoptStreamPort(sock.fileno(), sock.family, pool)
    sock.close()  # the reactor holds its own duplicate of the descriptor
    return listening


def _failed_in_stack(stack: SipStack, transport: str, addr: Address) -> None:
    """A message the stack failed on: counted, logged, and the next one served.

    Nothing on the wire should raise out of the stack (the stack fuzz test
    holds it to that), but if something does, letting it out of a reader
    would make Twisted drop it: one datagram would stop the engine answering
    SIP over UDP for good, one message would close a TCP connection.
    """
    stack.counters.malformed += 1
    stack.ratelog.exception(f"{transport}-bug", "a %s message from %s:%s failed in the stack",
                            transport, addr[0], addr[1])  # fmt: skip


def _quoted_branch(data: bytes) -> str | None:
    """The branch of the top Via of a datagram an ICMP error quotes (None: not there)."""
    at = data.find(b";branch=")
    if at < 0:
        return None
    at += 8
    end = at
    while end < len(data) and data[end] not in _BRANCH_ENDS:
        end += 1
    return data[at:end].decode("ascii", "replace") if end > at else None


def _fails_send(origin: int, icmp_type: int, icmp_code: int) -> bool:
    """RFC 3261 §18.4: host, network, port or protocol unreachable and parameter
    problems fail the send; TTL exceeded and path MTU messages do not."""
    if origin == SO_EE_ORIGIN_ICMP:
        return icmp_type == 12 or (icmp_type == 3 and icmp_code != 4)  # 3/4: fragmentation needed
    return origin == SO_EE_ORIGIN_ICMP6 and icmp_type in (1, 4)


def loop_lag_monitor(reactor: Any, overload: Overload, interval: float = 0.1) -> Callable[[], None]:
    """Measure how late a periodic call runs; returns a function that stops it."""
    expected = [reactor.seconds() + interval]

    def tick() -> None:
        now = reactor.seconds()
        overload.note_loop_lag(max(0.0, now - expected[0]), now)
        expected[0] = now + interval

    loop = LoopingCall(tick)
    loop.clock = reactor
    loop.start(interval, now=False)
    return loop.stop
