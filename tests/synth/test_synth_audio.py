"""The synthesiser on the signal: dampers, pedal, velocity, piano models, channels, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from crescendai.core.midi import Note, PedalEvent, Performance
from crescendai.synth.channels import apply_channel, sample_phone
from crescendai.synth.mixer import render_performance
from crescendai.synth.pianos import N_BUILTIN, piano_model

SR = 22050


def _rms_db(y: np.ndarray, t0: float, t1: float) -> float:
    seg = y[int(t0 * SR):int(t1 * SR)]
    return float(10 * np.log10(np.mean(seg**2) + 1e-20))


def _centroid(y: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(y[: int(0.5 * SR)]))
    f = np.fft.rfftfreq(int(0.5 * SR), 1 / SR)
    return float((spec * f).sum() / spec.sum())


def test_dampers_stop_and_pedal_holds():
    note = [Note(0.05, 0.3, 60, 80)]
    dry = render_performance(Performance(note, []), piano_model(0), SR)
    held = render_performance(Performance(note, [PedalEvent(0.0, 127), PedalEvent(1.5, 0)]), piano_model(0), SR)
    # while held (0.8–1.2 s) the pedalled note rings ≥ 30 dB above the damped one
    assert _rms_db(held, 0.8, 1.2) - _rms_db(dry, 0.8, 1.2) > 30
    # the damper stops the released note: 0.5 s after note-off it is ≥ 40 dB below its attack
    assert _rms_db(dry, 0.05, 0.25) - _rms_db(dry, 0.8, 1.2) > 40
    # lifting the pedal at 1.5 s stops it too
    assert _rms_db(held, 1.2, 1.45) - _rms_db(held, 2.0, 2.4) > 30


def test_velocity_raises_level_and_brightness():
    model = piano_model(2)
    soft = render_performance(Performance([Note(0.0, 0.6, 64, 35)], []), model, SR)
    loud = render_performance(Performance([Note(0.0, 0.6, 64, 115)], []), model, SR)
    assert _rms_db(loud, 0, 0.5) - _rms_db(soft, 0, 0.5) > 12
    assert _centroid(loud) > 1.3 * _centroid(soft)


def _signature(y: np.ndarray) -> np.ndarray:
    spec = np.abs(np.fft.rfft(y[: int(2.0 * SR)])) ** 2
    edges = np.geomspace(60, 9000, 16)
    f = np.fft.rfftfreq(int(2.0 * SR), 1 / SR)
    bands = np.array([spec[(f >= a) & (f < b)].sum() for a, b in zip(edges[:-1], edges[1:], strict=True)])
    db = 10 * np.log10(bands + 1e-12)
    decay = _rms_db(y, 1.4, 1.6) - _rms_db(y, 2.6, 2.9)
    return np.concatenate([db - db.max(), [decay]])


def test_piano_models_are_distinguishable():
    # two different passages (a whole-tone run and the one a semitone higher) per model
    chord = [Note(0.1 * i, 0.1 * i + 1.5, p, 75) for i, p in enumerate(range(40, 90, 7))]
    other = [Note(0.1 * i, 0.1 * i + 1.5, p, 75) for i, p in enumerate(range(41, 91, 7))]
    a = np.stack([_signature(render_performance(Performance(chord, []), piano_model(i), SR))
                  for i in range(N_BUILTIN)])
    b = np.stack([_signature(render_performance(Performance(other, []), piano_model(i), SR))
                  for i in range(N_BUILTIN)])
    dist = np.linalg.norm(b[:, None, :] - a[None, :, :], axis=2)
    assert (dist.argmin(axis=1) == np.arange(N_BUILTIN)).all()


def test_phone_channel_band_limits():
    rng = np.random.default_rng(0)
    x = rng.standard_normal(SR).astype(np.float32) * 0.1
    ch = sample_phone(np.random.default_rng(1))
    y = apply_channel(x, ch, SR, 3)
    spec = np.abs(np.fft.rfft(y)) ** 2
    f = np.fft.rfftfreq(len(y), 1 / SR)
    assert spec[f > ch.lowpass_hz * 1.6].sum() < 0.02 * spec.sum()
    assert np.array_equal(y, apply_channel(x, ch, SR, 3))


def test_44100_render():
    y = render_performance(Performance([Note(0.0, 0.3, 69, 80)], []), piano_model(1), 44100)
    assert y.dtype == np.float32 and np.isfinite(y).all() and len(y) > 44100


@pytest.mark.parametrize("pitch", [21, 100, 108])
def test_extreme_pitches(pitch):
    y = render_performance(Performance([Note(0.0, 0.2, pitch, 90)], []), piano_model(3), SR)
    assert np.isfinite(y).all() and np.abs(y).max() > 0
