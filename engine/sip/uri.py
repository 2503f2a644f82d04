"""SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966), parsed by hand.

Every request carries several URIs (Request-URI, To, From, Contact) and most
of them repeat from call to call: the called numbers a tree serves, a
trunk's Contact. Parsed URIs are immutable and cached by their text, so the
hot path parses each distinct URI once. Anything malformed raises
``ValueError`` with a short reason.
"""

from __future__ import annotations

from typing import NamedTuple

from engine.sip.grammar import HOST_CHARS, TOKEN_CHARS, USER_CHARS, unescape

__all__ = ["URI", "parse_uri"]

_DIGITS = frozenset("0123456789")
_UNSAFE = frozenset(' \t\r\n<>"')
_PARAM_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()[]/:&+$%"
)
_NO_PARAMS: dict[str, str | None] = {}
_CACHE_SIZE = 8192
_cache: dict[str, URI] = {}


class URI(NamedTuple):
    """A parsed URI. ``user`` is unescaped (``%2B`` reads as ``+``).

    Instances are shared through the parse cache: never mutate ``params``.
    """

    scheme: str
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: dict[str, str | None] = _NO_PARAMS
    headers: str | None = None
    opaque: str | None = None  # the text after ``scheme:`` for schemes we do not parse

    def __str__(self) -> str:
        if self.opaque is not None:
            return f"{self.scheme}:{self.opaque}"
        out = [self.scheme, ":"]
        if self.scheme == "tel":
            out.append(self.user or "")
        else:
            if self.user is not None:
                out.append(escape_user(self.user))
                if self.password is not None:
                    out.append(":" + self.password)
                out.append("@")
            out.append(self.host)
            if self.port is not None:
                out.append(f":{self.port}")
        for name, value in self.params.items():
            out.append(f";{name}" if value is None else f";{name}={value}")
        if self.headers is not None:
            out.append("?" + self.headers)
        return "".join(out)


_USER_SAFE = USER_CHARS - {"%"}


def escape_user(user: str) -> str:
    """Escape the characters a user part may not carry literally."""
    if _USER_SAFE.issuperset(user):
        return user
    return "".join(c if c in _USER_SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in user)


def parse_uri(text: str) -> URI:
    """Parse a URI (cached by its text); ValueError names what is wrong with it."""
    uri = _cache.get(text)
    if uri is None:
        uri = _parse(text)
        if len(_cache) >= _CACHE_SIZE:
            _cache.clear()
        _cache[text] = uri
    return uri


def _parse(text: str) -> URI:
    scheme, colon, rest = text.partition(":")
    if not colon or not scheme or not rest:
        raise ValueError("not a URI")
    if not TOKEN_CHARS.issuperset(scheme) or not scheme[0].isalpha():
        raise ValueError("bad URI scheme")
    if not _UNSAFE.isdisjoint(rest):
        raise ValueError("whitespace or bracket inside a URI")
    scheme = scheme.lower()
    if scheme in ("sip", "sips"):
        return _parse_sip(scheme, rest)
    if scheme == "tel":
        return _parse_tel(rest)
    return URI(scheme, opaque=rest)


def _parse_sip(scheme: str, rest: str) -> URI:
    # '@' cannot appear raw in headers or parameters, so the last one ends the
    # userinfo (which itself may hold ';' and '?', RFC 4475 semiuri).
    userinfo, at, hostpart = rest.rpartition("@")
    hostpart, q, headers_text = hostpart.partition("?")
    headers = None
    if q:
        if not headers_text:
            raise ValueError("empty URI headers")
        headers = headers_text
    user = password = None
    if at:
        if not userinfo:
            raise ValueError("empty user part")
        user, colon, password_text = userinfo.partition(":")
        if not user or not USER_CHARS.issuperset(user):
            raise ValueError("bad character in the user part")
        user = unescape(user)
        if colon:
            password = password_text
    hostport, semi, param_text = hostpart.partition(";")
    host, port = _parse_hostport(hostport)
    params = _parse_params(param_text) if semi else _NO_PARAMS
    return URI(scheme, user, password, host, port, params, headers)


def _parse_params(text: str) -> dict[str, str | None]:
    params: dict[str, str | None] = {}
    for param in text.split(";"):
        name, eq, value = param.partition("=")
        if not name or not _PARAM_CHARS.issuperset(name) or (
            eq and (not value or not _PARAM_CHARS.issuperset(value))
        ):
            raise ValueError("bad URI parameter")
        params[name.lower()] = value if eq else None
    return params


def _parse_hostport(hostport: str) -> tuple[str, int | None]:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError("unterminated IPv6 reference")
        host = hostport[: end + 1]
        tail = hostport[end + 1 :]
        if tail and not tail.startswith(":"):
            raise ValueError("bad text after an IPv6 reference")
        port = tail[1:] if tail else None
    else:
        host, colon, port_text = hostport.partition(":")
        if not host or not HOST_CHARS.issuperset(host):
            raise ValueError("bad host")
        host = host.lower()
        port = port_text if colon else None
    if port is None:
        return host, None
    if not port or len(port) > 5 or not _DIGITS.issuperset(port):
        raise ValueError("bad port")
    number = int(port)
    if number > 65535:
        raise ValueError("port out of range")
    return host, number


def _parse_tel(rest: str) -> URI:
    number, semi, param_text = rest.partition(";")
    if not number:
        raise ValueError("bad tel URI")
    params: dict[str, str | None] = {}
    if semi:
        for param in param_text.split(";"):
            name, eq, value = param.partition("=")
            if not name:
                raise ValueError("bad tel URI parameter")
            params[name.lower()] = value if eq else None
    return URI("tel", user=unescape(number), params=params or _NO_PARAMS)
