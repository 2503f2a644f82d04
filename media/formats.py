"""Prompt file formats: what a WAV file is, and whether it may be played as a prompt.

The service descriptions fix the prompt format at PCM, 11,025 Hz, 8 bit,
mono, in a WAV file. A wrong file is refused when the tree is loaded, with a
sentence that says what the file is and what it must be, so the customer can
re-export it instead of hearing silence on a live call.

The player (media/prompts.py) also takes telephony-ready files, 8,000 Hz mono
in PCM 16 bit, µ-law or A-law, which need no resampling (the engine's own
announcements, recordings). Trees keep to the service description's format:
everything a tree accepts plays, and a customer is never told a format is
fine that the description does not promise.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import soundfile

__all__ = [
    "PROMPT_FORMAT",
    "TELEPHONY_FORMAT",
    "WavFormat",
    "WavFormatError",
    "describe_wav",
    "prompt_format_problem",
]

PROMPT_FORMAT = "PCM 11025 Hz, 8 bit, mono WAV"
_WAV_CONTAINERS = frozenset({"WAV", "WAVEX"})
_PROMPT_SAMPLERATE = 11025
_PROMPT_SUBTYPE = "PCM_U8"
TELEPHONY_FORMAT = "a telephony-ready 8000 Hz mono WAV (PCM 16 bit, G.711 µ-law or A-law)"
_TELEPHONY_SAMPLERATE = 8000
_TELEPHONY_SUBTYPES = frozenset({"PCM_16", "ULAW", "ALAW"})

_SUBTYPES = {
    "PCM_U8": "PCM 8 bit",
    "PCM_S8": "PCM 8 bit signed",
    "PCM_16": "PCM 16 bit",
    "PCM_24": "PCM 24 bit",
    "PCM_32": "PCM 32 bit",
    "FLOAT": "32-bit float",
    "DOUBLE": "64-bit float",
    "ULAW": "G.711 µ-law",
    "ALAW": "G.711 A-law",
    "IMA_ADPCM": "IMA ADPCM",
    "MS_ADPCM": "Microsoft ADPCM",
    "GSM610": "GSM 6.10",
    "G721_32": "G.721 ADPCM",
}


class WavFormatError(Exception):
    """A file that cannot be described as audio (missing, unreadable, not a sound file)."""


@dataclass(frozen=True, slots=True)
class WavFormat:
    """The format of an audio file as libsndfile reads it."""

    container: str
    """``WAV``, ``WAVEX``, ``FLAC``, ... (libsndfile's major format)."""
    subtype: str
    """``PCM_U8``, ``PCM_16``, ``ULAW``, ... (libsndfile's subtype)."""
    samplerate: int
    channels: int

    @property
    def is_prompt(self) -> bool:
        """PCM 11,025 Hz, 8 bit, mono, in a WAV container."""
        return (
            self.container in _WAV_CONTAINERS
            and self.subtype == _PROMPT_SUBTYPE
            and self.samplerate == _PROMPT_SAMPLERATE
            and self.channels == 1
        )

    @property
    def is_telephony(self) -> bool:
        """8,000 Hz mono WAV in PCM 16 bit, µ-law or A-law: playable as it is."""
        return (
            self.container in _WAV_CONTAINERS
            and self.subtype in _TELEPHONY_SUBTYPES
            and self.samplerate == _TELEPHONY_SAMPLERATE
            and self.channels == 1
        )

    def describe(self) -> str:
        """``PCM 16 bit, stereo, 44100 Hz`` (and the container when not WAV)."""
        encoding = _SUBTYPES.get(self.subtype, self.subtype)
        channels = {1: "mono", 2: "stereo"}.get(self.channels, f"{self.channels} channels")
        text = f"{encoding}, {channels}, {self.samplerate} Hz"
        if self.container not in _WAV_CONTAINERS:
            text = f"a {self.container} file ({text}), not a WAV file"
        return text


def describe_wav(path: Path | str) -> WavFormat:
    """Read an audio file's header, or raise WavFormatError saying why not."""
    file = Path(path)
    if not file.exists():
        raise WavFormatError("does not exist")
    if not file.is_file():
        raise WavFormatError("is not a file")
    try:
        info = soundfile.info(str(file))
    except (RuntimeError, OSError, soundfile.LibsndfileError):
        raise WavFormatError("is not a sound file (it cannot be read as audio)") from None
    return WavFormat(
        container=str(info.format),
        subtype=str(info.subtype),
        samplerate=int(info.samplerate),
        channels=int(info.channels),
    )


def prompt_format_problem(
    path: Path | str, name: str | None = None, *, telephony: bool = False
) -> str | None:
    """None for a playable prompt, else a sentence naming what it is and must be.

    ``name`` is how the file is called in the message (the path as the user
    wrote it); it defaults to ``path``. ``telephony`` also accepts
    telephony-ready files (the player's rule; trees use the default).
    """
    shown = name if name is not None else str(path)
    alternative = f", or {TELEPHONY_FORMAT}" if telephony else ""
    if not Path(path).is_file():
        return f"{shown} does not exist" if not Path(path).exists() else f"{shown} is not a file"
    try:
        found = describe_wav(path)
    except WavFormatError as exc:
        return f"{shown} {exc}; a prompt must be a {PROMPT_FORMAT} file{alternative}"
    if found.is_prompt or (telephony and found.is_telephony):
        return None
    return f"{shown} is {found.describe()}; a prompt must be {PROMPT_FORMAT}{alternative}"
