"""In-band DTMF: levels, timing, frequency tolerance, twist, noise, and talk-off on real speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from media.dtmf import ToneDetector
from media.dtmf.tones import COLUMNS, FULL_SCALE_0DBM0, KEYS, ROWS

ALL = "0123456789*#ABCD"
PROMPTS = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "prompts"
SPEECH = ["busy-fr.wav", "campaign-en.wav", "closed-nl.wav", "drs-password-en.wav"]
Signal = npt.NDArray[np.float64]


def _tone(
    rng: np.random.Generator,
    key: str,
    ms: float,
    level: float = -10.0,
    twist: float = 0.0,
    deviation: tuple[float, float] = (0.0, 0.0),
) -> Signal:
    """Row at ``level`` dBm0, column ``twist`` dB weaker, random phases."""
    row = next(i for i, keys in enumerate(KEYS) if key in keys)
    col = KEYS[row].index(key)
    t = np.arange(round(ms * 8)) / 8000
    phases = rng.uniform(0, 2 * np.pi, 2)
    amp = FULL_SCALE_0DBM0 * 10 ** (level / 20)
    return amp * np.sin(2 * np.pi * ROWS[row] * (1 + deviation[0]) * t + phases[0]) + amp * 10 ** (
        -twist / 20
    ) * np.sin(2 * np.pi * COLUMNS[col] * (1 + deviation[1]) * t + phases[1])


def _silence(ms: float) -> Signal:
    return np.zeros(round(ms * 8))


def _detect(signal: Signal, chunk: int = 160) -> str:
    pcm = np.clip(np.round(signal), -32768, 32767).astype(np.int16)
    detector = ToneDetector()
    return "".join(d for i in range(0, len(pcm), chunk) for d in detector.feed(pcm[i : i + chunk]))


def _sequence(rng: np.random.Generator, keys: str, on: float, off: float, **kw: float) -> Signal:
    parts = [_silence(20)]
    for key in keys:
        parts += [_tone(rng, key, on, **kw), _silence(off)]  # type: ignore[arg-type]
    return np.concatenate(parts)


@pytest.mark.parametrize("level", [-3.0, -6.0, -12.0, -18.0, -25.0])
@pytest.mark.parametrize("chunk", [160, 37])
def test_all_keys_50_ms_on_50_off(level: float, chunk: int) -> None:
    rng = np.random.default_rng(1)
    assert _detect(_sequence(rng, ALL, 50, 50, level=level), chunk) == ALL


def test_too_quiet_is_ignored() -> None:
    assert _detect(_sequence(np.random.default_rng(2), ALL, 50, 50, level=-35.0)) == ""


def test_30_ms_ignored_40_ms_found() -> None:
    rng = np.random.default_rng(3)
    for offset in range(0, 17, 4):
        lead = _silence(20 + offset / 8)
        for key in ALL:
            assert _detect(np.concatenate([lead, _tone(rng, key, 30), _silence(60)])) == ""
            assert _detect(np.concatenate([lead, _tone(rng, key, 40), _silence(60)])) == key


def test_same_key_twice_needs_a_pause() -> None:
    rng = np.random.default_rng(4)
    assert _detect(_sequence(rng, "1122", 60, 40)) == "1122"
    broken = np.concatenate([_tone(rng, "5", 60), _silence(8), _tone(rng, "5", 60)])
    assert _detect(np.concatenate([_silence(20), broken, _silence(50)])) == "5"


@pytest.mark.parametrize("deviation", [0.015, -0.015])
def test_off_frequency_within_tolerance_found(deviation: float) -> None:
    rng = np.random.default_rng(5)
    for dev in [(deviation, 0.0), (0.0, deviation), (deviation, deviation)]:
        assert _detect(_sequence(rng, ALL, 60, 60, deviation=dev)) == ALL  # type: ignore[arg-type]


@pytest.mark.parametrize("deviation", [0.035, -0.035, 0.05])
def test_off_frequency_beyond_tolerance_ignored(deviation: float) -> None:
    rng = np.random.default_rng(6)
    for dev in [(deviation, 0.0), (0.0, deviation)]:
        assert _detect(_sequence(rng, ALL, 60, 60, deviation=dev)) == ""  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("twist", "found"), [(6.0, True), (-2.0, True), (10.0, False), (-6.0, False)]
)
def test_twist(twist: float, found: bool) -> None:
    signal = _sequence(np.random.default_rng(7), ALL, 60, 60, level=-8.0, twist=twist)
    assert _detect(signal) == (ALL if found else "")


@pytest.mark.parametrize("snr_db", [15.0, 6.0])
def test_white_noise(snr_db: float) -> None:
    rng = np.random.default_rng(8)
    signal = _sequence(rng, ALL, 50, 50, level=-20.0)
    tone_power = (FULL_SCALE_0DBM0 * 10 ** (-20 / 20)) ** 2  # two tones of A²/2 each
    noisy = signal + rng.normal(0, np.sqrt(tone_power / 10 ** (snr_db / 10)), len(signal))
    assert _detect(noisy) == ALL


def _speech() -> list[Signal]:
    soundfile = pytest.importorskip("soundfile")
    resample = pytest.importorskip("media.resample").resample
    if not PROMPTS.is_dir():
        pytest.skip("shared/ is not beside the checkout")
    out = []
    for name in SPEECH:
        samples, rate = soundfile.read(str(PROMPTS / name), dtype="float32")
        out.append(np.asarray(resample(samples * 32768, rate, 8000), dtype=np.float64))
    return out


def test_no_talk_off_on_real_speech() -> None:
    for speech in _speech():
        assert _detect(speech) == ""


def _is_subsequence(found: str, keyed: str) -> bool:
    rest = iter(keyed)
    return all(digit in rest for digit in found)


@pytest.mark.parametrize(("level", "may_miss"), [(-6.0, 0), (-12.0, 1), (-18.0, 3)])
def test_tones_over_speech(level: float, may_miss: int) -> None:
    """Speech at its own level (about -14 dBm0 when talking) with 100 ms presses.

    At -12 and -18 dBm0 a press under the loudest syllables may be lost (a
    tone 4 to 10 dB below the speech), but no digit is ever invented.
    """
    speech = np.concatenate(_speech())
    keyed = ALL * 3
    tones = _sequence(np.random.default_rng(9), keyed, 100, 100, level=level)
    found = _detect(speech[: len(tones)] + tones)
    assert _is_subsequence(found, keyed)
    assert len(found) >= len(keyed) - may_miss
