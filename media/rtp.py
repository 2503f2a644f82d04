"""RTP packets, the sending side's counters and the receiving side's statistics (RFC 3550).

Sans-IO: bytes in, bytes out, arrival times passed in as seconds. The media
plane sends one 20 ms G.711 frame per packet, 50 packets per second per
call, so ``build_rtp`` is a single ``struct.pack`` and a concatenation.
``parse_rtp`` returns ``None`` for anything malformed and never raises:
whatever reaches an RTP port is ordinary input, not an error.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass

from media.rtcp import ReportBlock

__all__ = [
    "RtpPacket",
    "RtpReceiverStats",
    "RtpSender",
    "build_rtp",
    "parse_rtp",
]

_HEADER = struct.Struct("!BBHII")
_SEQ_MOD = 1 << 16
_TS_MOD = 1 << 32
_MAX_DROPOUT = 3000
_MAX_MISORDER = 100
_MIN_SEQUENTIAL = 2


@dataclass(slots=True)
class RtpPacket:
    """The fields of an RTP packet the media plane uses (header extensions are dropped)."""

    payload_type: int
    marker: bool
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    csrcs: tuple[int, ...] = ()


def parse_rtp(data: bytes) -> RtpPacket | None:
    """The packet in a datagram, or None if it is not a well-formed RTP version 2 packet."""
    if len(data) < 12:
        return None
    first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    if first >> 6 != 2:
        return None
    offset = 12 + 4 * (first & 0x0F)
    if offset > len(data):
        return None
    count = first & 0x0F
    csrcs = struct.unpack_from(f"!{count}I", data, 12) if count else ()  # CC=0: nearly always
    if first & 0x10:  # header extension: 16-bit profile, 16-bit length in words
        if offset + 4 > len(data):
            return None
        offset += 4 + 4 * int.from_bytes(data[offset + 2 : offset + 4], "big")
        if offset > len(data):
            return None
    end = len(data)
    if first & 0x20:  # the last octet counts the padding octets, itself included
        padding = data[-1]
        if padding == 0 or offset + padding > end:
            return None
        end -= padding
    return RtpPacket(
        second & 0x7F, bool(second & 0x80), sequence, timestamp, ssrc, data[offset:end], csrcs
    )


def build_rtp(
    payload_type: int, marker: bool, sequence: int, timestamp: int, ssrc: int, payload: bytes
) -> bytes:
    """A version 2 packet without padding, CSRCs or extension (struct.error if out of range)."""
    return (
        _HEADER.pack(0x80, payload_type | (0x80 if marker else 0), sequence, timestamp, ssrc)
        + payload
    )


class RtpSender:
    """One outgoing RTP stream: its SSRC, next sequence number and timestamp, and counters.

    SSRC, initial sequence number and initial timestamp are random (RFC 3550
    §5.1), which makes known-plaintext attacks on SRTP harder and keeps a
    restarted stream from looking like the continuation of the old one.
    """

    __slots__ = ("octet_count", "packet_count", "payload_type", "sequence", "ssrc", "timestamp")

    def __init__(self, payload_type: int, rng: random.Random | None = None) -> None:
        draw = rng if rng is not None else random.SystemRandom()
        self.payload_type = payload_type
        self.ssrc = draw.getrandbits(32)
        self.sequence = draw.getrandbits(16)
        """The sequence number of the next packet."""
        self.timestamp = draw.getrandbits(32)
        """The timestamp of the next packet: where the media clock stands."""
        self.packet_count = 0
        """Packets sent, modulo 2^32, for the SR."""
        self.octet_count = 0
        """Payload octets sent, modulo 2^32, for the SR."""

    def packet(
        self, payload: bytes, samples: int, marker: bool = False, payload_type: int | None = None
    ) -> bytes:
        """The next packet, stamped with the media clock, which then moves on by ``samples``."""
        data = self.packet_at(self.timestamp, payload, marker, payload_type)
        self.timestamp = (self.timestamp + samples) % _TS_MOD
        return data

    def packet_at(
        self, timestamp: int, payload: bytes, marker: bool = False, payload_type: int | None = None
    ) -> bytes:
        """The next packet with an explicit timestamp; the media clock does not move.

        RFC 4733 events keep the timestamp of their start in every packet of
        the event, including the retransmitted end packets.
        """
        data = build_rtp(
            self.payload_type if payload_type is None else payload_type,
            marker,
            self.sequence,
            timestamp,
            self.ssrc,
            payload,
        )
        self.sequence = (self.sequence + 1) % _SEQ_MOD
        self.packet_count = (self.packet_count + 1) % _TS_MOD
        self.octet_count = (self.octet_count + len(payload)) % _TS_MOD
        return data

    def skip(self, samples: int) -> None:
        """Move the media clock over a gap sent as nothing (silence, or an event's duration)."""
        self.timestamp = (self.timestamp + samples) % _TS_MOD


class RtpReceiverStats:
    """Reception statistics of one incoming source, for RTCP receiver report blocks.

    Sequence validation follows RFC 3550 Appendix A.1: a source counts only
    after ``_MIN_SEQUENTIAL`` packets in sequence (probation), a jump of more
    than ``_MAX_DROPOUT`` ahead or ``_MAX_MISORDER`` behind is dropped unless
    the next packet confirms it (then the stream restarted, e.g. the peer
    rebooted), and wraps of the 16-bit number are counted as cycles. Jitter
    follows Appendix A.8. A packet from another SSRC restarts everything:
    it is a new source (a B2BUA or media server switched streams).
    """

    __slots__ = (
        "_bad_seq",
        "_expected_prior",
        "_jitter",
        "_last_arrival",
        "_last_sr",
        "_last_sr_arrival",
        "_last_timestamp",
        "_probation",
        "_received_prior",
        "base_seq",
        "clock_rate",
        "cycles",
        "max_seq",
        "received",
        "ssrc",
    )

    def __init__(self, clock_rate: int = 8000) -> None:
        self.clock_rate = clock_rate
        self.ssrc: int | None = None
        """The source being measured, None before its first packet."""
        self._restart(None)

    def _restart(self, ssrc: int | None) -> None:
        self.ssrc = ssrc
        self._probation = _MIN_SEQUENTIAL
        self._init_seq(0)
        self._jitter = 0.0
        self._last_sr = 0
        self._last_sr_arrival = 0.0

    def _init_seq(self, seq: int) -> None:
        self.base_seq = seq
        self.max_seq = seq
        self._bad_seq = _SEQ_MOD + 1  # no sequence number can equal it
        self.cycles = 0
        self.received = 0
        self._received_prior = 0
        self._expected_prior = 0
        self._last_arrival: float | None = None
        self._last_timestamp = 0

    def _update_seq(self, seq: int) -> bool:
        """Appendix A.1 ``update_seq``: whether the packet counts as valid."""
        udelta = (seq - self.max_seq) % _SEQ_MOD
        if self._probation:
            if seq == (self.max_seq + 1) % _SEQ_MOD:
                self._probation -= 1
                self.max_seq = seq
                if self._probation == 0:
                    self._init_seq(seq)
                    self.received += 1
                    return True
            else:
                self._probation = _MIN_SEQUENTIAL - 1
                self.max_seq = seq
            return False
        if udelta < _MAX_DROPOUT:
            if seq < self.max_seq:
                self.cycles += _SEQ_MOD
            self.max_seq = seq
        elif udelta <= _SEQ_MOD - _MAX_MISORDER:
            if seq != self._bad_seq:
                self._bad_seq = (seq + 1) % _SEQ_MOD
                return False
            # Two sequential packets after a big jump: the source restarted.
            self._init_seq(seq)
        # else: a duplicate or a packet that arrived late, counted but not the maximum.
        self.received += 1
        return True

    def update(self, packet: RtpPacket, arrival: float) -> bool:
        """Account for a packet that arrived at ``arrival`` seconds; whether it is valid.

        Invalid packets (probation, unconfirmed jumps) should not be played.
        """
        if packet.ssrc != self.ssrc:
            self._restart(packet.ssrc)
            self.max_seq = (packet.sequence - 1) % _SEQ_MOD
        if not self._update_seq(packet.sequence):
            return False
        if self._last_arrival is not None:
            # A.8: D(i-1,i) = (Rj - Ri) - (Sj - Si), both in timestamp units.
            sent = (packet.timestamp - self._last_timestamp) % _TS_MOD
            if sent >= _TS_MOD // 2:
                sent -= _TS_MOD
            delta = abs((arrival - self._last_arrival) * self.clock_rate - sent)
            self._jitter += (delta - self._jitter) / 16
        self._last_arrival = arrival
        self._last_timestamp = packet.timestamp
        return True

    def sender_report(self, ntp_middle: int, arrival: float) -> None:
        """Note an SR from this source (its NTP middle 32 bits) for the LSR and DLSR fields."""
        self._last_sr = ntp_middle
        self._last_sr_arrival = arrival

    @property
    def jitter(self) -> float:
        """Interarrival jitter estimate, in timestamp units."""
        return self._jitter

    @property
    def extended_max(self) -> int:
        """The highest sequence number received, extended with the count of wraps."""
        return self.cycles + self.max_seq

    @property
    def expected(self) -> int:
        """Packets expected since the source was validated."""
        return self.extended_max - self.base_seq + 1 if self.received else 0

    @property
    def lost(self) -> int:
        """Cumulative packets lost; negative when duplicates outnumber losses."""
        return self.expected - self.received

    def report(self, now: float) -> ReportBlock:
        """The report block about this source, starting a new interval (Appendix A.3)."""
        expected = self.expected
        expected_interval = expected - self._expected_prior
        received_interval = self.received - self._received_prior
        self._expected_prior = expected
        self._received_prior = self.received
        lost_interval = expected_interval - received_interval
        fraction = 0
        if expected_interval > 0 and lost_interval > 0:
            fraction = (lost_interval << 8) // expected_interval
        dlsr = 0
        if self._last_sr:
            dlsr = max(0, int((now - self._last_sr_arrival) * 65536)) & 0xFFFF_FFFF
        return ReportBlock(
            ssrc=self.ssrc or 0,
            fraction_lost=min(fraction, 255),
            cumulative_lost=max(-0x80_0000, min(self.lost, 0x7F_FFFF)),
            highest_sequence=self.extended_max % _TS_MOD,
            jitter=int(self._jitter),
            lsr=self._last_sr,
            dlsr=dlsr,
        )
