"""The fusion variant (crescendai.evaluate.fusion): the embedding ⊕ the window features, one ridge
head, fitted on the probe's folds, saved beside the model and scored by the tutor window by window."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from crescendai.core import columns
from crescendai.core.config import ModelParams
from crescendai.core.stats import median_r
from crescendai.evaluate.audio_features import FEATURE_NAMES, window_features
from crescendai.evaluate.fusion import (
    FusedHead,
    fit_fusion,
    fusion_inputs,
    load_fused_head,
    save_fused_head,
)
from crescendai.learn import finetune as ft
from crescendai.model import build_backbone

TINY = ModelParams(patch=32, dim=32, depth=1, heads=2, dropout=0.0, drop_path=0.0, pooling="mean")


def bright_set(n_perf=5, n_piece=4, n_win=3, seed=0):
    """Windows whose spectral tilt (energy in the high mel bands, at equal overall level) encodes every
    label: the hand-crafted features measure it directly. The last performer is the test set."""
    rng = np.random.default_rng(seed)
    rows, wins = [], []
    bands = np.linspace(0, 1, 128)
    for p in range(n_perf):
        for q in range(n_piece):
            y = np.full(19, rng.uniform(0.2, 0.9))
            tilt = 40 * (y[0] - 0.55) * (bands - 0.5)  # dB, brighter for a higher label
            for w in range(n_win):
                wins.append(-40 + tilt[None, :] + rng.normal(0, 3, (128, 128)))
                rows.append({"item": f"perf{p}_piece{q}", "window": w, "start_sec": float(w), "pad_fraction": 0.0,
                             "split": "test" if p == n_perf - 1 else "train", "fold": None if p == n_perf - 1 else p,
                             "performer_id": str(p), "piece_id": str(q), "passage_id": f"t:{q}:0",
                             "timbre_class": -1, **{f"y_{d}": y[d] for d in range(19)}})
    return ft.build_set(np.clip(np.stack(wins), -80, 0).astype(np.float16), pd.DataFrame(rows))


def test_fused_head_hears_what_the_features_measure_and_commutes_with_the_mean():
    data = bright_set()
    torch.manual_seed(0)
    backbone = build_backbone(TINY)
    fit, head = fit_fusion(backbone, data)
    assert head.weight.shape == (19, 32 + len(FEATURE_NAMES)) and head.embedding_dim == 32
    seg = fit.predictions[fit.predictions["level"] == "segment"]
    oof, test = seg[seg["set"] == "oof"], seg[seg["set"] == "test"]
    assert set(oof["fold"]) == set(fit.folds) == {0, 1, 2, 3} and (test["fold"] == -1).all()
    y, p = oof[list(columns.LABELS)].to_numpy(float), oof[list(columns.PREDICTIONS)].to_numpy(float)
    assert median_r(y, p) > 0.9  # out of fold
    # the shipped head on each window's [embedding ⊕ features], averaged per segment, is the segment score
    emb = ft.window_embeddings(backbone, data, torch.device("cpu"))
    x = fusion_inputs(emb, data.windows[data.index["row"].to_numpy()], data.pad_fraction)
    win = x @ head.weight.T + head.bias
    for _, row in test.iterrows():
        s = int(np.flatnonzero(data.segments["item"].to_numpy() == row["item"])[0])
        np.testing.assert_allclose(win[data.rows[s]].mean(0), row[list(columns.PREDICTIONS)].to_numpy(float),
                                   atol=1e-3)


def test_fused_head_roundtrips_and_names_what_is_wrong(tmp_path):
    rng = np.random.default_rng(0)
    head = FusedHead(rng.normal(size=(19, 40)).astype(np.float32), rng.normal(size=19).astype(np.float32), 10)
    entry = save_fused_head(head, tmp_path)
    assert json.loads(json.dumps(entry)) == entry  # config.json keeps it
    back = load_fused_head(tmp_path, entry)
    np.testing.assert_array_equal(back.weight, head.weight)
    np.testing.assert_array_equal(back.bias, head.bias)
    with pytest.raises(ValueError, match="other window features.*dvc repro"):
        load_fused_head(tmp_path, {**entry, "features": ["level_mean"]})
    assert load_fused_head(tmp_path, entry, embedding_dim=10).embedding_dim == 10
    with pytest.raises(ValueError, match="width 10 but the model's are 11"):
        load_fused_head(tmp_path, entry, embedding_dim=11)
    with pytest.raises(ValueError, match="does not fit 12"):
        load_fused_head(tmp_path, {**entry, "embedding_dim": 12})
    with pytest.raises(ValueError, match=r"nothing\.npz: cannot load"):
        load_fused_head(tmp_path, {**entry, "weights": "nothing.npz"})


def test_tutor_scores_a_fusion_bundle_with_the_features_it_shares_with_the_domain_check(tmp_path):
    from crescendai.core.audio import windows_from_waveform
    from crescendai.core.files import read_json, write_json
    from crescendai.tutor.bundle import ModelError, load_bundle
    from tutor_fixtures import domain_renders, save_tiny_bundle

    folder = save_tiny_bundle(tmp_path / "bundle")
    rng = np.random.default_rng(1)
    head = FusedHead(rng.normal(0, 0.01, (19, 32 + 30)).astype(np.float32), np.full(19, 0.5, np.float32), 32)
    config = read_json(folder / "config.json")
    write_json(folder / "config.json", {**config, "fusion_head": save_fused_head(head, folder)})
    bundle = load_bundle(folder)
    w = windows_from_waveform(domain_renders(1)[0])
    batch = bundle.scorer.score(w.db[:6], mc_samples=4, pad_mask=w.pad_mask[:6])
    np.testing.assert_allclose(batch.features, window_features(w.db[:6], w.pad_fraction[:6]), rtol=1e-5)
    expected = np.hstack([batch.embedding, batch.features]) @ head.weight.T + head.bias
    np.testing.assert_allclose(batch.mean, expected, atol=1e-4)
    assert batch.std.shape == (6, 19) and (batch.std > 0).any()
    sal = bundle.scorer.saliency(w.db[:2], np.ones((2, 19), np.float32), pad_mask=w.pad_mask[:2])
    assert sal.shape == (2, 16, 16) and np.allclose(sal.sum(axis=(1, 2)), 1.0)
    # MC dropout reaches the network's features only: a head that reads only the window features
    # (measurements, not activations) has no spread
    only_features = FusedHead(np.hstack([np.zeros((19, 32)), rng.normal(0, 0.01, (19, 30))]).astype(np.float32),
                              head.bias, 32)
    write_json(folder / "config.json", {**config, "fusion_head": save_fused_head(only_features, folder)})
    batch = load_bundle(folder).scorer.score(w.db[:6], mc_samples=4, pad_mask=w.pad_mask[:6])
    assert np.allclose(batch.std, 0.0) and not np.allclose(batch.mean, 0.5)
    write_json(folder / "config.json", {**config, "fusion_head": {**head.entry(), "embedding_dim": 64}})
    with pytest.raises(ModelError, match="fusion_head.npz"):
        load_bundle(folder)
