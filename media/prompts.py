"""Prompts ready to play: read once, resampled to 8 kHz, encoded once per codec.

A prompt is played to many calls, often at the same time, so all the work
(format check, resampling, G.711 encoding) happens when it is loaded, and
playing it is slicing bytes into 20 ms RTP payloads. A changed file is
noticed by the cache through its modification time and size.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import soundfile

from media.formats import prompt_format_problem
from media.g711 import ALAW_SILENCE, ULAW_SILENCE, alaw_encode, ulaw_encode
from media.resample import resample

__all__ = ["FRAME_SAMPLES", "RATE", "Prompt", "PromptCache", "PromptError", "load_prompt"]

RATE = 8000
"""The rate prompts are played at: G.711's."""
FRAME_SAMPLES = 160
"""Samples (and G.711 bytes) in one 20 ms RTP payload."""
_SILENCE = {"PCMU": ULAW_SILENCE, "PCMA": ALAW_SILENCE}


class PromptError(Exception):
    """A prompt that cannot be played: its message says why, for the person who supplied it."""


@dataclass(frozen=True, eq=False, slots=True)
class Prompt:
    """One prompt at 8 kHz, in linear and in both G.711 laws."""

    name: str
    path: Path
    pcm: npt.NDArray[np.int16]
    """The samples at 8 kHz, read-only (a prompt is shared by every call playing it)."""
    ulaw: bytes
    alaw: bytes
    _frames: dict[str, tuple[bytes, ...]] = field(default_factory=dict, repr=False)

    @classmethod
    def from_pcm(cls, name: str, path: Path, pcm: npt.NDArray[np.int16]) -> Prompt:
        """The prompt of these 8 kHz samples, encoded in both laws now."""
        frozen = pcm.copy()
        frozen.flags.writeable = False
        return cls(name, path, frozen, ulaw_encode(frozen), alaw_encode(frozen))

    @property
    def duration(self) -> float:
        """Length in seconds."""
        return len(self.pcm) / RATE

    def frames(self, codec: str) -> tuple[bytes, ...]:
        """20 ms payloads for ``PCMU`` or ``PCMA``, the last one padded with silence.

        Cut once per codec and shared: every call playing the prompt sends the same frames.
        """
        cached = self._frames.get(codec)
        if cached is not None:
            return cached
        if codec not in _SILENCE:
            raise ValueError(f"prompts play as PCMU or PCMA, not {codec}")
        data = self.ulaw if codec == "PCMU" else self.alaw
        if len(data) % FRAME_SAMPLES:
            padding = FRAME_SAMPLES - len(data) % FRAME_SAMPLES
            data += bytes([_SILENCE[codec]]) * padding
        frames = tuple(data[i : i + FRAME_SAMPLES] for i in range(0, len(data), FRAME_SAMPLES))
        self._frames[codec] = frames
        return frames


def load_prompt(path: Path, name: str = "") -> Prompt:
    """Read, check and convert a prompt file, or raise PromptError saying what is wrong.

    Takes the campaign format (PCM 11,025 Hz, 8 bit, mono WAV) and
    telephony-ready files (8 kHz mono PCM 16 bit, µ-law or A-law WAV).
    ``name`` defaults to the file's stem.
    """
    problem = prompt_format_problem(path, str(path), telephony=True)
    if problem is not None:
        raise PromptError(problem)
    try:
        # libsndfile gives 8-bit PCM as (u - 128)·256 and decodes G.711 itself.
        data, rate = soundfile.read(str(path), dtype="int16", always_2d=False)
    except (RuntimeError, OSError, soundfile.LibsndfileError) as exc:
        raise PromptError(f"{path} cannot be read as audio: {exc}") from None
    samples = np.asarray(data, dtype=np.int16)
    if rate != RATE:
        converted = resample(samples.astype(np.float32) / 32768.0, int(rate), RATE)
        samples = np.rint(np.clip(converted * 32768.0, -32768, 32767)).astype(np.int16)
    return Prompt.from_pcm(name or Path(path).stem, Path(path), samples)


class PromptCache:
    """Prompts by file, loaded once and again only when the file changes.

    A file is known by its resolved path; it is reloaded when its modification
    time (in ns) or size differs from when it was loaded. Not thread-safe: the
    engine uses it from the reactor thread.
    """

    def __init__(self) -> None:
        self._entries: dict[Path, tuple[int, int, Prompt]] = {}

    def get(self, path: Path | str) -> Prompt:
        """The prompt in ``path``, from the cache when the file is unchanged."""
        file = Path(path).resolve()
        try:
            stat = file.stat()
        except OSError as exc:
            self._entries.pop(file, None)
            raise PromptError(f"{path} cannot be read ({exc.strerror})") from None
        entry = self._entries.get(file)
        if entry is not None and entry[:2] == (stat.st_mtime_ns, stat.st_size):
            return entry[2]
        self._entries.pop(file, None)  # a file that no longer loads is not kept either
        prompt = load_prompt(Path(path))
        self._entries[file] = (stat.st_mtime_ns, stat.st_size, prompt)
        return prompt
