"""Resampling: the telephone band passes untouched, what would alias is gone, lengths exact."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import numpy.typing as npt
import pytest

from media.resample import resample


def _tone(freq: float, rate: int, seconds: float = 1.0) -> npt.NDArray[np.float64]:
    return np.sin(2 * np.pi * freq * np.arange(round(rate * seconds)) / rate)


def _middle(samples: npt.NDArray[np.float32], rate: int) -> npt.NDArray[np.float32]:
    """Away from the edges, where the filter sees zero padding."""
    return samples[rate // 10 : -rate // 10]


def _level_db(samples: npt.NDArray[np.float32]) -> float:
    """RMS level relative to a full-scale sine."""
    return float(20 * np.log10(np.sqrt(np.mean(np.square(samples, dtype=np.float64))) * np.sqrt(2)))


@pytest.mark.parametrize("rate_in", [11025, 16000, 44100])
def test_1khz_passes_unchanged_and_undelayed(rate_in: int) -> None:
    out = resample(_tone(1000, rate_in), rate_in, 8000)
    assert out.dtype == np.float32
    assert abs(_level_db(_middle(out, 8000))) < 0.2
    # Sample n is at time n / 8000: the same sine, with no delay.
    expected = _middle(_tone(1000, 8000).astype(np.float32), 8000)
    assert np.max(np.abs(_middle(out, 8000) - expected)) < 1e-3


@pytest.mark.parametrize("freq", [3000, 3400])
def test_the_telephone_band_passes(freq: int) -> None:
    assert abs(_level_db(_middle(resample(_tone(freq, 11025), 11025, 8000), 8000))) < 0.2


@pytest.mark.parametrize(
    ("rate_in", "freq"),
    [(11025, 4500), (11025, 5000), (44100, 4500), (44100, 12000), (16000, 4200), (16000, 7000)],
)
def test_what_would_alias_is_attenuated_60db(rate_in: int, freq: int) -> None:
    assert _level_db(_middle(resample(_tone(freq, rate_in), rate_in, 8000), 8000)) < -60


def test_upsampling_leaves_no_images() -> None:
    # 1 kHz at 8 kHz upsampled to 16 kHz: the image at 7 kHz must be gone.
    out = _middle(resample(_tone(1000, 8000), 8000, 16000), 16000)
    expected = _middle(_tone(1000, 16000).astype(np.float32), 16000)
    assert _level_db(out - expected) < -60


@pytest.mark.parametrize(
    ("rate_in", "rate_out"),
    [(11025, 8000), (16000, 8000), (44100, 8000), (8000, 11025), (8000, 16000)],
)
@pytest.mark.parametrize("length", [0, 1, 2, 159, 441, 1000, 11025, 12345])
def test_length_is_exact(rate_in: int, rate_out: int, length: int) -> None:
    out = resample(np.ones(length), rate_in, rate_out)
    assert len(out) == round(Fraction(length * rate_out, rate_in))


def test_dc_is_preserved() -> None:
    out = resample(np.full(11025, 0.5), 11025, 8000)
    assert np.allclose(_middle(out, 8000), 0.5, atol=1e-6)


def test_same_rate_is_a_copy() -> None:
    samples = np.linspace(-1, 1, 100, dtype=np.float32)
    out = resample(samples, 8000, 8000)
    assert np.array_equal(out, samples)
    assert out is not samples


def test_bad_input_is_refused() -> None:
    with pytest.raises(ValueError, match="positive"):
        resample(np.zeros(10), 0, 8000)
    with pytest.raises(ValueError, match="one channel"):
        resample(np.zeros((10, 2)), 11025, 8000)
