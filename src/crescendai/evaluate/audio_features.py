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
        db: float [N, T=128, M=128] mel dB in [-80, 0] (float16 memmaps fine; processed in chunks).
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
    n, t, m = x.shape
    valid_t = np.full(n, t) if pad_fraction is None else np.maximum(
        2, np.round(t * (1.0 - pad_fraction)).astype(int)
    )
    feats = np.zeros((n, N_WINDOW_FEATURES), dtype=np.float32)
    bins = np.arange(m, dtype=np.float32)
    for i in range(n):
        w = x[i, : valid_t[i]]  # [T', M]
        level = w.max(1)  # [T'] dB
        p = 10.0 ** (w / 10.0)  # power
        ps = p.sum(1, keepdims=True) + 1e-12
        cen = (p * bins).sum(1) / ps[:, 0]
        spread = np.sqrt((p * (bins - cen[:, None]) ** 2).sum(1) / ps[:, 0])
        bands = w.reshape(len(w), N_BANDS, m // N_BANDS).mean(2).mean(0)  # [8]
        flux = np.maximum(np.diff(w, axis=0), 0.0).mean(1)  # [T'-1]
        thr = flux.mean() + flux.std()
        onsets = np.sum((flux[1:-1] > thr) & (flux[1:-1] >= flux[:-2]) & (flux[1:-1] >= flux[2:]))
        a, b = w[:-1] - w[:-1].mean(1, keepdims=True), w[1:] - w[1:].mean(1, keepdims=True)
        corr = (a * b).sum(1) / (np.sqrt((a * a).sum(1) * (b * b).sum(1)) + 1e-9)
        tt = np.arange(len(w), dtype=np.float32)
        slope = np.polyfit(tt, level, 1)[0] if len(w) > 2 else 0.0
        cslope = np.polyfit(tt, cen, 1)[0] if len(w) > 2 else 0.0
        hf = w[:, m // 2 :].mean(1)
        feats[i] = (
            level.mean(), level.std(), (level > -20).mean(),
            cen.mean(), cen.std(), spread.mean(), spread.std(),
            *bands,
            flux.mean(), flux.std(), np.percentile(flux, 90), onsets / len(w),
            corr.mean(), hf.mean() - w[:, : m // 4].mean(), np.ptp(level), slope,
            cslope, flux.std() / (flux.mean() + 1e-6), bands.max() - bands.min(),
            (level < -60).mean(), w.mean(), w.std(), _decay(hf),
        )
    return feats


def _decay(curve: np.ndarray) -> float:
    """Mean negative slope of a dB curve after its local maxima (how fast sound dies away)."""
    d = np.diff(curve)
    neg = d[d < 0]
    return float(neg.mean()) if neg.size else 0.0


def segment_features(window_feats: np.ndarray, segment_ids: Sequence[object]) -> tuple[np.ndarray, list]:
    """Mean and std over each segment's windows → (float [S, 2F], segment ids in first-seen order)."""
    ids = np.asarray(segment_ids)
    order: list = list(dict.fromkeys(ids.tolist()))
    out = np.empty((len(order), 2 * window_feats.shape[1]), dtype=np.float64)
    for k, s in enumerate(order):
        f = window_feats[ids == s].astype(np.float64)
        out[k] = np.concatenate([f.mean(0), f.std(0)])
    return out, order
