"""The RESP2 codec: every reply type, every split, garbage that raises only RespProtocolError."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.state.resp import ErrorReply, Reply, RespParser, RespProtocolError, encode_command

# -- encoding commands -------------------------------------------------------


def test_command_is_an_array_of_bulk_strings() -> None:
    assert encode_command("GET", "k") == b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"


def test_command_arguments_of_every_kind() -> None:
    data = encode_command("ZADD", b"k\r\n\x00", 42, -7, 1.5, "é")
    assert data == (b"*6\r\n$4\r\nZADD\r\n$4\r\nk\r\n\x00\r\n$2\r\n42\r\n$2\r\n-7\r\n"
                    b"$3\r\n1.5\r\n$2\r\n\xc3\xa9\r\n")  # fmt: skip


def test_empty_argument() -> None:
    assert encode_command("SET", "k", "") == b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n"


@pytest.mark.parametrize("bad", [None, True, [1], {"a": 1}, object()])
def test_command_arguments_of_other_types_are_refused(bad: Any) -> None:
    with pytest.raises(TypeError):
        encode_command("SET", "k", bad)


def test_no_command_and_nan_are_refused() -> None:
    with pytest.raises(ValueError, match="name"):
        encode_command()
    with pytest.raises(ValueError, match="NaN"):
        encode_command("ZADD", "k", float("nan"), "m")


def test_encoded_commands_parse_back_as_arrays() -> None:
    args = ["EVALSHA", "abc", "1", "key", "", "x" * 1000]
    assert RespParser().feed(encode_command(*args)) == [[a.encode() for a in args]]


# -- every reply type --------------------------------------------------------

REPLIES: list[tuple[bytes, Reply]] = [
    (b"+OK\r\n", "OK"),
    (b"+\r\n", ""),
    (b"+caf\xc3\xa9\r\n", "café"),
    (b"-ERR unknown command 'FOO'\r\n", ErrorReply("ERR unknown command 'FOO'")),
    (b"-NOSCRIPT No matching script. Please use EVAL.\r\n",
     ErrorReply("NOSCRIPT No matching script. Please use EVAL.")),
    (b":0\r\n", 0),
    (b":1000\r\n", 1000),
    (b":-42\r\n", -42),
    (b":9223372036854775807\r\n", 2**63 - 1),
    (b":-9223372036854775808\r\n", -(2**63)),
    (b"$5\r\nhello\r\n", b"hello"),
    (b"$0\r\n\r\n", b""),
    (b"$6\r\na\r\nb\x00c\r\n", b"a\r\nb\x00c"),
    (b"$-1\r\n", None),
    (b"*0\r\n", []),
    (b"*-1\r\n", None),
    (b"*3\r\n:1\r\n$1\r\na\r\n+b\r\n", [1, b"a", "b"]),
    (b"*2\r\n*2\r\n:1\r\n*0\r\n*1\r\n*-1\r\n", [[1, []], [None]]),
    (b"*4\r\n$-1\r\n-ERR x\r\n*1\r\n*1\r\n*1\r\n:7\r\n+z\r\n",
     [None, ErrorReply("ERR x"), [[[7]]], "z"]),
]  # fmt: skip
STREAM = b"".join(data for data, _ in REPLIES)
VALUES = [value for _, value in REPLIES]


@pytest.mark.parametrize(("data", "value"), REPLIES)
def test_each_reply_type(data: bytes, value: Reply) -> None:
    assert RespParser().feed(data) == [value]


def test_error_reply_code() -> None:
    assert ErrorReply("NOSCRIPT No matching script").code == "NOSCRIPT"
    assert ErrorReply("WRONGPASS invalid username-password pair").code == "WRONGPASS"


def test_several_replies_in_one_read_come_out_in_order() -> None:
    assert RespParser().feed(STREAM) == VALUES


@pytest.mark.parametrize("cut", range(len(STREAM) + 1))
def test_split_at_every_byte_boundary(cut: int) -> None:
    parser = RespParser()
    first = parser.feed(STREAM[:cut])
    assert first + parser.feed(STREAM[cut:]) == VALUES


@pytest.mark.parametrize(("data", "value"), REPLIES)
def test_each_reply_split_at_every_boundary_yields_it_once_complete(
    data: bytes, value: Reply
) -> None:
    for cut in range(1, len(data)):
        parser = RespParser()
        assert parser.feed(data[:cut]) == []
        assert parser.feed(data[cut:]) == [value]


def test_one_byte_at_a_time() -> None:
    parser = RespParser()
    out: list[Reply] = []
    for i in range(len(STREAM)):
        out += parser.feed(STREAM[i : i + 1])
    assert out == VALUES


def test_empty_feed() -> None:
    parser = RespParser()
    assert parser.feed(b"") == []
    assert parser.feed(b"+OK\r\n") == ["OK"]
    assert parser.feed(b"") == []


def _encode_reply(value: Reply) -> bytes:
    """The server side of RESP2, for generated replies."""
    if isinstance(value, ErrorReply):
        return b"-" + value.message.encode() + b"\r\n"
    if isinstance(value, str):
        return b"+" + value.encode() + b"\r\n"
    if isinstance(value, int):
        return b":%d\r\n" % value
    if isinstance(value, bytes):
        return b"$%d\r\n%s\r\n" % (len(value), value)
    if value is None:
        return b"$-1\r\n"
    return b"*%d\r\n" % len(value) + b"".join(_encode_reply(v) for v in value)


_line_text = st.text(st.characters(blacklist_characters="\r\n", blacklist_categories=["Cs"]))
replies = st.recursive(
    st.one_of(
        st.none(),
        st.integers(-(2**63), 2**63 - 1),
        st.binary(max_size=40),
        _line_text,
        _line_text.map(lambda t: ErrorReply("ERR " + t)),
    ),
    lambda children: st.lists(children, max_size=5),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(replies, max_size=6), st.data())
def test_generated_replies_survive_any_chunking(values: list[Reply], data: st.DataObject) -> None:
    stream = b"".join(_encode_reply(v) for v in values)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=8)))
    parser = RespParser()
    out: list[Reply] = []
    start = 0
    for cut in [*cuts, len(stream)]:
        out += parser.feed(stream[start:cut])
        start = cut
    assert out == values


# -- garbage -----------------------------------------------------------------


@pytest.mark.parametrize(
    "garbage",
    [
        b"?what\r\n",
        b"OK\r\n",
        b"\r\n",
        b":12a\r\n",
        b":\r\n",
        b":-\r\n",
        b": 1\r\n",
        b":+1\r\n",
        b":1_000\r\n",
        b":\xd9\xa1\r\n",  # an Arabic-Indic digit: int() would take it
        b":" + b"9" * 5000 + b"\r\n",
        b"$abc\r\n",
        b"$-2\r\n",
        b"$3\r\nabcXY",
        b"$3\r\nabc\n\r",
        b"*-2\r\n",
        b"*x\r\n",
        b"%1\r\n+a\r\n+b\r\n",  # RESP3 map
        b"_\r\n",  # RESP3 null
        b"*1\r\n?\r\n",
    ],
)
def test_garbage_raises_only_resp_protocol_error(garbage: bytes) -> None:
    with pytest.raises(RespProtocolError):
        RespParser().feed(garbage)


def test_garbage_after_good_replies_still_raises() -> None:
    parser = RespParser()
    with pytest.raises(RespProtocolError):
        parser.feed(b"+OK\r\n!oops\r\n")


def test_the_parser_stays_broken_after_garbage() -> None:
    parser = RespParser()
    with pytest.raises(RespProtocolError):
        parser.feed(b"!\r\n")
    with pytest.raises(RespProtocolError, match="out of step"):
        parser.feed(b"+OK\r\n")


def test_a_line_without_end_is_refused_past_the_limit() -> None:
    parser = RespParser(max_line=100)
    assert parser.feed(b"+" + b"x" * 99) == []  # could still end
    with pytest.raises(RespProtocolError, match="CRLF"):
        parser.feed(b"x" * 10)


def test_a_line_at_the_limit_is_accepted() -> None:
    parser = RespParser(max_line=100)
    assert parser.feed(b"+" + b"x" * 99 + b"\r\n") == ["x" * 99]


def test_a_bulk_string_over_the_limit_is_refused_before_its_data() -> None:
    with pytest.raises(RespProtocolError, match="out of range"):
        RespParser(max_bulk=10).feed(b"$11\r\n")


def test_nesting_deeper_than_the_limit_is_refused() -> None:
    assert RespParser(max_depth=3).feed(b"*1\r\n" * 3 + b":1\r\n") == [[[[1]]]]
    with pytest.raises(RespProtocolError, match="deeper"):
        RespParser(max_depth=3).feed(b"*1\r\n" * 4)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_never_raise_anything_else(data: bytes) -> None:
    with contextlib.suppress(RespProtocolError):
        RespParser(max_line=64, max_bulk=64, max_depth=8).feed(data)


@settings(max_examples=500, deadline=None)
@given(st.integers(0, len(STREAM) - 1), st.integers(0, 255), st.integers(1, len(STREAM)))
def test_mutated_streams_never_raise_anything_else(where: int, byte: int, cut: int) -> None:
    mutated = bytearray(STREAM)
    mutated[where] = byte
    parser = RespParser()
    with contextlib.suppress(RespProtocolError):
        parser.feed(bytes(mutated[:cut]))
        parser.feed(bytes(mutated[cut:]))
