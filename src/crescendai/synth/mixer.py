"""Note and pedal events → dry piano audio: dampers, sustain pedal, sympathetic resonance, touch.

For each note the cached waveform (:func:`crescendai.synth.notes.note_wave`) is placed at its onset,
scaled by :func:`~crescendai.synth.notes.velocity_gain`, and cut by the damper:

- the damper falls at the note-off, or — if the sustain pedal is down then — when the pedal next
  comes up; notes above E6 (MIDI 88) have no dampers and ring out;
- a re-strike of the same pitch ends the previous sound (the hammer re-excites the string);
- after the damper falls the sound dies with an exponential release tail (``damper_tau``, longer in
  the bass) instead of stopping dead.

While the pedal is down, all strings are free: the pedal-gated mix excites a bank of open-string
resonances (sympathetic resonance), which the dampers silence again when the pedal lifts.
``touch`` (0 = pressed/cushioned, 1 = struck/hard) adds finger-key / key-bed impact noise at each
onset (a percussive attack), shifts the hammer spectrum as if struck ±7 velocity units harder at the
same loudness, and tilts the mix ±2 dB above 2 kHz: cues that survive level normalisation. The
timbre of each note interpolates between the two cached velocity layers around its (touch-shifted)
velocity, so brightness changes continuously with velocity.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from scipy.signal import fftconvolve, sosfilt

from crescendai.core.midi import Note, Performance
from crescendai.synth.notes import (
    impact_click,
    layer_blend,
    midi_to_hz,
    note_layers,
    velocity_gain,
)
from crescendai.synth.pianos import PianoModel

NO_DAMPER_ABOVE: int = 88
TAIL_SEC: float = 1.5
TOUCH_CLICK_MAX: float = 0.8
"""Impact-noise peak relative to the note's own gain at touch 1 (scaled by touch^1.5)."""
TOUCH_SHELF_DB: float = 4.0
"""High-shelf (> 2 kHz) gain span from touch 0 to touch 1 (±2 dB)."""


def _pedal_up_after(perf: Performance, t: float) -> float:
    """First time ≥ t at which the pedal is up (``t`` itself if it is up then; inf if never)."""
    if not perf.pedal_down_at(t)[0]:
        return t
    for e in perf.pedal:
        if e.time_sec > t and not e.down:
            return e.time_sec
    return float("inf")


def damper_times(perf: Performance) -> list[float]:
    """Per note (same order as ``perf.notes``): the time its damper falls, in seconds (inf = never)."""
    out = []
    next_same: dict[int, float] = {}
    nexts = [np.inf] * len(perf.notes)
    for i in range(len(perf.notes) - 1, -1, -1):
        n = perf.notes[i]
        nexts[i] = next_same.get(n.pitch, np.inf)
        next_same[n.pitch] = n.onset_sec
    for n, nxt in zip(perf.notes, nexts, strict=True):
        end = np.inf if n.pitch > NO_DAMPER_ABOVE else _pedal_up_after(perf, n.offset_sec)
        out.append(float(min(end, nxt)))
    return out


def pedal_gate(perf: Performance, n: int, sr: int, smooth_sec: float = 0.03) -> np.ndarray:
    """float32 [n]: 1 where the pedal is down, 0 where up, smoothed over ``smooth_sec``."""
    t = np.arange(n) / sr
    g = perf.pedal_down_at(t).astype(np.float32)
    k = max(1, int(smooth_sec * sr))
    if k > 1 and g.any():
        g = np.convolve(g, np.ones(k, dtype=np.float32) / k, mode="same").astype(np.float32)
    return g


@lru_cache(maxsize=64)
def sympathetic_ir(model: PianoModel, sr: int) -> np.ndarray:
    """float32 [n]: impulse response of the undamped strings (a bank of decaying inharmonic partials)."""
    rng = np.random.default_rng([sr, int(model.sympathetic * 1e4), int(model.detune_cents * 100)])
    n = int(1.6 * sr)
    t = np.arange(n, dtype=np.float32) / sr
    ir = np.zeros(n, dtype=np.float32)
    for pitch in range(28, 100, 2):
        f = midi_to_hz(pitch)
        for k in (1, 2, 3):
            fk = k * f * np.sqrt(1 + model.inharmonicity(pitch) * k * k)
            if fk > 0.45 * sr:
                break
            tau = model.decay_scale * 0.9 * 2.0 ** (-(pitch - 28) / 30.0) / k
            ir += (np.exp(-t / tau) * np.sin(2 * np.pi * fk * t + rng.uniform(0, 6.3))).astype(np.float32) / k
    ir /= float(np.sqrt(np.sum(ir**2))) or 1.0
    return ir


def _peaking_sos(f0: float, gain_db: float, q: float, sr: int) -> np.ndarray:
    """RBJ peaking-EQ biquad as one SOS row."""
    a = 10 ** (gain_db / 40.0)
    w = 2 * np.pi * min(f0, 0.45 * sr) / sr
    alpha = np.sin(w) / (2 * q)
    b = np.array([1 + alpha * a, -2 * np.cos(w), 1 - alpha * a])
    den = np.array([1 + alpha / a, -2 * np.cos(w), 1 - alpha / a])
    return np.concatenate([b / den[0], den / den[0]])[None, :]


def high_shelf_sos(f0: float, gain_db: float, sr: int) -> np.ndarray:
    """RBJ high-shelf biquad (slope 1) as one SOS row."""
    a = 10 ** (gain_db / 40.0)
    w = 2 * np.pi * min(f0, 0.45 * sr) / sr
    alpha = np.sin(w) / 2 * np.sqrt(2)
    c = np.cos(w)
    b = np.array([a * ((a + 1) + (a - 1) * c + 2 * np.sqrt(a) * alpha), -2 * a * ((a - 1) + (a + 1) * c),
                  a * ((a + 1) + (a - 1) * c - 2 * np.sqrt(a) * alpha)])
    den = np.array([(a + 1) - (a - 1) * c + 2 * np.sqrt(a) * alpha, 2 * ((a - 1) - (a + 1) * c),
                    (a + 1) - (a - 1) * c - 2 * np.sqrt(a) * alpha])
    return np.concatenate([b / den[0], den / den[0]])[None, :]


def body_sos(model: PianoModel, sr: int) -> np.ndarray:
    """The model's body colour as cascaded peaking filters (SOS [n, 6])."""
    return np.concatenate([_peaking_sos(f, g, q, sr) for f, g, q in model.body])


TOUCH_TIMBRE_VEL: float = 14.0
"""Velocity units of hammer-spectrum shift between the softest (0) and hardest (1) touch: a struck
key moves the hammer faster for the same loudness, so the timbre is that of a ±7 velocity note."""


def _place(out: np.ndarray, note: Note, damp: float, model: PianoModel, sr: int, touch: float = 0.5) -> None:
    lo, hi, w = layer_blend(note.velocity + TOUCH_TIMBRE_VEL * (touch - 0.5))
    layers = note_layers(model, int(np.clip(note.pitch, 21, 108)), sr)
    start = int(round(note.onset_sec * sr))
    if start >= len(out):
        return
    tau = model.damper_tau * 2.0 ** (-(note.pitch - 60) / 36.0)
    n_wave = layers.shape[1]
    if np.isfinite(damp):
        d = max(int(round((damp - note.onset_sec) * sr)), 1)
        length = min(n_wave, d + int(5 * tau * sr), len(out) - start)
    else:
        d = n_wave
        length = min(n_wave, len(out) - start)
    if length <= 0:
        return
    g = np.float32(velocity_gain(note.velocity))
    seg = layers[lo, :length] * (g * np.float32(1.0 - w)) + layers[hi, :length] * (g * np.float32(w))
    if d < length:
        tail = np.exp(-np.arange(length - d, dtype=np.float32) / np.float32(tau * sr))
        seg[d:] *= tail
    fade = min(length, int(0.05 * sr))  # cached-length cap or buffer end: short fade, no click
    if length == n_wave or length == len(out) - start:
        seg[length - fade:] *= np.linspace(1, 0, fade, dtype=np.float32)
    out[start:start + length] += seg


def render_performance(
    perf: Performance,
    model: PianoModel,
    sr: int = 22050,
    touch: float = 0.5,
    tail_sec: float = TAIL_SEC,
) -> np.ndarray:
    """Render note and pedal events to dry mono audio.

    Args:
        perf: notes (seconds, MIDI pitch, velocity) and CC64 events; negative times are not allowed.
        model: the piano.
        sr: sample rate in Hz (22 050 or 44 100).
        touch: 0–1, pressed (0) to struck (1) touch: impact noise and high-frequency tilt.
        tail_sec: seconds of audio kept after the last event (release tails, resonance).

    Returns:
        float32 [n] audio, not normalised (a single ff note peaks near 1).
    """
    n = int((perf.end_sec + tail_sec) * sr) + 1
    out = np.zeros(n, dtype=np.float32)
    if not perf.notes:
        return out
    for note, damp in zip(perf.notes, damper_times(perf), strict=True):
        _place(out, note, damp, model, sr, touch)
    if touch > 0:
        click = impact_click(sr)
        clicks = np.zeros(n, dtype=np.float32)
        level = TOUCH_CLICK_MAX * touch**1.5
        for note in perf.notes:
            s = int(round(note.onset_sec * sr))
            m = min(len(click), n - s)
            if m > 0:
                clicks[s:s + m] += click[:m] * np.float32(velocity_gain(note.velocity) * level)
        out += clicks
    if perf.pedal and model.sympathetic > 0:
        gate = pedal_gate(perf, n, sr)
        if gate.any():
            res = fftconvolve(out * gate, sympathetic_ir(model, sr))[:n].astype(np.float32)
            out += np.float32(model.sympathetic * 6.0) * res * gate
    out = sosfilt(body_sos(model, sr), out)
    out = sosfilt(high_shelf_sos(2000.0, TOUCH_SHELF_DB * (touch - 0.5), sr), out)
    return out.astype(np.float32)
