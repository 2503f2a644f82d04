"""RESP2, the Redis serialisation protocol, without I/O.

:func:`encode_command` turns a command into the bytes Redis reads;
:class:`RespParser` is fed the bytes Redis sends, in pieces of any size, and
hands back each reply once it is complete. Nothing here touches a socket,
so the codec is tested byte by byte (every split of every reply type) and
fuzzed; the Twisted client in :mod:`engine.state.redis` only moves bytes.

Replies map to Python values:

============================  ==========================
RESP2                          Python
============================  ==========================
simple string ``+OK``          ``str``
error ``-ERR ...``             :class:`ErrorReply` (a value, not raised)
integer ``:42``                ``int``
bulk string ``$3 abc``         ``bytes``
null bulk ``$-1``              ``None``
array ``*2 ...``               ``list`` (nested as sent)
null array ``*-1``             ``None``
============================  ==========================

Error replies are values because they are answers, not protocol faults
(an array can carry several, as ``EXEC`` does). The parser raises only
:class:`RespProtocolError`, for bytes that are not RESP2, and stays broken
after it: a stream out of step cannot be trusted again, the connection
must go. Limits bound what garbage can make it buffer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TypeAlias

__all__ = ["Arg", "ErrorReply", "Reply", "RespParser", "RespProtocolError", "encode_command"]

#: What a command's arguments may be; everything goes on the wire as a bulk string.
Arg: TypeAlias = bytes | str | int | float


@dataclass(frozen=True, slots=True)
class ErrorReply:
    """An error reply, such as ``-NOSCRIPT No matching script``."""

    message: str

    @property
    def code(self) -> str:
        """The error's first word (``ERR``, ``NOSCRIPT``, ``WRONGPASS`` ...), by convention."""
        return self.message.split(" ", 1)[0]


Reply: TypeAlias = "str | int | bytes | ErrorReply | list[Reply] | None"


class RespProtocolError(Exception):
    """The bytes received are not RESP2 (or exceed the parser's limits)."""


def _arg_bytes(arg: Arg) -> bytes:
    if isinstance(arg, bytes):
        return arg
    if isinstance(arg, str):
        return arg.encode("utf-8")
    if isinstance(arg, bool):
        raise TypeError("a Redis command argument cannot be a bool; send 1 or 0")
    if isinstance(arg, int):
        return b"%d" % arg
    if isinstance(arg, float):
        if math.isnan(arg):
            raise ValueError("a Redis command argument cannot be NaN")
        return repr(arg).encode("ascii")
    raise TypeError(f"a Redis command argument must be bytes, str, int or float, not {arg!r}")


def encode_command(*args: Arg) -> bytes:
    """One command as a RESP2 array of bulk strings (``GET`` and ``b"key"`` -> bytes)."""
    if not args:
        raise ValueError("a Redis command needs at least its name")
    parts = [b"*%d\r\n" % len(args)]
    for arg in args:
        data = _arg_bytes(arg)
        parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
    return b"".join(parts)


_MAX_INT_DIGITS = 20  # a signed 64-bit integer and its sign


class RespParser:
    """Fed bytes as they come, returns the replies they complete, in order.

    Arrays are filled through an explicit stack, so a deep or long reply
    split over many reads costs linear time and no recursion; only the
    element being read is looked at again on the next read (a bulk string's
    header is read again until its data is all there).
    """

    def __init__(
        self,
        *,
        max_bulk: int = 512 * 1024 * 1024,
        max_line: int = 64 * 1024,
        max_depth: int = 64,
    ) -> None:
        self.max_bulk = max_bulk
        self.max_line = max_line
        self.max_depth = max_depth
        self._buf = bytearray()
        self._pos = 0
        # Arrays being filled, innermost last: (elements so far, expected length).
        self._stack: list[tuple[list[Reply], int]] = []
        self._broken: str | None = None

    def feed(self, data: bytes) -> list[Reply]:
        """Add ``data`` and return every reply it completes (maybe none)."""
        if self._broken is not None:
            raise RespProtocolError(f"the stream is already out of step: {self._broken}")
        self._buf += data
        replies: list[Reply] = []
        try:
            while self._step(replies):
                pass
        except RespProtocolError as exc:
            self._broken = str(exc)
            raise
        del self._buf[: self._pos]
        self._pos = 0
        return replies

    def _step(self, replies: list[Reply]) -> bool:
        """Consume the next element if it is all here; False when more bytes are needed."""
        buf, pos = self._buf, self._pos
        if pos >= len(buf):
            return False
        end = buf.find(b"\r\n", pos, pos + self.max_line + 2)
        if end < 0:
            if len(buf) - pos >= self.max_line + 2:
                raise RespProtocolError(f"no CRLF within {self.max_line} bytes")
            return False
        kind, line, after = buf[pos], bytes(buf[pos + 1 : end]), end + 2
        value: Reply
        if kind == 0x2B:  # '+'
            value = line.decode("utf-8", "replace")
        elif kind == 0x2D:  # '-'
            value = ErrorReply(line.decode("utf-8", "replace"))
        elif kind == 0x3A:  # ':'
            value = _integer(line, "integer")
        elif kind == 0x24:  # '$'
            length = _integer(line, "bulk string length")
            if length == -1:
                value = None
            elif length < -1 or length > self.max_bulk:
                raise RespProtocolError(f"bulk string length {length} out of range")
            elif len(buf) < after + length + 2:
                return False
            elif buf[after + length : after + length + 2] != b"\r\n":
                raise RespProtocolError(f"bulk string of {length} bytes not followed by CRLF")
            else:
                value = bytes(buf[after : after + length])
                after += length + 2
        elif kind == 0x2A:  # '*'
            length = _integer(line, "array length")
            if length < -1:
                raise RespProtocolError(f"array length {length} out of range")
            if length > 0:
                if len(self._stack) >= self.max_depth:
                    raise RespProtocolError(f"arrays nested deeper than {self.max_depth}")
                self._stack.append(([], length))
                self._pos = after
                return True
            value = None if length == -1 else []
        else:
            raise RespProtocolError(f"unknown reply type byte {kind:#04x}")
        self._pos = after
        self._deliver(value, replies)
        return True

    def _deliver(self, value: Reply, replies: list[Reply]) -> None:
        """Put a finished element in its array, closing the arrays it fills."""
        while self._stack:
            elements, expected = self._stack[-1]
            elements.append(value)
            if len(elements) < expected:
                return
            self._stack.pop()
            value = elements
        replies.append(value)


def _integer(line: bytes, what: str) -> int:
    digits = line[1:] if line[:1] == b"-" else line
    if not digits.isdigit() or len(digits) > _MAX_INT_DIGITS:
        raise RespProtocolError(f"{what} {line[:32]!r} is not an integer")
    return int(line)
