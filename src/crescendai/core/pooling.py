"""Robust pooling of window scores into one score per segment or performance (pure NumPy).

Shared by fine-tuning/evaluation (segment scores) and the tutor (whole-performance scores), so both
pool the same way. NumPy only: the tutor keeps ``scipy.stats`` (~60 MB of RSS) out of its process.
"""

from __future__ import annotations

import numpy as np

METHODS: tuple[str, ...] = ("median", "trimmed_mean", "mean")


def trimmed_mean(x: np.ndarray, trim: float) -> np.ndarray:
    """Mean over axis 0 after dropping ``floor(trim · n)`` values at each end, per column (as
    ``scipy.stats.trim_mean``). x float [n, d] → float64 [d]; ``trim`` in [0, 0.5)."""
    xs = np.sort(np.asarray(x, np.float64), axis=0)
    k = int(trim * xs.shape[0])
    return xs[k : xs.shape[0] - k].mean(axis=0)


def pool(values: np.ndarray, method: str = "median", trim: float = 0.2) -> np.ndarray:
    """Pool window scores float [W, D] → float64 [D] by ``median``, ``trimmed_mean`` (``trim`` of the
    windows dropped at each end per dimension) or ``mean``."""
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or len(v) == 0:
        raise ValueError(f"pool expects a non-empty [W, D] array, got {v.shape}")
    if method == "median":
        return np.median(v, axis=0)
    if method == "mean":
        return v.mean(0)
    if method == "trimmed_mean":
        return trimmed_mean(v, trim)
    raise ValueError(f"unknown pooling {method!r}; use {', '.join(METHODS)}")
