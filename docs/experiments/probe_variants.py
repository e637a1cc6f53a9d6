"""Exploratory: heads on the frozen pretrained backbone that the tutor could ship, beside the shipped probe.

Run after `uv run dvc repro` (reads data/features/labelled and models/pretrain); prints the CV median r
and mean r
(the labelled non-test segments, the pipeline's performer folds, the pipeline's ridge `fold_models`) of:

- the shipped probe (mean of the last layer's patch tokens per segment);
- the mean tokens of another layer, and several layers concatenated;
- a ridge on the segment means of the 30 hand-crafted window features (no std: linear in per-window
  quantities, so a tutor could compute it window by window), and the audio ridge's mean + std;
- per-dimension stacking of the probe with each (one convex weight per dimension, chosen on the other
  folds' out-of-fold rows: the pipeline's "fusion" until the shippable concatenation replaced it);
- one ridge on [mean embedding ⊕ mean window features] (window-decomposable: shippable as one Linear;
  the pipeline's ``fusion`` variant, ``crescendai.evaluate.fusion``), and the same with the feature
  block scaled after standardisation (a per-block penalty).

    uv run python docs/experiments/probe_variants.py

Not part of the pipeline: a record of what was tried for issue 12's "shipped ≥ audio ridge + 0.05".
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.linear_model import Ridge, RidgeCV

from crescendai.core.ridge import RIDGE_ALPHAS, fold_models, make_ridge
from crescendai.core.stats import median_r
from crescendai.evaluate.audio_features import window_features
from crescendai.learn.finetune import _pad_mask, _window_tensor, load_labelled, segment_means
from crescendai.model import load_backbone


def layer_embeddings(backbone, data) -> list[np.ndarray]:
    """Per block, the mean of its (final-LayerNorm'd) patch tokens per window: [W, C] each."""
    per: list[list[np.ndarray]] = [[] for _ in backbone.blocks]
    with torch.inference_mode():
        for s in range(0, len(data.index), 256):
            p = np.arange(s, min(s + 256, len(data.index)))
            x, m = _window_tensor(data, p, torch.device("cpu")), _pad_mask(data.pad_fraction[p], torch.device("cpu"))
            h, attn = backbone._embed(x, m, None)
            for i, block in enumerate(backbone.blocks):
                h = block(h, attn)
                per[i].append(backbone.pool(backbone.ln_f(h), m).numpy())
    return [np.concatenate(v) for v in per]


WEIGHTS = np.linspace(0.0, 1.0, 11)


def stack(a: np.ndarray, b: np.ndarray, y: np.ndarray, folds: np.ndarray) -> np.ndarray:
    """Per dimension ``w·a + (1 − w)·b`` [S, D], ``w`` on a grid chosen on the other folds' rows."""
    fused = np.full(a.shape, np.nan)
    for k in np.unique(folds):
        o = folds != k
        mse = np.stack([((w * a[o] + (1 - w) * b[o] - y[o]) ** 2).mean(0) for w in WEIGHTS])  # (W, D)
        w = WEIGHTS[np.argmin(mse, axis=0)]
        fused[folds == k] = w * a[folds == k] + (1 - w) * b[folds == k]
    return fused


SCALES = (1.0, 2.0, 3.0, 5.0)


def scaled(Z: np.ndarray, fit: np.ndarray, n_first: int, scale: float) -> np.ndarray:
    """``Z`` standardised on the rows ``fit``, the columns after ``n_first`` multiplied by ``scale``."""
    mu, sd = Z[fit].mean(0), Z[fit].std(0) + 1e-12
    s = np.ones(Z.shape[1])
    s[n_first:] = scale
    return (Z - mu) / sd * s


def inner_score(Z: np.ndarray, y: np.ndarray, folds: np.ndarray, tr: np.ndarray, n_first: int,
                scale: float, alpha: float, how: str) -> float:
    """Grouped inner-fold score of (scale, alpha) on the rows ``tr`` (the other performer folds):
    minus the MSE (``how`` = "mse") or the median r."""
    ip = np.full_like(y, np.nan)
    for j in np.unique(folds[tr]):
        itr, iva = tr & (folds != j), tr & (folds == j)
        X = scaled(Z, itr, n_first, scale)
        ip[iva] = Ridge(alpha=alpha).fit(X[itr], y[itr]).predict(X[iva])
    return -((ip[tr] - y[tr]) ** 2).mean() if how == "mse" else median_r(y[tr], ip[tr])


def inner_scale_oof(Z: np.ndarray, y: np.ndarray, folds: np.ndarray, keep: np.ndarray, n_first: int,
                    how: str) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Out-of-fold predictions with the feature-block scale (and alpha) chosen on each outer fold's
    training rows only: ``how`` = "loo" (RidgeCV's leave-one-out error over :data:`SCALES`), "mse" or
    "median_r" (grouped inner folds = the other performer folds, over :data:`SCALES` × alphas).
    Returns the predictions and the (scale, alpha) chosen per outer fold."""
    pred, picks = np.full_like(y, np.nan), []
    for k in np.unique(folds[keep]):
        tr, va = keep & (folds != k), keep & (folds == k)
        if how == "loo":
            fits = [RidgeCV(alphas=RIDGE_ALPHAS).fit(scaled(Z, tr, n_first, g)[tr], y[tr]) for g in SCALES]
            best = int(np.argmax([f.best_score_ for f in fits]))
            pick = (SCALES[best], float(fits[best].alpha_))
        else:
            grid = [(g, a) for g in SCALES for a in RIDGE_ALPHAS]
            pick = max(grid, key=lambda ga: inner_score(Z, y, folds, tr, n_first, *ga, how))
        X = scaled(Z, tr, n_first, pick[0])
        pred[va] = Ridge(alpha=pick[1]).fit(X[tr], y[tr]).predict(X[va])
        picks.append(pick)
    return pred, picks


def main() -> None:
    torch.set_num_threads(2)
    data = load_labelled("data/features/labelled")
    y, folds, is_test = data.y, data.folds, data.is_test
    keep = ~is_test

    def oof(Z: np.ndarray, block_scale: float = 1.0) -> np.ndarray:
        """Out-of-fold ridge predictions; ``block_scale`` multiplies the standardised columns after
        the first 256 (the window features beside the embedding)."""
        pred = np.full_like(y, np.nan)
        if block_scale == 1.0:
            for k, pipe in fold_models(Z, y, folds, is_test).items():
                if k >= 0:
                    segs = np.flatnonzero(keep & (folds == k))
                    pred[segs] = pipe.predict(Z[segs])
            return pred
        for k in np.unique(folds[keep]):
            fit, segs = keep & (folds != k), keep & (folds == k)
            X = scaled(Z, fit, 256, block_scale)
            pred[segs] = make_ridge()[-1].fit(X[fit], y[fit]).predict(X[segs])
        return pred

    def show(name: str, pred: np.ndarray) -> None:
        r = [np.corrcoef(y[keep, d], pred[keep, d])[0, 1] for d in range(y.shape[1])]
        print(f"{name:<58} {median_r(y[keep], pred[keep]):.3f}  {np.nanmean(r):.3f}")

    layers = layer_embeddings(load_backbone("models/pretrain").eval(), data)
    seg = [segment_means(e, data.rows) for e in layers]
    wf = window_features(data.windows, data.pad_fraction)
    f_mean = segment_means(wf, data.rows)
    f_mean_std = np.stack([np.concatenate([wf[r].mean(0), wf[r].std(0)]) for r in data.rows])
    probe, feats, audio = oof(seg[-1]), oof(f_mean), oof(f_mean_std)
    print(f"{'head (CV)':<58} median r  mean r")
    show("probe, last layer (shipped)", probe)
    for i in range(len(seg) - 1):
        show(f"probe, layer {i + 1} of {len(seg)}", oof(seg[i]))
    show("probe, all layers concatenated", oof(np.hstack(seg)))
    show("ridge, mean window features (window-decomposable)", feats)
    show("ridge, mean + std window features (the audio ridge)", audio)
    for name, other in (("mean window features", feats), ("the audio ridge", audio)):
        fused = np.full_like(y, np.nan)
        fused[keep] = stack(probe[keep], other[keep], y[keep], folds[keep])
        show(f"stack: probe + {name}", fused)
    joint = np.hstack([seg[-1], f_mean])
    show("one ridge: mean embedding ⊕ mean window features (fusion)", oof(joint))
    for scale in (0.5, 2.0, 3.0, 5.0):
        show(f"  the same, feature block ×{scale:g} after standardising", oof(joint, scale))
    for how in ("loo", "mse", "median_r"):
        pred, picks = inner_scale_oof(joint, y, folds, keep, seg[-1].shape[1], how)
        show(f"  the same, scale chosen inside each fold ({how})", pred)
        print(f"{'':<58} (scale, alpha) per fold: {picks}")


if __name__ == "__main__":
    main()
