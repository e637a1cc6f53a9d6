"""Shared fixtures: small waveforms and audio files written in real formats."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest


def tone(seconds: float, sr: int = 22050, freq: float = 440.0, seed: int = 0) -> np.ndarray:
    """A decaying piano-like tone train with a little noise: float32 [seconds*sr]."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * freq * t) * np.exp(-(t % 0.7) * 4.0)
    y += 0.005 * rng.standard_normal(t.size)
    return y.astype(np.float32)


@pytest.fixture
def tone_fn():
    return tone


@pytest.fixture
def wav_44k_stereo(tmp_path: Path) -> Path:
    """A 6.5 s 44.1 kHz stereo WAV (left louder than right)."""
    import soundfile as sf

    y = tone(6.5, sr=44100)
    path = tmp_path / "stereo44k.wav"
    sf.write(path, np.stack([y, 0.5 * y], axis=1), 44100)
    return path
