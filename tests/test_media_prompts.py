"""Prompts: the shared campaign-format files loaded at 8 kHz, framed, cached, refused when wrong."""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest
import soundfile

from media.formats import prompt_format_problem
from media.g711 import (
    ALAW_SILENCE,
    ULAW_SILENCE,
    alaw_decode,
    alaw_encode,
    ulaw_decode,
    ulaw_encode,
)
from media.prompts import Prompt, PromptCache, PromptError, load_prompt

ROOT = Path(__file__).resolve().parent.parent
SHARED_PROMPTS = ROOT.parent / "shared" / "data" / "prompts"
GOOD = ["busy-fr.wav", "campaign-en.wav", "closed-nl.wav", "drs-password-en.wav"]
needs_shared = pytest.mark.skipif(
    not SHARED_PROMPTS.is_dir(), reason="shared/ is not beside the checkout"
)


def _telephone_band(
    samples: npt.NDArray[np.float64], rate: int, length: int
) -> npt.NDArray[np.float64]:
    """The samples below 3,400 Hz, band-limited and resampled to ``length`` by FFT.

    An independent (and slow, whole-signal) resampler to check the polyphase
    one against; it treats the signal as periodic, so only the middle counts.
    """
    spectrum = np.fft.rfft(samples)
    kept = np.count_nonzero(np.fft.rfftfreq(len(samples), 1 / rate) < 3400)
    band = np.zeros(length // 2 + 1, dtype=complex)
    band[:kept] = spectrum[:kept]
    return np.fft.irfft(band, length) * length / len(samples)


@needs_shared
@pytest.mark.parametrize("name", GOOD)
def test_shared_prompt_loads_at_8khz(name: str) -> None:
    path = SHARED_PROMPTS / name
    frames = soundfile.info(str(path)).frames
    prompt = load_prompt(path)
    assert prompt.name == path.stem
    assert prompt.path == path
    assert prompt.pcm.dtype == np.int16
    assert len(prompt.pcm) == round(frames * 8000 / 11025)
    assert prompt.duration == len(prompt.pcm) / 8000
    assert abs(prompt.duration - frames / 11025) <= 1 / 8000
    assert not prompt.pcm.flags.writeable


@needs_shared
@pytest.mark.parametrize("name", GOOD)
def test_shared_prompt_is_the_original_in_the_telephone_band(name: str) -> None:
    original, rate = soundfile.read(str(SHARED_PROMPTS / name), dtype="float64")
    assert rate == 11025
    # Whole multiples of 441 input samples make exactly 320 output samples each.
    size_in = len(original) - len(original) % 441
    size_out = size_in * 320 // 441
    expected = _telephone_band(original[:size_in], 11025, size_out)[400:-400]
    pcm = load_prompt(SHARED_PROMPTS / name).pcm[:size_out] / 32768
    played = _telephone_band(pcm, 8000, size_out)[400:-400]
    error = np.sqrt(np.mean((played - expected) ** 2)) / np.sqrt(np.mean(expected**2))
    # A linear interpolation gets about -22 dB here, nearest sample -15 dB.
    assert 20 * np.log10(error) < -50


@needs_shared
@pytest.mark.parametrize("name", GOOD)
def test_frames_are_20ms_padded_with_silence(name: str) -> None:
    prompt = load_prompt(SHARED_PROMPTS / name)
    count = math.ceil(len(prompt.pcm) / 160)
    for codec, data, silence in [
        ("PCMU", prompt.ulaw, ULAW_SILENCE),
        ("PCMA", prompt.alaw, ALAW_SILENCE),
    ]:
        frames = prompt.frames(codec)
        assert len(frames) == count
        assert {len(frame) for frame in frames} == {160}
        joined = b"".join(frames)
        assert joined[: len(data)] == data
        assert set(joined[len(data) :]) <= {silence}
    assert prompt.ulaw == ulaw_encode(prompt.pcm)
    assert prompt.alaw == alaw_encode(prompt.pcm)


def test_frames_of_exact_and_empty_prompts() -> None:
    exact = Prompt.from_pcm("x", Path("x.wav"), np.arange(320, dtype=np.int16))
    assert [len(f) for f in exact.frames("PCMA")] == [160, 160]
    assert b"".join(exact.frames("PCMA")) == exact.alaw  # no padding when none is needed
    assert Prompt.from_pcm("x", Path("x.wav"), np.zeros(0, dtype=np.int16)).frames("PCMU") == ()
    with pytest.raises(ValueError, match="PCMU or PCMA"):
        exact.frames("G722")


def test_from_pcm_keeps_its_own_read_only_copy() -> None:
    samples = np.zeros(10, dtype=np.int16)
    prompt = Prompt.from_pcm("x", Path("x.wav"), samples)
    samples[0] = 1000
    assert prompt.pcm[0] == 0
    with pytest.raises(ValueError, match="read-only"):
        prompt.pcm[0] = 1


@needs_shared
def test_wrong_format_is_refused_saying_what_it_is_and_must_be() -> None:
    path = SHARED_PROMPTS / "wrong-format-44k-stereo.wav"
    with pytest.raises(PromptError) as caught:
        load_prompt(path)
    message = str(caught.value)
    assert message.startswith(f"{path} is PCM 16 bit, stereo, 44100 Hz; ")
    assert "a prompt must be PCM 11025 Hz, 8 bit, mono WAV, or a telephony-ready 8000 Hz" in message


def test_missing_and_not_audio(tmp_path: Path) -> None:
    with pytest.raises(PromptError, match="does not exist"):
        load_prompt(tmp_path / "gone.wav")
    (tmp_path / "x.wav").write_text("hello")
    with pytest.raises(PromptError, match="is not a sound file"):
        load_prompt(tmp_path / "x.wav")


def test_8khz_8bit_pcm_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    soundfile.write(str(path), np.zeros(800, dtype=np.float32), 8000, subtype="PCM_U8")
    with pytest.raises(PromptError, match=r"is PCM 8 bit, mono, 8000 Hz; a prompt must be"):
        load_prompt(path)


@pytest.mark.parametrize("subtype", ["PCM_16", "ULAW", "ALAW"])
def test_telephony_ready_files_play_as_they_are(subtype: str, tmp_path: Path) -> None:
    signal = (8000 * np.sin(2 * np.pi * 440 * np.arange(1000) / 8000)).astype(np.int16)
    path = tmp_path / "ready.wav"
    soundfile.write(str(path), signal, 8000, subtype=subtype)
    prompt = load_prompt(path, "ready")
    assert prompt.name == "ready"
    assert len(prompt.pcm) == 1000
    if subtype == "PCM_16":
        assert np.array_equal(prompt.pcm, signal)
    else:
        decode = ulaw_decode if subtype == "ULAW" else alaw_decode
        coded = prompt.ulaw if subtype == "ULAW" else prompt.alaw
        assert np.array_equal(decode(coded), prompt.pcm)  # the file's own codes, unchanged
        assert np.max(np.abs(prompt.pcm.astype(np.int32) - signal)) <= 256
    # Trees keep to the service description's format; the player takes more.
    assert prompt_format_problem(path) is not None


def test_an_8bit_prompt_is_converted_to_full_scale(tmp_path: Path) -> None:
    path = tmp_path / "square.wav"
    codes = np.tile(np.repeat(np.array([255, 1], dtype=np.uint8), 50), 110)
    soundfile.write(str(path), (codes.astype(np.float64) - 128) / 128, 11025, subtype="PCM_U8")
    pcm = load_prompt(path).pcm
    # ±127/128 of full scale: 8-bit code 255 is +32512, not +127 or +255.
    assert 0.97 * 32512 < np.max(pcm) <= 32767
    assert -32768 <= np.min(pcm) < -0.97 * 32512


@needs_shared
def test_cache_reloads_a_changed_file_only(tmp_path: Path) -> None:
    path = tmp_path / "closed.wav"
    shutil.copyfile(SHARED_PROMPTS / "closed-nl.wav", path)
    cache = PromptCache()
    first = cache.get(path)
    assert cache.get(path) is first
    assert cache.get(tmp_path / "." / "closed.wav") is first  # known by resolved path

    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    touched = cache.get(path)
    assert touched is not first
    assert cache.get(path) is touched

    # Same modification time, different size: another file.
    stat = path.stat()
    shutil.copyfile(SHARED_PROMPTS / "busy-fr.wav", path)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    replaced = cache.get(path)
    assert replaced is not touched
    assert len(replaced.pcm) == round(soundfile.info(str(path)).frames * 8000 / 11025)


def test_cache_refuses_missing_and_wrong_files(tmp_path: Path) -> None:
    cache = PromptCache()
    with pytest.raises(PromptError, match="cannot be read"):
        cache.get(tmp_path / "gone.wav")
    path = tmp_path / "x.wav"
    soundfile.write(str(path), np.zeros((100, 2), dtype=np.float32), 44100, subtype="PCM_16")
    with pytest.raises(PromptError, match="is PCM 16 bit, stereo, 44100 Hz"):
        cache.get(path)
