"""Fixture builders: tiny corpora written in each corpus's exact upstream layout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from crescendai.core.midi import Note, PedalEvent, Performance, write_midi


def write_tone(path: Path, seconds: float = 1.5, sr: int = 22050, channels: int = 1, freq: float = 440.0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * sr)) / sr
    y = (0.2 * np.sin(2 * np.pi * freq * t) * np.exp(-t)).astype(np.float32)
    sf.write(path, np.stack([y] * channels, axis=1) if channels > 1 else y, sr)
    return path


def write_perf(path: Path, start: float = 0.0, n: int = 4) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_midi(path, Performance([Note(start + 0.3 * i, start + 0.3 * i + 0.25, 60 + i, 64) for i in range(n)],
                                 [PedalEvent(start, 127), PedalEvent(start + 0.8, 0)]))
    return path


@pytest.fixture
def tone():
    return write_tone


@pytest.fixture
def perf():
    return write_perf
