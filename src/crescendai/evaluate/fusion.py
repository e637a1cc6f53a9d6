"""Fusion of two heads by stacking their out-of-fold predictions (pure functions).

The network head (frozen embedding → ridge) and the hand-crafted audio ridge each keep the penalty
chosen for their own block; stacking then learns only one convex weight per dimension,
``fused = w·a + (1 − w)·b`` with ``w`` on a grid in [0, 1]. Why stacking rather than one ridge over
the concatenated blocks: with ~100 training segments one penalty over 256 embedding and 60 feature
columns is set by the larger block (the concatenation measured within noise of the features alone),
and 19 blend weights are all that the out-of-fold predictions can support.

Honest folds: the rows of fold ``k`` are blended with weights chosen on the *other* folds' out-of-fold
rows only; the test rows with weights chosen on every out-of-fold row. (The base predictions of the
other folds came from models that saw fold ``k``'s labels — the usual, small, stacking optimism.)
"""

from __future__ import annotations

import numpy as np

FUSION = "fusion"
"""The metrics key prefix of the network ⊕ audio-ridge blend (``fusion_cv`` / ``fusion_test``)."""
WEIGHTS: np.ndarray = np.linspace(0.0, 1.0, 11)
"""The candidate weights of the first head."""


def blend_weights(a: np.ndarray, b: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Per-dimension weight of ``a`` in :data:`WEIGHTS` minimising the MSE of ``w·a + (1−w)·b``
    against ``y`` (all [S, D], NaN rows ignored) → [D]; ties go to the smaller weight."""
    ok = np.isfinite(a).all(1) & np.isfinite(b).all(1) & np.isfinite(y).all(1)
    a, b, y = a[ok], b[ok], y[ok]
    if len(y) == 0:
        return np.full(y.shape[1], 0.5)
    mse = np.stack([((w * a + (1 - w) * b - y) ** 2).mean(0) for w in WEIGHTS])  # (W, D)
    return WEIGHTS[np.argmin(mse, axis=0)]


def stack_predictions(a_oof: np.ndarray, b_oof: np.ndarray, y: np.ndarray, folds: np.ndarray,
                      a_test: np.ndarray | None = None, b_test: np.ndarray | None = None
                      ) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """Blend two heads' predictions (see the module docstring).

    Args:
        a_oof, b_oof: [S, D] out-of-fold predictions of the two heads on the same segments.
        y: [S, D] labels. folds: [S] the fold of each segment.
        a_test, b_test: optional [T, D] test predictions.

    Returns:
        (fused out-of-fold [S, D], fused test [T, D] or None, the test weights [D]).
    """
    fused = np.full(np.shape(a_oof), np.nan)
    for k in np.unique(folds):
        held = folds == k
        w = blend_weights(a_oof[~held], b_oof[~held], y[~held])
        fused[held] = w * a_oof[held] + (1 - w) * b_oof[held]
    w_all = blend_weights(a_oof, b_oof, y)
    test = None if a_test is None or b_test is None else w_all * a_test + (1 - w_all) * b_test
    return fused, test, w_all
