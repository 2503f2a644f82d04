"""The ringing tone a caller hears from the engine while a callee rings behind an anchored call.

Once the engine has answered the caller itself (a menu) or sent it early
media, the caller's phone no longer makes its own ringing tone, so the
engine plays one: 425 Hz, 1 s on and 3 s off (ITU-T E.180, as Belgian and
most European networks ring), at -10 dBm0. Four seconds of it are encoded
once per codec and looped.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from media.g711 import alaw_encode, ulaw_encode

__all__ = ["ringback_frames"]

RATE = 8000
FRAME = 160
FREQUENCY = 425.0
ON, OFF = 1.0, 3.0
LEVEL_DBM0 = -10.0
_ZERO_DBM0 = 32767 / 10 ** (3.17 / 20)  # a sine at 0 dBm0 in G.711 (3.17 dB below full scale)


@cache
def ringback_frames(codec: str) -> tuple[bytes, ...]:
    """One cadence (4 s) of ringing tone as 20 ms payloads in ``PCMU`` or ``PCMA``."""
    t = np.arange(int(RATE * ON)) / RATE
    amplitude = _ZERO_DBM0 * 10 ** (LEVEL_DBM0 / 20)
    tone = np.rint(amplitude * np.sin(2 * np.pi * FREQUENCY * t)).astype(np.int16)
    cadence = np.concatenate([tone, np.zeros(int(RATE * OFF), dtype=np.int16)])
    if codec == "PCMU":
        data = ulaw_encode(cadence)
    elif codec == "PCMA":
        data = alaw_encode(cadence)
    else:
        raise ValueError(f"ringing tone in PCMU or PCMA, not {codec}")
    return tuple(data[i : i + FRAME] for i in range(0, len(data), FRAME))
