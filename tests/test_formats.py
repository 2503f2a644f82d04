"""Prompt formats: PCM 11,025 Hz, 8 bit, mono WAV, and clear words for anything else."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from media.formats import WavFormat, describe_wav, prompt_format_problem

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_PROMPTS = ROOT / "routing_trees" / "examples" / "prompts"
SHARED_PROMPTS = ROOT.parent / "shared" / "data" / "prompts"
MUST = "a prompt must be PCM 11025 Hz, 8 bit, mono WAV"


def _write(path: Path, rate: int, channels: int, subtype: str, fmt: str = "WAV") -> Path:
    frames = np.zeros((rate // 10, channels), dtype=np.float32)
    soundfile.write(str(path), frames, rate, subtype=subtype, format=fmt)
    return path


@pytest.mark.parametrize("name", ["closed-nl.wav", "busy-fr.wav"])
def test_example_prompts_are_good(name: str) -> None:
    path = EXAMPLE_PROMPTS / name
    assert describe_wav(path) == WavFormat("WAV", "PCM_U8", 11025, 1)
    assert prompt_format_problem(path) is None


@pytest.mark.skipif(not SHARED_PROMPTS.is_dir(), reason="shared/ is not beside the checkout")
def test_shared_prompts() -> None:
    for name in ["busy-fr.wav", "campaign-en.wav", "closed-nl.wav", "drs-password-en.wav"]:
        assert prompt_format_problem(SHARED_PROMPTS / name) is None
    bad = SHARED_PROMPTS / "wrong-format-44k-stereo.wav"
    assert prompt_format_problem(bad, "prompts/x.wav") == (
        f"prompts/x.wav is PCM 16 bit, stereo, 44100 Hz; {MUST}"
    )


def test_wrong_rate_depth_and_channels(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.wav", 44100, 2, "PCM_16")
    assert describe_wav(path) == WavFormat("WAV", "PCM_16", 44100, 2)
    assert prompt_format_problem(path, "prompts/x.wav") == (
        f"prompts/x.wav is PCM 16 bit, stereo, 44100 Hz; {MUST}"
    )


def test_right_depth_wrong_rate(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.wav", 8000, 1, "PCM_U8")
    assert prompt_format_problem(path, "x.wav") == f"x.wav is PCM 8 bit, mono, 8000 Hz; {MUST}"


def test_mu_law(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.wav", 8000, 1, "ULAW")
    assert prompt_format_problem(path, "x.wav") == f"x.wav is G.711 µ-law, mono, 8000 Hz; {MUST}"


def test_a_flac_file_is_not_a_wav(tmp_path: Path) -> None:
    path = _write(tmp_path / "x.wav", 11025, 1, "PCM_16", fmt="FLAC")
    assert prompt_format_problem(path, "x.wav") == (
        f"x.wav is a FLAC file (PCM 16 bit, mono, 11025 Hz), not a WAV file; {MUST}"
    )


def test_not_audio_at_all(tmp_path: Path) -> None:
    path = tmp_path / "x.wav"
    path.write_text("hello")
    assert prompt_format_problem(path, "x.wav") == (
        "x.wav is not a sound file (it cannot be read as audio); "
        "a prompt must be a PCM 11025 Hz, 8 bit, mono WAV file"
    )


def test_missing_and_directory(tmp_path: Path) -> None:
    assert prompt_format_problem(tmp_path / "nope.wav", "nope.wav") == "nope.wav does not exist"
    assert prompt_format_problem(tmp_path, "prompts") == "prompts is not a file"
