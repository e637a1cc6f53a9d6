"""Hand-crafted MIDI performance features: note-level statistics of how a passage is played.

A handful of statistics (density, dynamics, articulation, timing, chord asynchrony, pedalling) of a
:class:`~crescendai.core.midi.Performance`, used twice: per recording they are the symbolic peer
baseline (a ``StandardScaler → RidgeCV`` on the same folds as the audio baseline,
:mod:`crescendai.evaluate.ridge`), the simple bar any audio model has to clear on PercePiano; per
contract window they are the window statistics of the performance teacher
(:func:`crescendai.data.teacher.window_playing`).

>>> X = midi_feature_matrix(["a.mid", "b.mid"])           # doctest: +SKIP
>>> X.shape == (2, len(FEATURE_NAMES))                     # doctest: +SKIP
True

Definitions used below. Notes are sorted by onset. The *sounding span* is
``[t0, t1] = [first onset, last note offset]`` in seconds, length ``T = max(t1 - t0, 1 ms)``.
*Onset clusters* chain consecutive onsets that are at most :data:`CLUSTER_GAP_SEC` (50 ms) apart
(so a rolled chord is one cluster); a cluster's time is its earliest onset, and the *IOIs* are the
differences between consecutive cluster times (seconds, all > 50 ms).

Features (:data:`FEATURE_NAMES`, in order; the default for degenerate input is in brackets):

==========================  ======================================================================
``note_density``            notes per second of sounding span, ``N / T`` (1/s).
``velocity_mean``           mean MIDI velocity (1–127).
``velocity_std``            population std of velocity (velocity units) [0 for one note].
``velocity_range``          90th − 10th percentile of velocity (velocity units) [0 for one note].
``velocity_slope``          least-squares slope of velocity against onset time (velocity units per
                            second; > 0 = crescendo) [0 when all onsets coincide].
``log_duration_mean``       mean of ``ln(duration / 1 s)`` over notes.
``log_duration_std``        std of ``ln(duration / 1 s)`` [0 for one note].
``legato_ratio``            mean over notes not in the last cluster of
                            ``clip((offset_i − t_next) / IOI, −1, 1)`` where ``t_next`` is the next
                            cluster's time and IOI the gap to it: −1 = released at once (staccato),
                            0 = released exactly as the next note starts, > 0 = overlapping
                            (legato) [0 with fewer than two clusters].
``ioi_mean``                mean IOI (seconds) [0 with fewer than two clusters].
``ioi_cv``                  std / mean of the IOIs (dimensionless; timing unevenness, rubato)
                            [0 with fewer than two clusters].
``chord_asynchrony_ms``     mean over clusters with ≥ 2 notes of (latest − earliest onset) in ms
                            [0 when no cluster has two notes].
``polyphony``               time-averaged number of sounding notes, ``Σ durations / T``.
``pitch_mean``              mean MIDI pitch (60 = C4).
``pitch_range``             max − min MIDI pitch (semitones) [0 for one note].
``pedal_fraction``          fraction of the sounding span with the sustain pedal down
                            (CC64 ≥ 64), in [0, 1] [0 with no pedal events].
``pedal_changes_per_sec``   down↔up state changes of the sustain pedal inside ``[t0, t1]``
                            divided by ``T`` (1/s; raw CC64 streams that do not cross 64 do not
                            count) [0 with no pedal events].
``register_balance``        mean velocity of notes above the mean pitch minus mean velocity of
                            notes at or below it (velocity units; > 0 = upper register louder)
                            [0 when all notes share one pitch].
==========================  ======================================================================

Every feature is finite for any performance with at least one note; an empty performance raises
:class:`ValueError`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from crescendai.core.midi import Performance, onset_clusters

CLUSTER_GAP_SEC: float = 0.050
"""Consecutive onsets at most this far apart (seconds) belong to one onset cluster (chord)."""

FEATURE_NAMES: tuple[str, ...] = (
    "note_density",
    "velocity_mean", "velocity_std", "velocity_range", "velocity_slope",
    "log_duration_mean", "log_duration_std", "legato_ratio",
    "ioi_mean", "ioi_cv", "chord_asynchrony_ms", "polyphony",
    "pitch_mean", "pitch_range",
    "pedal_fraction", "pedal_changes_per_sec",
    "register_balance",
)
N_MIDI_FEATURES: int = len(FEATURE_NAMES)
_MIN_SPAN_SEC = 1e-3
_PROGRESS_MIN_FILES = 200


def performance_features(perf: Performance) -> np.ndarray:
    """Hand-crafted features of one performance → float64 [len(FEATURE_NAMES)], all finite.

    See the module docstring for each feature's definition, units and degenerate-input default.

    Raises:
        ValueError: the performance has no notes, or non-finite event times (the message names its
            source when known).
    """
    if not perf.notes:
        raise ValueError(
            f"{perf.source or '<performance>'}: no notes, so MIDI features are undefined"
        )
    order = np.argsort([n.onset_sec for n in perf.notes], kind="stable")
    notes = [perf.notes[i] for i in order]
    on = np.array([n.onset_sec for n in notes], dtype=np.float64)  # [N] s
    off = np.array([n.offset_sec for n in notes], dtype=np.float64)  # [N] s
    dur = np.maximum(off - on, _MIN_SPAN_SEC)  # [N] s
    pitch = np.array([n.pitch for n in notes], dtype=np.float64)  # [N]
    vel = np.array([n.velocity for n in notes], dtype=np.float64)  # [N]
    t0, t1 = float(on[0]), float(max(off.max(), on[0] + _MIN_SPAN_SEC))
    span = t1 - t0

    cluster = onset_clusters(on, CLUSTER_GAP_SEC)  # [N]
    n_clusters = int(cluster[-1]) + 1
    starts = np.r_[0, np.flatnonzero(np.diff(cluster)) + 1]  # [C] first note of each cluster
    c_time = on[starts]  # [C] earliest onset per cluster
    c_last = np.maximum.reduceat(on, starts)  # [C] latest onset per cluster
    ioi = np.diff(c_time)  # [C-1] s

    feats = {
        "note_density": len(notes) / span,
        "velocity_mean": vel.mean(),
        "velocity_std": vel.std(),
        "velocity_range": np.percentile(vel, 90) - np.percentile(vel, 10),
        "velocity_slope": _slope(on, vel),
        "log_duration_mean": np.log(dur).mean(),
        "log_duration_std": np.log(dur).std(),
        "legato_ratio": _legato_ratio(off, cluster, c_time, ioi),
        "ioi_mean": ioi.mean() if ioi.size else 0.0,
        "ioi_cv": ioi.std() / ioi.mean() if ioi.size else 0.0,
        "chord_asynchrony_ms": _chord_asynchrony_ms(cluster, c_time, c_last, n_clusters),
        "polyphony": dur.sum() / span,
        "pitch_mean": pitch.mean(),
        "pitch_range": np.ptp(pitch),
        **_pedal_features(perf, t0, t1),
        "register_balance": _register_balance(pitch, vel),
    }
    out = np.array([feats[name] for name in FEATURE_NAMES], dtype=np.float64)
    if not np.isfinite(out).all():
        bad = [name for name, v in zip(FEATURE_NAMES, out, strict=True) if not np.isfinite(v)]
        raise ValueError(f"{perf.source or '<performance>'}: non-finite note or pedal times "
                         f"make {bad} undefined")
    return out


def _slope(t: np.ndarray, y: np.ndarray) -> float:
    """Least-squares slope of ``y`` against ``t`` (0 when ``t`` is constant)."""
    tc = t - t.mean()
    denom = float((tc * tc).sum())
    return float((tc * (y - y.mean())).sum() / denom) if denom > 1e-12 else 0.0


def _legato_ratio(off: np.ndarray, cluster: np.ndarray, c_time: np.ndarray, ioi: np.ndarray) -> float:
    """Mean clipped overlap of each note with the next onset cluster, in [-1, 1] (0 if < 2 clusters)."""
    has_next = cluster < len(c_time) - 1  # [N]
    if not has_next.any():
        return 0.0
    k = cluster[has_next]
    ratio = (off[has_next] - c_time[k + 1]) / ioi[k]
    return float(np.clip(ratio, -1.0, 1.0).mean())


def _chord_asynchrony_ms(
    cluster: np.ndarray, c_time: np.ndarray, c_last: np.ndarray, n_clusters: int
) -> float:
    """Mean onset spread (ms) of clusters with at least two notes (0 if there are none)."""
    multi = np.bincount(cluster, minlength=n_clusters) >= 2  # [C]
    return float(1000.0 * (c_last - c_time)[multi].mean()) if multi.any() else 0.0


def _pedal_features(perf: Performance, t0: float, t1: float) -> dict[str, float]:
    """``pedal_fraction`` and ``pedal_changes_per_sec`` over the sounding span ``[t0, t1]``."""
    if not perf.pedal:
        return {"pedal_fraction": 0.0, "pedal_changes_per_sec": 0.0}
    events = sorted(perf.pedal, key=lambda e: e.time_sec)
    times = np.array([e.time_sec for e in events], dtype=np.float64)  # [P] s
    down = np.array([e.down for e in events], dtype=bool)  # [P]
    # piecewise-constant state: up before the first event, then each event's state
    state = np.r_[False, down]  # state on [-inf, times[0]), [times[0], times[1]), ...
    changes = times[state[1:] != state[:-1]]
    n_changes = int(((changes >= t0) & (changes <= t1)).sum())
    edges = np.clip(np.r_[-np.inf, times, np.inf], t0, t1)  # [P+2]
    down_sec = float((np.diff(edges) * state).sum())
    span = t1 - t0
    return {"pedal_fraction": down_sec / span, "pedal_changes_per_sec": n_changes / span}


def _register_balance(pitch: np.ndarray, vel: np.ndarray) -> float:
    """Mean velocity above the mean pitch minus at/below it (0 when all pitches are equal)."""
    high = pitch > pitch.mean()
    if not high.any() or high.all():
        return 0.0
    return float(vel[high].mean() - vel[~high].mean())


def midi_feature_matrix(paths: Sequence[str | os.PathLike[str]]) -> np.ndarray:
    """Read each MIDI file and stack its features → float64 [N, len(FEATURE_NAMES)], row i = paths[i].

    A progress bar is shown for more than 200 files.

    Raises:
        MidiError: a file is missing or unreadable (the message names it).
        ValueError: a file has no notes (the message names it).
    """
    from tqdm import tqdm

    from crescendai.core.midi import read_midi

    out = np.empty((len(paths), N_MIDI_FEATURES), dtype=np.float64)
    it = tqdm(paths, desc="midi features", unit="file", disable=len(paths) <= _PROGRESS_MIN_FILES)
    for i, path in enumerate(it):
        out[i] = performance_features(read_midi(path))
    return out
