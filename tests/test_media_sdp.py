"""SDP parsing and RFC 3264 offer/answer against the SDPs real peers send."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media.sdp import (
    Answer,
    MediaDescription,
    Negotiation,
    SdpError,
    answer,
    format_sdp,
    make_offer,
    negotiated,
    parse_sdp,
)


def _crlf(text: str) -> bytes:
    return text.strip().replace("\n", "\r\n").encode() + b"\r\n"


# SIPp's built-in uac scenario (sipp -sn uac), LF line ends as SIPp sends them.
SIPP_UAC = b"""v=0
o=user1 53655765 2353687637 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio 6000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
"""

LINPHONE = _crlf("""
v=0
o=alice 2786 1433 IN IP4 192.168.1.20
s=Talk
c=IN IP4 192.168.1.20
t=0 0
a=rtcp-xr:rcvr-rtt=all:10000 stat-summary=loss,dup,jitt,TTL voip-metrics
m=audio 7078 RTP/AVP 96 0 8 101
a=rtpmap:96 opus/48000/2
a=fmtp:96 useinbandfec=1
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=rtcp-fb:* trr-int 1000
a=rtcp-fb:* ccm tmmbr
""")

BARESIP_PCMA_FIRST = _crlf("""
v=0
o=- 1190183012 4143066958 IN IP4 10.0.0.7
s=-
c=IN IP4 10.0.0.7
t=0 0
m=audio 10000 RTP/AVP 96 8 0 97
b=AS:128
a=rtpmap:96 opus/48000/2
a=rtpmap:8 PCMA/8000
a=rtpmap:0 PCMU/8000
a=rtpmap:97 telephone-event/8000
a=fmtp:97 0-15
a=ptime:20
a=sendrecv
a=label:1
""")

VIDEO_AND_AUDIO = _crlf("""
v=0
o=bob 100 200 IN IP4 203.0.113.5
s=video call
t=0 0
m=video 51372 RTP/AVP 99
c=IN IP4 203.0.113.5
a=rtpmap:99 H264/90000
m=audio 49170 RTP/AVP 0 101
c=IN IP4 203.0.113.6
a=rtpmap:101 telephone-event/8000
""")


def _offer_with(lines: str, connection: str = "198.51.100.1") -> bytes:
    return _crlf(f"""
v=0
o=peer 1 1 IN IP4 198.51.100.1
s=-
c=IN IP4 {connection}
t=0 0
{lines.strip()}
""")


def _answer(body: bytes) -> tuple[MediaDescription, Answer]:
    result = answer(parse_sdp(body), "192.0.2.10", 20000, 42, 1)
    return result.sdp.media[0], result


def test_sipp_uac_offer() -> None:
    offer = parse_sdp(SIPP_UAC)
    assert offer.origin.session_id == 53655765
    assert offer.media[0].formats == ["0"]
    result = answer(offer, "192.0.2.10", 20000, 42, 1)
    assert (result.codec, result.payload_type, result.dtmf_payload_type) == ("PCMU", 0, None)
    assert (result.remote_address, result.remote_port) == ("127.0.0.1", 6000)
    assert (result.remote_direction, result.direction, result.hold) == (
        "sendrecv",
        "sendrecv",
        False,
    )
    assert format_sdp(result.sdp) == _crlf("""
v=0
o=vms 42 1 IN IP4 192.0.2.10
s=vms
c=IN IP4 192.0.2.10
t=0 0
m=audio 20000 RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=ptime:20
a=sendrecv
""")


def test_linphone_offer_skips_opus_and_keeps_telephone_event() -> None:
    offer = parse_sdp(LINPHONE)
    assert offer.attribute("rtcp-xr") is not None  # unknown attributes kept
    result = answer(offer, "192.0.2.10", 20000, 42, 1)
    assert (result.codec, result.payload_type, result.dtmf_payload_type) == ("PCMU", 0, 101)
    media = result.sdp.media[0]
    assert media.formats == ["0", "101"]
    assert media.fmtp("101") == "0-15"
    assert media.attribute("ptime") == "20"


def test_offerer_preference_order_wins() -> None:
    result = answer(parse_sdp(BARESIP_PCMA_FIRST), "192.0.2.10", 20000, 42, 1)
    assert (result.codec, result.payload_type, result.dtmf_payload_type) == ("PCMA", 8, 97)
    assert result.sdp.media[0].formats == ["8", "97"]
    only_pcmu = answer(parse_sdp(BARESIP_PCMA_FIRST), "192.0.2.10", 1, 1, 1, supported=["PCMU"])
    assert (only_pcmu.codec, only_pcmu.payload_type) == ("PCMU", 0)


def test_video_refused_with_port_zero_audio_accepted() -> None:
    result = answer(parse_sdp(VIDEO_AND_AUDIO), "192.0.2.10", 20000, 42, 1)
    video, audio = result.sdp.media
    assert (video.media, video.port, video.formats, video.attributes) == ("video", 0, ["99"], [])
    assert (audio.media, audio.port, audio.formats) == ("audio", 20000, ["0", "101"])
    assert (result.remote_address, result.remote_port) == ("203.0.113.6", 49170)
    assert b"m=video 0 RTP/AVP 99\r\n" in format_sdp(result.sdp)


def test_dynamic_pcmu_and_second_audio_refused() -> None:
    body = _offer_with("""
m=audio 7000 RTP/AVP 97
a=rtpmap:97 pcmu/8000/1
m=audio 7002 RTP/AVP 8
""")
    result = answer(parse_sdp(body), "192.0.2.10", 20000, 42, 1)
    assert (result.codec, result.payload_type) == ("PCMU", 97)
    assert [m.port for m in result.sdp.media] == [20000, 0]
    assert result.sdp.media[0].attribute("rtpmap") == "97 PCMU/8000"


@pytest.mark.parametrize(
    ("lines", "connection", "remote", "ours"),
    [
        ("m=audio 7000 RTP/AVP 0\na=sendonly", "198.51.100.1", "sendonly", "recvonly"),
        ("m=audio 7000 RTP/AVP 0\na=recvonly", "198.51.100.1", "recvonly", "sendonly"),
        ("a=inactive\nm=audio 7000 RTP/AVP 0", "198.51.100.1", "inactive", "inactive"),
        ("m=audio 7000 RTP/AVP 0", "0.0.0.0", "sendonly", "recvonly"),
        ("m=audio 7000 RTP/AVP 0\na=recvonly", "0.0.0.0", "inactive", "inactive"),
        ("a=sendonly\nm=audio 7000 RTP/AVP 0\na=sendrecv", "198.51.100.1", "sendrecv", "sendrecv"),
    ],
)
def test_hold_directions(lines: str, connection: str, remote: str, ours: str) -> None:
    media, result = _answer(_offer_with(lines, connection))
    assert (result.remote_direction, result.direction) == (remote, ours)
    assert result.hold == (remote in ("sendonly", "inactive"))
    assert media.attribute(ours) == ""


@pytest.mark.parametrize(
    "lines",
    [
        "m=audio 7000 RTP/AVP 18\na=rtpmap:18 G729/8000",
        "m=audio 7000 RTP/AVP 96\na=rtpmap:96 opus/48000/2",
        "m=audio 7000 RTP/AVP 97\na=rtpmap:97 PCMU/16000",
        "m=audio 0 RTP/AVP 0",
        "m=audio 7000 RTP/SAVP 0",
        "m=video 7000 RTP/AVP 0",
    ],
)
def test_nothing_acceptable(lines: str) -> None:
    with pytest.raises(SdpError, match="no audio stream"):
        answer(parse_sdp(_offer_with(lines)), "192.0.2.10", 20000, 42, 1)


def test_answer_version_is_the_callers() -> None:
    offer = parse_sdp(SIPP_UAC)
    first = answer(offer, "192.0.2.10", 20000, 42, 1).sdp.origin
    second = answer(offer, "192.0.2.10", 20000, 42, 2).sdp.origin
    assert (first.session_id, first.version, second.session_id, second.version) == (42, 1, 42, 2)


def test_make_offer() -> None:
    offer = make_offer("192.0.2.10", 30000, 7, 3)
    assert format_sdp(offer) == _crlf("""
v=0
o=vms 7 3 IN IP4 192.0.2.10
s=vms
c=IN IP4 192.0.2.10
t=0 0
m=audio 30000 RTP/AVP 0 8 101
a=rtpmap:0 PCMU/8000
a=rtpmap:8 PCMA/8000
a=rtpmap:101 telephone-event/8000
a=fmtp:101 0-15
a=ptime:20
a=sendrecv
""")
    held = make_offer(
        "192.0.2.10", 30000, 7, 4, codecs=["PCMA"], dtmf_payload_type=None, direction="sendonly"
    )
    assert held.media[0].formats == ["8"]
    assert held.media[0].attribute("sendonly") == ""
    with pytest.raises(ValueError, match="G729"):
        make_offer("192.0.2.10", 30000, 7, 3, codecs=["G729"])
    with pytest.raises(ValueError, match="direction"):
        make_offer("192.0.2.10", 30000, 7, 3, direction="hold")


def test_negotiated_with_our_own_answerer() -> None:
    offer = make_offer("192.0.2.10", 30000, 7, 1)
    reply = answer(parse_sdp(format_sdp(offer)), "198.51.100.9", 40000, 9, 1)
    result = negotiated(offer, parse_sdp(format_sdp(reply.sdp)))
    assert result == Negotiation("PCMU", 0, 101, "198.51.100.9", 40000, "sendrecv", "sendrecv")


def test_negotiated_sipp_uas_answer_and_directions() -> None:
    offer = make_offer("192.0.2.10", 30000, 7, 1)
    sipp_uas = (
        b"v=0\no=user1 1 1 IN IP4 127.0.0.2\ns=-\nc=IN IP4 127.0.0.2\nt=0 0\n"
        b"m=audio 6000 RTP/AVP 8\na=rtpmap:8 PCMA/8000\na=recvonly\n"
    )
    result = negotiated(offer, parse_sdp(sipp_uas))
    assert (result.codec, result.payload_type, result.dtmf_payload_type) == ("PCMA", 8, None)
    assert (result.remote_address, result.remote_port) == ("127.0.0.2", 6000)
    assert (result.remote_direction, result.direction) == ("recvonly", "sendonly")
    our_hold = make_offer("192.0.2.10", 30000, 7, 2, direction="sendonly")
    mirrored = negotiated(our_hold, parse_sdp(sipp_uas.replace(b"a=recvonly", b"a=sendrecv")))
    assert mirrored.direction == "sendonly"  # the callee cannot widen what we offered


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"v=0\no=a 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 1.2.3.4\nm=audio 6000 RTP/AVP 96\n"
         b"a=rtpmap:96 PCMU/8000\n", "accepts no audio"),  # PCMU, but not a type we offered
        (b"v=0\no=a 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 1.2.3.4\nm=audio 6000 RTP/AVP 18\n",
         "accepts no audio"),
        (b"v=0\no=a 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 1.2.3.4\nm=audio 0 RTP/AVP 0\n",
         "accepts no audio"),
        (b"v=0\no=a 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 1.2.3.4\nm=audio 6000 RTP/AVP 0\n"
         b"m=video 0 RTP/AVP 99\n", "2 m= lines for the 1"),
        (b"v=0\no=a 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 1.2.3.4\nm=audio 6000 RTP/AVP 18 0\n"
         b"a=rtpmap:0 G729/8000\n", "accepts no audio"),
    ],
)
def test_negotiated_refuses(body: bytes, match: str) -> None:
    offer = make_offer("192.0.2.10", 30000, 7, 1)
    with pytest.raises(SdpError, match=match):
        negotiated(offer, parse_sdp(body))


@pytest.mark.parametrize(
    ("body", "match"),
    [
        (b"", "v=0"),
        (b"\xff\xfe", "UTF-8"),
        (b"o=a 1 1 IN IP4 1.2.3.4\ns=-\nm=audio 1 RTP/AVP 0\n", "v=0"),
        (b"v=0\ns=-\nc=IN IP4 1.2.3.4\nm=audio 1 RTP/AVP 0\n", "no o="),
        (b"v=0\no=a 1 1 IN IP4 1.2.3.4\nc=IN IP4 1.2.3.4\nm=audio 1 RTP/AVP 0\n", "no s="),
        (b"v=0\no=a 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 1.2.3.4\nt=0 0\n", "no m="),
        (b"v=0\no=a 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 1.2.3.4\nm=audio 1 RTP/AVP 0\n", "line 2"),
        (b"v=0\no=a x 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 1.2.3.4\nm=audio 1 RTP/AVP 0\n", "o="),
        (b"v=0\no=a 1 1 IN IP4 1.2.3.4\ns=-\nhello\nm=audio 1 RTP/AVP 0\n", "line 4"),
        (b"v=0\no=a 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4\nm=audio 1 RTP/AVP 0\n", "c="),
        (b"v=0\no=a 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 1.2.3.4\nm=audio x RTP/AVP 0\n", "port"),
        (b"v=0\no=a 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 1.2.3.4\nm=audio 70000 RTP/AVP 0\n",
         "port"),
        (b"v=0\no=a 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 1.2.3.4\nm=audio 1 RTP/AVP\n", "m="),
        (b"v=0\no=a 1 1 IN IP4 1.2.3.4\ns=-\nm=audio 1 RTP/AVP 0\n", "no c="),
        (b"v=0\nv=0\no=a 1 1 IN IP4 1.2.3.4\ns=-\nc=IN IP4 1.2.3.4\nm=audio 1 RTP/AVP 0\n",
         "second v="),
    ],
)
def test_malformed(body: bytes, match: str) -> None:
    with pytest.raises(SdpError, match=match):
        parse_sdp(body)


@pytest.mark.parametrize("body", [SIPP_UAC, LINPHONE, BARESIP_PCMA_FIRST, VIDEO_AND_AUDIO])
def test_format_round_trip(body: bytes) -> None:
    parsed = parse_sdp(body)
    text = format_sdp(parsed)
    assert parse_sdp(text) == parsed
    assert text.count(b"\r\n") == text.count(b"\n")
    if body.endswith(b"\r\n"):
        assert text == body  # these are already in RFC 4566 order


@given(st.binary(max_size=300))
def test_random_bytes_only_sdp_error(data: bytes) -> None:
    with contextlib.suppress(SdpError):
        parse_sdp(data)


@given(st.integers(0, len(LINPHONE) - 1), st.binary(min_size=0, max_size=4), st.booleans())
def test_mutated_offer_only_sdp_error(index: int, insert: bytes, cut: bool) -> None:
    body = LINPHONE[:index] + insert + (LINPHONE[index + 1 :] if cut else LINPHONE[index:])
    with contextlib.suppress(SdpError):
        answer(parse_sdp(body), "192.0.2.10", 20000, 42, 1)
