"""HEAR API: shapes, dtypes, timestamps."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crescendai.core.audio import WINDOW_SEC
from crescendai.core.config import ModelParams
from crescendai.model import Backbone, save_model
from crescendai.model.hear import get_scene_embeddings, get_timestamp_embeddings, load_model


@pytest.fixture
def hear_model(tmp_path):
    torch.manual_seed(0)
    save_model(Backbone(ModelParams(dim=32, depth=1, heads=2)), tmp_path / "backbone.pt")
    return load_model(tmp_path)


def test_timestamp_and_scene_embeddings(hear_model):
    assert hear_model.sample_rate == 22050 and hear_model.scene_embedding_size == 32
    g = torch.Generator().manual_seed(0)
    audio = 0.1 * torch.randn(3, 22050 * 4, generator=g)
    audio[2] = 0.0  # silence is allowed by HEAR
    emb, ts = get_timestamp_embeddings(audio, hear_model)
    n_t = 1 + int(np.ceil((4 * 22050 // 512 + 1 - 128) / round(0.5 * 22050 / 512)))
    assert emb.shape == (3, n_t, 32) and emb.dtype == torch.float32
    assert ts.shape == (3, n_t) and ts.dtype == torch.float32
    assert ts[0, 0].item() == pytest.approx(WINDOW_SEC / 2 * 1000, rel=1e-5)
    assert (ts[:, 1:] > ts[:, :-1]).all() and torch.isfinite(emb).all()
    d = torch.diff(ts[0])
    assert torch.allclose(d, torch.full_like(d, 22 * 512 / 22050 * 1000), atol=1e-2)  # 0.5 s → 22 frames
    scene = get_scene_embeddings(audio, hear_model)
    assert scene.shape == (3, 32) and torch.allclose(scene, emb.mean(1))


def test_short_sound_gives_one_window(hear_model):
    emb, ts = get_timestamp_embeddings(0.1 * torch.randn(2, 5000), hear_model)
    assert emb.shape == (2, 1, 32) and ts.shape == (2, 1)
