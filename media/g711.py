"""G.711 µ-law and A-law (ITU-T G.711) through lookup tables.

Every possible input is encoded or decoded once, at import, by the
segment-and-quantise algorithm of the recommendation (in the integer form of
the classic Sun reference code, so the results are bit-exact with audioop and
sox); after that, a prompt or an RTP payload costs one numpy take or one
``bytes.translate``.
"""

from __future__ import annotations

from typing import Final

import numpy as np
import numpy.typing as npt

__all__ = [
    "ALAW_SILENCE",
    "ALAW_TO_ULAW",
    "ULAW_SILENCE",
    "ULAW_TO_ALAW",
    "alaw_decode",
    "alaw_encode",
    "ulaw_decode",
    "ulaw_encode",
]

ULAW_SILENCE: Final = 0xFF
"""µ-law code of a zero sample (positive zero)."""
ALAW_SILENCE: Final = 0xD5
"""A-law code of the smallest positive sample, what A-law sends for silence."""

_ULAW_BIAS = 0x84
_ULAW_CLIP = 8159  # largest magnitude µ-law can code, in 14-bit units
_SEG_SHIFT = 4
_QUANT_MASK = 0x0F
_SIGN_BIT = 0x80

Int16Array = npt.NDArray[np.int16]


def _segment(magnitude: npt.NDArray[np.int64], first_end: int) -> npt.NDArray[np.int64]:
    """Segment number 0..8 of each magnitude: segment s ends at ``first_end << s``.

    8 means above the last segment (clipped to the largest code).
    """
    ends = np.array([(first_end + 1 << s) - 1 for s in range(8)], dtype=np.int64)
    return np.searchsorted(ends, magnitude, side="left").astype(np.int64)


def _build_ulaw_encode() -> npt.NDArray[np.uint8]:
    """µ-law code of every int16, indexed by the sample's bits as uint16."""
    pcm = np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int64) >> 2  # 14-bit
    mask = np.where(pcm < 0, 0x7F, 0xFF)
    magnitude = np.minimum(np.abs(pcm), _ULAW_CLIP) + (_ULAW_BIAS >> 2)
    seg = _segment(magnitude, 0x3F)
    code = (seg << _SEG_SHIFT) | ((magnitude >> (seg + 1)) & _QUANT_MASK)
    code = np.where(seg >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


def _build_alaw_encode() -> npt.NDArray[np.uint8]:
    """A-law code of every int16, indexed by the sample's bits as uint16."""
    pcm = np.arange(65536, dtype=np.uint16).view(np.int16).astype(np.int64) >> 3  # 13-bit
    mask = np.where(pcm >= 0, 0xD5, 0x55)
    magnitude = np.where(pcm >= 0, pcm, -pcm - 1)
    seg = _segment(magnitude, 0x1F)
    shift = np.maximum(seg, 1)  # the first two segments share one step size
    code = (seg << _SEG_SHIFT) | ((magnitude >> shift) & _QUANT_MASK)
    code = np.where(seg >= 8, 0x7F, code)
    return (code ^ mask).astype(np.uint8)


def _build_ulaw_decode() -> Int16Array:
    """Linear value of every µ-law code."""
    u = ~np.arange(256, dtype=np.int64) & 0xFF
    t = (((u & _QUANT_MASK) << 3) + _ULAW_BIAS) << ((u >> _SEG_SHIFT) & 7)
    return np.where(u & _SIGN_BIT, _ULAW_BIAS - t, t - _ULAW_BIAS).astype(np.int16)


def _build_alaw_decode() -> Int16Array:
    """Linear value of every A-law code."""
    a = np.arange(256, dtype=np.int64) ^ 0x55
    seg = (a >> _SEG_SHIFT) & 7
    offset = np.where(seg == 0, 8, 0x108)  # the first segment has no implicit leading 1
    t: npt.NDArray[np.int64] = (((a & _QUANT_MASK) << 4) + offset) << np.maximum(seg - 1, 0)
    return np.where(a & _SIGN_BIT, t, -t).astype(np.int16)


_ULAW_ENCODE: Final = _build_ulaw_encode()
_ALAW_ENCODE: Final = _build_alaw_encode()
_ULAW_DECODE: Final = _build_ulaw_decode()
_ALAW_DECODE: Final = _build_alaw_decode()

ULAW_TO_ALAW: Final = _ALAW_ENCODE[_ULAW_DECODE.view(np.uint16)].tobytes()
"""``payload.translate(ULAW_TO_ALAW)`` transcodes a µ-law payload without numpy."""
ALAW_TO_ULAW: Final = _ULAW_ENCODE[_ALAW_DECODE.view(np.uint16)].tobytes()
"""``payload.translate(ALAW_TO_ULAW)`` transcodes an A-law payload without numpy."""


def _as_int16(pcm: npt.ArrayLike) -> Int16Array:
    """The samples as int16, refusing other types rather than wrapping them silently."""
    array = np.asarray(pcm)
    if array.dtype != np.int16:
        raise TypeError(f"G.711 encodes int16 samples, not {array.dtype}")
    return array


def ulaw_encode(pcm: npt.ArrayLike) -> bytes:
    """µ-law bytes of int16 samples."""
    return _ULAW_ENCODE[_as_int16(pcm).view(np.uint16)].tobytes()


def alaw_encode(pcm: npt.ArrayLike) -> bytes:
    """A-law bytes of int16 samples."""
    return _ALAW_ENCODE[_as_int16(pcm).view(np.uint16)].tobytes()


def ulaw_decode(data: bytes) -> Int16Array:
    """int16 samples of µ-law bytes."""
    return _ULAW_DECODE[np.frombuffer(data, dtype=np.uint8)]


def alaw_decode(data: bytes) -> Int16Array:
    """int16 samples of A-law bytes."""
    return _ALAW_DECODE[np.frombuffer(data, dtype=np.uint8)]
