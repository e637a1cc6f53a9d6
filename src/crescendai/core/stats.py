"""Per-dimension agreement between ratings and predictions: Pearson r, R², MSE, median r.

Pure functions on float arrays ``y_true``, ``y_pred`` of shape [N, D] (N segments or windows, D
dimensions; a 1-D array is one dimension). They wrap scipy and scikit-learn and add the one rule the
project needs: a dimension without variance (or with N < 2) gives ``nan``, never a number, and the
``nan``-aware summaries skip it. Used by model selection (``learn``), evaluation and calibration.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats
from sklearn.metrics import mean_squared_error, r2_score

_FLAT = 1e-12  # a column whose sum of squared deviations is below this has no variance


def paired(y_true: np.ndarray, y_pred: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as float64 [N, D] (a 1-D array is one column); ``ValueError`` if shapes differ."""
    yt = np.asarray(y_true, dtype=np.float64)
    yp = np.asarray(y_pred, dtype=np.float64)
    yt, yp = (yt[:, None] if yt.ndim == 1 else yt), (yp[:, None] if yp.ndim == 1 else yp)
    if yt.shape != yp.shape:
        raise ValueError(f"y_true {yt.shape} and y_pred {yp.shape} must have the same shape [N, D]")
    return yt, yp


def _flat(x: np.ndarray) -> np.ndarray:
    """bool [D]: columns without variance."""
    return ~(((x - x.mean(0)) ** 2).sum(0) > _FLAT)


def pearson_per_dim(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Pearson r per column → float [D] in [-1, 1]; ``nan`` where a column is constant or N < 2."""
    yt, yp = paired(y_true, y_pred)
    if yt.shape[0] < 2:
        return np.full(yt.shape[1], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", stats.ConstantInputWarning)
        r = np.atleast_1d(stats.pearsonr(yt, yp, axis=0).statistic)
    r[_flat(yt) | _flat(yp)] = np.nan
    return r


def r2_per_dim(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Coefficient of determination per column (1 − SSE/SST, can be negative) → float [D];
    ``nan`` where the ratings are constant."""
    yt, yp = paired(y_true, y_pred)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.atleast_1d(r2_score(yt, yp, multioutput="raw_values", force_finite=False))
    r2 = r2.astype(np.float64)
    r2[_flat(yt)] = np.nan
    return r2


def mse_per_dim(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """Mean squared error per column → float [D] (label units², labels in [1/7, 1])."""
    yt, yp = paired(y_true, y_pred)
    return np.atleast_1d(mean_squared_error(yt, yp, multioutput="raw_values"))


def nanmedian(x: np.ndarray) -> float:
    """Median ignoring ``nan``; ``nan`` when everything is ``nan``."""
    x = np.asarray(x, dtype=np.float64)
    return float(np.median(x[np.isfinite(x)])) if np.isfinite(x).any() else float("nan")


def median_r(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Median over dimensions of the per-dimension Pearson r (the headline figure)."""
    return nanmedian(pearson_per_dim(y_true, y_pred))
