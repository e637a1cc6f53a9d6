"""Backbone and heads: shapes, parameter count, padding, determinism, save/load round trip."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from crescendai.core.config import ConfigError, ModelParams
from crescendai.model import (
    Backbone,
    HeadsConfig,
    build_backbone,
    build_model,
    corn_to_score,
    load_backbone,
    load_model,
    save_model,
)
from crescendai.model.backbone import dropout
from crescendai.model.bundle import ModelFileError

TINY = ModelParams(patch=16, dim=32, depth=2, heads=2, dropout=0.1, drop_path=0.1)


def windows(b: int = 3, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return -80.0 * torch.rand(b, 128, 128, generator=g)


def test_default_backbone_matches_params_and_counts_parameters():
    bb = build_backbone(ModelParams())
    assert bb.cfg == ModelParams()
    # patch linear 256·256+256, cls+mask 2·256, pos 65·256, 3 blocks × 789 760, final LN 512
    assert bb.n_params() == 65792 + 512 + 16640 + 3 * 789760 + 512 == 2452736


@pytest.mark.parametrize("pooling", ["cls", "mean"])
def test_shapes_and_pooling(pooling):
    bb = Backbone(dataclasses.replace(TINY, pooling=pooling)).eval()
    x = windows()
    assert bb.tokens(x).shape == (3, 65, 32)
    assert bb(x).shape == (3, 32)


def test_eval_is_deterministic_and_train_is_stochastic():
    bb = Backbone(TINY)
    x = windows()
    bb.eval()
    assert torch.equal(bb(x), bb(x))
    bb.train()
    assert not torch.allclose(bb(x), bb(x))


@pytest.mark.parametrize("padded", [False, True])
def test_cls_forward_equals_pooled_tokens(padded):
    """forward() computes only the CLS query in the last block; it must be the same function."""
    bb = Backbone(TINY).eval()
    x = windows(2)
    pad = None
    if padded:
        pad = torch.zeros(2, 128, dtype=torch.bool)
        pad[1, 80:] = True
    full = bb.pool(bb.tokens(x, pad), pad)
    assert torch.allclose(bb(x, pad), full, atol=1e-5)
    bb.train()  # gradients reach every parameter the full path uses (the last block's q slice included)
    bb(x, pad).sum().backward()
    missing = [n for n, p in bb.named_parameters() if p.grad is None and n != "mask_token"]
    assert missing == []


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_cpu_dropout_keeps_expectation_and_rate(p):
    torch.manual_seed(0)
    x = torch.ones(200_001)  # not a multiple of the 4 slices per draw
    y = dropout(x, p, training=True)
    kept = (y != 0).float().mean().item()
    assert abs(kept - (1 - p)) < 0.005
    assert abs(y.mean().item() - 1.0) < 0.01  # inverted scaling preserves the expectation
    assert torch.equal(dropout(x, p, training=False), x)
    torch.manual_seed(1)
    a = dropout(x, p, True)
    torch.manual_seed(1)
    assert torch.equal(a, dropout(x, p, True))  # driven by the seeded torch generator


def test_cpu_dropout_mask_has_no_position_bias():
    """The 16-bit slices of each 64-bit draw must each be uniform (no stuck sign bit)."""
    torch.manual_seed(0)
    y = dropout(torch.ones(4, 100_000), 0.5, training=True).reshape(-1, 4)  # column = slice position
    rates = (y != 0).float().mean(0)
    assert torch.all((rates - 0.5).abs() < 0.01), rates


def test_input_normalisation_is_inside_the_model():
    bb = Backbone(TINY).eval()
    assert torch.isfinite(bb(torch.full((2, 128, 128), -80.0))).all()
    assert torch.isfinite(bb(torch.zeros(2, 128, 128))).all()


def test_pad_mask_hides_padded_rows():
    bb = Backbone(dataclasses.replace(TINY, pooling="mean")).eval()
    x = windows(2)
    pad = torch.zeros(2, 128, dtype=torch.bool)
    pad[:, 96:] = True  # last 2 of 8 time rows are padding
    y = x.clone()
    y[:, 96:] = torch.rand(2, 32, 128) * -80  # change only the padded frames
    assert torch.allclose(bb(x, pad), bb(y, pad), atol=1e-5)
    assert not torch.allclose(bb(x), bb(y), atol=1e-5)


def test_token_mask_uses_mask_token():
    bb = Backbone(TINY).eval()
    x = windows(2)
    m = torch.zeros(2, 64, dtype=torch.bool)
    m[:, :10] = True
    assert not torch.allclose(bb.tokens(x), bb.tokens(x, token_mask=m))


def test_all_heads_shapes_and_ranges():
    model = build_model(TINY, HeadsConfig(corn=True, n_timbre_classes=5, local=True)).eval()
    pad = torch.zeros(3, 128, dtype=torch.bool)
    pad[0, 64:] = True
    out = model(windows(), pad)
    assert out["embedding"].shape == (3, 32)
    assert out["scores"].shape == (3, 19)
    assert out["corn_logits"].shape == (3, 19, 6)
    assert out["corn_scores"].shape == (3, 19)
    assert out["timbre_logits"].shape == (3, 5)
    assert out["local_rows"].shape == (3, 8, 19)
    assert out["local"].shape == (3, 19)
    for k in ("scores", "corn_scores", "local"):
        assert ((out[k] >= 1 / 7 - 1e-6) & (out[k] <= 1 + 1e-6)).all(), k


def test_output_prior_starts_heads_at_the_label_mean():
    model = build_model(TINY, HeadsConfig(local=True)).eval()
    prior = torch.linspace(0.3, 0.8, 19)
    before = model(windows())["scores"]
    assert (before - prior).abs().max() > 0.05  # a fresh head sits near 0.57, not at the prior
    model.init_output_prior(prior)
    out = model(windows())
    assert (out["scores"] - prior).abs().max() < 0.05
    assert (out["local"] - prior).abs().max() < 0.05
    assert out["scores"].std(dim=0).sum() > 0  # still a function of the input


def test_corn_to_score_extremes():
    assert torch.allclose(corn_to_score(torch.full((2, 6), 30.0)), torch.ones(2))
    assert torch.allclose(corn_to_score(torch.full((2, 6), -30.0)), torch.full((2,), 1 / 7))


def test_save_load_round_trip(tmp_path):
    model = build_model(TINY, HeadsConfig(corn=True, local=True)).eval()
    save_model(model, tmp_path / "m" / "model.pt", extra={"note": "x"})
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    assert cfg["kind"] == "model" and cfg["note"] == "x"
    loaded = load_model(tmp_path / "m")
    x = windows()
    assert torch.equal(loaded(x)["scores"], model(x)["scores"])
    assert torch.equal(load_backbone(tmp_path / "m")(x), model.backbone(x))
    bb = Backbone(TINY).eval()
    save_model(bb, tmp_path / "p" / "backbone.pt")
    assert torch.equal(load_model(tmp_path / "p" / "backbone.pt")(x), bb(x))
    # weights_only loading of the raw file works
    torch.load(tmp_path / "p" / "backbone.pt", weights_only=True)


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(ModelFileError, match="config.json"):
        load_model(tmp_path)
    save_model(Backbone(TINY), tmp_path / "m" / "backbone.pt")
    cfg = json.loads((tmp_path / "m" / "config.json").read_text())
    cfg["backbone"]["heads"] = 3
    (tmp_path / "m" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match=r"config\.json: backbone\.dim \(32\) must be divisible"):
        load_model(tmp_path / "m")
