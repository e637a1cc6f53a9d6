"""Saliency of the reported passages: which outputs to explain, in which windows, and computing it.

Saliency (gradient × input, see :meth:`crescendai.tutor.scorer.Scorer.saliency`) explains the
dimensions that feedback reports, in the windows of the reported passages only
(:func:`saliency_targets`), at most ``max_windows`` windows (:func:`add_saliency`): a backward pass
through the backbone for every window would double the cost of the analysis for windows nobody
looks at. The windows are cut again from the mel frames of the analysis's one pass over the
recording (:class:`crescendai.tutor.frontend.FrameFeatures`), so they are exactly the windows that
were scored and the file is not read a second time.
"""

from __future__ import annotations

import os

import numpy as np

from crescendai.core import dims
from crescendai.core.audio import WINDOW_SEC
from crescendai.tutor.frontend import FrameFeatures, read_recording, window_at
from crescendai.tutor.scorer import Scorer
from crescendai.tutor.series import WindowSeries


def _directions() -> np.ndarray:
    """float32 [19]: +1 / −1 for a dimension whose problem pole is high / low, 0 without one."""
    return np.array([dims.problem_direction(d) for d in dims.DIMENSIONS], np.float32)


def saliency_weights(mean: np.ndarray, top_k: int = 2) -> np.ndarray:
    """Which outputs the saliency explains: each window's ``top_k`` worst problem dimensions.

    "Worst" = largest ``direction · (score − 4/7)`` (4/7 is the middle rating 4) among dimensions
    with a problem pole; the weight is the direction (+1 / −1) so the gradient points towards
    "more of the problem".

    Args:
        mean: [B, 19] raw scores.
        top_k: dimensions per window, >= 1.

    Returns:
        float32 [B, 19] weights in {-1, 0, +1}.
    """
    direction = _directions()
    bad = direction[None, :] * (np.asarray(mean, np.float32) - 4.0 / 7.0)
    bad = np.where(direction[None, :] != 0, bad, -np.inf)
    k = min(top_k, int(np.count_nonzero(direction)))
    idx = np.argsort(-bad, axis=1)[:, :k]
    w = np.zeros_like(bad, dtype=np.float32)
    np.put_along_axis(w, idx, direction[idx], axis=1)
    return w


def saliency_targets(series: WindowSeries, lines: list, units, pooled_median: np.ndarray,
                     n_fallback: int = 16) -> list[tuple[np.ndarray, np.ndarray]]:
    """(window indices [k], weights [19]) to explain: each feedback line's valid windows with its
    dimensions; with no line, the ``n_fallback`` windows where the performance's two worst problem
    dimensions (by ``pooled_median`` [19]) peak.

    Args:
        series: the recording's windows.
        lines: :class:`crescendai.tutor.feedback.Line` list, indices into ``units``.
        units: :class:`crescendai.tutor.feedback.Units` the lines refer to.
        pooled_median: [19] whole-performance calibrated scores.
    """
    direction = _directions()
    out = []
    end = series.start_sec + WINDOW_SEC
    for ln in lines:
        lo, hi = float(units.start_sec[ln.first]), float(units.end_sec[ln.last])
        idx = np.flatnonzero(series.valid & (end > lo) & (series.start_sec < hi))
        w = np.zeros(dims.N_DIMS, np.float32)
        w[list(ln.dims)] = direction[list(ln.dims)]
        if idx.size and np.any(w):
            out.append((idx, w))
    if not out:
        w = saliency_weights(pooled_median[None, :], top_k=2)[0]
        bad = (series.scores * w[None, :]).sum(axis=1)
        bad[~series.valid] = -np.inf
        idx = np.sort(np.argsort(-bad)[:n_fallback])
        out.append((idx[np.isfinite(bad[idx])], w))
    return out


def add_saliency(
    recording: FrameFeatures | str | os.PathLike[str],
    series: WindowSeries,
    scorer: Scorer,
    targets: list[tuple[np.ndarray, np.ndarray]],
    *,
    max_windows: int = 64,
    batch_size: int = 32,
) -> None:
    """Compute saliency for chosen windows.

    Args:
        recording: the recording's :class:`~crescendai.tutor.frontend.FrameFeatures` from the
            analysis's pass (a path is read first).
        series: filled in place (``saliency``, ``saliency_done``).
        scorer: the model.
        targets: (window indices [k], weights [19]) pairs: which windows, and which outputs to
            explain there (e.g. +1 on timing for an unstable-timing passage).
        max_windows: total windows at most, spread evenly over the targets' windows.
        batch_size: windows per backward pass.
    """
    chosen: dict[int, np.ndarray] = {}
    uniq = np.unique(np.array([int(i) for idx, _ in targets for i in idx], int))
    pick = np.linspace(0, uniq.size - 1, min(max_windows, uniq.size)).round().astype(int)
    keep = set(uniq[pick].tolist()) if uniq.size else set()
    for idx, w in targets:
        for i in idx:
            if int(i) in keep and int(i) not in chosen:
                chosen[int(i)] = np.asarray(w, np.float32)
    if not chosen:
        return
    feats = recording if isinstance(recording, FrameFeatures) else read_recording(recording)
    ids = sorted(chosen)
    wins = [window_at(feats, i, series.hop_sec) for i in ids]
    db = np.concatenate([w.db for w in wins])  # (k, 128, 128)
    mask = np.concatenate([w.pad_mask for w in wins])  # (k, 128)
    weights = np.stack([chosen[i] for i in ids])
    ids_a = np.asarray(ids)
    for lo in range(0, len(ids), batch_size):
        sl = slice(lo, lo + batch_size)
        sal = scorer.saliency(db[sl], weights[sl], pad_mask=mask[sl])
        series.saliency[ids_a[sl]] = sal.astype(np.float16)
        series.saliency_done[ids_a[sl]] = True
