"""Structured header values: Via, name-addr (From, To, Contact, Route) and CSeq.

Each parser takes the text of one value and returns a small object, or raises
``ValueError`` with a short reason that the caller turns into a 400.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.sip.grammar import HOST_CHARS, TOKEN_CHARS, is_token, parse_params, unquote
from engine.sip.uri import URI, parse_uri

__all__ = ["Address", "Via", "parse_address", "parse_cseq", "parse_via"]

_WS = " \t"
_DIGITS = frozenset("0123456789")
MAX_CSEQ = 2**31 - 1


@dataclass(slots=True)
class Via:
    """One Via value: ``SIP/2.0/UDP host:port;branch=...``."""

    transport: str
    host: str
    port: int | None
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    def __str__(self) -> str:
        hostport = self.host if self.port is None else f"{self.host}:{self.port}"
        params = "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self.params.items())
        return f"SIP/2.0/{self.transport} {hostport}{params}"


def parse_via(value: str) -> Via:
    """Parse one Via value (LWS around ``/`` and ``;`` allowed, as RFC 3261 says)."""
    rest = value[8:] if value.startswith("SIP/2.0/") else _strip_protocol(value)
    space = _first_ws(rest)
    if space < 0:
        raise ValueError("Via has no sent-by")
    transport = rest[:space].upper()
    if not is_token(transport):
        raise ValueError("bad Via transport")
    rest = rest[space:].lstrip(_WS)
    sent_by, semi, params = rest.partition(";")
    host, port = _parse_sent_by(sent_by.strip(_WS))
    via = Via(transport, host, port)
    if semi:
        via.params = parse_params(params)
    return via


def _strip_protocol(value: str) -> str:
    """Consume ``SIP / 2.0 /`` with optional LWS; return what follows."""
    rest = value
    for expected in ("SIP", "2.0"):
        rest = rest.lstrip(_WS)
        if rest[: len(expected)].upper() != expected:
            raise ValueError("Via does not start with SIP/2.0")
        rest = rest[len(expected) :].lstrip(_WS)
        if not rest.startswith("/"):
            raise ValueError("Via does not start with SIP/2.0/")
        rest = rest[1:]
    return rest.lstrip(_WS)


def _first_ws(text: str) -> int:
    for i, c in enumerate(text):
        if c in _WS:
            return i
    return -1


def _parse_sent_by(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("unterminated IPv6 reference in Via")
        host, tail = text[: end + 1], text[end + 1 :].strip(_WS)
        port_text = tail[1:].strip(_WS) if tail.startswith(":") else None
        if tail and port_text is None:
            raise ValueError("bad Via sent-by")
    else:
        host, colon, port_part = text.partition(":")
        host = host.strip(_WS)
        port_text = port_part.strip(_WS) if colon else None
        if not host or any(c not in HOST_CHARS for c in host):
            raise ValueError("bad Via host")
    if port_text is None:
        return host.lower(), None
    if not port_text or len(port_text) > 5 or any(c not in _DIGITS for c in port_text):
        raise ValueError("bad Via port")
    port = int(port_text)
    if not 0 < port <= 65535:
        raise ValueError("Via port out of range")
    return host.lower(), port


@dataclass(slots=True)
class Address:
    """A name-addr or addr-spec with header parameters (From, To, Contact...)."""

    display: str | None
    uri: URI
    params: dict[str, str | None] = field(default_factory=dict)

    @property
    def tag(self) -> str | None:
        return self.params.get("tag")

    def __str__(self) -> str:
        shown = f'"{_quote(self.display)}" ' if self.display else ""
        params = "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self.params.items())
        return f"{shown}<{self.uri}>{params}"


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def parse_address(value: str) -> Address:
    """Parse ``"Name" <uri>;params``, ``Name <uri>;params`` or ``uri;params``."""
    text = value.strip(_WS)
    if text.startswith('"'):
        end = _closing_quote(text)
        display: str | None = unquote(text[: end + 1])
        rest = text[end + 1 :].lstrip(_WS)
        if not rest.startswith("<"):
            raise ValueError("quoted display name not followed by <URI>")
        return _name_addr(display, rest)
    lt = text.find("<")
    if lt >= 0:
        words = text[:lt].split()
        if any(not all(c in TOKEN_CHARS for c in w) for w in words):
            raise ValueError("display name has characters that need quoting")
        display = " ".join(words) or None
        return _name_addr(display, text[lt:])
    uri_text, semi, params = text.partition(";")
    if any(c in ",?" for c in uri_text):
        raise ValueError("a URI with ',' or '?' must be enclosed in <>")
    return Address(None, parse_uri(uri_text.strip(_WS)), parse_params(params) if semi else {})


def _name_addr(display: str | None, rest: str) -> Address:
    gt = rest.find(">")
    if gt < 0:
        raise ValueError("missing '>'")
    uri = parse_uri(rest[1:gt])  # no strip: LWS inside <> is an error (RFC 4475 badaspec)
    tail = rest[gt + 1 :].strip(_WS)
    if tail and not tail.startswith(";"):
        raise ValueError("unexpected text after '>'")
    return Address(display, uri, parse_params(tail) if tail else {})


def _closing_quote(text: str) -> int:
    i, n = 1, len(text)
    while i < n:
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if c == '"':
            return i
        i += 1
    raise ValueError("unterminated quoted display name")


def parse_cseq(value: str) -> tuple[int, str]:
    """``4711 INVITE`` -> (4711, "INVITE"); the number must fit 31 bits."""
    parts = value.split()
    if len(parts) != 2:
        raise ValueError("CSeq must be a number and a method")
    number, method = parts
    if len(number) > 10 or any(c not in _DIGITS for c in number):
        raise ValueError("bad CSeq number")
    seq = int(number)
    if seq > MAX_CSEQ:
        raise ValueError("CSeq number too large")
    if not is_token(method):
        raise ValueError("bad CSeq method")
    return seq, method
