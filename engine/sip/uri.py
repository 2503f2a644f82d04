"""SIP, SIPS and tel URIs (RFC 3261 §19.1, RFC 3966), parsed by hand.

The engine reads one URI per request on its hot path (the Request-URI's user
part is the called number), so the common shape ``sip:+3225551234@host:port``
goes through a few ``str`` operations; the rarer shapes are still handled
exactly, and anything malformed raises ``ValueError`` with a short reason.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.sip.grammar import HOST_CHARS, TOKEN_CHARS, USER_CHARS, unescape

__all__ = ["URI", "parse_uri"]

_DIGITS = frozenset("0123456789")
_PARAM_CHARS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()[]/:&+$%"
)


@dataclass(slots=True)
class URI:
    """A parsed URI. ``user`` is unescaped (``%2B`` reads as ``+``)."""

    scheme: str
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: dict[str, str | None] = field(default_factory=dict)
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
    if all(c in _USER_SAFE for c in user):
        return user
    return "".join(c if c in _USER_SAFE else "".join(f"%{b:02X}" for b in c.encode()) for c in user)


def parse_uri(text: str) -> URI:
    """Parse a URI; ValueError names what is wrong with it."""
    scheme, colon, rest = text.partition(":")
    if not colon or not scheme or not rest:
        raise ValueError("not a URI")
    if not all(c in TOKEN_CHARS for c in scheme) or not scheme[0].isalpha():
        raise ValueError("bad URI scheme")
    scheme = scheme.lower()
    if scheme in ("sip", "sips"):
        return _parse_sip(scheme, rest)
    if scheme == "tel":
        return _parse_tel(rest)
    if any(c in " \t\r\n<>\"" for c in rest):
        raise ValueError("bad characters in URI")
    return URI(scheme, opaque=rest)


def _parse_sip(scheme: str, rest: str) -> URI:
    if any(c in " \t\r\n<>\"" for c in rest):
        raise ValueError("whitespace or bracket inside a SIP URI")
    uri = URI(scheme)
    # '@' cannot appear raw in headers or parameters, so the last one ends the
    # userinfo (which itself may hold ';' and '?', RFC 4475 semiuri).
    userinfo, at, hostpart = rest.rpartition("@")
    hostpart, q, headers = hostpart.partition("?")
    if q:
        if not headers:
            raise ValueError("empty URI headers")
        uri.headers = headers
    if at:
        if not userinfo:
            raise ValueError("empty user part")
        user, colon, password = userinfo.partition(":")
        if not user or any(c not in USER_CHARS for c in user):
            raise ValueError("bad character in the user part")
        uri.user = unescape(user)
        if colon:
            uri.password = password
    hostport, *params = hostpart.split(";")
    _parse_hostport(uri, hostport)
    for param in params:
        name, eq, value = param.partition("=")
        if not name or any(c not in _PARAM_CHARS for c in name) or (
            eq and (not value or any(c not in _PARAM_CHARS for c in value))
        ):
            raise ValueError("bad URI parameter")
        uri.params[name.lower()] = value if eq else None
    return uri


def _parse_hostport(uri: URI, hostport: str) -> None:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError("unterminated IPv6 reference")
        uri.host = hostport[: end + 1]
        tail = hostport[end + 1 :]
        if tail and not tail.startswith(":"):
            raise ValueError("bad text after an IPv6 reference")
        port = tail[1:] if tail else None
    else:
        host, colon, port_text = hostport.partition(":")
        if not host or any(c not in HOST_CHARS for c in host):
            raise ValueError("bad host")
        uri.host = host.lower()
        port = port_text if colon else None
    if port is not None:
        if not port or len(port) > 5 or any(c not in _DIGITS for c in port):
            raise ValueError("bad port")
        number = int(port)
        if number > 65535:
            raise ValueError("port out of range")
        uri.port = number


def _parse_tel(rest: str) -> URI:
    number, *params = rest.split(";")
    if not number or any(c in " \t\r\n<>\"" for c in rest):
        raise ValueError("bad tel URI")
    uri = URI("tel", user=unescape(number))
    for param in params:
        name, eq, value = param.partition("=")
        if not name:
            raise ValueError("bad tel URI parameter")
        uri.params[name.lower()] = value if eq else None
    return uri
