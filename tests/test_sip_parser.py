"""The SIP parser and serialiser: RFC 3261 syntax, RFC 4475 torture messages, framing."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.sip.headers import parse_address, parse_cseq, parse_via
from engine.sip.message import Request, Response
from engine.sip.parser import ParseError, StreamParser, parse_datagram
from engine.sip.uri import parse_uri
from sipkit import request_bytes

TORTURE = Path(__file__).parent / "data" / "rfc4475"
EXPECTED = json.loads((TORTURE / "expected.json").read_text())

#: Messages the parser itself refuses (framing, start line, header structure),
#: with the status the RFC asks for. The others parse; validate.py judges them.
PARSER_REFUSES = {
    "badvers": 505,
    "clerr": 400,
    "ncl": 400,
    "ltgtruri": 400,
    "lwsruri": 400,
    "lwsstart": 400,
    "trws": 400,
    "insuf": 400,
    "multi01": 400,
    "mcl01": 400,
    "bigcode": 400,
}


def torture(name: str) -> bytes:
    return (TORTURE / f"{name}.dat").read_bytes()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_torture_message_parses_or_is_refused_with_the_rfc_answer(name: str) -> None:
    data = torture(name)
    if name in PARSER_REFUSES:
        with pytest.raises(ParseError) as info:
            parse_datagram(data)
        assert info.value.status == PARSER_REFUSES[name]
        if EXPECTED[name]["kind"] == "request":
            # What was read survives, so the refusal can still be routed back.
            assert isinstance(info.value.partial, Request)
            assert "via" in info.value.partial.headers
    else:
        message = parse_datagram(data)
        kind = "request" if isinstance(message, Request) else "response"
        assert kind == EXPECTED[name]["kind"]


def test_every_valid_torture_message_parses() -> None:
    valid = [n for n, e in EXPECTED.items() if e["valid"]]
    assert len(valid) >= 25
    for name in valid:
        parse_datagram(torture(name))


def test_wsinv_folding_whitespace_and_compact_names() -> None:
    message = parse_datagram(torture("wsinv"))
    assert isinstance(message, Request)
    assert message.method == "INVITE"
    assert message.to_address().tag == "1918181833n"
    assert message.from_address().tag == "98asjd8"
    assert message.from_address().display == 'J Rosenberg \\"'
    assert message.cseq() == (9, "INVITE")
    assert message.get("max-forwards") == "0068"
    vias = [parse_via(v) for v in message.values("via")]
    assert [(v.transport, v.host) for v in vias] == [
        ("UDP", "192.0.2.2"),
        ("TCP", "spindle.example.com"),
        ("UDP", "192.168.255.111"),
    ]
    assert vias[1].branch == "z9hG4bK9ikj8"
    assert vias[2].branch == "z9hG4bK30239"
    assert message.get("subject") == ""
    assert message.get("newfangledheader") == "newfangled value continued newfangled value"
    contact = parse_address(message.values("contact")[0])
    assert contact.display == 'Quoted string ""'
    assert contact.params == {"newparam": "newvalue", "secondparam": None, "q": "0.33"}
    assert len(message.body) == 150


def test_escaped_uris_and_unusual_method_characters() -> None:
    esc01 = parse_datagram(torture("esc01"))
    assert isinstance(esc01, Request)
    assert esc01.request_uri().user == "sips:user@example.com"
    intmeth = parse_datagram(torture("intmeth"))
    assert isinstance(intmeth, Request)
    assert intmeth.method == "!interesting-Method0123456789_*+`.%indeed'~"
    semi = parse_datagram(torture("semiuri"))
    assert isinstance(semi, Request)
    assert semi.request_uri().user == "user;par=u@example.net"
    assert semi.request_uri().host == "example.com"


def test_escaped_plus_in_user_part() -> None:
    uri = parse_uri("sip:%2B3225551234@example.com:5060;user=phone")
    assert uri.user == "+3225551234"
    assert uri.port == 5060
    assert uri.params == {"user": "phone"}
    assert (
        str(parse_uri("tel:+3225551234;phone-context=+32")) == "tel:+3225551234;phone-context=+32"
    )


def test_escnull_keeps_the_whole_user_part() -> None:
    message = parse_datagram(torture("escnull"))
    assert isinstance(message, Request)
    assert message.to_address().uri.user == "null-\x00-null"


def test_utf8_display_name_and_reason_phrase() -> None:
    data = request_bytes("OPTIONS").replace(b"From: <", 'From: "Zoë Müller" <'.encode())
    message = parse_datagram(data)
    assert isinstance(message, Request)
    assert message.from_address().display == "Zoë Müller"
    assert message.to_bytes().count("Zoë Müller".encode()) == 1
    unreason = parse_datagram(torture("unreason"))
    assert isinstance(unreason, Response)
    assert unreason.status == 200
    assert "простое" in unreason.reason


def test_empty_reason_phrase() -> None:
    message = parse_datagram(torture("noreason"))
    assert isinstance(message, Response)
    assert (message.status, message.reason) == (100, "")


def test_mpart01_binary_body_framed_by_content_length() -> None:
    message = parse_datagram(torture("mpart01"))
    assert len(message.body) == int(message.get("content-length") or 0)
    assert b"\x00" in message.body


def test_dblreq_ignores_octets_after_content_length() -> None:
    message = parse_datagram(torture("dblreq"))
    assert isinstance(message, Request)
    assert message.method == "REGISTER"
    assert message.body == b""


def test_body_shorter_than_content_length_is_400() -> None:
    data = request_bytes("INVITE", body=b"v=0\r\n").replace(
        b"Content-Length: 5", b"Content-Length: 50"
    )
    with pytest.raises(ParseError) as info:
        parse_datagram(data)
    assert info.value.status == 400
    assert info.value.reason == "Content-Length Exceeds Message"


def test_missing_content_length_on_udp_takes_the_rest_of_the_datagram() -> None:
    data = request_bytes("INVITE", body=b"v=0\r\n").replace(b"Content-Length: 5\r\n", b"")
    assert parse_datagram(data).body == b"v=0\r\n"


def test_case_insensitive_and_compact_header_names() -> None:
    data = (
        b"OPTIONS sip:127.0.0.1 SIP/2.0\r\n"
        b"v: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-a\r\n"
        b"f: <sip:a@b>;tag=1\r\nt: <sip:c@d>\r\ni: abc\r\nCSEQ: 1 OPTIONS\r\nl: 0\r\n\r\n"
    )
    message = parse_datagram(data)
    assert set(message.headers) == {"via", "from", "to", "call-id", "cseq", "content-length"}
    wire = message.to_bytes()
    assert b"Call-ID: abc\r\n" in wire and b"CSeq: 1 OPTIONS\r\n" in wire


def test_several_vias_in_one_header_and_quoted_commas() -> None:
    data = (
        request_bytes("OPTIONS")
        .replace(
            b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-test-1\r\n",
            b"Via: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK-a, "
            b"SIP/2.0/TCP 10.0.0.1;branch=z9hG4bK-b\r\n",
        )
        .replace(b"Contact: <", b'Contact: "Doe, John" <sip:j@x>, <')
    )
    message = parse_datagram(data)
    assert isinstance(message, Request)
    assert message.top_via().branch == "z9hG4bK-a"
    assert len(message.values("via")) == 2
    assert message.values("contact")[0] == '"Doe, John" <sip:j@x>'


def test_round_trip_keeps_every_header() -> None:
    original = parse_datagram(torture("wsinv"))
    again = parse_datagram(original.to_bytes())
    assert again.headers == original.headers
    assert again.body == original.body


def test_rport_and_received_parameters() -> None:
    via = parse_via("SIP/2.0/UDP 10.1.1.1:5060;rport;branch=z9hG4bK1;received=192.0.2.1")
    assert via.params["rport"] is None
    assert via.params["received"] == "192.0.2.1"
    assert str(via) == "SIP/2.0/UDP 10.1.1.1:5060;rport;branch=z9hG4bK1;received=192.0.2.1"


@pytest.mark.parametrize(
    "value",
    [
        "",
        "SIP/2.0/UDP",
        "SIP/2.0/UDP host:99999",
        "SIP/3.0/UDP host",
        "SIP/2.0/UDP ho st",
        "SIP/2.0/UDP host;;",
    ],
)
def test_bad_via_values(value: str) -> None:
    with pytest.raises(ValueError):
        parse_via(value)


@pytest.mark.parametrize("value", ["1", "x INVITE", "1 INVITE extra", "2147483648 INVITE"])
def test_bad_cseq_values(value: str) -> None:
    with pytest.raises(ValueError):
        parse_cseq(value)


# -- TCP framing ------------------------------------------------------------------


def test_stream_parser_handles_partial_and_several_messages_per_read() -> None:
    one = request_bytes("OPTIONS", branch="z9hG4bK-1", body=b"hello")
    two = request_bytes("OPTIONS", branch="z9hG4bK-2")
    stream = b"\r\n\r\n" + one + two
    parser = StreamParser()
    got = []
    for i in range(0, len(stream), 7):
        got += parser.feed(stream[i : i + 7])
    assert [m.top_via().branch for m in got] == ["z9hG4bK-1", "z9hG4bK-2"]
    assert got[0].body == b"hello"
    assert parser.pings == 1

    parser = StreamParser()
    assert len(parser.feed(one + two + one[:10])) == 2
    assert len(parser.feed(one[10:])) == 1


def test_a_keepalive_split_across_reads_is_still_one_ping() -> None:
    parser = StreamParser()
    assert parser.feed(b"\r\n") == [] and parser.pings == 0
    assert parser.feed(b"\r\n") == [] and parser.pings == 1
    parser.pings = 0
    parser.feed(b"\r\n")
    (message,) = parser.feed(request_bytes("OPTIONS"))  # a lone CRLF before a message
    assert isinstance(message, Request) and parser.pings == 0
    parser.feed(b"\r\n")
    assert parser.pings == 0  # the lone CRLF before the message did not count


def test_stream_parser_requires_content_length() -> None:
    good = request_bytes("OPTIONS", branch="z9hG4bK-good")
    data = request_bytes("OPTIONS").replace(b"Content-Length: 0\r\n", b"")
    parser = StreamParser()
    served, lost = parser.feed(good + data)
    assert isinstance(served, Request) and served.top_via().branch == "z9hG4bK-good"
    assert isinstance(lost, ParseError) and lost.reason == "Missing Content-Length"
    assert parser.broken and parser.feed(good) == []  # its framing is gone


def test_stream_parser_refuses_endless_headers() -> None:
    parser = StreamParser(max_message=1000)
    (lost,) = parser.feed(b"OPTIONS sip:a SIP/2.0\r\n" + b"X: y\r\n" * 500)
    assert isinstance(lost, ParseError) and lost.reason == "Message Too Large"
    assert parser.broken


def test_a_framed_but_invalid_message_is_refused_alone_and_the_stream_goes_on() -> None:
    """The messages before and after it are served; only a lost framing closes the stream."""
    one = request_bytes("OPTIONS", branch="z9hG4bK-1")
    bad = request_bytes("OPTIONS", branch="z9hG4bK-2", body=b"x")
    bad = bad.replace(b"Call-ID: call-1@test\r\n", b"")
    dup = request_bytes("OPTIONS", branch="z9hG4bK-3").replace(b"To:", b"To: <sip:a@b>\r\nTo:")
    three = request_bytes("OPTIONS", branch="z9hG4bK-4")
    parser = StreamParser()
    got = parser.feed(one + bad + dup + three)
    assert [type(g).__name__ for g in got] == ["Request", "ParseError", "ParseError", "Request"]
    assert [g.reason for g in got if isinstance(g, ParseError)] == ["Missing Call-ID",
                                                                   "Several To Headers"]
    assert got[3].top_via().branch == "z9hG4bK-4"  # type: ignore[union-attr]
    assert not parser.broken


# -- nothing on the wire raises anything but ParseError ------------------------------


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=600))
def test_random_bytes_only_raise_parse_error(data: bytes) -> None:
    with contextlib.suppress(ParseError):
        parse_datagram(data)


_SAMPLES = [torture(n) for n in ("wsinv", "esc01", "longreq", "inv2543", "unreason")]


@settings(max_examples=400, deadline=None)
@given(
    st.sampled_from(_SAMPLES),
    st.lists(st.tuples(st.integers(0, 4000), st.binary(min_size=0, max_size=4)), max_size=6),
)
def test_mutated_messages_only_raise_parse_error(sample: bytes, edits: list) -> None:
    data = bytearray(sample)
    for position, chunk in edits:
        at = position % (len(data) + 1)
        data[at : at + len(chunk)] = chunk
    try:
        message = parse_datagram(bytes(data))
    except ParseError:
        return
    # Structured views either work or say ValueError; nothing else escapes.
    for view in ("top_via", "cseq", "from_address", "to_address", "request_uri"):
        if isinstance(message, Request):
            with contextlib.suppress(ValueError, KeyError):
                getattr(message, view)()
    StreamParser().feed(bytes(data))  # returns what it framed, errors included; raises nothing
