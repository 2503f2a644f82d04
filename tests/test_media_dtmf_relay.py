"""SIP INFO DTMF bodies: lenient parsing, strict formatting."""

from __future__ import annotations

import pytest

from media.dtmf import DtmfInfo, format_dtmf_relay, parse_dtmf_relay


@pytest.mark.parametrize(
    ("content_type", "body", "expected"),
    [
        ("application/dtmf-relay", b"Signal=5\r\nDuration=160\r\n", DtmfInfo("5", 160)),
        ("Application/DTMF-Relay; x=y", b"signal = *\nduration= 100\n", DtmfInfo("*", 100)),
        ("application/dtmf-relay", b"Signal= #\r\n", DtmfInfo("#", 250)),
        ("application/dtmf-relay", b"Signal=a\r\nDuration=junk\r\n", DtmfInfo("A", 250)),
        ("application/dtmf", b"7", DtmfInfo("7", 250)),
        ("application/dtmf", b" 0\r\n", DtmfInfo("0", 250)),
        ("application/dtmf-relay", b"Signal=E\r\n", None),
        ("application/dtmf-relay", b"Duration=160\r\n", None),
        ("application/dtmf-relay", b"Signal=\xff", None),
        ("application/dtmf", b"12", None),
        ("application/sdp", b"Signal=5\r\n", None),
    ],
)
def test_parse(content_type: str, body: bytes, expected: DtmfInfo | None) -> None:
    assert parse_dtmf_relay(content_type, body) == expected


def test_format_round_trip() -> None:
    content_type, body = format_dtmf_relay("#", 160)
    assert (content_type, body) == ("application/dtmf-relay", b"Signal=#\r\nDuration=160\r\n")
    assert parse_dtmf_relay(content_type, body) == DtmfInfo("#", 160)
    with pytest.raises(ValueError):
        format_dtmf_relay("x", 160)
    with pytest.raises(ValueError):
        format_dtmf_relay("1", 0)
