"""G.711: bit-exact with Python's audioop and with sox, and the transcoding tables."""

from __future__ import annotations

import shutil
import subprocess
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from media.g711 import (
    ALAW_SILENCE,
    ALAW_TO_ULAW,
    ULAW_SILENCE,
    ULAW_TO_ALAW,
    alaw_decode,
    alaw_encode,
    ulaw_decode,
    ulaw_encode,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

EVERY_SAMPLE = np.arange(65536, dtype=np.uint16).view(np.int16)
EVERY_CODE = bytes(range(256))
SOX = shutil.which("sox")


def test_encode_every_sample_like_audioop() -> None:
    assert ulaw_encode(EVERY_SAMPLE) == audioop.lin2ulaw(EVERY_SAMPLE.tobytes(), 2)
    assert alaw_encode(EVERY_SAMPLE) == audioop.lin2alaw(EVERY_SAMPLE.tobytes(), 2)


def test_decode_every_code_like_audioop() -> None:
    assert ulaw_decode(EVERY_CODE).dtype == np.int16
    assert ulaw_decode(EVERY_CODE).tobytes() == audioop.ulaw2lin(EVERY_CODE, 2)
    assert alaw_decode(EVERY_CODE).tobytes() == audioop.alaw2lin(EVERY_CODE, 2)


def test_known_codes() -> None:
    zero = np.zeros(1, dtype=np.int16)
    assert ulaw_encode(zero) == bytes([ULAW_SILENCE]) == b"\xff"
    assert alaw_encode(zero) == bytes([ALAW_SILENCE]) == b"\xd5"
    extremes = np.array([32767, -32768], dtype=np.int16)
    assert ulaw_encode(extremes) == b"\x80\x00"
    assert alaw_encode(extremes) == b"\xaa\x2a"
    assert ulaw_decode(b"\x80\x00").tolist() == [32124, -32124]
    assert alaw_decode(b"\xaa\x2a").tolist() == [32256, -32256]


def test_decoding_then_encoding_gives_the_code_back() -> None:
    # µ-law has two zeros (0x7F and 0xFF): the negative one comes back positive.
    assert ulaw_encode(ulaw_decode(EVERY_CODE)) == EVERY_CODE.replace(b"\x7f", b"\xff")
    assert alaw_encode(alaw_decode(EVERY_CODE)) == EVERY_CODE


def test_translate_tables_are_decode_then_encode() -> None:
    assert len(ULAW_TO_ALAW) == len(ALAW_TO_ULAW) == 256
    assert EVERY_CODE.translate(ULAW_TO_ALAW) == alaw_encode(ulaw_decode(EVERY_CODE))
    assert EVERY_CODE.translate(ALAW_TO_ULAW) == ulaw_encode(alaw_decode(EVERY_CODE))
    assert bytes([ULAW_SILENCE]).translate(ULAW_TO_ALAW) == bytes([ALAW_SILENCE])


def test_encode_refuses_other_sample_types() -> None:
    with pytest.raises(TypeError, match="int16"):
        ulaw_encode(np.zeros(4, dtype=np.float32))


def _sox(source: list[str], target: list[str], data: bytes, tmp_path: Path) -> bytes:
    """``data`` converted by sox, without dither (sox dithers when it drops bits)."""
    (tmp_path / "in.raw").write_bytes(data)
    command = [
        str(SOX),
        "-D",
        *source,
        str(tmp_path / "in.raw"),
        *target,
        str(tmp_path / "out.raw"),
    ]
    subprocess.run(command, check=True, capture_output=True)
    return (tmp_path / "out.raw").read_bytes()


@pytest.mark.skipif(SOX is None, reason="sox is not installed")
@pytest.mark.parametrize(
    ("encoding", "encode", "decode"),
    [("u-law", ulaw_encode, ulaw_decode), ("a-law", alaw_encode, alaw_decode)],
)
def test_like_sox(
    encoding: str,
    encode: Callable[[npt.NDArray[np.int16]], bytes],
    decode: Callable[[bytes], npt.NDArray[np.int16]],
    tmp_path: Path,
) -> None:
    """Every multiple of 8 (each code's whole range), coded and decoded by sox.

    sox rounds a sample to the law's resolution (14 bits for µ-law, 13 for
    A-law) before coding where audioop and G.711's reference code truncate,
    so the vector stays on that grid, where both agree.
    """
    samples = np.arange(-32768, 32768, 8, dtype=np.int16)
    linear = ["-t", "raw", "-e", "signed", "-b", "16", "-r", "8000", "-c", "1"]
    law = ["-t", "raw", "-e", encoding, "-b", "8", "-r", "8000", "-c", "1"]
    coded = _sox(linear, law, samples.tobytes(), tmp_path)
    assert coded == encode(samples)
    # Every code but µ-law's negative zero, which no sample encodes to.
    assert len(set(coded)) == (255 if encoding == "u-law" else 256)
    assert _sox(law, linear, EVERY_CODE, tmp_path) == decode(EVERY_CODE).tobytes()
