"""Time-local proxies: units and directions on signals with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from crescendai.core.audio import mel_power
from crescendai.data.proxies import audio_proxies, midi_proxies, tempo_stability


def test_tempo_stability_periodic_vs_random():
    env = np.zeros(256)
    env[::22] = 1.0
    rng = np.random.default_rng(0)
    rand = np.zeros(256)
    rand[np.sort(rng.choice(256, 12, replace=False))] = 1.0
    assert tempo_stability(env) > 0.8 > tempo_stability(rand)
    assert tempo_stability(np.zeros(128)) == 0.0


def test_midi_proxies():
    on = np.arange(0, 6, 0.5)
    vel = np.where(np.arange(on.size) % 2, 30, 100)
    p = midi_proxies(on, vel, np.array([0.0, 1.5]), np.array([True, False]), np.array([0.0, 3.0]))
    assert p.shape == (2, 4)
    assert p[0, 0] == pytest.approx(6 / 2.972, rel=0.01)
    assert p[0, 1] > 0.8
    assert p[0, 2] == pytest.approx(40 * np.log10(100 / 30), rel=0.01)
    assert p[0, 3] == pytest.approx(1.5 / 2.972, abs=0.02) and p[1, 3] == 0.0


def test_audio_proxies_onsets_and_dynamics():
    sr = 22050
    y = np.zeros(6 * sr, np.float32)
    t = np.arange(int(0.45 * sr)) / sr
    click = (np.sin(2 * np.pi * 660 * t) * np.exp(-t * 10)).astype(np.float32)
    for k in range(12):  # 2 onsets/s
        s = int(k * 0.5 * sr)
        y[s : s + click.size] += click * (1.0 if k < 6 else 0.1)
    p = audio_proxies(mel_power(y), np.array([0.0, 3.0]))
    assert np.isfinite(p).all()
    assert 1.3 < p[0, 0] < 2.7
    assert p[0, 1] > 0.5
    assert p[0, 2] > 10
    assert 0 <= p[0, 3] <= 1
