"""The one ridge head: ``StandardScaler → RidgeCV`` and its out-of-fold predictions on fixed folds.

Shared by the frozen-embedding probe head (``crescendai.learn.probe``) and the hand-crafted ridge
peers (``crescendai.evaluate.ridge``), so "same head, same folds" holds by construction.

:func:`ridge_cv_predict` chooses alpha by efficient leave-one-out on the *training* rows of each fold
only, predicts each held-out fold with a model that never saw it, and fits once on all non-test
rows for the fixed test set; :func:`fold_models` holds those fitted models. :func:`linear_weights` folds a fitted pipeline into one ``(W, b)`` so that a torch
``Linear`` reproduces it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RIDGE_ALPHAS: tuple[float, ...] = (0.1, 1.0, 10.0, 100.0, 1000.0)


def make_ridge(alphas: Sequence[float] = RIDGE_ALPHAS):
    """``StandardScaler → RidgeCV`` (multi-output; alpha by leave-one-out on the fitted rows)."""
    from sklearn.linear_model import RidgeCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), RidgeCV(alphas=tuple(alphas)))


def ridge_cv_predict(
    X: np.ndarray,
    Y: np.ndarray,
    folds: np.ndarray,
    is_test: np.ndarray,
    alphas: Sequence[float] = RIDGE_ALPHAS,
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold and test predictions of the ridge head.

    Args:
        X: float [S, F] segment features. Y: float [S, D] labels.
        folds: int [S], the performer-level fold of each non-test segment (ignored on test rows).
        is_test: bool [S], the fixed test set.

    Returns:
        ``(oof, test)``: float [S, D] each; ``oof`` filled on non-test rows (each predicted by a model
        that never saw its fold), ``test`` filled on test rows (model fit on all non-test rows); the
        other rows are ``nan``. With fewer than two folds ``oof`` stays ``nan``.
    """
    X = np.asarray(X, float)
    Y = np.asarray(Y, float)
    folds = np.asarray(folds)
    is_test = np.asarray(is_test, bool)
    oof = np.full(Y.shape, np.nan)
    test = np.full(Y.shape, np.nan)
    for k, model in fold_models(X, Y, folds, is_test, alphas).items():
        rows = is_test if k < 0 else ~is_test & (folds == k)
        if rows.any():
            (test if k < 0 else oof)[rows] = model.predict(X[rows])
    return oof, test


def fold_models(X: np.ndarray, Y: np.ndarray, folds: np.ndarray, is_test: np.ndarray,
                alphas: Sequence[float] = RIDGE_ALPHAS) -> dict[int, object]:
    """The fitted pipelines behind :func:`ridge_cv_predict`: fold ``k`` → the model fitted on the other
    non-test folds (it predicts fold ``k``), and ``-1`` → the model fitted on every non-test row (it
    predicts the test set). Same arguments as :func:`ridge_cv_predict`."""
    X, Y = np.asarray(X, float), np.asarray(Y, float)
    folds, dev = np.asarray(folds), ~np.asarray(is_test, bool)
    out: dict[int, object] = {}
    ks = np.unique(folds[dev])
    if len(ks) >= 2:
        for k in ks:
            fit = dev & (folds != k)
            out[int(k)] = make_ridge(alphas).fit(X[fit], Y[fit])
    if dev.sum() >= 2:
        out[-1] = make_ridge(alphas).fit(X[dev], Y[dev])
    return out


def linear_weights(pipeline) -> tuple[np.ndarray, np.ndarray]:
    """A fitted :func:`make_ridge` pipeline → ``W`` float32 [D, F], ``b`` float32 [D] with
    ``pipeline.predict(X) == X @ W.T + b`` (the scaler folded into the ridge coefficients)."""
    scaler, ridge = pipeline[0], pipeline[-1]
    coef = np.atleast_2d(ridge.coef_)  # (D, F) on standardised inputs
    W = coef / scaler.scale_[None, :]
    b = np.atleast_1d(ridge.intercept_) - W @ scaler.mean_
    return W.astype(np.float32), b.astype(np.float32)
