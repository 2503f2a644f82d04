"""The engine's ringing tone: 425 Hz, 1 s on, 3 s off, at -10 dBm0."""

from __future__ import annotations

import numpy as np
import pytest

from media.g711 import alaw_decode, ulaw_decode
from media.ringback import ringback_frames


@pytest.mark.parametrize(("codec", "decode"), [("PCMU", ulaw_decode), ("PCMA", alaw_decode)])
def test_cadence_frequency_and_level(codec: str, decode: object) -> None:
    frames = ringback_frames(codec)
    assert len(frames) == 200 and all(len(f) == 160 for f in frames)
    pcm = decode(b"".join(frames)).astype(np.float64)  # type: ignore[operator]
    on, off = pcm[:8000], pcm[8000:]
    assert np.max(np.abs(off)) <= 8  # silence (G.711's smallest steps)
    spectrum = np.abs(np.fft.rfft(on))
    assert np.argmax(spectrum) * 8000 / len(on) == pytest.approx(425, abs=1)
    rms_dbm0 = 20 * np.log10(np.sqrt(np.mean(on**2)) * np.sqrt(2) / (32767 / 10 ** (3.17 / 20)))
    assert rms_dbm0 == pytest.approx(-10, abs=0.5)


def test_other_codecs_are_refused() -> None:
    with pytest.raises(ValueError, match="PCMU or PCMA"):
        ringback_frames("G729")
