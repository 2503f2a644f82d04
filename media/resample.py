"""Rational polyphase resampling with a Kaiser-windowed sinc low-pass.

Prompts arrive at 11,025 Hz (the campaign format) and are played at 8,000 Hz,
a ratio of 320/441: upsampling by 320 and filtering at 3.5 MHz would be
absurd, so each output sample is computed directly from the input samples
around it with the one filter phase that lands there (polyphase), and only
the outputs that are kept are ever computed.

The low-pass is designed relative to the lower of the two rates, f_low:
its passband ends at 0.425 f_low (3,400 Hz at 8 kHz, the top of the
telephone band) and its stopband starts at 0.5 f_low (the output Nyquist
when downsampling), so nothing above the output band can alias back into it
and the telephone band itself is untouched. The cutoff sits halfway, at
0.4625 f_low, and the Kaiser window is sized for 70 dB of stopband
attenuation (60 dB required, with margin for truncating the kernel into
phases).
"""

from __future__ import annotations

from fractions import Fraction
from functools import lru_cache
from math import ceil, gcd, pi

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import sliding_window_view

__all__ = ["resample"]

Float32Array = npt.NDArray[np.float32]

_PASSBAND_EDGE = 0.425
"""Passband edge as a fraction of the lower rate."""
_STOPBAND_EDGE = 0.5
"""Stopband edge as a fraction of the lower rate: the lower Nyquist frequency."""
_ATTENUATION_DB = 70.0


def resample(samples: npt.ArrayLike, rate_in: int, rate_out: int) -> Float32Array:
    """``samples`` (one channel) taken from ``rate_in`` to ``rate_out`` Hz, as float32.

    The result is in the input's scale (pass floats in [-1, 1] and clip after:
    a full-scale square wave overshoots). It has exactly
    ``round(len(samples) * rate_out / rate_in)`` samples, sample n at time
    n / rate_out like input sample k at k / rate_in (no delay).
    """
    if rate_in <= 0 or rate_out <= 0:
        raise ValueError(f"sample rates must be positive, not {rate_in} and {rate_out}")
    x = np.asarray(samples, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"resample takes one channel (a 1-D array), not shape {x.shape}")
    if rate_in == rate_out:
        return x.copy()
    common = gcd(rate_in, rate_out)
    up, down = rate_out // common, rate_in // common
    length = round(Fraction(len(x) * rate_out, rate_in))
    phases, half = _phases(up, down)
    taps = phases.shape[1]
    # Zero padding, so that every output's window of input samples exists.
    padded = np.concatenate([np.zeros(half, np.float32), x, np.zeros(taps - half, np.float32)])
    windows = sliding_window_view(padded, taps)
    out = np.empty(length, dtype=np.float32)
    # Outputs n, n + up, n + 2·up, ... use the same phase, and their windows
    # start `down` input samples apart: one matrix-vector product per phase.
    for first in range(min(up, length)):
        position = first * down
        start, phase = divmod(position, up)
        count = len(range(first, length, up))
        out[first::up] = windows[start : start + count * down : down] @ phases[phase]
    return out


@lru_cache(maxsize=16)
def _phases(up: int, down: int) -> tuple[Float32Array, int]:
    """The filter split into ``up`` phases of equal length, and the taps before centre.

    Row p holds the taps applied, oldest input first, to an output that falls
    p/up of an input sample after the input sample it is aligned on. Each row
    is normalised to unit sum, so that DC passes exactly whatever the phase.
    """
    # Frequencies in cycles per upsampled sample: the rates are `up` and
    # `down` times a common rate, the upsampled rate `up·down` times it.
    scale = min(up, down) / (up * down)
    cutoff = (_PASSBAND_EDGE + _STOPBAND_EDGE) / 2 * scale
    transition = (_STOPBAND_EDGE - _PASSBAND_EDGE) * scale
    beta = 0.1102 * (_ATTENUATION_DB - 8.7)
    length = (_ATTENUATION_DB - 7.95) / (2.285 * 2 * pi * transition)  # Kaiser's estimate
    half = ceil(length / up / 2)  # input samples on each side of the centre
    reach = (half + 1) * up  # the window's half-width, in upsampled samples
    # Row p, column i: the kernel at distance p + (half - i)·up from the output.
    distance = np.arange(up)[:, None] + (half - np.arange(2 * half + 2))[None, :] * up
    ratio = distance / reach
    window = np.i0(beta * np.sqrt(np.clip(1.0 - ratio * ratio, 0.0, None))) / np.i0(beta)
    kernel = np.sinc(2 * cutoff * distance) * window
    kernel /= kernel.sum(axis=1, keepdims=True)
    result = kernel.astype(np.float32)
    result.flags.writeable = False
    return result, half
