"""RTCP compound packets against bytes laid out by hand from RFC 3550 §6."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.rtcp import (
    Bye,
    ReceiverReport,
    ReportBlock,
    SdesChunk,
    SenderReport,
    SourceDescription,
    build_compound,
    encode_rtcp,
    ntp_middle32,
    ntp_timestamp,
    parse_rtcp,
)

BLOCK = ReportBlock(0x55667788, 0x40, 3, 0x1000A, 4, 0x6F808000, 0x18000)
# SR, RC=1, length 12 words: SSRC, NTP (1,700,000,000.5 s Unix), RTP ts, 50 packets,
# 8000 octets, one report block; then SDES, SC=1, length 3: CNAME "a@b", null, padding.
SR_SDES = bytes.fromhex(
    "81c8000c 11223344 e8fe6f80 80000000 0000a000 00000032 00001f40"
    "55667788 40000003 0001000a 00000004 6f808000 00018000"
    "81ca0003 11223344 01036140 62000000"
)
# RR, RC=0; SDES; BYE, SC=1, length 1: SSRC and reason "bye" (length octet 3).
RR_SDES_BYE = bytes.fromhex(
    "80c90001 11223344 81ca0003 11223344 01036140 62000000 81cb0002 11223344 03627965"
)


def test_ntp_timestamp() -> None:
    ntp = ntp_timestamp(1_700_000_000.5)
    assert ntp == 0xE8FE6F80_80000000
    assert ntp_middle32(ntp) == 0x6F808000


def test_sender_report_known_bytes() -> None:
    sr = SenderReport(0x11223344, ntp_timestamp(1_700_000_000.5), 0xA000, 50, 8000, (BLOCK,))
    assert build_compound(sr, "a@b") == SR_SDES
    parsed = parse_rtcp(SR_SDES)
    assert parsed == [sr, SourceDescription((SdesChunk(0x11223344, ((1, b"a@b"),)),))]
    sdes = parsed[1]
    assert isinstance(sdes, SourceDescription) and sdes.chunks[0].cname == "a@b"


def test_receiver_report_with_bye_known_bytes() -> None:
    data = build_compound(ReceiverReport(0x11223344), "a@b", Bye((0x11223344,), "bye"))
    assert data == RR_SDES_BYE
    parsed = parse_rtcp(data)
    assert parsed is not None
    assert parsed[0] == ReceiverReport(0x11223344)
    assert parsed[2] == Bye((0x11223344,), "bye")


def test_negative_cumulative_loss_is_signed_24_bits() -> None:
    block = ReportBlock(1, 0, -1, 100, 0)
    data = encode_rtcp(ReceiverReport(2, (block,)))
    assert data[12:16] == bytes.fromhex("00ffffff")
    assert parse_rtcp(data) == [ReceiverReport(2, (block,))]


def test_padding_on_last_packet_and_unknown_types_skipped() -> None:
    app = bytes.fromhex("80cc0002 11223344 6e616d65")  # APP "name", skipped
    padded_bye = bytes.fromhex("a1cb0002 11223344 00000004")  # 4 octets of padding
    parsed = parse_rtcp(encode_rtcp(ReceiverReport(9)) + app + padded_bye)
    assert parsed == [ReceiverReport(9), Bye((0x11223344,))]


def test_too_many_report_blocks() -> None:
    with pytest.raises(ValueError, match="31"):
        encode_rtcp(ReceiverReport(1, (BLOCK,) * 32))


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80\xc9",
        bytes.fromhex("40c90001 11223344"),  # version 1
        bytes.fromhex("80c90002 11223344"),  # length beyond the datagram
        bytes.fromhex("81c90001 11223344"),  # RC=1, no block
        bytes.fromhex("80c90001 11223344 00"),  # trailing octet
        bytes.fromhex("a0c90001 11223344") + RR_SDES_BYE,  # padding on a non-last packet
        bytes.fromhex("81ca0003 11223344 01096140 62000000"),  # SDES item longer than chunk
        bytes.fromhex("81ca0001 11223344"),  # SDES chunk without its null item
        bytes.fromhex("81cb0001 11223344 09627965"),  # BYE reason longer than packet
        bytes.fromhex("82cb0001 11223344"),  # BYE SC=2, one SSRC
        bytes.fromhex("81c80001 11223344"),  # SR without sender info
    ],
)
def test_garbage_is_none(data: bytes) -> None:
    assert parse_rtcp(data) is None


@given(st.binary(max_size=96))
def test_parse_never_raises(data: bytes) -> None:
    parse_rtcp(data)


@given(st.binary(max_size=96), st.integers(0, 95), st.integers(0, 255))
def test_mutated_compound_never_raises(tail: bytes, index: int, value: int) -> None:
    data = bytearray(SR_SDES + tail)
    data[index % len(data)] = value
    parse_rtcp(bytes(data))


blocks = st.builds(
    ReportBlock,
    st.integers(0, 2**32 - 1),
    st.integers(0, 255),
    st.integers(-(2**23), 2**23 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
)


@given(
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**64 - 1),
    st.lists(blocks, max_size=31),
    st.text(max_size=60),
    st.none() | st.text(max_size=60),
)
def test_round_trip(
    ssrc: int, ntp: int, reports: list[ReportBlock], cname: str, reason: str | None
) -> None:
    sr = SenderReport(ssrc, ntp, 1, 2, 3, tuple(reports))
    parsed = parse_rtcp(build_compound(sr, cname, Bye((ssrc, 7), reason)))
    assert parsed is not None and parsed[0] == sr
    sdes, bye = parsed[1], parsed[2]
    assert isinstance(sdes, SourceDescription) and sdes.chunks[0].cname == cname
    assert isinstance(bye, Bye) and bye.ssrcs == (ssrc, 7) and bye.reason == reason
