"""Similarity probe: features respond to reverberation and level the way their names say."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from crescendai.data.similarity import FEATURES, describe, plot, probe


def _notes(sr=22050, sec=6.0, rt60=0.1, seed=0):
    rng = np.random.default_rng(seed)
    y = np.zeros(int(sec * sr), np.float32)
    t = np.arange(int(2.0 * sr)) / sr
    for k in range(int(sec * 2)):
        f = 220 * 2 ** (rng.integers(0, 24) / 12)
        note = np.sin(2 * np.pi * f * t) * np.exp(-t * 6.9 / rt60)
        s = int(k * 0.5 * sr)
        n = min(note.size, y.size - s)
        y[s : s + n] += 0.3 * note[:n]
    return y


def test_describe_tracks_decay_and_onsets():
    dry, wet = describe(_notes(rt60=0.15)), describe(_notes(rt60=1.5))
    assert set(dry) == set(FEATURES) and all(np.isfinite(list(dry.values())))
    assert wet["rt60_proxy_sec"] > 2 * dry["rt60_proxy_sec"]
    assert 1.0 < dry["onset_density"] < 3.0
    quiet = describe(0.1 * _notes(rt60=0.15))
    assert quiet["rms_db"] < dry["rms_db"] - 15


def test_probe_and_plot(tmp_path):
    paths = {}
    for g, rt in (("ssl", 0.15), ("phone", 1.2)):
        paths[g] = []
        for i in range(3):
            p = tmp_path / f"{g}{i}.wav"
            sf.write(p, _notes(rt60=rt, seed=i), 22050)
            paths[g].append(p)
    metrics, rows = probe(paths, ["phone"], max_items=2)
    assert metrics["groups"]["ssl"]["n"] == 2
    assert metrics["vs_ood"]["ssl"]["smd"]["rt60_proxy_sec"] > 1.0
    plot(rows, tmp_path / "sim.png")
    assert (tmp_path / "sim.png").stat().st_size > 1000
