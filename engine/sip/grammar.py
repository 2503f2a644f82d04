"""Character classes and small lexical helpers of the SIP grammar (RFC 3261 §25).

Everything here is plain ``str`` work: splitting comma lists and parameters
while respecting quoted strings and ``<...>``, unescaping ``%HH``, and the
character sets the ABNF names.
"""

from __future__ import annotations

import ipaddress
import string

__all__ = [
    "HOST_CHARS",
    "TOKEN_CHARS",
    "USER_CHARS",
    "is_ip_address",
    "is_token",
    "parse_params",
    "split_commas",
    "unescape",
    "unquote",
]

_ALNUM = string.ascii_letters + string.digits
TOKEN_CHARS = frozenset(_ALNUM + "-.!%*_+`'~")
USER_CHARS = frozenset(_ALNUM + "-_.!~*'()" + "&=+$,;?/" + "%")
HOST_CHARS = frozenset(_ALNUM + "-._")
_HEX = frozenset(string.hexdigits)
_WS = " \t"
_BAD_VALUE = frozenset(' \t,<>"')


_tokens: set[str] = set()


def is_ip_address(text: str) -> bool:
    """An IPv4 or IPv6 literal: a host the engine sends to without resolving a name."""
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_token(text: str) -> bool:
    """Whether ``text`` is an RFC 3261 token; the few that recur are remembered."""
    if text in _tokens:
        return True
    if not text or not TOKEN_CHARS.issuperset(text):
        return False
    if len(_tokens) < 1024:
        _tokens.add(text)
    return True


def unescape(text: str) -> str:
    """Decode ``%HH`` escapes (as UTF-8); ValueError on a broken escape."""
    if "%" not in text:
        return text
    out = bytearray()
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c == "%":
            pair = text[i + 1 : i + 3]
            if len(pair) != 2 or not _HEX.issuperset(pair):
                raise ValueError("broken %-escape")
            out.append(int(pair, 16))
            i += 3
        else:
            out += c.encode("utf-8", "surrogateescape")
            i += 1
    return out.decode("utf-8", "surrogateescape")


def split_commas(value: str) -> list[str]:
    """Split a header value at commas that are not inside quotes or <...>."""
    if '"' not in value and "<" not in value:
        return [part.strip(_WS) for part in value.split(",")]
    return [part.strip(_WS) for part in _split_outside(value, ",")]


def _split_outside(text: str, sep: str) -> list[str]:
    """Split at ``sep`` where it stands outside quoted strings and <...>."""
    parts: list[str] = []
    start = 0
    quoted = angled = False
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if quoted:
            if c == "\\":
                i += 1
            elif c == '"':
                quoted = False
        elif c == '"':
            quoted = True
        elif c == "<":
            angled = True
        elif c == ">":
            angled = False
        elif c == sep and not angled:
            parts.append(text[start:i])
            start = i + 1
        i += 1
    if quoted:
        raise ValueError("unterminated quoted string")
    parts.append(text[start:])
    return parts


def parse_params(text: str) -> dict[str, str | None]:
    """Parse ``;name=value;flag`` (leading ``;`` optional) into lower-case names.

    Values may be tokens, hosts or quoted strings; LWS around ``;`` and ``=``
    is allowed (RFC 3261 SEMI and EQUAL); an empty parameter (``;;``) is not.
    """
    if text.startswith(";"):
        text = text[1:]
    if ";" not in text and '"' not in text:  # one parameter: the usual tag or branch
        name, eq, value = text.partition("=")
        if name in _tokens and name.islower() and (
            not eq or (value and _BAD_VALUE.isdisjoint(value))
        ):
            return {name: value if eq else None}
    params: dict[str, str | None] = {}
    pieces = _split_outside(text, ";") if '"' in text else text.split(";")
    for piece in pieces:
        name, eq, value = piece.partition("=")
        if name not in _tokens or not name.islower():
            name = name.strip(_WS).lower()
            if not is_token(name):
                raise ValueError(f"bad parameter name {name!r}")
        if eq:
            value = value.strip(_WS)
            if not value:
                raise ValueError(f"empty value for parameter {name!r}")
            if value[0] != '"' and not _BAD_VALUE.isdisjoint(value):
                raise ValueError(f"bad value for parameter {name!r}")
            params[name] = value
        else:
            params[name] = None
    return params


def unquote(text: str) -> str:
    """The content of a quoted-string, with ``\\x`` pairs resolved."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        raise ValueError("not a quoted string")
    inner = text[1:-1]
    out = []
    i, n = 0, len(inner)
    while i < n:
        c = inner[i]
        if c == "\\":
            if i + 1 >= n:
                raise ValueError("dangling backslash in a quoted string")
            out.append(inner[i + 1])
            i += 2
            continue
        if c == '"':
            raise ValueError("stray quote inside a quoted string")
        out.append(c)
        i += 1
    return "".join(out)
