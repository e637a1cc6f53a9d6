"""The label model: controls + the realised performance → 19 PercePiano-scale labels.

Labels are computed over a time span — the whole segment, or one local window
``[i·local_hop_sec, i·local_hop_sec + 3 s)`` — from *realised* quantities of the notes sounding there
(so local labels follow what is audible locally), plus the few controls that are constant within a
performance (touch, rubato, the piano's own colour). Each dimension first gets a raw score
``u ∈ [0, 1]`` (``n(x; lo, hi)`` = clip((x-lo)/(hi-lo), 0, 1)), then
``label = (1 + 6·(0.08 + 0.84·u)) / 7`` (+ rater noise, clipped to [1/7, 1]). The pole rated high is
the PercePiano "7" pole (``crescendai.core.dims``).

Direct dimensions (one audible cause each):

=====  ======================  ==================================================================
 0     timing (unstable ↑)     0.85 n(chord onset-jitter std, 5–60 ms) + 0.15 n(|drift|, 0–0.2)
 1     articulation_length     0.6 n(audible/notated duration, 0.3–1.3) + 0.4 n(played/notated,
                               0.3–1.3); audible = until the damper falls (note-off, or pedal-up
                               if the pedal holds it), ≤ 2× notated
 2     articulation_touch      0.8 touch + 0.2 n(mean velocity, 30–105)
 3     pedal_amount            share of the span with the pedal down
 4     pedal_clarity (blur ↑)  0.7 share of harmony changes held through the pedal + 0.3 pedal share
 7     timbre_brightness       dark ↑: 1 − (0.6 hammer + 0.15 touch + 0.25 piano brightness),
                               hammer = n(mean velocity + 14 (touch − ½), 25–110) (what the
                               synthesiser's hammer spectrum follows)
 8     timbre_loudness         n(mean velocity, 30–105)
10     dynamic_range           n(p90 − p10 of velocity without the balance offsets, 5–50)
11     pace (slow ↑)           1 − (0.55 n(tempo, 50–160 bpm) + 0.45 n(onsets/s, 2–14))
13     balance (balanced ↑)    n(melody − accompaniment velocity, −16–20): an accompaniment that
                               drowns the melody is "disproportioned"; the control stays ≤ +24,
                               so over-projection is not generated (the label is monotone)
=====  ======================  ==================================================================

Modelled compositions (documented mixtures of direct scores; what raters plausibly integrate):

=====  ========================  ================================================================
 5     timbre_variety            0.5 n(velocity std, 3–18) + 0.3 n(pitch span, 12–48) + 0.2 pedal
 6     timbre_depth              0.35 loudness + 0.3 n(bass-note share, 0–0.4) + 0.2 pedal + 0.15 piano depth
 9     dynamic_sophistication    crude ↑: 0.7 n(note-to-note velocity irregularity, 2–14) + 0.3 touch
12     spacing                   0.6 n(rubato, 0–0.35) + 0.4 slow pace
14     drama                     0.4 dynamic range + 0.3 n(rubato) + 0.15 loudness + 0.15 minor mode
15     mood_valence (dark ↑)     0.45 minor + 0.2 slow pace + 0.2 dark timbre + 0.15 low register
16     mood_energy               0.4 fast pace + 0.35 loudness + 0.25 touch
17     mood_imagination          0.35 n(rubato) + 0.35 timbre variety + 0.3 dynamic range
18     interpretation            1 − (0.3 timing + 0.2 blur + 0.2 crude + 0.2 imbalance) + 0.1 range
=====  ========================  ================================================================
"""

from __future__ import annotations

import numpy as np

from crescendai.core.dims import LABEL_MAX, LABEL_MIN, N_DIMS
from crescendai.synth.material import Piece
from crescendai.synth.mixer import TOUCH_TIMBRE_VEL, damper_times
from crescendai.synth.performance import ROLE_BALANCE, Controls, Rendition
from crescendai.synth.pianos import PianoModel, brightness_score, depth_score

WINDOW_SEC: float = 128 * 512 / 22050
"""The span of one local window (the model's 3 s contract window)."""
DIRECT: tuple[int, ...] = (0, 1, 2, 3, 4, 7, 8, 10, 11, 13)
"""Dimensions with one audible cause each; the others are modelled compositions."""


def _n(x: float, lo: float, hi: float) -> float:
    return float(np.clip((x - lo) / (hi - lo), 0.0, 1.0))


def span_features(
    r: Rendition, t0: float, t1: float, balance_control: float = 10.0, dampers: np.ndarray | None = None
) -> dict[str, float] | None:
    """Realised quantities of notes with onsets in [t0, t1) (None if fewer than 2 notes).

    ``balance_control`` is the performance's ``balance`` control: its role offsets are removed from
    the velocities before measuring the dynamic range (so range and balance are separate causes).
    ``dampers``: per note, when its damper falls (:func:`crescendai.synth.mixer.damper_times`;
    computed when None)."""
    notes = r.performance.notes
    on = np.array([n.onset_sec for n in notes])
    sel = np.flatnonzero((on >= t0) & (on < t1))
    if len(sel) < 2:
        return None
    vel = np.array([notes[i].velocity for i in sel], dtype=float)
    pitch = np.array([notes[i].pitch for i in sel], dtype=float)
    played = np.array([notes[i].duration_sec for i in sel])
    if dampers is None:
        dampers = np.array(damper_times(r.performance))
    audible = np.minimum(dampers[sel] - on[sel], 2.0 * r.nominal_dur_sec[sel])
    roles = [r.roles[i] for i in sel]
    offset = np.array([ROLE_BALANCE[ro] for ro in roles]) * balance_control
    mel = vel[[k for k, ro in enumerate(roles) if ro == "melody"]]
    acc = vel[[k for k, ro in enumerate(roles) if ro != "melody"]]
    bal = float(mel.mean() - acc.mean()) if len(mel) and len(acc) else float(balance_control)
    # note-to-note irregularity: residual of velocity around its 5-note moving median (by onset)
    if len(vel) >= 5:
        med = np.array([np.median(vel[max(0, k - 2):k + 3]) for k in range(len(vel))])
        irregular = float(np.std(vel - med))
    else:
        irregular = float(np.std(vel))
    tt = np.linspace(t0, t1, 64, endpoint=False)
    pedal_share = float(r.performance.pedal_down_at(tt).mean())
    hsel = (r.harmony_times >= t0) & (r.harmony_times < t1) & (r.harmony_times > r.harmony_times[0])
    held = float(r.pedal_held_changes[hsel].mean()) if hsel.any() else float(
        r.pedal_held_changes[1:].mean() if len(r.pedal_held_changes) > 1 else 0.0)
    span = min(t1, float(on[sel].max()) + 1e-3) - max(t0, float(on[sel].min()))
    n_onsets = len(np.unique(np.round(on[sel], 2)))
    return {
        "dev_ms": float(np.std(r.timing_dev_sec[sel]) * 1000.0),
        "artic": float(np.mean(audible / np.maximum(r.nominal_dur_sec[sel], 1e-3))),
        "played": float(np.mean(played / np.maximum(r.nominal_dur_sec[sel], 1e-3))),
        "vel_mean": float(vel.mean()),
        "vel_std": float(vel.std()),
        "vel_range": float(np.percentile(vel - offset, 90) - np.percentile(vel - offset, 10)),
        "irregular": irregular,
        "balance": bal,
        "pedal": pedal_share,
        "held": held,
        "onset_rate": n_onsets / max(span, 0.5),
        "pitch_span": float(pitch.max() - pitch.min()),
        "bass_share": float(np.mean(pitch < 48)),
        "pitch_mean": float(pitch.mean()),
    }


def raw_scores(f: dict[str, float], c: Controls, piece: Piece, model: PianoModel, tempo_bpm: float) -> np.ndarray:
    """float64 [19] raw scores u ∈ [0, 1] in dims order (see the module table)."""
    u = np.zeros(N_DIMS)
    loud = _n(f["vel_mean"], 30, 105)
    hammer = _n(f["vel_mean"] + TOUCH_TIMBRE_VEL * (c.touch - 0.5), 25, 110)
    rng_ = _n(f["vel_range"], 5, 50)
    rub = _n(c.rubato, 0, 0.35)
    minor = 1.0 if piece.mode == "minor" else 0.0
    fast = 0.55 * _n(tempo_bpm, 50, 160) + 0.45 * _n(f["onset_rate"], 2, 14)
    u[0] = 0.85 * _n(f["dev_ms"], 5, 60) + 0.15 * _n(abs(c.drift), 0, 0.2)
    u[1] = 0.6 * _n(f["artic"], 0.3, 1.3) + 0.4 * _n(f["played"], 0.3, 1.3)
    u[2] = 0.8 * c.touch + 0.2 * loud
    u[3] = f["pedal"]
    u[4] = 0.7 * f["held"] * (f["pedal"] > 0.05) + 0.3 * f["pedal"]
    u[5] = 0.5 * _n(f["vel_std"], 3, 18) + 0.3 * _n(f["pitch_span"], 12, 48) + 0.2 * f["pedal"]
    u[6] = 0.35 * loud + 0.3 * _n(f["bass_share"], 0, 0.4) + 0.2 * f["pedal"] + 0.15 * depth_score(model)
    u[7] = 1.0 - (0.6 * hammer + 0.15 * c.touch + 0.25 * brightness_score(model))
    u[8] = loud
    u[9] = 0.7 * _n(f["irregular"], 2, 14) + 0.3 * c.touch
    u[10] = rng_
    u[11] = 1.0 - fast
    u[12] = 0.6 * rub + 0.4 * (1.0 - fast)
    u[13] = _n(f["balance"], -16, 20)
    u[14] = 0.4 * rng_ + 0.3 * rub + 0.15 * loud + 0.15 * minor
    u[15] = 0.45 * minor + 0.2 * (1 - fast) + 0.2 * u[7] + 0.15 * (1 - _n(f["pitch_mean"], 50, 75))
    u[16] = 0.4 * fast + 0.35 * loud + 0.25 * c.touch
    u[17] = 0.35 * rub + 0.35 * u[5] + 0.3 * rng_
    u[18] = 1.0 - (0.3 * u[0] + 0.2 * u[4] + 0.2 * u[9] + 0.2 * (1 - u[13])) + 0.1 * rng_
    return np.clip(u, 0.0, 1.0)


def to_label(u: np.ndarray) -> np.ndarray:
    """Raw scores [.., 19] in [0, 1] → PercePiano scale (1 + 6·(0.08 + 0.84 u)) / 7."""
    return (1.0 + 6.0 * (0.08 + 0.84 * np.asarray(u))) / 7.0


def add_rater_noise(labels: np.ndarray, rng: np.random.Generator, sd: float) -> np.ndarray:
    """Add N(0, sd) rater noise and clip to [1/7, 1]."""
    return np.clip(labels + rng.normal(0.0, sd, np.shape(labels)), LABEL_MIN, LABEL_MAX)


def segment_labels(r: Rendition, c: Controls, piece: Piece, model: PianoModel) -> np.ndarray:
    """float64 [19] noiseless labels of the whole performance."""
    f = span_features(r, 0.0, r.duration_sec + 1.0, c.balance)
    assert f is not None, "a segment needs at least two notes"
    return to_label(raw_scores(f, c, piece, model, r.tempo_bpm))


def local_labels(
    r: Rendition, c: Controls, piece: Piece, model: PianoModel, hop_sec: float, duration_sec: float
) -> np.ndarray:
    """float64 [n_local, 19] noiseless labels of windows starting at ``i·hop_sec`` (width 3 s), for
    every start < ``duration_sec``; windows with < 2 onsets inherit the segment features."""
    dampers = np.array(damper_times(r.performance))
    whole = span_features(r, 0.0, r.duration_sec + 1.0, c.balance, dampers)
    n = max(1, int(np.ceil(duration_sec / hop_sec)))
    out = np.zeros((n, N_DIMS))
    for i in range(n):
        t0 = i * hop_sec
        f = span_features(r, t0, t0 + WINDOW_SEC, c.balance, dampers) or whole
        out[i] = to_label(raw_scores(f, c, piece, model, r.tempo_bpm))
    return out
