"""Helpers for SIP tests: a recording transport, message builders, a minimal TU."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.sip.message import Request, Response
from engine.sip.parser import parse_datagram
from engine.sip.validate import Policy

Address = tuple[str, int]
PEER: Address = ("127.0.0.1", 5070)


@dataclass
class FakeTransport:
    """Records what is sent; ``reliable`` chooses the RFC 3261 timer values."""

    reliable: bool = False
    name: str = "UDP"
    sent: list[tuple[bytes, Address]] = field(default_factory=list)

    def send(self, data: bytes, addr: Address) -> None:
        self.sent.append((data, addr))

    def messages(self) -> list[Request | Response]:
        return [parse_datagram(data) for data, _ in self.sent]

    def statuses(self) -> list[int]:
        """Status codes sent, read from the status line (a refusal of a request that
        lacked Call-ID or From cannot carry them either, so it is not parsed whole)."""
        return [int(data.split(b" ", 2)[1]) for data, _ in self.sent if data.startswith(b"SIP/")]

    def clear(self) -> None:
        self.sent.clear()


def request_bytes(
    method: str = "INVITE",
    uri: str = "sip:+3225551234@127.0.0.1:5060",
    *,
    branch: str = "z9hG4bK-test-1",
    via_host: str = "127.0.0.1:5070",
    caller: str = "+3226001122",
    to_tag: str | None = None,
    call_id: str = "call-1@test",
    cseq: int = 1,
    cseq_method: str | None = None,
    extra: str = "",
    body: bytes = b"",
    transport: str = "UDP",
) -> bytes:
    to = f"<{uri.split(';', maxsplit=1)[0]}>" + (f";tag={to_tag}" if to_tag else "")
    head = (
        f"{method} {uri} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {via_host};branch={branch}\r\n"
        f"Max-Forwards: 70\r\n"
        f"From: <sip:{caller}@127.0.0.1>;tag=from-1\r\n"
        f"To: {to}\r\n"
        f"Call-ID: {call_id}\r\n"
        f"CSeq: {cseq} {cseq_method or method}\r\n"
        f"Contact: <sip:caller@{via_host}>\r\n"
        f"{extra}"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def request(method: str = "INVITE", **kw: Any) -> Request:
    message = parse_datagram(request_bytes(method, **kw))
    assert isinstance(message, Request)
    return message


class RecordingTU:
    """A transaction user that answers with a fixed status, or not at all."""

    policy = Policy(allowed=frozenset({"INVITE", "ACK", "CANCEL", "OPTIONS", "BYE"}))

    def __init__(self, status: int | None = 200) -> None:
        self.status = status
        self.stack: Any = None
        self.requests: list[Request] = []
        self.acks: list[Request] = []
        self.cancelled: list[Any] = []
        self.failed: list[tuple[Any, str]] = []
        self.stray: list[Response] = []

    def request_received(self, txn: Any, request: Request) -> None:
        self.requests.append(request)
        if self.status is not None:
            txn.respond(request.response(self.status, None, self.stack.to_tag(txn)))

    def ack_received(self, request: Request, transport: Any, source: Address) -> None:
        self.acks.append(request)

    def cancel_received(self, txn: Any) -> None:
        self.cancelled.append(txn)
        txn.respond(txn.request.response(487, None, self.stack.to_tag(txn)))

    def server_failed(self, txn: Any, reason: str) -> None:
        self.failed.append((txn, reason))

    def stray_response(self, response: Response, transport: Any, source: Address) -> None:
        self.stray.append(response)


class ClientRecorder:
    """A client transaction's user that keeps what it was told."""

    def __init__(self) -> None:
        self.responses: list[Response] = []
        self.failures: list[str] = []

    def response_received(self, txn: Any, response: Response) -> None:
        self.responses.append(response)

    def transaction_failed(self, txn: Any, reason: str) -> None:
        self.failures.append(reason)
