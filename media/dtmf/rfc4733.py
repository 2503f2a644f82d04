"""RFC 4733 telephone-event payloads: decode, de-duplicate and produce DTMF events.

Sans-IO: the RTP edge hands over the timestamp, marker bit and payload of
each telephone-event packet and sends what :class:`EventSender` plans; it
owns sockets, sequence numbers and SSRC.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = [
    "DIGITS",
    "EventPacket",
    "EventReceiver",
    "EventSender",
    "TelephoneEvent",
    "decode_event",
    "encode_event",
]

DIGITS = "0123456789*#ABCD"
"""The 16 DTMF keys in RFC 4733 event-code order (§3.2: 0-9, then *, #, A-D)."""

_CLOCK_RATE = 8000
_MAX_DURATION = 0xFFFF
_MAX_VOLUME = 63
_TS_MODULO = 1 << 32
_TS_HALF = 1 << 31
_END_REPEATS = 3
_PAYLOAD = struct.Struct("!BBH")


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    """One decoded telephone-event payload (RFC 4733 §2.3)."""

    digit: str
    end: bool
    volume: int
    """Power level as -dBm0 (0 to 63)."""
    duration: int
    """Duration so far, in RTP timestamp units (8 kHz for DTMF)."""


@dataclass(frozen=True, slots=True)
class EventPacket:
    """One packet :class:`EventSender` wants sent; the RTP edge adds the sequence number."""

    marker: bool
    timestamp: int
    payload: bytes
    offset_ms: int
    """When to send it, in milliseconds after the event starts."""


def encode_event(event: str, end: bool, volume: int, duration: int) -> bytes:
    """The 4-byte payload for DTMF key ``event``; raises ValueError on values that do not fit."""
    code = DIGITS.find(event)
    if len(event) != 1 or code < 0:
        raise ValueError(f"not a DTMF key: {event!r}")
    if not 0 <= volume <= _MAX_VOLUME:
        raise ValueError(f"volume must be 0..{_MAX_VOLUME} (-dBm0), not {volume}")
    if not 0 <= duration <= _MAX_DURATION:
        raise ValueError(f"duration must be 0..{_MAX_DURATION} timestamp units, not {duration}")
    return _PAYLOAD.pack(code, (0x80 if end else 0) | volume, duration)


def decode_event(payload: bytes) -> TelephoneEvent | None:
    """The DTMF event in ``payload``, or None when it is malformed or not a DTMF key.

    Only single-event payloads are read: DTMF senders do not pack several
    events in a packet (RFC 4733 §2.5.1.5), so other lengths are damage.
    """
    if len(payload) != _PAYLOAD.size:
        return None
    code, flags, duration = _PAYLOAD.unpack_from(payload)
    if code >= len(DIGITS):
        return None
    return TelephoneEvent(DIGITS[code], bool(flags & 0x80), flags & 0x3F, duration)


class EventReceiver:
    """Turns the telephone-event packets of one RTP stream into digits, once per event.

    All packets of an event carry the event's start timestamp (RFC 4733
    §2.5.1.1), so the timestamp, not the marker bit, tells events apart: the
    marker packet is the one a lossy network loses first, and an end packet
    arriving alone must still give the digit. The digit is reported at the
    first packet of an event, as soon as the key is known.
    """

    def __init__(self) -> None:
        self._last_timestamp: int | None = None

    def feed(self, timestamp: int, marker: bool, payload: bytes) -> str | None:
        """The digit when this packet starts a new event, else None.

        ``marker`` is taken for the RTP edge's convenience but not trusted
        (see the class docstring). Packets of the current event (updates,
        retransmissions, the repeated end packets) and of older events
        (reordered, compared modulo 2**32 as RFC 3550 timestamps wrap) give None.
        """
        del marker
        event = decode_event(payload)
        if event is None:
            return None
        timestamp %= _TS_MODULO
        if self._last_timestamp is not None:
            ahead = (timestamp - self._last_timestamp) % _TS_MODULO
            if ahead == 0 or ahead >= _TS_HALF:
                return None
        self._last_timestamp = timestamp
        return event.digit


class EventSender:
    """Plans the packets of one DTMF key press (RFC 4733 §2.5.1)."""

    def __init__(self, payload_type: int) -> None:
        if not 0 <= payload_type <= 127:
            raise ValueError(f"RTP payload type must be 0..127, not {payload_type}")
        self.payload_type = payload_type
        """The negotiated telephone-event payload type, for the RTP edge."""

    def packets(
        self,
        digit: str,
        start_timestamp: int,
        duration_ms: int = 100,
        volume: int = 10,
        packet_ms: int = 20,
    ) -> list[EventPacket]:
        """The packets for ``digit`` lasting ``duration_ms``, in sending order.

        The start packet (marker set, duration 0) goes at once, an update every
        ``packet_ms`` with the duration so far, and the end packet three times
        ``packet_ms`` apart (§2.5.1.4) so that one lost packet does not lose
        the end. Durations above 8,191 ms would need segments (§2.5.1.3) and
        are refused.
        """
        if packet_ms <= 0:
            raise ValueError(f"packet_ms must be positive, not {packet_ms}")
        if duration_ms <= 0 or duration_ms * _CLOCK_RATE // 1000 > _MAX_DURATION:
            raise ValueError(f"duration_ms must be 1..8191, not {duration_ms}")
        timestamp = start_timestamp % _TS_MODULO
        units_per_ms = _CLOCK_RATE // 1000
        out = [
            EventPacket(
                marker=offset == 0,
                timestamp=timestamp,
                payload=encode_event(digit, False, volume, offset * units_per_ms),
                offset_ms=offset,
            )
            for offset in range(0, duration_ms, packet_ms)
        ]
        end = encode_event(digit, True, volume, duration_ms * units_per_ms)
        out.extend(
            EventPacket(False, timestamp, end, duration_ms + repeat * packet_ms)
            for repeat in range(_END_REPEATS)
        )
        return out
