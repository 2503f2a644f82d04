"""RFC 4733 telephone-events: payloads, one digit per event, and SIPp's real captures."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from media.dtmf import EventReceiver, EventSender, TelephoneEvent, decode_event, encode_event

KEYS = "0123456789*#ABCD"
SIPP = Path("/usr/share/sip-tester")


def _feed(receiver: EventReceiver, packets: list[tuple[int, bool, bytes]]) -> str:
    return "".join(d for ts, m, p in packets if (d := receiver.feed(ts, m, p)) is not None)


def _press(digit: str, timestamp: int) -> list[tuple[int, bool, bytes]]:
    return [(p.timestamp, p.marker, p.payload) for p in EventSender(101).packets(digit, timestamp)]


def test_encode_decode() -> None:
    assert encode_event("#", True, 10, 800) == bytes([11, 0x8A, 0x03, 0x20])
    assert decode_event(bytes([11, 0x8A, 0x03, 0x20])) == TelephoneEvent("#", True, 10, 800)
    assert decode_event(bytes([16, 0x0A, 0, 0])) is None  # flash, not a key
    with pytest.raises(ValueError):
        encode_event("E", False, 10, 0)
    with pytest.raises(ValueError):
        encode_event("1", False, 64, 0)


@pytest.mark.parametrize("length", [0, 1, 3, 5, 8])
def test_malformed_lengths(length: int) -> None:
    payload = bytes([1, 0x0A, 0, 160, 1, 0x0A, 0, 160])[:length]
    assert decode_event(payload) is None
    assert EventReceiver().feed(0, True, payload) is None


def test_sender_plan() -> None:
    packets = EventSender(101).packets("5", 1000, duration_ms=100)
    assert [p.offset_ms for p in packets] == [0, 20, 40, 60, 80, 100, 120, 140]
    assert [p.marker for p in packets] == [True] + [False] * 7
    assert {p.timestamp for p in packets} == {1000}
    events = [decode_event(p.payload) for p in packets]
    assert [e.duration for e in events if e] == [0, 160, 320, 480, 640, 800, 800, 800]
    assert [e.end for e in events if e] == [False] * 5 + [True] * 3
    with pytest.raises(ValueError):
        EventSender(101).packets("5", 0, duration_ms=9000)


def test_round_trip_all_keys() -> None:
    receiver = EventReceiver()
    packets = [p for i, key in enumerate(KEYS) for p in _press(key, 160 * 20 * i)]
    assert _feed(receiver, packets) == KEYS


def test_duplicates_and_triple_end_give_one_digit() -> None:
    packets = _press("7", 5000)
    assert _feed(EventReceiver(), packets + packets[1:3] + packets[-1:]) == "7"


def test_end_alone_still_gives_the_digit() -> None:
    assert _feed(EventReceiver(), _press("9", 0)[-3:]) == "9"


def test_late_packets_of_older_event_are_ignored() -> None:
    first, second = _press("1", 8000), _press("2", 9600)
    assert _feed(EventReceiver(), first[:2] + second[:2] + first[2:] + second[2:]) == "12"


def test_same_key_twice_is_two_digits() -> None:
    assert _feed(EventReceiver(), _press("1", 0) + _press("1", 1600)) == "11"


def test_timestamp_wrap() -> None:
    near_end = 2**32 - 400
    packets = _press("3", near_end) + _press("4", near_end + 1600) + _press("3", near_end)
    assert packets[8][0] == 1200
    assert _feed(EventReceiver(), packets) == "34"


def _rtp_payloads(path: Path) -> list[tuple[int, bool, bytes]]:
    """(timestamp, marker, payload) of each RTP packet in a little-endian Ethernet pcap."""
    data = path.read_bytes()
    magic, _, _, _, _, _, linktype = struct.unpack_from("<IHHiIII", data)
    assert (magic, linktype) == (0xA1B2C3D4, 1)
    out, offset = [], 24
    while offset < len(data):
        _, _, caplen, _ = struct.unpack_from("<IIII", data, offset)
        frame = data[offset + 16 : offset + 16 + caplen]
        offset += 16 + caplen
        if struct.unpack_from("!H", frame, 12)[0] != 0x0800 or frame[23] != 17:
            continue
        udp = 14 + (frame[14] & 0x0F) * 4
        rtp = frame[udp + 8 :]
        first, second, _, timestamp = struct.unpack_from("!BBHI", rtp)
        header = 12 + 4 * (first & 0x0F)
        out.append((timestamp, bool(second & 0x80), rtp[header:]))
    return out


@pytest.mark.skipif(not SIPP.is_dir(), reason="Debian sip-tester is not installed")
@pytest.mark.parametrize(
    ("name", "digit"), [(str(d), str(d)) for d in range(10)] + [("star", "*"), ("pound", "#")]
)
def test_sipp_captures(name: str, digit: str) -> None:
    path = SIPP / f"dtmf_2833_{name}.pcap"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    packets = _rtp_payloads(path)
    assert len(packets) > 3
    assert _feed(EventReceiver(), packets) == digit
