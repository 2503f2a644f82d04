"""RTCP packets (RFC 3550 §6): sender and receiver reports, SDES CNAME and BYE.

Sans-IO: these functions turn report values into the bytes of a compound
packet and back. Every compound packet we send starts with a report (SR
when we sent media since the last report, else RR) followed by an SDES
carrying our CNAME, as §6.1 requires; a BYE, when there is one, comes last.
Parsing a peer's RTCP returns ``None`` for anything that is not a
well-formed compound packet, and never raises: RTCP arrives from the
network and garbage is ordinary input.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "Bye",
    "ReceiverReport",
    "ReportBlock",
    "RtcpPacket",
    "SdesChunk",
    "SenderReport",
    "SourceDescription",
    "build_compound",
    "encode_rtcp",
    "ntp_middle32",
    "ntp_timestamp",
    "parse_rtcp",
]

PT_SR = 200
PT_RR = 201
PT_SDES = 202
PT_BYE = 203
SDES_CNAME = 1
MAX_REPORT_BLOCKS = 31
"""The 5-bit reception report count of one SR or RR."""

_NTP_UNIX_OFFSET = 2_208_988_800
"""Seconds from 1900-01-01 (the NTP epoch) to 1970-01-01 (the Unix epoch)."""

_PARSED_TYPES = frozenset({PT_SR, PT_RR, PT_SDES, PT_BYE})
_HEADER = struct.Struct("!BBH")
_SR_INFO = struct.Struct("!IIIIII")
_BLOCK = struct.Struct("!IIIIII")
_WORD = struct.Struct("!I")


@dataclass(frozen=True, slots=True)
class ReportBlock:
    """Reception statistics about one source (RFC 3550 §6.4.1)."""

    ssrc: int
    fraction_lost: int
    """Lost since the previous report, as a fixed-point fraction of 256."""
    cumulative_lost: int
    """Signed 24 bits: duplicates can make it negative."""
    highest_sequence: int
    """Extended highest sequence number received (cycles << 16 | sequence)."""
    jitter: int
    """Interarrival jitter in timestamp units."""
    lsr: int = 0
    """Middle 32 bits of the NTP timestamp of the last SR from this source, 0 if none."""
    dlsr: int = 0
    """Delay since that SR, in units of 1/65536 s."""


@dataclass(frozen=True, slots=True)
class SenderReport:
    """SR: what we sent, when (NTP and RTP clocks), and what we received."""

    ssrc: int
    ntp_timestamp: int
    """64-bit NTP timestamp (see ``ntp_timestamp``)."""
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class ReceiverReport:
    """RR: reception statistics from a participant that sent no media lately."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()


@dataclass(frozen=True, slots=True)
class SdesChunk:
    """The items one source describes itself with, as (type, value) pairs."""

    ssrc: int
    items: tuple[tuple[int, bytes], ...]

    @property
    def cname(self) -> str | None:
        """The canonical name, which ties an SSRC to a participant across sessions."""
        for kind, value in self.items:
            if kind == SDES_CNAME:
                return value.decode("utf-8", "replace")
        return None


@dataclass(frozen=True, slots=True)
class SourceDescription:
    """SDES: one chunk per source."""

    chunks: tuple[SdesChunk, ...]


@dataclass(frozen=True, slots=True)
class Bye:
    """BYE: these sources leave the session, with an optional reason."""

    ssrcs: tuple[int, ...]
    reason: str | None = None


RtcpPacket = SenderReport | ReceiverReport | SourceDescription | Bye


def ntp_timestamp(wall: float) -> int:
    """The 64-bit NTP timestamp (32.32 fixed point since 1900) of a Unix wall time."""
    return int((wall + _NTP_UNIX_OFFSET) * (1 << 32)) & 0xFFFF_FFFF_FFFF_FFFF


def ntp_middle32(ntp: int) -> int:
    """The middle 32 bits of an NTP timestamp: what a report block's LSR echoes."""
    return (ntp >> 16) & 0xFFFF_FFFF


def _pad32(body: bytes) -> bytes:
    return body + b"\0" * (-len(body) % 4)


def _packet(count: int, packet_type: int, body: bytes) -> bytes:
    """Prefix a 32-bit aligned body with the common header (length in words minus one)."""
    return _HEADER.pack(0x80 | count, packet_type, len(body) // 4) + body


def _blocks(reports: Sequence[ReportBlock]) -> bytes:
    if len(reports) > MAX_REPORT_BLOCKS:
        raise ValueError(f"at most {MAX_REPORT_BLOCKS} report blocks fit in one report")
    return b"".join(
        _BLOCK.pack(
            r.ssrc,
            (r.fraction_lost & 0xFF) << 24 | (r.cumulative_lost & 0xFF_FFFF),
            r.highest_sequence,
            r.jitter,
            r.lsr,
            r.dlsr,
        )
        for r in reports
    )


def encode_rtcp(packet: RtcpPacket) -> bytes:
    """The bytes of one RTCP packet (not yet a compound packet)."""
    if isinstance(packet, SenderReport):
        info = _SR_INFO.pack(
            packet.ssrc,
            packet.ntp_timestamp >> 32,
            packet.ntp_timestamp & 0xFFFF_FFFF,
            packet.rtp_timestamp,
            packet.packet_count & 0xFFFF_FFFF,
            packet.octet_count & 0xFFFF_FFFF,
        )
        return _packet(len(packet.reports), PT_SR, info + _blocks(packet.reports))
    if isinstance(packet, ReceiverReport):
        body = _WORD.pack(packet.ssrc) + _blocks(packet.reports)
        return _packet(len(packet.reports), PT_RR, body)
    if isinstance(packet, SourceDescription):
        chunks = b""
        for chunk in packet.chunks:
            items = b"".join(bytes((kind, len(value))) + value for kind, value in chunk.items)
            # The item list ends with at least one null octet, then pads to 32 bits.
            chunks += _WORD.pack(chunk.ssrc) + _pad32(items + b"\0")
        return _packet(len(packet.chunks), PT_SDES, chunks)
    body = b"".join(_WORD.pack(ssrc) for ssrc in packet.ssrcs)
    if packet.reason is not None:
        reason = packet.reason.encode("utf-8")[:255]
        body += _pad32(bytes((len(reason),)) + reason)
    return _packet(len(packet.ssrcs), PT_BYE, body)


def build_compound(
    report: SenderReport | ReceiverReport, cname: str, bye: Bye | None = None
) -> bytes:
    """A compound packet: the report, an SDES with our CNAME, then the BYE if any."""
    sdes = SourceDescription((SdesChunk(report.ssrc, ((SDES_CNAME, cname.encode()[:255]),)),))
    parts = [encode_rtcp(report), encode_rtcp(sdes)]
    if bye is not None:
        parts.append(encode_rtcp(bye))
    return b"".join(parts)


def _parse_blocks(body: bytes, offset: int, count: int) -> tuple[ReportBlock, ...] | None:
    if offset + count * _BLOCK.size > len(body):
        return None
    blocks = []
    for index in range(count):
        ssrc, lost, highest, jitter, lsr, dlsr = _BLOCK.unpack_from(body, offset + index * 24)
        cumulative = lost & 0xFF_FFFF
        if cumulative & 0x80_0000:
            cumulative -= 1 << 24
        blocks.append(ReportBlock(ssrc, lost >> 24, cumulative, highest, jitter, lsr, dlsr))
    return tuple(blocks)


def _parse_sdes(body: bytes, count: int) -> SourceDescription | None:
    chunks = []
    offset = 0
    for _ in range(count):
        if offset + 4 > len(body):
            return None
        ssrc = _WORD.unpack_from(body, offset)[0]
        offset += 4
        items = []
        while True:
            if offset >= len(body):
                return None
            kind = body[offset]
            if kind == 0:
                offset = (offset + 4) & ~3  # the null item, then padding to 32 bits
                break
            if offset + 2 > len(body) or offset + 2 + body[offset + 1] > len(body):
                return None
            length = body[offset + 1]
            items.append((kind, bytes(body[offset + 2 : offset + 2 + length])))
            offset += 2 + length
        chunks.append(SdesChunk(ssrc, tuple(items)))
    return SourceDescription(tuple(chunks))


def _parse_one(packet_type: int, count: int, body: bytes) -> RtcpPacket | None:
    """One SR, RR, SDES or BYE from its body (padding removed), or None if malformed."""
    if packet_type == PT_SR:
        if len(body) < 24:
            return None
        ssrc, msw, lsw, rtp_ts, packets, octets = _SR_INFO.unpack_from(body)
        blocks = _parse_blocks(body, 24, count)
        if blocks is None:
            return None
        return SenderReport(ssrc, msw << 32 | lsw, rtp_ts, packets, octets, blocks)
    if packet_type == PT_RR:
        if len(body) < 4:
            return None
        blocks = _parse_blocks(body, 4, count)
        if blocks is None:
            return None
        return ReceiverReport(_WORD.unpack_from(body)[0], blocks)
    if packet_type == PT_SDES:
        return _parse_sdes(body, count)
    if len(body) < 4 * count:  # BYE
        return None
    ssrcs = struct.unpack_from(f"!{count}I", body)
    reason = None
    if len(body) > 4 * count:
        length = body[4 * count]
        if 4 * count + 1 + length > len(body):
            return None
        reason = body[4 * count + 1 : 4 * count + 1 + length].decode("utf-8", "replace")
    return Bye(ssrcs, reason)


def parse_rtcp(data: bytes) -> list[RtcpPacket] | None:
    """The SR, RR, SDES and BYE packets of a compound packet, or None if malformed.

    Packet types we do not use (APP, feedback, XR) are skipped, not refused,
    so a peer's extensions do not hide its reports. The lengths must tile
    the datagram exactly and only the last packet may be padded (RFC 3550
    A.2), which is what tells RTCP from garbage.
    """
    packets: list[RtcpPacket] = []
    offset = 0
    if len(data) < 4:
        return None
    while offset < len(data):
        if offset + 4 > len(data):
            return None
        first, packet_type, words = _HEADER.unpack_from(data, offset)
        end = offset + 4 + 4 * words
        if first >> 6 != 2 or end > len(data):
            return None
        body = data[offset + 4 : end]
        if first & 0x20:
            if end != len(data) or not body or not 0 < body[-1] <= len(body):
                return None
            body = body[: -body[-1]]
        if packet_type in _PARSED_TYPES:
            parsed = _parse_one(packet_type, first & 0x1F, body)
            if parsed is None:
                return None
            packets.append(parsed)
        offset = end
    return packets
