"""SIP requests and responses as plain objects, and their wire form.

Headers are kept as received, by lower-case full name (compact forms are
expanded when parsing), each with the list of its values in order. A value
is the text of one header line; a line may hold several comma-separated
values (``Via: a, b``); :meth:`Message.values` splits those on demand, so the
hot path copies Via, From, To, Call-ID and CSeq without parsing them.
"""

from __future__ import annotations

from engine.sip.grammar import split_commas
from engine.sip.headers import Address, Via, parse_address, parse_cseq, parse_via
from engine.sip.status import reason as phrase
from engine.sip.uri import URI, parse_uri

__all__ = ["DISPLAY_NAMES", "Message", "Request", "Response", "display_name"]

#: Wire spelling of header names whose capitalisation is not plain title case.
DISPLAY_NAMES = {
    "call-id": "Call-ID",
    "cseq": "CSeq",
    "www-authenticate": "WWW-Authenticate",
    "mime-version": "MIME-Version",
    "rack": "RAck",
    "rseq": "RSeq",
    "sip-etag": "SIP-ETag",
    "sip-if-match": "SIP-If-Match",
    "p-asserted-identity": "P-Asserted-Identity",
}
_display_cache: dict[str, str] = {}


def display_name(name: str) -> str:
    """The conventional spelling of a lower-case header name."""
    shown = _display_cache.get(name)
    if shown is None:
        shown = DISPLAY_NAMES.get(name) or "-".join(p.capitalize() for p in name.split("-"))
        if len(_display_cache) < 512:
            _display_cache[name] = shown
    return shown


class Message:
    """What requests and responses share: headers and a body."""

    __slots__ = ("body", "headers")

    def __init__(self, headers: dict[str, list[str]] | None = None, body: bytes = b"") -> None:
        self.headers: dict[str, list[str]] = {} if headers is None else headers
        self.body = body

    def get(self, name: str) -> str | None:
        """The first value of a header (by lower-case full name), or None."""
        values = self.headers.get(name)
        return values[0] if values else None

    def values(self, name: str) -> list[str]:
        """Every comma-separated value of a list header, in order."""
        lines = self.headers.get(name)
        if not lines:
            return []
        if len(lines) == 1 and "," not in lines[0]:
            return lines[:]
        out: list[str] = []
        for line in lines:
            out.extend(split_commas(line))
        return out

    def set(self, name: str, value: str) -> None:
        self.headers[name] = [value]

    def add(self, name: str, value: str) -> None:
        self.headers.setdefault(name, []).append(value)

    def remove(self, name: str) -> None:
        self.headers.pop(name, None)

    def start_line(self) -> str:
        raise NotImplementedError

    def top_via(self) -> Via:
        """The first Via value, parsed (ValueError if malformed)."""
        first = self.headers["via"][0]
        return parse_via(first if "," not in first else split_commas(first)[0])

    def to_bytes(self) -> bytes:
        """Serialise; Content-Length is always written from the body."""
        parts = [self.start_line(), "\r\n"]
        for name, values in self.headers.items():
            if name == "content-length":
                continue
            shown = _display_cache.get(name) or display_name(name)
            for value in values:
                parts.append(f"{shown}: {value}\r\n")
        parts.append(f"Content-Length: {len(self.body)}\r\n\r\n")
        head = "".join(parts).encode("utf-8", "surrogateescape")
        return head + self.body if self.body else head


class Request(Message):
    """A SIP request; ``uri`` is the Request-URI as text.

    The parsed views of the headers every request handler needs (top Via,
    CSeq, From, To, Request-URI) are computed once on first use; each raises
    ``ValueError`` if its header is malformed.
    """

    __slots__ = ("_cseq", "_from", "_ruri", "_to", "_via", "method", "uri")

    def __init__(
        self,
        method: str,
        uri: str,
        headers: dict[str, list[str]] | None = None,
        body: bytes = b"",
    ) -> None:
        self.headers = {} if headers is None else headers
        self.body = body
        self.method = method
        self.uri = uri
        self._via: Via | None = None
        self._cseq: tuple[int, str] | None = None
        self._from: Address | None = None
        self._to: Address | None = None
        self._ruri: URI | None = None

    def start_line(self) -> str:
        return f"{self.method} {self.uri} SIP/2.0"

    def top_via(self) -> Via:
        if self._via is None:
            self._via = super().top_via()
        return self._via

    def set_top_via(self, via: Via) -> None:
        """Replace the top Via value (RFC 3581 received/rport stamping)."""
        lines = self.headers["via"]
        rest = split_commas(lines[0])[1:] if "," in lines[0] else []
        lines[0:1] = [str(via), *rest]
        self._via = via

    def cseq(self) -> tuple[int, str]:
        if self._cseq is None:
            self._cseq = parse_cseq(self.headers["cseq"][0])
        return self._cseq

    def from_address(self) -> Address:
        if self._from is None:
            self._from = parse_address(self.headers["from"][0])
        return self._from

    def to_address(self) -> Address:
        if self._to is None:
            self._to = parse_address(self.headers["to"][0])
        return self._to

    def request_uri(self) -> URI:
        if self._ruri is None:
            self._ruri = parse_uri(self.uri)
        return self._ruri

    def response(
        self, status: int, reason: str | None = None, to_tag: str | None = None
    ) -> Response:
        """A response to this request (RFC 3261 §8.2.6.2), tagging To when asked."""
        src = self.headers
        headers: dict[str, list[str]] = {}
        if "via" in src:
            headers["via"] = src["via"][:]
        for name in ("from", "to", "call-id", "cseq"):
            values = src.get(name)
            if values is not None:
                headers[name] = values[:1]  # one each, even if a broken request had several
        if to_tag is not None and status > 100 and "to" in headers:
            try:
                tagged = self.to_address().tag is not None
            except ValueError:
                tagged = True  # a To we cannot read is answered as it came
            if not tagged:
                headers["to"] = [f"{headers['to'][0]};tag={to_tag}"]
        if status == 100 and "timestamp" in src:
            headers["timestamp"] = src["timestamp"][:]
        return Response(status, reason or phrase(status), headers)

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.uri} call-id={self.get('call-id')}>"


class Response(Message):
    """A SIP response."""

    __slots__ = ("reason", "status")

    def __init__(
        self,
        status: int,
        reason: str,
        headers: dict[str, list[str]] | None = None,
        body: bytes = b"",
    ) -> None:
        self.headers = {} if headers is None else headers
        self.body = body
        self.status = status
        self.reason = reason

    def start_line(self) -> str:
        return f"SIP/2.0 {self.status} {self.reason}"

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.reason} call-id={self.get('call-id')}>"
