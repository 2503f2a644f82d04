"""SIP dialogs (RFC 3261 §12): the state two user agents share, and requests within it.

A B2BUA holds two dialogs per call, one with each side: as UAS towards the
caller (made from the INVITE it received and the To tag it chose) and as UAC
towards the trunk (made from the INVITE it sent and the first response that
carries a To tag). Each builds its own in-dialog requests (its own CSeq,
route set and remote target), so nothing of one side leaks into the other.
Sans-IO: requests come out as objects, the next hop as an address to send to.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.sip.headers import parse_address
from engine.sip.message import Request, Response
from engine.sip.uri import parse_uri

__all__ = ["Dialog", "next_hop"]


def _without_tag(value: str) -> str:
    """A From/To value with its tag removed (the tag is stored apart)."""
    address = parse_address(value)
    params = {k: v for k, v in address.params.items() if k != "tag"}
    shown = f'"{address.display}" ' if address.display else ""
    tail = "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params.items())
    return f"{shown}<{address.uri}>{tail}"


def _contact_uri(message: Request | Response) -> str | None:
    values = message.values("contact")
    if not values:
        return None
    return str(parse_address(values[0]).uri)


@dataclass
class Dialog:
    """One side of a call: identifiers, sequence numbers, target and route set."""

    call_id: str
    local_tag: str
    remote_tag: str | None
    local_uri: str  # name-addr without tag (From on our requests)
    remote_uri: str  # name-addr without tag (To on our requests)
    local_seq: int
    remote_seq: int | None
    remote_target: str  # the peer's Contact URI
    local_contact: str  # our Contact, a full header value
    route_set: list[str] = field(default_factory=list)

    @classmethod
    def as_uas(cls, invite: Request, local_tag: str, local_contact: str) -> Dialog:
        """The dialog a received INVITE creates (§12.1.1)."""
        return cls(
            call_id=invite.headers["call-id"][0],
            local_tag=local_tag,
            remote_tag=invite.from_address().tag,
            local_uri=_without_tag(invite.headers["to"][0]),
            remote_uri=_without_tag(invite.headers["from"][0]),
            local_seq=0,
            remote_seq=invite.cseq()[0],
            remote_target=_contact_uri(invite) or str(invite.from_address().uri),
            local_contact=local_contact,
            route_set=invite.values("record-route"),
        )

    @classmethod
    def as_uac(cls, invite: Request, response: Response, local_contact: str) -> Dialog:
        """The (early or confirmed) dialog a response to our INVITE creates (§12.1.2)."""
        to = parse_address(response.headers["to"][0])
        return cls(
            call_id=invite.headers["call-id"][0],
            local_tag=invite.from_address().tag or "",
            remote_tag=to.tag,
            local_uri=_without_tag(invite.headers["from"][0]),
            remote_uri=_without_tag(invite.headers["to"][0]),
            local_seq=invite.cseq()[0],
            remote_seq=None,
            remote_target=_contact_uri(response) or invite.uri,
            local_contact=local_contact,
            route_set=list(reversed(response.values("record-route"))),
        )

    def refresh_target(self, message: Request | Response) -> None:
        """A target refresh (re-INVITE, UPDATE and their 2xx) moves the remote target."""
        contact = _contact_uri(message)
        if contact is not None:
            self.remote_target = contact

    def accepts(self, request: Request) -> bool:
        """Whether an in-dialog request is in order (§12.2.2); records its CSeq.

        A lower CSeq than the last one is out of order (the UAS answers 500);
        ACK and CANCEL carry the CSeq of the request they belong to.
        """
        seq = request.cseq()[0]
        if request.method in ("ACK", "CANCEL"):
            return True
        if self.remote_seq is not None and seq <= self.remote_seq:
            return False
        self.remote_seq = seq
        return True

    def request(self, method: str, body: bytes = b"", content_type: str | None = None) -> Request:
        """A new in-dialog request (§12.2.1.1) with the next CSeq; Via is added on sending."""
        if method != "ACK":
            self.local_seq += 1
        return self._request(method, self.local_seq, body, content_type)

    def ack(self, invite_seq: int, body: bytes = b"", content_type: str | None = None) -> Request:
        """The ACK of a 2xx to our INVITE: that INVITE's CSeq number (§13.2.2.4)."""
        return self._request("ACK", invite_seq, body, content_type)

    def _request(self, method: str, seq: int, body: bytes, content_type: str | None) -> Request:
        headers: dict[str, list[str]] = {}
        uri = self.remote_target
        if self.route_set:
            first = parse_address(self.route_set[0]).uri
            if "lr" in first.params:
                headers["route"] = self.route_set[:]
            else:  # strict routing (RFC 2543 era): the target goes last in Route
                uri = str(first)
                headers["route"] = [*self.route_set[1:], f"<{self.remote_target}>"]
        remote_tag = f";tag={self.remote_tag}" if self.remote_tag else ""
        headers["max-forwards"] = ["70"]
        headers["from"] = [f"{self.local_uri};tag={self.local_tag}"]
        headers["to"] = [f"{self.remote_uri}{remote_tag}"]
        headers["call-id"] = [self.call_id]
        headers["cseq"] = [f"{seq} {method}"]
        if method not in ("ACK", "BYE", "CANCEL", "INFO", "PRACK"):
            headers["contact"] = [self.local_contact]
        if body:
            headers["content-type"] = [content_type or "application/sdp"]
        return Request(method, uri, headers, body)

    def next_hop(self) -> tuple[str, int]:
        """Where in-dialog requests go: the first route, else the remote target (§8.1.2)."""
        if self.route_set:
            return next_hop(str(parse_address(self.route_set[0]).uri))
        return next_hop(self.remote_target)


def next_hop(uri_text: str) -> tuple[str, int]:
    """Host and port a SIP URI points at (``maddr`` wins; SRV lookups are not done)."""
    uri = parse_uri(uri_text)
    host = uri.params.get("maddr") or uri.host
    if host.startswith("["):
        host = host[1:-1]
    return host, uri.port or (5061 if uri.scheme == "sips" else 5060)
