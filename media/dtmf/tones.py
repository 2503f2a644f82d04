"""In-band DTMF detection: a Goertzel bank evaluated as one matrix product per batch.

Audio is int16 at 8 kHz. Every 17 samples (2.1 ms) a 102-sample window is
analysed at the 8 DTMF frequencies and their second harmonics. 102 samples
rather than 205: a 78 Hz bin still puts its null near the adjacent row
(73 to 89 Hz away), and a 12.75 ms window slid in fine steps times a tone
to a few ms, which is what tells a 30 ms blip from a 40 ms press (ITU-T
Q.24); 25.6 ms windows cannot. Frequency is not judged by bin energy
(78 Hz bins cannot see 1.5 % at 697 Hz) but by the phase advance between
windows ``PHASE_LAG`` hops apart, which measures the deviation directly.

A window is a *hit* for key K when all of these hold (dBm0: 0 dBm0 is a
sine 3.17 dB below int16 full scale, as for G.711 µ-law):

- each tone at least ``MIN_LEVEL_DBM0`` (-30 dBm0: halfway between the
  -25 dBm0 that must be heard and the -35 dBm0 that must not);
- twist within ``MAX_NORMAL_TWIST_DB`` (row louder) and
  ``MAX_REVERSE_TWIST_DB`` (column louder), the Q.24 limits;
- each tone beats the other tones of its group by ``MIN_DOMINANCE_DB``;
- both tones within ``MAX_DEVIATION`` of nominal (2.5 %: halfway between
  the ±1.5 % that must pass and the ±3.5 % that must not);
- the pair carries ``MIN_SHARE`` of the window's energy, and neither
  tone's second harmonic (after removing what the pair itself leaks into
  that bin) comes within ``MIN_HARMONIC_DB`` of it: speech is rich in
  harmonics, DTMF has none.

A key is reported once, when ``MIN_HITS`` hits (16 windows: about 40 ms
of tone with the phase lag; 30 ms never gets there) confirm it, misses of
at most ``MAX_DROPOUT_MISSES`` windows (speech or noise spoiling a window)
not breaking the count; a new key needs ``MIN_PAUSE_MISSES`` consecutive
non-hits (about 30 ms of quiet) first, so a press is reported once however
long it is held.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = ["ToneDetector"]

SAMPLE_RATE = 8000
WINDOW = 102
HOP = 17
ROWS = (697.0, 770.0, 852.0, 941.0)
COLUMNS = (1209.0, 1336.0, 1477.0, 1633.0)
KEYS = ("123A", "456B", "789C", "*0#D")

FULL_SCALE_0DBM0 = 32767.0 * 10 ** (-3.17 / 20)
"""Peak amplitude of a 0 dBm0 sine in int16 samples."""
MIN_LEVEL_DBM0 = -30.0
MAX_NORMAL_TWIST_DB = 8.0
MAX_REVERSE_TWIST_DB = 4.0
MIN_DOMINANCE_DB = 4.0
MAX_DEVIATION = 0.025
MIN_SHARE = 0.2
MIN_HARMONIC_DB = 10.0
MIN_HITS = 16
MIN_PAUSE_MISSES = 10
MAX_DROPOUT_MISSES = 6

_TONES = np.array(ROWS + COLUMNS)
_FREQS = np.concatenate([_TONES, 2 * _TONES])
_N = np.arange(WINDOW)
_BASIS = np.exp(-2j * np.pi * np.outer(_N, _FREQS) / SAMPLE_RATE)
"""(WINDOW, 16): one Goertzel (a single DFT bin) per column."""
PHASE_LAG = 3
"""Windows between the two whose phases give the frequency: 51 samples, so
the estimate is unambiguous to ±78 Hz (beyond half the column spacing)."""
_PHASE_STEP = np.exp(-2j * np.pi * _TONES * PHASE_LAG * HOP / SAMPLE_RATE)
"""Nominal phase advance over PHASE_LAG hops, to be removed from the measured one."""
_HZ_PER_RADIAN = SAMPLE_RATE / (2 * np.pi * PHASE_LAG * HOP)
_MIN_AMPLITUDE = FULL_SCALE_0DBM0 * 10 ** (MIN_LEVEL_DBM0 / 20)


def _worst_leakage() -> npt.NDArray[np.float64]:
    """(8 harmonic bins, 8 tones): the most a unit tone up to 2.5 % off puts in a bin.

    Rows' harmonics lie 58 to 71 Hz from columns (2 x 697 = 1394 vs 1336),
    inside the bin's main lobe, so the harmonic test discounts this much.
    """
    table = np.zeros((8, 8))
    phases = np.linspace(0, 2 * np.pi, 8, endpoint=False)
    for tone, nominal in enumerate(_TONES):
        for freq in nominal * np.linspace(1 - MAX_DEVIATION, 1 + MAX_DEVIATION, 11):
            waves = np.cos(2 * np.pi * freq * _N / SAMPLE_RATE + phases[:, None])
            amps = 2 * np.abs(waves @ _BASIS[:, 8:]) / WINDOW
            table[:, tone] = np.maximum(table[:, tone], amps.max(axis=0))
    return table


_LEAKAGE = _worst_leakage()


class ToneDetector:
    """Finds DTMF keys in one stream of int16 8 kHz audio, fed in chunks of any size."""

    def __init__(self) -> None:
        self._pending = np.zeros(0, dtype=np.float64)
        self._history = np.zeros((0, 8), dtype=np.complex128)
        """The last PHASE_LAG windows' tone bins, for the phase advance."""
        self._candidate = ""
        self._hits = 0
        self._misses = MIN_PAUSE_MISSES
        self._reported = ""

    def feed(self, pcm: npt.NDArray[np.int16]) -> list[str]:
        """The keys whose press is confirmed within ``pcm``, in order."""
        samples = np.concatenate([self._pending, np.asarray(pcm, dtype=np.float64)])
        count = (len(samples) - WINDOW) // HOP + 1 if len(samples) >= WINDOW else 0
        self._pending = samples[count * HOP :]
        if count == 0:
            return []
        windows = np.lib.stride_tricks.sliding_window_view(samples, WINDOW)[: count * HOP : HOP]
        return [key for key in self._decide(windows) if key]

    def _decide(self, windows: npt.NDArray[np.float64]) -> list[str]:
        keys = self._classify(windows, (windows @ _BASIS).astype(np.complex128, copy=False))
        return [self._step(str(key)) for key in keys]

    def _classify(
        self, windows: npt.NDArray[np.float64], bins: npt.NDArray[np.complex128]
    ) -> npt.NDArray[np.str_]:
        """Each window's key, or "" when the window is not a clean DTMF pair."""
        amps = 2 * np.abs(bins) / WINDOW
        tone_bins = np.concatenate([self._history, bins[:, :8]])
        self._history = tone_bins[-PHASE_LAG:]
        advance = np.zeros_like(bins[:, :8])
        older = tone_bins[:-PHASE_LAG]
        advance[len(bins) - len(older) :] = tone_bins[PHASE_LAG:] * np.conj(older) * _PHASE_STEP
        deviation = np.angle(advance) * _HZ_PER_RADIAN / _TONES
        known = np.abs(advance) > 0
        idx = np.arange(len(bins))
        row = np.argmax(amps[:, :4], axis=1)
        col = 4 + np.argmax(amps[:, 4:8], axis=1)
        a_row = amps[idx, row]
        a_col = amps[idx, col]
        twist = 20 * np.log10(np.maximum(a_row, 1e-9) / np.maximum(a_col, 1e-9))
        group = amps[:, :8].copy()
        group[idx, row] = 0
        group[idx, col] = 0
        dominance = 10 ** (-MIN_DOMINANCE_DB / 20)
        harmonic_limit = 10 ** (-MIN_HARMONIC_DB / 20)
        leak = _LEAKAGE[:, row].T * a_row[:, None] + _LEAKAGE[:, col].T * a_col[:, None]
        residual = np.maximum(amps[:, 8:] - leak, 0)
        energy = np.mean(windows**2, axis=1)
        ok = (
            (a_row >= _MIN_AMPLITUDE)
            & (a_col >= _MIN_AMPLITUDE)
            & (twist <= MAX_NORMAL_TWIST_DB)
            & (twist >= -MAX_REVERSE_TWIST_DB)
            & (group[:, :4].max(axis=1) <= a_row * dominance)
            & (group[:, 4:].max(axis=1) <= a_col * dominance)
            & known[idx, row]
            & known[idx, col]
            & (np.abs(deviation[idx, row]) <= MAX_DEVIATION)
            & (np.abs(deviation[idx, col]) <= MAX_DEVIATION)
            & ((a_row**2 + a_col**2) / 2 >= MIN_SHARE * energy)
            & (residual[idx, row] <= a_row * harmonic_limit)
            & (residual[idx, col] <= a_col * harmonic_limit)
        )
        table = np.array([list(keys) for keys in KEYS])
        return np.where(ok, table[row, col - 4], "")

    def _step(self, key: str) -> str:
        """Advance the press/pause state machine by one window; the key when confirmed."""
        if not key:
            self._misses += 1
            if self._misses > MAX_DROPOUT_MISSES:
                self._hits = 0
                self._candidate = ""
            if self._misses >= MIN_PAUSE_MISSES:
                self._reported = ""
            return ""
        self._misses = 0
        if key != self._candidate:
            self._candidate = key
            self._hits = 0
        self._hits += 1
        if self._reported or self._hits < MIN_HITS:
            return ""
        self._reported = key
        return key
