"""Structured header values: Via, name-addr (From, To, Contact, Route) and CSeq.

Each parser takes the text of one value and returns a small immutable object,
or raises ``ValueError`` with a short reason that the caller turns into a 400.
The shapes real peers send (``SIP/2.0/UDP host:port;branch=...``,
``"Name" <sip:...>;tag=...``) take a short path; LWS, quoting and escapes
anywhere the grammar allows them take the general one. The ``<...>`` part of
a name-addr is cached by its text, as it repeats from call to call.
"""

from __future__ import annotations

from typing import NamedTuple

from engine.sip.grammar import HOST_CHARS, TOKEN_CHARS, is_token, parse_params, unquote
from engine.sip.uri import URI, parse_uri

__all__ = ["Address", "Via", "parse_address", "parse_cseq", "parse_via"]

_WS = " \t"
_LWS = frozenset(" \t")
_DIGITS = frozenset("0123456789")
_NO_PARAMS: dict[str, str | None] = {}
MAX_CSEQ = 2**31 - 1
_CACHE_SIZE = 8192
_name_addr_cache: dict[str, tuple[str | None, URI]] = {}
_via_heads: dict[str, tuple[str, str, int | None]] = {}


class Via(NamedTuple):
    """One Via value: ``SIP/2.0/UDP host:port;branch=...``."""

    transport: str
    host: str
    port: int | None
    params: dict[str, str | None]

    @property
    def branch(self) -> str | None:
        return self.params.get("branch")

    def __str__(self) -> str:
        hostport = self.host if self.port is None else f"{self.host}:{self.port}"
        params = "".join(f";{k}" if v is None else f";{k}={v}" for k, v in self.params.items())
        return f"SIP/2.0/{self.transport} {hostport}{params}"


def parse_via(value: str) -> Via:
    """Parse one Via value (LWS around ``/``, ``:`` and ``;`` allowed, as RFC 3261 says).

    The part before the parameters (``SIP/2.0/UDP host:port``) repeats for
    every request from a peer and is cached; the parameters (the branch) are
    new each time.
    """
    semi = value.find(";")
    head_text = value if semi < 0 else value[:semi]
    head = _via_heads.get(head_text)
    if head is None:
        head = _via_head(head_text)
        if len(_via_heads) >= _CACHE_SIZE:
            _via_heads.clear()
        _via_heads[head_text] = head
    if semi < 0:
        return Via(head[0], head[1], head[2], _NO_PARAMS)
    params = parse_params(value[semi + 1 :])
    rport = params.get("rport")
    if rport is not None and not _is_port(rport):  # responses are sent to it (RFC 3581)
        raise ValueError("bad Via rport")
    return Via(head[0], head[1], head[2], params)


def _is_port(text: str) -> bool:
    return 0 < len(text) <= 5 and text.isascii() and text.isdigit() and 0 < int(text) < 65536


def _via_head(text: str) -> tuple[str, str, int | None]:
    """``SIP/2.0/UDP host:port`` (with any LWS the grammar allows) into its parts."""
    rest = text[8:] if text.startswith("SIP/2.0/") else _strip_protocol(text)
    space = rest.find(" ")
    tab = rest.find("\t")
    if tab >= 0 and (space < 0 or tab < space):
        space = tab
    if space < 0:
        raise ValueError("Via has no sent-by")
    transport = rest[:space].upper()
    if not is_token(transport):
        raise ValueError("bad Via transport")
    sent_by = rest[space + 1 :].strip(_WS)
    if not _LWS.isdisjoint(sent_by):  # LWS is allowed around ':' (COLON)
        host_text, colon, port_text = sent_by.rpartition(":")
        if colon and "]" not in port_text:
            sent_by = f"{host_text.strip(_WS)}:{port_text.strip(_WS)}"
    host, port = _parse_sent_by(sent_by)
    return transport, host, port


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


def _parse_sent_by(text: str) -> tuple[str, int | None]:
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("unterminated IPv6 reference in Via")
        host, tail = text[: end + 1], text[end + 1 :]
        port_text = tail[1:] if tail.startswith(":") else None
        if tail and port_text is None:
            raise ValueError("bad Via sent-by")
    else:
        host, colon, port_part = text.partition(":")
        port_text = port_part if colon else None
        if not host or not HOST_CHARS.issuperset(host):
            raise ValueError("bad Via host")
        host = host.lower()
    if port_text is None:
        return host, None
    if not port_text or len(port_text) > 5 or not _DIGITS.issuperset(port_text):
        raise ValueError("bad Via port")
    port = int(port_text)
    if not 0 < port <= 65535:
        raise ValueError("Via port out of range")
    return host, port


class Address(NamedTuple):
    """A name-addr or addr-spec with header parameters (From, To, Contact...)."""

    display: str | None
    uri: URI
    params: dict[str, str | None]

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
        gt = text.find(">", end)
    else:
        lt = text.find("<")
        if lt < 0:
            return _addr_spec(text)
        gt = text.find(">", lt)
    if gt < 0:
        raise ValueError("missing '>'")
    head = text[: gt + 1]
    cached = _name_addr_cache.get(head)
    if cached is None:
        cached = _name_addr(head)
        if len(_name_addr_cache) >= _CACHE_SIZE:
            _name_addr_cache.clear()
        _name_addr_cache[head] = cached
    tail = text[gt + 1 :]
    if not tail:
        return Address(cached[0], cached[1], _NO_PARAMS)
    tail = tail.strip(_WS)
    if tail and tail[0] != ";":
        raise ValueError("unexpected text after '>'")
    return Address(cached[0], cached[1], parse_params(tail) if tail else _NO_PARAMS)


def _name_addr(head: str) -> tuple[str | None, URI]:
    """``[display] <uri>`` (ending at its '>') into the display name and the URI."""
    display: str | None
    if head.startswith('"'):
        end = _closing_quote(head)
        display = unquote(head[: end + 1])
        rest = head[end + 1 :].lstrip(_WS)
        if not rest.startswith("<"):
            raise ValueError("quoted display name not followed by <URI>")
    else:
        lt = head.find("<")
        words = head[:lt].split()
        if any(not TOKEN_CHARS.issuperset(w) for w in words):
            raise ValueError("display name has characters that need quoting")
        display = " ".join(words) or None
        rest = head[lt:]
    # No strip inside <>: LWS there is an error (RFC 4475 badaspec).
    return display, parse_uri(rest[1:-1])


def _addr_spec(text: str) -> Address:
    uri_text, semi, params = text.partition(";")
    if "," in uri_text or "?" in uri_text:
        raise ValueError("a URI with ',' or '?' must be enclosed in <>")
    return Address(None, parse_uri(uri_text.strip(_WS)), parse_params(params) if semi else {})


def _closing_quote(text: str) -> int:
    end = text.find('"', 1)
    if end > 0 and "\\" not in text[1:end]:
        return end
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
    if len(number) > 10 or not _DIGITS.issuperset(number):
        raise ValueError("bad CSeq number")
    seq = int(number)
    if seq > MAX_CSEQ:
        raise ValueError("CSeq number too large")
    if not is_token(method):
        raise ValueError("bad CSeq method")
    return seq, method
