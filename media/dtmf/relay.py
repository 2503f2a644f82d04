"""DTMF in SIP INFO bodies: ``application/dtmf-relay`` and ``application/dtmf``.

Neither format has an RFC; ``application/dtmf-relay`` is the de facto
``Signal=5`` / ``Duration=160`` form (Cisco, Asterisk, SIPp) and
``application/dtmf`` carries the bare key. Peers vary in case, spacing and
line endings, so the parser is lenient and the formatter strict.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["DTMF_RELAY", "DtmfInfo", "format_dtmf_relay", "parse_dtmf_relay"]

DTMF_RELAY = "application/dtmf-relay"
_DTMF = "application/dtmf"
_KEYS = frozenset("0123456789*#ABCD")
_DEFAULT_DURATION_MS = 250
"""Assumed when a body has no usable Duration (the value most peers send)."""


@dataclass(frozen=True, slots=True)
class DtmfInfo:
    """One key press carried by an INFO request."""

    digit: str
    duration_ms: int


def _key(text: str) -> str | None:
    key = text.strip().upper()
    return key if key in _KEYS else None


def parse_dtmf_relay(content_type: str, body: bytes) -> DtmfInfo | None:
    """The key press in an INFO body, or None for another content type or a bad body."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return None
    if media_type == _DTMF:
        key = _key(text)
        return None if key is None else DtmfInfo(key, _DEFAULT_DURATION_MS)
    if media_type != DTMF_RELAY:
        return None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep:
            fields.setdefault(name.strip().lower(), value.strip())
    key = _key(fields.get("signal", ""))
    if key is None:
        return None
    duration = fields.get("duration", "")
    duration_ms = int(duration) if duration.isdigit() else _DEFAULT_DURATION_MS
    return DtmfInfo(key, duration_ms)


def format_dtmf_relay(digit: str, duration_ms: int) -> tuple[str, bytes]:
    """The Content-Type and body of an INFO carrying ``digit``."""
    if digit not in _KEYS or len(digit) != 1:
        raise ValueError(f"not a DTMF key: {digit!r}")
    if duration_ms <= 0:
        raise ValueError(f"duration_ms must be positive, not {duration_ms}")
    return DTMF_RELAY, f"Signal={digit}\r\nDuration={duration_ms}\r\n".encode("ascii")
