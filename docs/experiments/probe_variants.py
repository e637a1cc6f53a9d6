"""Exploratory: heads on the frozen pretrained backbone that the tutor could ship, beside the shipped probe.

Run after `uv run dvc repro` (reads data/features/labelled and models/pretrain); prints the CV median r
(the labelled non-test segments, the pipeline's performer folds, the pipeline's ridge `fold_models`) of:

- the shipped probe (mean of the last layer's patch tokens per segment);
- the mean tokens of another layer, and several layers concatenated;
- a ridge on the segment means of the 30 hand-crafted window features (no std: linear in per-window
  quantities, so a tutor could compute it window by window), and the audio ridge's mean + std;
- per-dimension stacking of the probe with each (``crescendai.evaluate.fusion``);
- one ridge on [mean embedding ⊕ mean window features] (window-decomposable: shippable as one Linear).

    uv run python docs/experiments/probe_variants.py

Not part of the pipeline: a record of what was tried for issue 12's "shipped ≥ audio ridge + 0.05".
"""

from __future__ import annotations

import numpy as np
import torch

from crescendai.core.ridge import fold_models
from crescendai.core.stats import median_r
from crescendai.evaluate.audio_features import window_features
from crescendai.evaluate.fusion import stack_predictions
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


def main() -> None:
    torch.set_num_threads(2)
    data = load_labelled("data/features/labelled")
    y, folds, is_test = data.y, data.folds, data.is_test
    keep = ~is_test

    def oof(Z: np.ndarray) -> np.ndarray:
        pred = np.full_like(y, np.nan)
        for k, pipe in fold_models(Z, y, folds, is_test).items():
            if k >= 0:
                segs = np.flatnonzero(keep & (folds == k))
                pred[segs] = pipe.predict(Z[segs])
        return pred

    def show(name: str, pred: np.ndarray) -> None:
        print(f"{name:<58} {median_r(y[keep], pred[keep]):.3f}")

    layers = layer_embeddings(load_backbone("models/pretrain").eval(), data)
    seg = [segment_means(e, data.rows) for e in layers]
    wf = window_features(data.windows, data.pad_fraction)
    f_mean = segment_means(wf, data.rows)
    f_mean_std = np.stack([np.concatenate([wf[r].mean(0), wf[r].std(0)]) for r in data.rows])
    probe, feats, audio = oof(seg[-1]), oof(f_mean), oof(f_mean_std)
    print(f"{'head (CV median r)':<58} r")
    show("probe, last layer (shipped)", probe)
    for i in range(len(seg) - 1):
        show(f"probe, layer {i + 1} of {len(seg)}", oof(seg[i]))
    show("probe, all layers concatenated", oof(np.hstack(seg)))
    show("ridge, mean window features (window-decomposable)", feats)
    show("ridge, mean + std window features (the audio ridge)", audio)
    for name, other in (("mean window features", feats), ("the audio ridge", audio)):
        fused = np.full_like(y, np.nan)
        fused[keep] = stack_predictions(probe[keep], other[keep], y[keep], folds[keep])[0]
        show(f"stack: probe + {name}", fused)
    show("one ridge: mean embedding ⊕ mean window features", oof(np.hstack([seg[-1], f_mean])))


if __name__ == "__main__":
    main()
