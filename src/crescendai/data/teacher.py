"""MIDI "performance teacher" targets: what the score-aligned MIDI says happens in each contract window.

Every rendered (or MIDI-aligned) recording has note and pedal events on the audio's time axis; this
module turns them into dense, time-aligned targets per contract window (``crescendai.core.audio``)
for an auxiliary head. Pure functions, no I/O; the window cache (:mod:`crescendai.data.window_cache`)
stores the result as ``teacher.npy`` beside ``windows.npy``.

Contract (``teacher_targets``):

- shape ``float32 [n_windows, TEACHER_ROWS, K]`` with ``TEACHER_ROWS = 8`` time rows per window and
  ``K = 3 * N_BANDS + 1 = 25`` columns named by :data:`TEACHER_FIELDS` (the one list, in order).
- time: row ``t`` of the window starting at ``start_sec`` covers audio seconds
  ``[start + (16t - 0.5) * FRAME_SEC, start + (16t + 15.5) * FRAME_SEC)``, i.e. the ``ROW_FRAMES = 16``
  frames ``16t .. 16t+15`` of the window (frame ``j`` is centred at ``start + j * FRAME_SEC``, librosa
  ``center=True``). Intervals are half-open; an onset exactly on a boundary belongs to the later row.
- register bands: ``N_BANDS = 8`` bands of 11 semitones over the piano range, band = ``(pitch - 21) // 11``
  clipped to ``0..7`` (pitch 21 = A0 → band 0, 108 = C8 → band 7; out-of-range pitches fall into the
  end bands).
- columns, for band ``b`` (column ``3b + k``):

  - ``onset_b{b}`` (k = 0): 1.0 if at least one onset of band ``b`` falls in the row, else 0.0;
  - ``velocity_b{b}`` (k = 1): mean ``velocity / 127`` of those onsets, in (0, 1]; NaN where the
    row-band has no onset;
  - ``sounding_b{b}`` (k = 2): fraction in [0, 1] of the row's duration during which at least one
    note of band ``b`` is held (onset..offset, key down; the pedal is ignored);

  then ``pedal`` (column 24): fraction in [0, 1] of the row with the sustain pedal down (the state
  before the first pedal event is up; still down after the last event means down to +inf).

Algorithm (exact, no time grid): onsets are sorted per band and counted per row with
``searchsorted`` on the row boundaries (velocity sums through a cumulative sum); held-note and
pedal-down time are reduced to disjoint sorted intervals (union of a band's notes; pedal up→down /
down→up transitions) whose covered length up to any time ``x`` is a closed-form prefix sum, so a row's
coverage is ``C(end) - C(start)``. Cost ``O((notes + rows) log notes)``: ~10k windows × thousands of
notes take milliseconds.

Window statistics of the playing (``window_playing``): the MIDI performance features
(:data:`crescendai.core.midi_features.FEATURE_NAMES`: density, velocity level / spread / slope,
durations and legato, IOI mean and variability, chord asynchrony, polyphony, register, pedal,
register balance) of the notes whose onsets fall in each window ``[start, start + WINDOW_SEC)``,
float32 ``[n_windows, N_MIDI_FEATURES]``, NaN where fewer than :data:`MIN_PLAYING_NOTES` onsets fall
in the window. They describe what a mean over 0.37-s rows does not (a velocity spread, 10–100 ms
timing deviations); with ``pretrain.playing_weight`` > 0 the pooled embedding is trained to predict
them (:class:`crescendai.learn.ssl.Performance`).
"""

from __future__ import annotations

import numpy as np

from crescendai.core.audio import FRAME_SEC, WINDOW_FRAMES, WINDOW_SEC
from crescendai.core.midi import Performance
from crescendai.core.midi_features import N_MIDI_FEATURES, performance_features

TEACHER_ROWS: int = 8
"""Time rows per window."""
ROW_FRAMES: int = WINDOW_FRAMES // TEACHER_ROWS
"""Frames per row (16 ≈ 0.372 s)."""
ROW_SEC: float = ROW_FRAMES * FRAME_SEC
"""Seconds per row."""
N_BANDS: int = 8
"""Register bands over MIDI pitch 21..108, 11 semitones each."""
LOWEST_PITCH: int = 21
BAND_SEMITONES: int = 11
TEACHER_FIELDS: tuple[str, ...] = (
    *(f"{name}_b{b}" for b in range(N_BANDS) for name in ("onset", "velocity", "sounding")),
    "pedal",
)
"""The K = 25 column names, in order: ``onset_b{b}, velocity_b{b}, sounding_b{b}`` for b = 0..7, then ``pedal``."""
N_TEACHER: int = len(TEACHER_FIELDS)
PEDAL_COL: int = N_TEACHER - 1


def field_index(name: str) -> int:
    """Column of ``name`` in :data:`TEACHER_FIELDS` (raises ``ValueError`` for an unknown name)."""
    return TEACHER_FIELDS.index(name)


ONSET_COLS: np.ndarray = np.array([field_index(f"onset_b{b}") for b in range(N_BANDS)])
VELOCITY_COLS: np.ndarray = np.array([field_index(f"velocity_b{b}") for b in range(N_BANDS)])
SOUNDING_COLS: np.ndarray = np.array([field_index(f"sounding_b{b}") for b in range(N_BANDS)])
"""int [N_BANDS]: the onset, velocity and sounding columns of the bands, low to high."""


def pitch_band(pitch: np.ndarray) -> np.ndarray:
    """Register band (int64, 0..N_BANDS-1) of each MIDI pitch: ``(pitch - 21) // 11`` clipped."""
    p = np.asarray(pitch, dtype=np.int64)
    return np.clip((p - LOWEST_PITCH) // BAND_SEMITONES, 0, N_BANDS - 1)


def row_bounds(start_sec: np.ndarray) -> np.ndarray:
    """float64 [n, TEACHER_ROWS + 1]: the row boundaries (seconds) of the windows starting at ``start_sec``;
    row ``t`` is ``[b[:, t], b[:, t + 1])``."""
    s = np.asarray(start_sec, dtype=np.float64).reshape(-1, 1)
    return s + (np.arange(TEACHER_ROWS + 1) * ROW_FRAMES - 0.5) * FRAME_SEC


def _union(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint sorted intervals covering the union of ``[lo, hi)`` (empty intervals dropped)."""
    keep = hi > lo
    lo, hi = lo[keep], hi[keep]
    if lo.size == 0:
        return lo, hi
    order = np.argsort(lo, kind="stable")
    lo, hi = lo[order], hi[order]
    reach = np.maximum.accumulate(hi)
    new = np.r_[True, lo[1:] > reach[:-1]]  # touching intervals merge too
    starts = lo[new]
    last = np.r_[np.flatnonzero(new)[1:] - 1, lo.size - 1]
    return starts, reach[last]


def _covered(starts: np.ndarray, ends: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Length of ``⋃ [starts, ends) ∩ (-inf, x)`` for disjoint sorted intervals (``ends`` may hold +inf)."""
    if starts.size == 0:
        return np.zeros(x.shape, np.float64)
    prefix = np.r_[0.0, np.cumsum(ends[:-1] - starts[:-1])]  # exclusive: the last (maybe infinite) never summed
    k = np.searchsorted(starts, x, side="right") - 1
    kk = np.clip(k, 0, None)
    part = np.clip(np.minimum(x, ends[kk]) - starts[kk], 0.0, None)
    return np.where(k >= 0, prefix[kk] + part, 0.0)


def teacher_targets(
    onset_sec: np.ndarray,
    offset_sec: np.ndarray,
    pitch: np.ndarray,
    velocity: np.ndarray,
    pedal_sec: np.ndarray,
    pedal_down: np.ndarray,
    start_sec: np.ndarray,
) -> np.ndarray:
    """Teacher targets of the windows starting at ``start_sec`` (see the module docstring).

    Args:
        onset_sec: float [n] note onsets, seconds on the audio's time axis (MIDI time + offset).
        offset_sec: float [n] note offsets (key up), same axis; a note with ``offset <= onset`` still
            counts as an onset but sounds for no time.
        pitch: int [n] MIDI pitches.
        velocity: [n] MIDI velocities 1..127.
        pedal_sec: float [m] sustain-pedal change times (any order; ties keep their given order).
        pedal_down: bool [m] pedal state after each change.
        start_sec: float [N] window starts in seconds.

    Returns:
        float32 [N, TEACHER_ROWS, N_TEACHER] in :data:`TEACHER_FIELDS` order.
    """
    on = np.asarray(onset_sec, dtype=np.float64).ravel()
    off = np.asarray(offset_sec, dtype=np.float64).ravel()
    vel = np.asarray(velocity, dtype=np.float64).ravel() / 127.0
    band = pitch_band(np.asarray(pitch).ravel())
    if not (on.size == off.size == vel.size == band.size):
        raise ValueError(f"note arrays differ in length: {on.size}, {off.size}, {band.size}, {vel.size}")
    pt = np.asarray(pedal_sec, dtype=np.float64).ravel()
    pd_ = np.asarray(pedal_down, dtype=bool).ravel()
    if pt.size != pd_.size:
        raise ValueError(f"pedal arrays differ in length: {pt.size}, {pd_.size}")

    bounds = row_bounds(start_sec)  # (N, R+1)
    n = bounds.shape[0]
    lo, hi = bounds[:, :-1], bounds[:, 1:]
    width = hi - lo
    out = np.zeros((n, TEACHER_ROWS, N_TEACHER), np.float32)
    if n == 0:
        return out

    for b in range(N_BANDS):
        m = band == b
        o, v = on[m], vel[m]
        order = np.argsort(o, kind="stable")
        o, v = o[order], v[order]
        i0 = np.searchsorted(o, lo, side="left")
        i1 = np.searchsorted(o, hi, side="left")
        count = i1 - i0
        csum = np.r_[0.0, np.cumsum(v)]
        with np.errstate(invalid="ignore", divide="ignore"):
            mean_v = np.where(count > 0, (csum[i1] - csum[i0]) / count, np.nan)
        s, e = _union(on[m], off[m])
        snd = (_covered(s, e, hi) - _covered(s, e, lo)) / width
        out[:, :, 3 * b] = count > 0
        out[:, :, 3 * b + 1] = mean_v
        out[:, :, 3 * b + 2] = np.clip(snd, 0.0, 1.0)

    if pt.size:
        order = np.argsort(pt, kind="stable")
        pt, pd_ = pt[order], pd_[order]
        prev = np.r_[False, pd_[:-1]]
        ps, pe = pt[pd_ & ~prev], pt[~pd_ & prev]
        if pe.size < ps.size:  # still down after the last event
            pe = np.r_[pe, np.inf]
        ps, pe = _union(ps, pe)  # drops zero-length presses (down and up at one instant)
        ped = (_covered(ps, pe, hi) - _covered(ps, pe, lo)) / width
        out[:, :, PEDAL_COL] = np.clip(ped, 0.0, 1.0)
    return out


MIN_PLAYING_NOTES: int = 2
"""Fewest onsets in a window for its statistics of the playing (fewer: a NaN row)."""


def window_playing(perf: Performance, start_sec: np.ndarray, offset_sec: float = 0.0) -> np.ndarray:
    """Statistics of the playing in each window (see the module docstring).

    Args:
        perf: the performance, MIDI time (seconds).
        start_sec: float [N] window starts on the audio's time axis (audio time = MIDI time +
            ``offset_sec``).
        offset_sec: the render offset.

    Returns:
        float32 [N, N_MIDI_FEATURES] in :data:`crescendai.core.midi_features.FEATURE_NAMES` order;
        NaN rows where fewer than :data:`MIN_PLAYING_NOTES` onsets fall in ``[start, start + WINDOW_SEC)``.
    """
    start = np.asarray(start_sec, dtype=np.float64).ravel() - offset_sec
    out = np.full((start.size, N_MIDI_FEATURES), np.nan, np.float32)
    notes = sorted(perf.notes, key=lambda n: n.onset_sec)
    on = np.array([n.onset_sec for n in notes], dtype=np.float64)
    i0 = np.searchsorted(on, start, side="left")
    i1 = np.searchsorted(on, start + WINDOW_SEC, side="left")
    for w in np.flatnonzero(i1 - i0 >= MIN_PLAYING_NOTES):
        out[w] = performance_features(Performance(notes[i0[w]:i1[w]], perf.pedal, perf.source))
    return out
