"""Call recordings: 8 kHz, 8-bit A-law WAV files that survive a crash of the engine.

The service sells recording capacity as "1 MB holds about 2 minutes", which
is 8,000 bytes per second: 8 kHz, one byte per sample, one channel. A-law
is the byte format the network already speaks (and what libsndfile and
every player read as ``WAVE_FORMAT_ALAW``). Stereo (one party per channel)
doubles the size but lets a supervisor hear each side on its own.

A recording is written to ``NAME.wav.part`` with placeholder sizes in its
header and only renamed to ``NAME.wav`` once the sizes are right, so a file
with the final name is always a complete, valid WAV. Audio is buffered in
memory and handed to the kernel at least every second of audio, so a crash
of the engine loses at most that second; ``recover_partials`` turns what a
crash left behind into valid WAVs at the next start. A writer holds an
exclusive ``flock`` on its ``.part`` while it writes, and recovery leaves
locked files alone: several engines may share one ``data_dir``, and one
starting must not "recover" the live recordings of another.
"""

from __future__ import annotations

import fcntl
import os
import struct
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import numpy.typing as npt

from media.g711 import alaw_encode

__all__ = [
    "FLUSH_FRAMES",
    "FRAME_SAMPLES",
    "HEADER_SIZE",
    "SAMPLE_RATE",
    "RecordingWriter",
    "recover_partials",
]

SAMPLE_RATE = 8000
FRAME_SAMPLES = 160
"""One 20 ms RTP frame per party, what ``write`` takes."""
FLUSH_FRAMES = SAMPLE_RATE
"""Sample frames buffered before they go to the file: one second of audio."""

_WAVE_FORMAT_ALAW = 6
# RIFF header, "fmt " chunk with cbSize (18 bytes, as non-PCM formats carry),
# "fact" chunk (sample frames: required for non-PCM), "data" chunk header.
_HEADER = struct.Struct("<4sI4s 4sIHHIIHHH 4sII 4sI")
HEADER_SIZE = _HEADER.size
"""58 bytes: everything before the first A-law byte."""

Channels = Literal[1, 2]


def _header(channels: int, data_size: int) -> bytes:
    """The WAV header for ``data_size`` bytes of A-law (0 while still recording)."""
    riff_size = HEADER_SIZE - 8 + data_size + (data_size & 1)
    return _HEADER.pack(
        b"RIFF", riff_size, b"WAVE",
        b"fmt ", 18, _WAVE_FORMAT_ALAW, channels, SAMPLE_RATE, SAMPLE_RATE * channels,
        channels, 8, 0,
        b"fact", 4, data_size // channels,
        b"data", data_size,
    )  # fmt: skip


def _finish(file: BinaryIO, channels: int, data_size: int) -> None:
    """Pad the data chunk to an even length (RIFF rule), write the real sizes, fsync."""
    file.seek(HEADER_SIZE + data_size)
    file.truncate()
    if data_size & 1:
        file.write(b"\0")
    file.seek(0)
    file.write(_header(channels, data_size))
    file.flush()
    os.fsync(file.fileno())


def _fsync_directory(directory: Path) -> None:
    """Make a rename durable: it lives in the directory, not in the file."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _part_path(final: Path) -> Path:
    return final.with_name(final.name + ".part")


class RecordingWriter:
    """Writes one call's audio, frame by frame, to ``path_final`` (via a ``.part`` file).

    Mono mixes both parties (summed in 32 bits and clipped, so two loud
    parties saturate instead of wrapping into noise); stereo puts party A on
    the left channel and party B on the right.
    """

    def __init__(self, path_final: Path, channels: Channels) -> None:
        if channels not in (1, 2):
            raise ValueError(f"a recording has 1 or 2 channels, not {channels}")
        self.path_final = path_final
        self.channels: int = channels
        self._part = _part_path(path_final)
        # "x": never truncate a partial recording a crash left under the same name.
        self._file: BinaryIO = self._part.open("xb")
        fcntl.flock(self._file, fcntl.LOCK_EX | fcntl.LOCK_NB)  # ours alone: recovery skips it
        self._file.write(_header(channels, 0))
        self._buffer: list[bytes] = []
        self._buffered_frames = 0
        self._data_size = 0
        self._closed = False

    @property
    def data_size(self) -> int:
        """A-law bytes recorded so far, buffered ones included."""
        return self._data_size

    def write(
        self, a: npt.NDArray[np.int16] | None, b: npt.NDArray[np.int16] | None
    ) -> None:
        """Record one frame of each party (int16 samples); None is silence for that party."""
        length = len(a) if a is not None else len(b) if b is not None else FRAME_SAMPLES
        if a is not None and b is not None and len(a) != len(b):
            raise ValueError(f"frames of {len(a)} and {len(b)} samples cannot be recorded together")
        zeros = np.zeros(length, dtype=np.int16)
        left = zeros if a is None else a
        right = zeros if b is None else b
        if self.channels == 1:
            mixed = np.clip(left.astype(np.int32) + right.astype(np.int32), -32768, 32767)
            encoded = alaw_encode(mixed.astype(np.int16))
        else:
            encoded = alaw_encode(np.column_stack((left, right)).astype(np.int16).ravel())
        self._buffer.append(encoded)
        self._data_size += len(encoded)
        self._buffered_frames += length
        if self._buffered_frames >= FLUSH_FRAMES:
            self.flush()

    def flush(self) -> None:
        """Hand the buffered audio to the kernel (it then survives a crash of the engine)."""
        self._file.write(b"".join(self._buffer))
        self._file.flush()
        self._buffer.clear()
        self._buffered_frames = 0

    def close(self) -> Path:
        """Complete the file and give it its final name, durably; the final path."""
        if not self._closed:
            self.flush()
            _finish(self._file, self.channels, self._data_size)
            self._file.close()
            os.replace(self._part, self.path_final)
            _fsync_directory(self.path_final.parent)
            self._closed = True
        return self.path_final


def _read_header(header: bytes) -> tuple[int, int] | None:
    """Channels and declared data size of one of our headers, or None if it is not ours."""
    if len(header) != HEADER_SIZE:
        return None
    fields = _HEADER.unpack(header)
    tags = (fields[0], fields[2], fields[3], fields[12], fields[15])
    if tags != (b"RIFF", b"WAVE", b"fmt ", b"fact", b"data"):
        return None
    if fields[5] != _WAVE_FORMAT_ALAW or fields[6] not in (1, 2):
        return None
    return int(fields[6]), int(fields[16])


def _free_name(final: Path) -> Path:
    """``final`` if free, else ``NAME-recovered.wav`` (then ``-recovered-2`` and so on)."""
    candidate = final
    index = 1
    while candidate.exists():
        suffix = "-recovered" if index == 1 else f"-recovered-{index}"
        candidate = final.with_name(f"{final.stem}{suffix}{final.suffix}")
        index += 1
    return candidate


def recover_partials(directory: Path) -> list[Path]:
    """Make WAVs of the ``*.wav.part`` files a crash left in ``directory``; their paths.

    The audio kept is what reached the file, cut to whole sample frames (a
    crash can stop a write between the two channels of a stereo frame), or
    what the header says if the crash came between ``close``'s fsync and its
    rename. A
    ``.part`` too short or too strange to hold our header is renamed
    ``.broken`` rather than deleted: it may still matter to someone.
    """
    recovered = []
    for part in sorted(directory.glob("*.wav.part")):
        final = part.with_name(part.name.removesuffix(".part"))
        with part.open("r+b") as file:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # a live recording of another engine on this data_dir
            header = _read_header(file.read(HEADER_SIZE))
            if header is not None:
                channels, declared = header
                size = file.seek(0, os.SEEK_END) - HEADER_SIZE
                if 0 < declared <= size:  # finished but not renamed: trust the header
                    size = declared
                _finish(file, channels, size - size % channels)
        if header is None:
            os.replace(part, _free_name(final.with_name(final.name + ".broken")))
        else:
            target = _free_name(final)
            os.replace(part, target)
            recovered.append(target)
    if recovered:
        _fsync_directory(directory)
    return recovered
