"""Password hashes: scrypt, self-describing, compared in constant time.

The stored form is ``scrypt$N$r$p$SALT$HASH`` (salt and hash in unpadded
base64), so the cost can be raised later without breaking old hashes. A
password never appears in logs or error messages, only whether it matched.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

__all__ = ["DECOY_HASH", "hash_password", "is_hash", "verify_password"]

#: A well-formed hash no password matches: checked when the account is unknown, so a
#: refusal costs one scrypt either way and its timing does not tell who exists.
DECOY_HASH = "scrypt$16384$8$1$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"

_N, _R, _P = 2**14, 8, 1
_LEN = 32


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=_LEN)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def _parse(stored: str) -> tuple[int, int, int, bytes, bytes] | None:
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return None
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, digest = _unb64(parts[4]), _unb64(parts[5])
    except ValueError:
        return None
    if n < 2 or n & (n - 1) or not 0 < r <= 64 or not 0 < p <= 16 or not salt or not digest:
        return None
    return n, r, p, salt, digest


def is_hash(stored: str) -> bool:
    """Whether a configured value is a hash this module can check."""
    return _parse(stored) is not None


def verify_password(password: str, stored: str) -> bool:
    parsed = _parse(stored)
    if parsed is None:
        return False
    n, r, p, salt, digest = parsed
    candidate = hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=len(digest), maxmem=256 * 1024 * 1024
    )
    return hmac.compare_digest(candidate, digest)
