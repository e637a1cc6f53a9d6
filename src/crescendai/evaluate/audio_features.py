"""The audio peer baseline's inputs: hand-crafted features of the contract windows.

Features are computed from the same cached mel-dB windows the network sees (float [N, 128, 128] =
[window, time frame, mel band], values in [-80, 0] dB), so the baseline and the network share inputs,
splits and folds. Per window (:func:`window_features`, 30 values):

- level shape: mean and std of the frame loudness curve (max dB over bands), fraction of loud frames;
- spectral shape: mean/std of the spectral centroid and of the spectral spread (mel-bin units, from
  power), a coarse 8-band mean spectrum;
- attacks: mean / std / 90th percentile of the positive spectral flux (onset strength), onset rate;
- sustain: mean frame-to-frame spectral correlation (pedal / legato smear), high-band decay proxy.

Per segment (:func:`segment_features`): the mean and std over the segment's windows. Time-local
proxies from the feature index (``p_*`` columns) may be appended by the caller. The ridge itself is
:mod:`crescendai.evaluate.ridge`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

N_BANDS = 8
FEATURE_NAMES: tuple[str, ...] = (
    "level_mean", "level_std", "loud_frac",
    "centroid_mean", "centroid_std", "spread_mean", "spread_std",
    *(f"band{i}" for i in range(N_BANDS)),
    "flux_mean", "flux_std", "flux_p90", "onset_rate",
    "frame_corr", "hf_minus_lf", "level_range", "level_slope",
    "centroid_slope", "flux_cv", "band_contrast", "quiet_frac", "db_mean", "db_std", "tail_decay",
)
N_WINDOW_FEATURES = len(FEATURE_NAMES)


def window_features(db: np.ndarray, pad_fraction: np.ndarray | None = None) -> np.ndarray:
    """Hand-crafted features per window → float32 [N, 30] (see :data:`FEATURE_NAMES`).

    Args:
        db: float [N, T=128, M=128] mel dB in [-80, 0] (float16 memmaps fine; processed in chunks of
            256 windows, vectorised over the windows of a chunk that have the same valid length).
        pad_fraction: optional float [N] in [0, 1]; padded tail frames (at -80 dB) are excluded from
            time statistics when given.
    """
    db = np.asarray(db)
    if db.ndim != 3:
        raise ValueError(f"db must be [N, T, M], got shape {db.shape}")
    out = np.empty((db.shape[0], N_WINDOW_FEATURES), dtype=np.float32)
    for s in range(0, db.shape[0], 256):
        x = np.asarray(db[s : s + 256], dtype=np.float32)
        pf = None if pad_fraction is None else np.asarray(pad_fraction[s : s + 256])
        out[s : s + 256] = _chunk_features(x, pf)
    return out


def _chunk_features(x: np.ndarray, pad_fraction: np.ndarray | None) -> np.ndarray:
    """Features of one chunk of windows: float32 [N, T, M] dB → float32 [N, 30].

    Windows with the same number of valid (unpadded) frames are computed together, vectorised over
    windows; the arithmetic per window is that of the original per-window loop (same dtypes, same
    reduction axes), so the values equal it to float32 rounding.
    """
    n, t, _ = x.shape
    valid_t = np.full(n, t) if pad_fraction is None else np.maximum(
        2, np.round(t * (1.0 - pad_fraction)).astype(int)
    )
    valid_t = np.minimum(valid_t, t)  # a window never has more than its t frames
    feats = np.zeros((n, N_WINDOW_FEATURES), dtype=np.float32)
    for vt in np.unique(valid_t):
        rows = np.flatnonzero(valid_t == vt)
        w = x if rows.size == n and vt == t else x[rows, :vt]
        feats[rows] = _group_features(np.ascontiguousarray(w))
    return feats


def _group_features(w: np.ndarray) -> np.ndarray:
    """Features of K windows that all have T' valid frames: float32 [K, T', M] dB → float32 [K, 30]
    (columns in :data:`FEATURE_NAMES` order). T' ≥ 2."""
    k, tv, m = w.shape
    level = w.max(2)  # [K, T'] dB
    p = w / 10.0
    np.power(10.0, p, out=p)  # power; in place: no second [K, T', M] buffer
    ps = p.sum(2) + 1e-12  # [K, T']
    bins = np.arange(m, dtype=np.float32)
    cen = (p * bins).sum(2) / ps
    spread = np.sqrt((p * (bins - cen[..., None]) ** 2).sum(2) / ps)
    del p
    bands = w.reshape(k, tv, N_BANDS, m // N_BANDS).mean(3).mean(1)  # [K, 8] mean dB per band
    flux = np.maximum(np.diff(w, axis=1), 0.0).mean(2)  # [K, T'-1]
    flux_mean, flux_std = flux.mean(1), flux.std(1)
    mid = flux[:, 1:-1]
    peaks = (mid > (flux_mean + flux_std)[:, None]) & (mid >= flux[:, :-2]) & (mid >= flux[:, 2:])
    centred = w - w.mean(2, keepdims=True)  # each frame minus its mean over bands
    ss = (centred * centred).sum(2)  # [K, T']
    corr = (centred[:, :-1] * centred[:, 1:]).sum(2) / (np.sqrt(ss[:, :-1] * ss[:, 1:]) + 1e-9)
    del centred
    hf = w[:, :, m // 2 :].mean(2)  # [K, T'] high-band level
    zero = np.zeros(k)
    cols = (
        level.mean(1), level.std(1), (level > -20).mean(1),
        cen.mean(1), cen.std(1), spread.mean(1), spread.std(1),
        *bands.T,
        flux_mean, flux_std, np.percentile(flux, 90, axis=1), peaks.sum(1) / tv,
        corr.mean(1), hf.mean(1) - w[:, :, : m // 4].mean(axis=(1, 2)), np.ptp(level, axis=1),
        _slope(level) if tv > 2 else zero,
        _slope(cen) if tv > 2 else zero, flux_std / (flux_mean + 1e-6), bands.max(1) - bands.min(1),
        (level < -60).mean(1), w.mean(axis=(1, 2)), w.std(axis=(1, 2)), _decay(hf),
    )
    return np.stack(cols, axis=1).astype(np.float32)


def _slope(curves: np.ndarray) -> np.ndarray:
    """Least-squares slope per row of float [K, T'] curves against frame index (units per frame),
    float64 [K]; the degree-1 ``np.polyfit`` coefficient in closed form."""
    tt = np.arange(curves.shape[1], dtype=np.float64)
    tt -= tt.mean()
    y = curves.astype(np.float64)
    return (y - y.mean(1, keepdims=True)) @ tt / (tt @ tt)


def _decay(curves: np.ndarray) -> np.ndarray:
    """Mean negative frame-to-frame step of each dB curve (how fast sound dies away; 0 when it never
    falls): float [K, T'] → float64 [K]."""
    d = np.diff(curves, axis=1)
    neg = d < 0
    count = neg.sum(1)
    total = np.where(neg, d, 0.0).sum(1, dtype=np.float64)
    return np.where(count > 0, total / np.maximum(count, 1), 0.0)


def segment_features(window_feats: np.ndarray, segment_ids: Sequence[object]) -> tuple[np.ndarray, list]:
    """Mean and std over each segment's windows → (float [S, 2F], segment ids in first-seen order)."""
    ids = np.asarray(segment_ids)
    order: list = list(dict.fromkeys(ids.tolist()))
    out = np.empty((len(order), 2 * window_feats.shape[1]), dtype=np.float64)
    for k, s in enumerate(order):
        f = window_feats[ids == s].astype(np.float64)
        out[k] = np.concatenate([f.mean(0), f.std(0)])
    return out, order
