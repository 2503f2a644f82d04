"""HTTP digest authentication for SIP (RFC 3261 §22, RFC 7616, RFC 8760), sans-IO.

The server side only: the ``WWW-Authenticate`` challenges of a 401 and the
check of an ``Authorization`` header, with ``qop=auth`` and the MD5 and
SHA-256 algorithms (RFC 8760 lists SHA-256 first, the one a client should
prefer).

Credentials are stored as HA1 = H(username:realm:password), the standard
form: digest cannot be checked against a slow hash such as scrypt, because
the client proves it knows HA1, not the password. HA1 is therefore
password-equivalent within its realm: anyone who reads it can register as
that user, so it must be kept as secret as a password (it does not reveal
the password itself, nor work in another realm).

Nonces need no server storage: a nonce is its issue time, a random salt
and an HMAC of both with the realm under a secret, so any nonce that comes
back can be checked for origin and age by recomputing the HMAC. A nonce
past its lifetime, or one this secret did not make (another process, a
restart), with a response that is otherwise right, is answered
``stale=true``: the client retries at once with the fresh nonce, without
asking its user. Replays are caught with the nonce count: per nonce the
highest ``nc`` seen is remembered until the nonce expires (in this process
only). That table is bounded, and a live nonce is never forgotten (its
``nc`` would start again and a captured request could be replayed): only
expired entries leave it, and while it is full of live ones a nonce not yet
in it is answered ``stale=true`` (the client retries, and gets in once
entries expire, within ``nonce_ttl``).
"""

from __future__ import annotations

import enum
import hashlib
import heapq
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from engine.sip.grammar import is_token, split_commas, unquote
from engine.sip.uri import parse_uri

__all__ = [
    "ALGORITHMS",
    "Credentials",
    "DigestError",
    "DigestServer",
    "Verdict",
    "ha1",
    "parse_authorization",
    "request_digest",
]

#: Supported algorithms, in the order a challenge offers them (the preferred first).
ALGORITHMS: Mapping[str, str] = {"SHA-256": "sha256", "MD5": "md5"}
_HEX = frozenset("0123456789abcdefABCDEF")
_REQUIRED = ("username", "realm", "nonce", "uri", "response")
#: Nonces whose highest ``nc`` is remembered at most (only expired ones are forgotten).
TRACKED_NONCES = 65536


class DigestError(ValueError):
    """An ``Authorization`` header that does not parse: answered 400, not 401."""


class Verdict(enum.Enum):
    """What a checked ``Authorization`` is worth."""

    OK = "ok"
    #: The response is right but its nonce is old, foreign or replayed: challenge, stale=true.
    STALE = "stale"
    #: Wrong password, user, realm or algorithm: a failed attempt.
    WRONG = "wrong"


@dataclass(frozen=True)
class Credentials:
    """The parameters of one ``Authorization: Digest ...`` value."""

    username: str
    realm: str
    nonce: str
    uri: str
    response: str
    algorithm: str = "MD5"
    qop: str | None = None
    nc: str | None = None
    cnonce: str | None = None


class Clock(Protocol):
    def seconds(self) -> float: ...


def _h(algorithm: str, text: str) -> str:
    return hashlib.new(ALGORITHMS[algorithm], text.encode("utf-8")).hexdigest()


def ha1(username: str, realm: str, password: str, algorithm: str = "MD5") -> str:
    """H(username:realm:password): what the configuration stores instead of the password."""
    return _h(algorithm, f"{username}:{realm}:{password}")


def request_digest(credentials: Credentials, method: str, ha1_hex: str) -> str:
    """The ``response`` a client that knows ``ha1_hex`` computes (RFC 7616 §3.4.1)."""
    algorithm = credentials.algorithm
    ha2 = _h(algorithm, f"{method}:{credentials.uri}")
    if credentials.qop is None:  # RFC 2069, kept for the test vectors; never accepted
        return _h(algorithm, f"{ha1_hex}:{credentials.nonce}:{ha2}")
    return _h(algorithm, f"{ha1_hex}:{credentials.nonce}:{credentials.nc}:"
                         f"{credentials.cnonce}:{credentials.qop}:{ha2}")  # fmt: skip


def parse_authorization(value: str) -> Credentials:
    """One ``Authorization`` value; DigestError says what is malformed.

    Parameters may come in any order, quoted or not, with LWS around the
    commas and ``=``; commas inside quoted strings (a URI's parameters) do
    not split. Unknown parameters (``opaque``, extensions) are ignored.
    """
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        raise DigestError("not Digest credentials")
    params: dict[str, str] = {}
    try:
        pieces = split_commas(rest)
    except ValueError as exc:
        raise DigestError(str(exc)) from None
    for piece in pieces:
        name, eq, raw = piece.partition("=")
        name, raw = name.strip().lower(), raw.strip()
        if not eq or not is_token(name) or not raw:
            raise DigestError(f"bad digest parameter {piece[:40]!r}")
        if name in params:
            raise DigestError(f"digest parameter {name!r} given twice")
        if raw.startswith('"'):
            try:
                params[name] = unquote(raw)
            except ValueError as exc:
                raise DigestError(f"digest parameter {name!r}: {exc}") from None
        elif is_token(raw):
            params[name] = raw
        else:
            raise DigestError(f"digest parameter {name!r} must be a token or quoted")
    missing = [name for name in _REQUIRED if name not in params]
    if missing:
        raise DigestError(f"digest credentials without {', '.join(missing)}")
    response = params["response"]
    if not _HEX.issuperset(response):
        raise DigestError("digest response is not hexadecimal")
    qop = params.get("qop")
    nc, cnonce = params.get("nc"), params.get("cnonce")
    if qop is not None:
        if nc is None or cnonce is None:
            raise DigestError("digest credentials with qop need nc and cnonce")
        if len(nc) != 8 or not _HEX.issuperset(nc):
            raise DigestError("digest nc must be 8 hexadecimal digits")
    return Credentials(
        params["username"], params["realm"], params["nonce"], params["uri"], response.lower(),
        params.get("algorithm", "MD5"), qop, nc, cnonce,
    )  # fmt: skip


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _same_uri(a: str, b: str) -> bool:
    """Whether the digest ``uri`` names the Request-URI (text, else parsed, equality)."""
    if a == b:
        return True
    try:
        return parse_uri(a) == parse_uri(b)
    except ValueError:
        return False


class DigestServer:
    """Issues challenges and checks credentials against stored HA1s, for every realm.

    ``secret`` keys the nonces' HMAC: random per process unless given (give
    the same one to every process that may see a client's next request).
    """

    def __init__(self, clock: Clock, secret: bytes | None = None, nonce_ttl: float = 300.0,
                 tracked: int = TRACKED_NONCES) -> None:  # fmt: skip
        self.clock = clock
        self.secret = secret or secrets.token_bytes(32)
        self.nonce_ttl = nonce_ttl
        self.tracked = tracked
        #: nonce -> highest nc seen, for the nonces in use that have not expired
        self._counts: dict[str, int] = {}
        #: (when the nonce expires, nonce) for each nonce in ``_counts``: a min-heap
        self._expiry: list[tuple[float, str]] = []

    # -- nonces ----------------------------------------------------------------

    def _mac(self, stamp: str, realm: str) -> str:
        return hmac.new(self.secret, f"{stamp}:{realm}".encode(), hashlib.sha256).hexdigest()[:32]

    def nonce(self, realm: str) -> str:
        stamp = f"{int(self.clock.seconds()):x}.{secrets.token_hex(8)}"
        return f"{stamp}.{self._mac(stamp, realm)}"

    def _issued(self, nonce: str, realm: str) -> float | None:
        """When this secret issued ``nonce`` for ``realm``; None if it did not."""
        stamp, _, mac = nonce.rpartition(".")
        if not hmac.compare_digest(mac.encode(), self._mac(stamp, realm).encode()):
            return None
        return float(int(stamp.partition(".")[0], 16))

    # -- challenges ------------------------------------------------------------

    def challenges(self, realm: str, algorithms: tuple[str, ...], stale: bool = False) -> list[str]:
        """``WWW-Authenticate`` values, one per algorithm (each with its own nonce)."""
        tail = ", stale=true" if stale else ""
        return [f"Digest realm={_quoted(realm)}, nonce={_quoted(self.nonce(realm))}, "
                f'algorithm={algorithm}, qop="auth"{tail}'
                for algorithm in ALGORITHMS if algorithm in algorithms]  # fmt: skip

    # -- verification ----------------------------------------------------------

    def verify(
        self, credentials: Credentials, method: str, request_uri: str, realm: str,
        ha1s: Mapping[str, str],
    ) -> Verdict:  # fmt: skip
        """Check credentials against ``ha1s`` (algorithm -> HA1 of the claimed user).

        The caller has matched the username to the account ``ha1s`` belong to;
        an unknown user is checked against an empty mapping (WRONG).
        """
        c = credentials
        stored = ha1s.get(c.algorithm)
        if c.realm != realm or stored is None or c.qop != "auth" or c.nc is None:
            return Verdict.WRONG
        if not _same_uri(c.uri, request_uri):
            return Verdict.WRONG
        expected = request_digest(c, method, stored)
        if not hmac.compare_digest(expected.encode(), c.response.encode()):
            return Verdict.WRONG
        now = self.clock.seconds()
        issued = self._issued(c.nonce, realm)
        if issued is None or not issued <= now < issued + self.nonce_ttl:
            return Verdict.STALE
        return Verdict.OK if self._count(c.nonce, int(c.nc, 16), issued) else Verdict.STALE

    def _count(self, nonce: str, nc: int, issued: float) -> bool:
        """Record ``nc`` for the nonce; False if it is not above every earlier one (a replay),
        or if the nonce is new and the table is full of live nonces (answered stale)."""
        now = self.clock.seconds()
        counts, expiry = self._counts, self._expiry
        while expiry and expiry[0][0] <= now:  # forget the nonces that expired, and only those
            del counts[heapq.heappop(expiry)[1]]
        seen = counts.get(nonce)
        if seen is None:
            if len(counts) >= self.tracked:
                return False
            heapq.heappush(expiry, (issued + self.nonce_ttl, nonce))
        elif nc <= seen:
            return False
        counts[nonce] = nc
        return True
