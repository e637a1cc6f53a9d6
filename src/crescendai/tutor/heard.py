"""What the model heard where: the performance teacher's row head, as a timeline of the recording.

The row head (``crescendai.model.heads.RowTeacherHead``, trained in pretraining on targets derived
from the MIDI of every SSL recording, ``crescendai.data.teacher``) predicts, for each 0.37-s time
row of each window and each of 8 register bands, whether a note starts, its velocity and whether
notes sound, and the sustain-pedal share. :func:`heard_timeline` puts the rows of every window on
one time grid (rows of overlapping windows that fall in the same grid cell are averaged) and sums
them up as three curves a teacher reads:

- ``onsets``: register bands with a note starting, expected count (0–8), Σ_b P(onset_b);
- ``velocity``: the attack velocity (MIDI 1–127), P(onset)-weighted over the bands; NaN where less
  than :data:`MIN_ONSET_MASS` of an onset is expected (nothing struck, nothing to weigh);
- ``pedal``: P(sustain pedal down), 0–1.

Their accuracy is the head's own, measured by the pretrain stage on held-out recordings
(``metrics/pretrain.json``: ``teacher_*``) and carried in the bundle (``Bundle.heard_quality``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from crescendai.core.audio import FRAME_SEC
from crescendai.data.teacher import ONSET_COLS, PEDAL_COL, ROW_FRAMES, VELOCITY_COLS

ROW_SEC: float = ROW_FRAMES * FRAME_SEC
"""One time row of the head: 16 frames, ≈ 0.37 s."""
MIN_ONSET_MASS: float = 0.3
QUALITY_NAMES: dict[str, str] = {"teacher_onset_f1": "onset F1", "teacher_velocity_r": "velocity r",
                                 "teacher_pedal_acc": "pedal accuracy"}
"""The head's held-out measures a report shows (pretrain metric → plain name)."""


@dataclass(frozen=True)
class Heard:
    """The heard timeline: cell ``i`` covers ``[start_sec[i], start_sec[i] + ROW_SEC)``; each curve
    is float [M] (see the module docstring); ``quality`` the head's held-out measures."""

    start_sec: np.ndarray
    onsets: np.ndarray
    velocity: np.ndarray
    pedal: np.ndarray
    quality: dict


def heard_timeline(start_sec: np.ndarray, heard: np.ndarray, valid: np.ndarray, duration_sec: float,
                   quality: dict | None = None) -> Heard:
    """Put per-window rows on one grid of :data:`ROW_SEC` cells.

    Args:
        start_sec: [N] window starts (s). heard: [N, rows, K] the head's sigmoid outputs.
        valid: [N] bool, windows to use (not mostly padding). duration_sec: the recording's length.
        quality: the head's held-out measures (pretrain metric names); those of
            :data:`QUALITY_NAMES` are kept, under their plain names.

    Returns:
        :class:`Heard` over ``ceil(duration / ROW_SEC)`` cells; cells no valid window covers are NaN.
    """
    n_cells = max(1, int(np.ceil(duration_sec / ROW_SEC)))
    rows = heard.shape[1]
    h = np.asarray(heard, np.float64)[valid]  # (n, rows, K)
    centres = np.asarray(start_sec, float)[valid, None] + (np.arange(rows) * ROW_FRAMES + (ROW_FRAMES - 1) / 2) * FRAME_SEC
    cell = np.clip((centres / ROW_SEC).astype(int), 0, n_cells - 1).ravel()  # (n·rows,)
    flat = h.reshape(-1, h.shape[-1])
    count = np.bincount(cell, minlength=n_cells).astype(float)
    mean = np.stack([np.bincount(cell, flat[:, k], n_cells) for k in range(flat.shape[1])], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = mean / count[:, None]  # (M, K), NaN where no window
        p_on = mean[:, ONSET_COLS]
        mass = p_on.sum(axis=1)
        vel = (p_on * mean[:, VELOCITY_COLS]).sum(axis=1) / mass * 127.0
    vel = np.where(mass >= MIN_ONSET_MASS, np.clip(vel, 1.0, 127.0), np.nan)
    shown = {QUALITY_NAMES[k]: float(v) for k, v in (quality or {}).items() if k in QUALITY_NAMES}
    return Heard(start_sec=np.arange(n_cells) * ROW_SEC, onsets=mass, velocity=vel,
                 pedal=mean[:, PEDAL_COL], quality=shown)
