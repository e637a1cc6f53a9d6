"""One struck piano note as a waveform, cached per (model, pitch, velocity layer, sample rate).

Physics, simplified:

- partials ``f_k = k f0 sqrt(1 + B k²)`` (inharmonic, ``B`` from the model, rising with pitch), up to
  min(Nyquist, 10 kHz); two unison strings per partial detuned by ``detune_cents`` (beating);
- two-stage decay per partial ``a_k(t) = A_k [w e^{-t/τ1_k} + (1-w) e^{-t/τ2_k}]`` (fast prompt sound,
  slow aftersound); decay times shorten with pitch and with partial number;
- velocity-dependent spectrum: ``A_k = k^-(tilt + 1.4(1-v)) / (1 + (f_k / f_c)²)`` with the
  hammer-felt cutoff ``f_c`` rising 2^(6v) (≈ 40× from pp to ff; harder strike = brighter: the cue
  that survives level normalisation, and it dominates the piano-to-piano colour differences), times
  the model's brightness;
- hammer noise: a short low-passed noise burst and a soundboard thump, stronger and brighter with
  velocity.

Waveforms are peak-normalised to 1 per note; loudness is applied by the mixer (:func:`velocity_gain`)
so the cache holds only :data:`N_LAYERS` timbres per pitch. Every waveform is a pure function of its
arguments (noise is seeded from the arguments), so caches in different processes agree bit for bit.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.signal import butter, sosfilt

from crescendai.synth.pianos import PianoModel

N_LAYERS: int = 8
"""Velocity layers (timbres) per pitch; loudness itself is continuous."""
MAX_NOTE_SEC: float = 5.0
"""Cached length cap; longer sustained notes fade out at the cap."""


def layer_blend(velocity: float) -> tuple[int, int, float]:
    """(lower layer, upper layer, weight of the upper one): linear interpolation between the two
    layers whose centre velocities bracket ``velocity``, so timbre changes continuously with it."""
    x = float(np.clip(velocity * N_LAYERS / 128.0 - 0.5, 0.0, N_LAYERS - 1))
    lo = min(int(x), N_LAYERS - 2)
    return lo, lo + 1, x - lo


def layer_velocity(layer: int) -> float:
    """The velocity a layer's timbre is computed at (its centre)."""
    return (layer + 0.5) * 128.0 / N_LAYERS


def velocity_gain(velocity: float) -> float:
    """Linear amplitude for a MIDI velocity: ≈ 38 dB from velocity 10 to 127."""
    return float(((np.clip(velocity, 1, 127) + 8.0) / 135.0) ** 2.2)


def midi_to_hz(pitch: float) -> float:
    return float(440.0 * 2.0 ** ((pitch - 69) / 12.0))


def decay_times(model: PianoModel, pitch: int) -> tuple[float, float]:
    """(τ_fast, τ_slow) in seconds for the fundamental of ``pitch``."""
    slow = model.decay_scale * 5.0 * 2.0 ** (-(pitch - 21) / 20.0)
    return 0.12 * slow + 0.02, slow


def note_length_sec(model: PianoModel, pitch: int) -> float:
    """Cached length: the slow component reaching ≈ -50 dB, capped at :data:`MAX_NOTE_SEC`."""
    return float(np.clip(5.8 * decay_times(model, pitch)[1], 0.6, MAX_NOTE_SEC))


def note_wave(model: PianoModel, pitch: int, layer: int, sr: int = 22050) -> np.ndarray:
    """float32 [n] waveform of ``pitch`` struck at the layer's velocity, peak 1 (read-only view).

    Args:
        model: the piano.
        pitch: MIDI pitch 21–108.
        layer: velocity layer 0..N_LAYERS-1.
        sr: sample rate (Hz).
    """
    return note_layers(model, pitch, sr)[layer]


@lru_cache(maxsize=160)
def note_layers(model: PianoModel, pitch: int, sr: int = 22050) -> np.ndarray:
    """float32 [N_LAYERS, n]: every velocity layer of ``pitch`` at once (each row peak 1).

    Computing the layers together shares the oscillators: layers differ only in partial amplitudes
    and hammer noise.
    """
    vels = np.array([layer_velocity(j) / 127.0 for j in range(N_LAYERS)])  # [L]
    f0 = midi_to_hz(pitch)
    n = int(note_length_sec(model, pitch) * sr)
    t = np.arange(n, dtype=np.float32) / np.float32(sr)
    B = model.inharmonicity(pitch)
    tau_fast, tau_slow = decay_times(model, pitch)
    fc = model.brightness * (300.0 + 200.0 * (pitch - 21) / 12.0) * 2.0 ** (6.0 * vels)  # [L]
    tilt = model.spectral_tilt + 1.4 * (1.0 - vels)  # [L] soft strikes roll off faster
    detune = 2.0 ** (model.detune_cents / 1200.0)
    rng = np.random.default_rng([pitch, sr, int(model.b_low * 1e7), int(model.detune_cents * 100)])
    out = np.zeros((N_LAYERS, n), dtype=np.float32)
    fmax = min(0.45 * sr, 10_000.0)
    w = model.fast_weight
    for k in range(1, 61):
        fk = k * f0 * np.sqrt(1.0 + B * k * k)
        if fk > fmax:
            break
        amp = k ** (-tilt) / (1.0 + (fk / fc) ** 2)  # [L]
        # hammer position (≈ 1/8 of the string) weakens every 8th partial
        amp = amp * (0.35 + 0.65 * abs(np.sin(np.pi * k / 8.3)))
        phase = rng.uniform(0, 2 * np.pi)
        top = float(amp.max())
        if top < 3e-4:
            continue
        damp = 1.0 + 0.0009 * (fk / 50.0) ** 1.4
        t1, t2 = tau_fast / damp, tau_slow / damp
        m = min(n, int(t2 * np.log(top / 3e-4) * sr) + 1)  # until ≈ -70 dB re. a unit partial
        if m < 32:
            continue
        tt = t[:m]
        env = np.exp(-tt / np.float32(t2)) * np.float32(1 - w)
        m1 = min(m, int(7 * t1 * sr) + 1)
        env[:m1] += np.float32(w) * np.exp(-tt[:m1] / np.float32(t1))
        osc = np.sin(np.float32(2 * np.pi * fk) * tt + np.float32(phase))
        if k <= 6:  # a second, detuned string: beating in the low partials
            osc += np.sin(np.float32(2 * np.pi * fk * detune) * tt + np.float32(phase + 1.0))
            osc *= np.float32(0.5)
        env *= osc
        out[:, :m] += amp.astype(np.float32)[:, None] * env[None, :]
    # hammer noise: a few ms of low-passed noise plus a soundboard thump, per layer
    nn = min(n, int(0.025 * sr))
    base_noise = rng.standard_normal(nn).astype(np.float32)
    tn = np.arange(nn, dtype=np.float32) / sr
    thump = np.sin(2 * np.pi * 70.0 * tn) * np.exp(-tn / 0.012)
    ramp = min(n, int(0.001 * sr))
    for j, vel in enumerate(vels):
        cut = min(0.45 * sr, 1500.0 + 7000.0 * vel**1.5)
        noise = sosfilt(butter(2, cut, fs=sr, output="sos"), base_noise).astype(np.float32)
        burst = (noise * np.exp(-tn / (0.002 + 0.002 * (1 - vel))) + 0.5 * thump).astype(np.float32)
        peak_tone = float(np.max(np.abs(out[j, : int(0.05 * sr)]))) or 1.0
        gain = model.hammer_noise * (0.3 + 1.7 * vel) * peak_tone / (float(np.max(np.abs(burst))) or 1.0)
        out[j, :nn] += np.float32(gain) * burst
        out[j, :ramp] *= np.linspace(0, 1, ramp, dtype=np.float32)  # 1 ms attack ramp, no click
        out[j] /= float(np.max(np.abs(out[j]))) or 1.0
    out.setflags(write=False)
    return out


@lru_cache(maxsize=64)
def impact_click(sr: int = 22050) -> np.ndarray:
    """float32 [n]: finger-key / key-bottom impact noise of a struck ("hard") touch, peak 1."""
    rng = np.random.default_rng(7 + sr)
    n = int(0.02 * sr)
    t = np.arange(n, dtype=np.float32) / sr
    x = rng.standard_normal(n).astype(np.float32) * np.exp(-t / 0.005)
    x = sosfilt(butter(2, [1500.0, min(0.45 * sr, 9000.0)], btype="band", fs=sr, output="sos"), x)
    x = x / (float(np.max(np.abs(x))) or 1.0) + 0.5 * np.sin(2 * np.pi * 110.0 * t) * np.exp(-t / 0.008)  # key-bed thud
    x = x.astype(np.float32)
    x /= float(np.max(np.abs(x))) or 1.0
    x.setflags(write=False)
    return x
