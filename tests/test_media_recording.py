"""Call recordings: A-law WAVs soundfile reads, and what a crash leaves behind."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import soundfile

from media.g711 import alaw_decode, alaw_encode
from media.recording import HEADER_SIZE, RecordingWriter, recover_partials

RNG = np.random.default_rng(7)


def _frames(count: int, amplitude: int = 8000) -> list[npt.NDArray[np.int16]]:
    return [RNG.integers(-amplitude, amplitude, 160).astype(np.int16) for _ in range(count)]


def _quantised(pcm: npt.NDArray[np.int16]) -> npt.NDArray[np.int16]:
    """What the file must hold: the samples through A-law and back."""
    return alaw_decode(alaw_encode(pcm))


def _read(path: Path) -> tuple[npt.NDArray[np.int16], Any]:
    """The samples (frames × channels) and soundfile's description of the file."""
    data, _ = soundfile.read(str(path), dtype="int16", always_2d=True)
    return data, soundfile.info(str(path))


def test_mono_mixes_with_saturation(tmp_path: Path) -> None:
    a, b = _frames(50), _frames(50)
    loud = np.full(160, 30000, dtype=np.int16)
    writer = RecordingWriter(tmp_path / "call.wav", 1)
    for fa, fb in zip(a, b, strict=True):
        writer.write(fa, fb)
    writer.write(loud, loud)  # 60000 clips to 32767 instead of wrapping negative
    writer.write(None, b[0])
    writer.write(None, None)
    path = writer.close()
    assert path == tmp_path / "call.wav"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["call.wav"]
    data, info = _read(path)
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", "ALAW", 8000, 1)
    assert info.frames == 53 * 160
    mixed = [(fa.astype(np.int32) + fb).astype(np.int16) for fa, fb in zip(a, b, strict=True)]
    expected = np.concatenate(
        [*mixed, np.full(160, 32767, np.int16), b[0], np.zeros(160, np.int16)]
    )
    np.testing.assert_array_equal(data[:, 0], _quantised(expected))
    assert data[50 * 160 :][:160, 0].min() > 30000


def test_stereo_one_party_per_channel(tmp_path: Path) -> None:
    a, b = _frames(60), _frames(60)
    writer = RecordingWriter(tmp_path / "s.wav", 2)
    for index, (fa, fb) in enumerate(zip(a, b, strict=True)):
        writer.write(fa, None if index == 59 else fb)
    data, info = _read(writer.close())
    assert (info.format, info.subtype, info.samplerate, info.channels) == ("WAV", "ALAW", 8000, 2)
    np.testing.assert_array_equal(data[:, 0], _quantised(np.concatenate(a)))
    np.testing.assert_array_equal(
        data[:, 1], _quantised(np.concatenate([*b[:59], np.zeros(160, np.int16)]))
    )


def test_header_layout_and_size_arithmetic(tmp_path: Path) -> None:
    writer = RecordingWriter(tmp_path / "ten.wav", 1)
    for _ in range(500):  # 10 s
        writer.write(None, None)
    path = writer.close()
    raw = path.read_bytes()
    assert raw[38:42] == b"fact" and int.from_bytes(raw[46:50], "little") == 80000
    assert raw[20:22] == (6).to_bytes(2, "little")  # WAVE_FORMAT_ALAW
    per_second = (path.stat().st_size - HEADER_SIZE) / 10
    assert per_second == 8000
    assert 1_000_000 / per_second / 60 == pytest.approx(2.08, abs=0.01)  # "1 MB ≈ 2 min"
    stereo = RecordingWriter(tmp_path / "st.wav", 2)
    for _ in range(50):
        stereo.write(None, None)
    assert stereo.close().stat().st_size - HEADER_SIZE == 16000


def test_crash_leaves_only_part_and_recovery_keeps_flushed_audio(tmp_path: Path) -> None:
    frames = _frames(75)  # 1.5 s: the first second is flushed, the rest is buffered
    writer = RecordingWriter(tmp_path / "crash.wav", 1)
    for frame in frames:
        writer.write(frame, None)
    del writer
    gc.collect()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crash.wav.part"]
    assert recover_partials(tmp_path) == [tmp_path / "crash.wav"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["crash.wav"]
    data, info = _read(tmp_path / "crash.wav")
    assert (info.subtype, info.channels) == ("ALAW", 1)
    assert 8000 <= info.frames < 75 * 160
    np.testing.assert_array_equal(
        data[:, 0], _quantised(np.concatenate(frames))[: info.frames]
    )


def test_recovery_cuts_a_torn_stereo_frame(tmp_path: Path) -> None:
    a, b = _frames(50), _frames(50)
    writer = RecordingWriter(tmp_path / "torn.wav", 2)
    for fa, fb in zip(a, b, strict=True):
        writer.write(fa, fb)
    del writer
    gc.collect()
    part = tmp_path / "torn.wav.part"
    with part.open("r+b") as file:
        file.truncate(HEADER_SIZE + 2 * 1234 + 1)  # the left sample of frame 1234 only
    (tmp_path / "torn.wav").write_bytes(b"an earlier recording with the same name")
    assert recover_partials(tmp_path) == [tmp_path / "torn-recovered.wav"]
    data, info = _read(tmp_path / "torn-recovered.wav")
    assert (info.channels, info.frames) == (2, 1234)
    np.testing.assert_array_equal(data[:, 0], _quantised(np.concatenate(a))[:1234])
    np.testing.assert_array_equal(data[:, 1], _quantised(np.concatenate(b))[:1234])
    assert (tmp_path / "torn.wav").read_bytes() == b"an earlier recording with the same name"


def test_odd_mono_length_is_padded(tmp_path: Path) -> None:
    writer = RecordingWriter(tmp_path / "odd.wav", 1)
    writer.write(np.arange(161, dtype=np.int16), None)
    path = writer.close()
    assert path.stat().st_size == HEADER_SIZE + 162
    data, info = _read(path)
    assert info.frames == 161
    np.testing.assert_array_equal(data[:, 0], _quantised(np.arange(161, dtype=np.int16)))


def test_finished_but_not_renamed_trusts_header(tmp_path: Path) -> None:
    writer = RecordingWriter(tmp_path / "late.wav", 1)
    writer.write(np.arange(161, dtype=np.int16), None)
    path = writer.close()
    path.rename(tmp_path / "late.wav.part")  # as if the crash came just before the rename
    assert recover_partials(tmp_path) == [path]
    assert soundfile.info(str(path)).frames == 161


def test_short_or_foreign_parts_become_broken(tmp_path: Path) -> None:
    (tmp_path / "empty.wav.part").write_bytes(b"")
    (tmp_path / "short.wav.part").write_bytes(b"RIFF\0\0\0\0WAVEfmt ")
    (tmp_path / "foreign.wav.part").write_bytes(b"x" * 200)
    assert recover_partials(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "empty.wav.broken",
        "foreign.wav.broken",
        "short.wav.broken",
    ]
    assert (tmp_path / "short.wav.broken").read_bytes() == b"RIFF\0\0\0\0WAVEfmt "


def test_never_overwrites_a_part(tmp_path: Path) -> None:
    (tmp_path / "busy.wav.part").write_bytes(b"left by a crash")
    with pytest.raises(FileExistsError):
        RecordingWriter(tmp_path / "busy.wav", 1)
    assert (tmp_path / "busy.wav.part").read_bytes() == b"left by a crash"


def test_recovery_leaves_a_live_recording_alone(tmp_path: Path) -> None:
    writer = RecordingWriter(tmp_path / "live.wav", 2)  # another engine's call, still going
    writer.write(_frames(1)[0], None)
    assert recover_partials(tmp_path) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["live.wav.part"]
    assert writer.close() == tmp_path / "live.wav"
