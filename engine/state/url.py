"""``state:`` values checked without connecting (and without importing Twisted).

``memory`` is the in-process backend; ``redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]``
is a Redis server and database (port 6379 and database 0 by default;
percent-escapes in the user and password are decoded). Anything else is
refused with one sentence that names what is wrong and never repeats the
password, so the configuration can be validated before anything connects.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

__all__ = ["FORM", "StateURL", "parse_state_url"]

FORM = "'memory' or redis://[:PASSWORD@]HOST[:PORT][/DB]"


@dataclass(frozen=True)
class StateURL:
    """Where the shared state lives: ``kind`` is ``memory`` or ``redis``."""

    kind: str
    host: str = ""
    port: int = 6379
    db: int = 0
    username: str | None = None
    password: str | None = None


def _masked(url: str) -> str:
    """The URL as it may be shown: any password replaced by ``***``."""
    scheme, sep, rest = url.partition("://")
    userinfo, at, hostpart = rest.rpartition("@")
    if not sep or not at or ":" not in userinfo:
        return url
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{hostpart}"


def parse_state_url(url: str) -> StateURL:
    """Check a ``state:`` value; ValueError with one sentence if it is not usable."""
    if url == "memory":
        return StateURL("memory")

    def refuse(why: str) -> ValueError:
        return ValueError(f"state must be {FORM}, not '{_masked(url)}': {why}")

    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise refuse(f"{exc}") from None
    if parts.scheme == "rediss":
        raise refuse("TLS (rediss://) is not supported; reach Redis over a trusted network")
    if parts.scheme != "redis":
        raise refuse("the scheme must be redis://")
    if not parts.hostname:
        raise refuse("the host is missing")
    if parts.query or parts.fragment:
        raise refuse("options after '?' or '#' are not supported")
    path = parts.path.strip("/")
    if path and not (path.isascii() and path.isdigit()):
        raise refuse(f"the database '{path}' is not a number")
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if username and password is None:
        raise refuse("a user name needs a password (redis://USER:PASSWORD@HOST)")
    return StateURL(
        "redis",
        host=parts.hostname,
        port=6379 if port is None else port,
        db=int(path) if path else 0,
        username=username,
        password=password,
    )
