"""Bytes to SIP messages: datagrams (UDP) and byte streams (TCP).

Sans-IO: :func:`parse_datagram` takes one datagram; :class:`StreamParser`
is fed what a connection reads and returns whole messages, however the
bytes were split. Both raise only :class:`ParseError`, which carries the
status to answer (400, 505...) and, when the start line and headers could be
read, the partial request so the caller can still build that answer.

Framing follows RFC 3261 §7.5 and §18.3: leading CRLFs are skipped;
Content-Length frames the body (optional on UDP, where a missing one means
"the rest of the datagram", and extra octets after it are ignored); a
Content-Length larger than what arrived is a 400.
"""

from __future__ import annotations

from engine.sip.grammar import TOKEN_CHARS
from engine.sip.message import Message, Request, Response, display_name

__all__ = ["MAX_MESSAGE", "ParseError", "StreamParser", "parse_datagram"]

#: Largest message accepted on a stream before the connection is refused.
MAX_MESSAGE = 65535

COMPACT = {
    "i": "call-id",
    "m": "contact",
    "e": "content-encoding",
    "l": "content-length",
    "c": "content-type",
    "f": "from",
    "s": "subject",
    "k": "supported",
    "t": "to",
    "v": "via",
    "o": "event",
    "r": "refer-to",
    "b": "referred-by",
    "u": "allow-events",
    "x": "session-expires",
    "y": "identity",
    "a": "accept-contact",
    "j": "reject-contact",
    "d": "request-disposition",
    "n": "identity-info",
}

#: Headers that may appear once only (RFC 4475 multi01, mcl01).
SINGLE = frozenset({"call-id", "cseq", "from", "to", "max-forwards", "content-length"})
#: Headers no message can be handled without (RFC 4475 insuf).
REQUIRED = frozenset({"via", "call-id", "cseq", "from", "to"})

_DIGITS = frozenset("0123456789")
_name_cache: dict[str, str] = {}


class ParseError(Exception):
    """What could not be parsed, the status to answer, and what was read."""

    def __init__(self, reason: str, status: int = 400, partial: Message | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status
        self.partial = partial


def parse_datagram(data: bytes) -> Request | Response:
    """Parse one UDP datagram holding one message."""
    start = 0
    while data.startswith(b"\r\n", start):
        start += 2
    end = data.find(b"\r\n\r\n", start)
    if end >= 0:
        sep = "\r\n"
        body_at = end + 4
    else:
        end = data.find(b"\n\n", start)
        if end >= 0:
            sep = "\n"
            body_at = end + 2
        elif data.endswith(b"\r\n"):
            # A datagram is a whole message: take its end as the end of the
            # headers when the final empty line is missing (RFC 4475 baddn).
            end = body_at = len(data) - 2
            sep = "\r\n"
        else:
            raise ParseError("No End of Headers")
    message = _parse_head(data[start:end], sep)
    length = _content_length(message)
    if length is None:
        message.body = data[body_at:]
    elif body_at + length > len(data):
        raise ParseError("Content-Length Exceeds Message", partial=message)
    else:
        message.body = data[body_at : body_at + length]
    _check_start(message)
    return message


class StreamParser:
    """Frames messages out of a TCP byte stream (RFC 3261 §18.3).

    ``feed`` returns, in order, the messages completed by the new bytes and a
    ParseError for each that was framed but invalid (a missing Call-ID, a
    duplicate To): the connection answers it 400 and goes on, its framing
    intact. When the framing itself is lost (no end of headers within
    ``max_message``, a bad or missing Content-Length, headers that cannot be
    read), the ParseError comes last and ``broken`` is set: the connection
    must be closed once what came before has been served. ``pings`` counts
    RFC 5626 double-CRLF keep-alives since the last call, which the
    transport answers with a single CRLF.
    """

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self._buffer = bytearray()
        self._max = max_message
        self.pings = 0
        self.broken = False
        self._crlfs = 0  # CRLFs seen before anything else, across reads (a ping may be split)

    def feed(self, data: bytes) -> list[Request | Response | ParseError]:
        if self.broken:
            return []
        buffer = self._buffer
        buffer += data
        out: list[Request | Response | ParseError] = []
        while True:
            start = 0
            while buffer.startswith(b"\r\n", start):
                start += 2
            if start:
                self._crlfs += start // 2
                del buffer[:start]
                self.pings += self._crlfs // 2
                self._crlfs %= 2
            if buffer:  # a message begins: a lone CRLF before it was no ping
                self._crlfs = 0
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(buffer) > self._max:
                    return self._lost(out, ParseError("Message Too Large"))
                return out
            error: ParseError | None = None
            try:
                message: Message | None = _parse_head(bytes(buffer[:end]), "\r\n")
            except ParseError as exc:  # framed all the same if its headers were read
                message, error = exc.partial, exc
                if message is None or exc.reason == "Several Content-Length Values":
                    return self._lost(out, exc)
            assert message is not None
            try:
                length = _content_length(message)
            except ParseError as exc:
                return self._lost(out, exc)
            if length is None:
                return self._lost(out, ParseError("Missing Content-Length", partial=message))
            total = end + 4 + length
            if total > self._max:
                return self._lost(out, ParseError("Message Too Large", partial=message))
            if len(buffer) < total:
                return out
            message.body = bytes(buffer[end + 4 : total])
            del buffer[:total]
            if error is None:
                try:
                    _check_start(message)
                except ParseError as exc:
                    error = exc
            out.append(error if error is not None else message)  # type: ignore[arg-type]

    def _lost(
        self, out: list[Request | Response | ParseError], exc: ParseError
    ) -> list[Request | Response | ParseError]:
        self.broken = True
        self._buffer.clear()
        out.append(exc)
        return out


def _parse_head(head: bytes, sep: str) -> Request | Response:
    text = head.decode("utf-8", "surrogateescape")
    lines = text.split(sep)
    headers: dict[str, list[str]] = {}
    known = _name_cache.get
    values: list[str] | None = None
    duplicate: str | None = None
    for line in lines[1:]:
        raw, colon, value = line.partition(":")
        name = known(raw)
        if name is None:  # a name not seen before, a folded line, or garbage
            if not line:
                continue
            if line[0] in " \t":
                if values is None:
                    raise ParseError("Bad Header Continuation")
                more = line.strip(" \t")  # RFC 3261 §7.3.1: the fold becomes one space
                values[-1] = f"{values[-1]} {more}" if values[-1] else more
                continue
            if not colon:
                raise ParseError("Bad Header Line")
            name = _header_name(raw)
        values = headers.get(name)
        if values is None:
            values = headers[name] = [value.strip(" \t")]
        else:
            values.append(value.strip(" \t"))
            if name in SINGLE and duplicate is None:  # RFC 4475 multi01, mcl01
                duplicate = name
    message = _start_line(lines[0], headers)
    if duplicate is not None:
        what = display_name(duplicate)
        raise ParseError(f"Several {what} Headers" if duplicate != "content-length"
                         else "Several Content-Length Values", partial=message)  # fmt: skip
    return message


def _header_name(raw: str) -> str:
    name = raw.rstrip(" \t")
    if not name or not TOKEN_CHARS.issuperset(name):
        raise ParseError("Bad Header Name")
    lower = name.lower()
    canonical = COMPACT.get(lower, lower)
    if len(_name_cache) < 1024:
        _name_cache[raw] = canonical
    return canonical


def _start_line(line: str, headers: dict[str, list[str]]) -> Request | Response:
    if line.startswith("SIP/"):
        version, _, rest = line.partition(" ")
        code, _, reason = rest.partition(" ")
        if version != "SIP/2.0" or len(code) != 3 or not _DIGITS.issuperset(code):
            raise ParseError("Bad Status Line")
        status = int(code)
        if not 100 <= status < 700:
            raise ParseError("Bad Status Code")
        return Response(status, reason, headers)
    parts = line.split(" ")
    if len(parts) != 3:
        # Keep what can be kept so the 400 can still be routed back.
        method = parts[0] if parts and parts[0] else "UNKNOWN"
        raise ParseError("Malformed Request Line", partial=Request(method, "", headers))
    method, uri, version = parts
    request = Request(method, uri, headers)
    if not method or not TOKEN_CHARS.issuperset(method):
        raise ParseError("Bad Method", partial=request)
    if not uri or uri[0] == "<":
        raise ParseError("Malformed Request-URI", partial=request)
    if version != "SIP/2.0" and version.upper() != "SIP/2.0":
        if version[:4].upper() == "SIP/":
            raise ParseError("Version Not Supported", 505, partial=request)
        raise ParseError("Bad SIP Version", partial=request)
    return request


def _content_length(message: Message) -> int | None:
    values = message.headers.get("content-length")
    if values is None:
        return None
    text = values[0]
    if not text or len(text) > 9 or not _DIGITS.issuperset(text):
        raise ParseError("Bad Content-Length", partial=message)
    return int(text)


def _check_start(message: Message) -> None:
    """Headers a message cannot be handled without (duplicates are caught while parsing)."""
    headers = message.headers
    if not REQUIRED.issubset(headers):
        for name in ("via", "call-id", "cseq", "from", "to"):
            if name not in headers:
                raise ParseError(f"Missing {display_name(name)}", partial=message)
