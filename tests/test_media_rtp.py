"""RTP packets, sender counters and RFC 3550 Appendix A.1/A.3/A.8 receiver statistics."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.rtp import RtpPacket, RtpReceiverStats, RtpSender, build_rtp, parse_rtp


def _packet(seq: int, ts: int = 0, ssrc: int = 0x1234) -> RtpPacket:
    return RtpPacket(0, False, seq % 65536, ts % (1 << 32), ssrc, b"")


def test_build_known_bytes_and_round_trip() -> None:
    data = build_rtp(8, True, 0xBEEF, 0x01020304, 0xCAFEBABE, b"\xd5" * 160)
    assert data[:12] == bytes.fromhex("8088beef01020304cafebabe")
    assert len(data) == 172
    assert parse_rtp(data) == RtpPacket(8, True, 0xBEEF, 0x01020304, 0xCAFEBABE, b"\xd5" * 160)


def test_parse_csrcs_extension_and_padding() -> None:
    header = bytes.fromhex("b2 00 0001 00000010 00000020".replace(" ", ""))  # V2 P X, CC=2
    csrcs = struct.pack("!II", 7, 9)
    extension = bytes.fromhex("bede0001") + b"\x10\xaa\x00\x00"  # one-word extension
    data = header + csrcs + extension + b"abc" + b"\x00\x00\x03"
    assert parse_rtp(data) == RtpPacket(0, False, 1, 0x10, 0x20, b"abc", (7, 9))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        bytes(11),
        bytes.fromhex("400000010000001000000020"),  # version 1
        bytes.fromhex("820000010000001000000020") + bytes(4),  # CC=2, one CSRC present
        bytes.fromhex("900000010000001000000020") + bytes.fromhex("bede"),  # cut extension
        bytes.fromhex("900000010000001000000020") + bytes.fromhex("bede0002") + bytes(4),
        bytes.fromhex("a00000010000001000000020") + b"ab\x00",  # padding count 0
        bytes.fromhex("a00000010000001000000020") + b"ab\x09",  # more padding than payload
    ],
)
def test_malformed_is_none(data: bytes) -> None:
    assert parse_rtp(data) is None


@given(st.binary(max_size=64))
def test_parse_never_raises(data: bytes) -> None:
    parsed = parse_rtp(data)
    assert parsed is None or data[0] >> 6 == 2


@given(
    st.integers(0, 127),
    st.booleans(),
    st.integers(0, 65535),
    st.integers(0, (1 << 32) - 1),
    st.integers(0, (1 << 32) - 1),
    st.binary(max_size=200),
)
def test_round_trip(pt: int, marker: bool, seq: int, ts: int, ssrc: int, payload: bytes) -> None:
    assert parse_rtp(build_rtp(pt, marker, seq, ts, ssrc, payload)) == RtpPacket(
        pt, marker, seq, ts, ssrc, payload
    )


def test_sender_wraps_sequence_and_timestamp_and_counts() -> None:
    sender = RtpSender(0, random.Random(1))
    first = sender.ssrc
    sender.sequence = 65535
    sender.timestamp = (1 << 32) - 100
    one = parse_rtp(sender.packet(b"x" * 160, 160, marker=True))
    two = parse_rtp(sender.packet(b"y" * 160, 160))
    assert one is not None and two is not None
    assert (one.sequence, one.timestamp, one.marker) == (65535, (1 << 32) - 100, True)
    assert one.ssrc == first
    assert (two.sequence, two.timestamp, two.marker) == (0, 60, False)
    assert (sender.packet_count, sender.octet_count) == (2, 320)


def test_sender_start_is_random() -> None:
    a, b = RtpSender(0, random.Random(1)), RtpSender(0, random.Random(2))
    assert (a.ssrc, a.sequence, a.timestamp) != (b.ssrc, b.sequence, b.timestamp)


def test_sender_skip_and_event_timestamp() -> None:
    sender = RtpSender(0, random.Random(3))
    start = sender.timestamp
    sender.skip(800)  # 100 ms of silence not sent
    event_ts = sender.timestamp
    assert event_ts == start + 800 or event_ts == start + 800 - (1 << 32)
    seqs = []
    for _ in range(3):  # one RFC 4733 event: same timestamp, sequence moves, other PT
        pkt = parse_rtp(sender.packet_at(event_ts, b"\x05\x0a\x00\xa0", payload_type=101))
        assert pkt is not None and pkt.timestamp == event_ts and pkt.payload_type == 101
        seqs.append(pkt.sequence)
    assert [(s - seqs[0]) % 65536 for s in seqs] == [0, 1, 2]
    assert sender.timestamp == event_ts
    voice = parse_rtp(sender.packet(b"v", 160))
    assert voice is not None and voice.payload_type == 0


def test_probation_then_valid() -> None:
    stats = RtpReceiverStats()
    assert not stats.update(_packet(100), 0.0)
    assert stats.update(_packet(101), 0.02)
    assert stats.update(_packet(102), 0.04)
    assert (stats.received, stats.expected, stats.lost) == (2, 2, 0)


def test_probation_restarts_on_out_of_order() -> None:
    stats = RtpReceiverStats()
    assert not stats.update(_packet(100), 0.0)
    assert not stats.update(_packet(99), 0.0)  # not in sequence: probation starts again
    assert not stats.update(_packet(50), 0.0)
    assert stats.update(_packet(51), 0.0)
    assert stats.base_seq == 51


def test_sequence_wrap_counts_cycles() -> None:
    stats = RtpReceiverStats()
    for seq in range(65530, 65536 + 5):
        stats.update(_packet(seq), 0.0)
    assert stats.cycles == 65536
    assert stats.extended_max == 65536 + 4
    assert (stats.expected, stats.received, stats.lost) == (10, 10, 0)  # 65530 was probation


def test_large_jump_needs_confirmation_then_resyncs() -> None:
    stats = RtpReceiverStats()
    for seq in range(10, 15):
        stats.update(_packet(seq), 0.0)
    assert not stats.update(_packet(20000), 0.0)  # one stray packet: dropped
    assert stats.update(_packet(15), 0.0)
    assert not stats.update(_packet(40000), 0.0)
    assert stats.update(_packet(40001), 0.0)  # confirmed: the source restarted
    assert (stats.base_seq, stats.max_seq, stats.received) == (40001, 40001, 1)


def test_late_and_duplicate_packets() -> None:
    stats = RtpReceiverStats()
    for seq in (1, 2, 4, 5):
        stats.update(_packet(seq), 0.0)
    assert stats.update(_packet(3), 0.0)  # late: counted, maximum unchanged
    assert stats.update(_packet(3), 0.0)  # duplicate: counted again
    assert stats.max_seq == 5
    assert (stats.expected, stats.received, stats.lost) == (4, 5, -1)


def test_new_ssrc_restarts() -> None:
    stats = RtpReceiverStats()
    for seq in range(5):
        stats.update(_packet(seq, ssrc=1), 0.0)
    assert not stats.update(_packet(900, ssrc=2), 0.0)
    assert stats.update(_packet(901, ssrc=2), 0.0)
    assert (stats.ssrc, stats.received) == (2, 1)


def test_jitter_hand_computed() -> None:
    # 20 ms packets (160 samples); arrivals 0, 20, 40, 65, 80 ms. The first is probation.
    # D = 0 (40-20 ms vs 160), then |200-160| = 40: J = 40/16 = 2.5,
    # then |120-160| = 40: J = 2.5 + (40-2.5)/16 = 4.84375.
    stats = RtpReceiverStats(8000)
    arrivals = [0.0, 0.020, 0.040, 0.065, 0.080]
    jitters = []
    for index, arrival in enumerate(arrivals):
        stats.update(_packet(index, ts=1000 + 160 * index), arrival)
        jitters.append(stats.jitter)
    assert jitters == pytest.approx([0, 0, 0, 2.5, 4.84375])
    assert stats.report(1.0).jitter == 4


def test_jitter_across_timestamp_wrap() -> None:
    stats = RtpReceiverStats(8000)
    base = (1 << 32) - 320
    for index in range(5):
        stats.update(_packet(index, ts=base + 160 * index), 0.02 * index)
    assert stats.jitter == pytest.approx(0, abs=1e-6)


def test_loss_and_fraction_per_interval() -> None:
    stats = RtpReceiverStats()
    for seq in range(0, 11):
        stats.update(_packet(seq), 0.0)  # 0 is probation; base 1, 10 received
    first = stats.report(0.0)
    assert (first.fraction_lost, first.cumulative_lost, first.highest_sequence) == (0, 0, 10)
    for seq in (11, 12, 15, 16, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30):
        stats.update(_packet(seq), 0.0)  # 13, 14, 17 lost: 3 of 20
    second = stats.report(0.0)
    assert second.cumulative_lost == 3
    assert second.fraction_lost == (3 << 8) // 20
    assert second.highest_sequence == 30
    third = stats.report(0.0)  # nothing new: no loss in this interval
    assert (third.fraction_lost, third.cumulative_lost) == (0, 3)


def test_report_lsr_and_dlsr() -> None:
    stats = RtpReceiverStats()
    for seq in range(3):
        stats.update(_packet(seq, ssrc=77), 0.0)
    stats.sender_report(0x12345678, 10.0)
    block = stats.report(11.5)
    assert (block.ssrc, block.lsr, block.dlsr) == (77, 0x12345678, int(1.5 * 65536))
