"""ONNX export of the backbone: onnxruntime's graphs give torch's embeddings, row head and saliency on
full and padded windows; which heads are linear; an export that fails its check names the graph and
writes nothing."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crescendai.core.config import ModelParams
from crescendai.model import HeadsConfig, RowTeacherHead, build_model
from crescendai.model import export as export_mod
from crescendai.model.export import (
    SALIENCY_FILE,
    SCORING_FILE,
    ExportError,
    export_graphs,
    linear_head,
)

PROBE = HeadsConfig(regression=True, hidden=0, bounded=False, norm=False, dropout=0.2)


def probe_model(seed: int = 0):
    """A tiny model whose head is one Linear (the ridge probe's shape)."""
    torch.manual_seed(seed)
    return build_model(ModelParams(dim=32, depth=1, heads=2), PROBE).eval()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = probe_model()
    torch.manual_seed(1)
    teacher = RowTeacherHead(32, n_freq=8, n_fields=5).eval()
    folder = tmp_path_factory.mktemp("graphs")
    entry = export_graphs(model.backbone, folder, teacher)
    return model, teacher, folder, entry


def _windows(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    db = rng.uniform(-80, 0, (n, 128, 128)).astype(np.float32)
    pad = np.zeros((n, 128), bool)
    pad[1, 70:] = True  # one window padded from frame 70 (its last 3 time rows are all padding)
    db[1, 70:] = -80.0
    return db, pad


def test_graphs_give_torchs_embedding_row_head_and_saliency(exported):
    from crescendai.tutor.scorer import OnnxScorer, TorchScorer

    model, teacher, folder, entry = exported
    assert entry == {"scoring": SCORING_FILE, "saliency": SALIENCY_FILE, "embedding_dim": 32, "heard": True}
    weight, bias = linear_head(model)
    onnx = OnnxScorer(folder / SCORING_FILE, folder / SALIENCY_FILE, weight, bias, max_batch=4)
    ref = TorchScorer(model.backbone, model.heads["regression"], teacher_head=teacher, max_batch=4)
    db, pad = _windows(6)
    a, b = onnx.score(db, mc_samples=1, pad_mask=pad), ref.score(db, mc_samples=1, pad_mask=pad)
    for name in ("mean", "embedding", "heard"):
        np.testing.assert_allclose(getattr(a, name), getattr(b, name), atol=2e-5, err_msg=name)
    # the padded window is scored through the mask: not as the same window unmasked
    unmasked = onnx.score(db, mc_samples=1).embedding
    assert np.abs(unmasked[1] - a.embedding[1]).max() > 1e-3
    np.testing.assert_allclose(unmasked[[0, 2]], a.embedding[[0, 2]], atol=2e-5)
    w = np.zeros((6, 19), np.float32)
    w[:, 4], w[:, 9] = 1.0, -1.0
    np.testing.assert_allclose(onnx.saliency(db, w, pad_mask=pad), ref.saliency(db, w, pad_mask=pad), atol=1e-5)


def test_mc_spread_reaches_the_embedding_only_and_is_seeded(exported):
    from crescendai.tutor.scorer import OnnxScorer

    model, _, folder, _ = exported
    weight, bias = linear_head(model)
    db, _ = _windows(3)
    features = lambda x, pad: np.ones((len(x), 5), np.float32)  # noqa: E731
    fused_w = np.hstack([np.zeros_like(weight), np.ones((19, 5), np.float32)])  # reads the features only
    only_features = OnnxScorer(folder / SCORING_FILE, folder / SALIENCY_FILE, fused_w, bias,
                               window_features=features, dropout=0.5)
    assert only_features.score(db, mc_samples=8).std.max() < 1e-5  # rounding of the BLAS product only
    runs = [OnnxScorer(folder / SCORING_FILE, folder / SALIENCY_FILE, weight, bias, dropout=0.2, seed=s)
            .score(db, mc_samples=8).std for s in (3, 3, 4)]
    assert runs[0].min() > 0 and np.array_equal(runs[0], runs[1]) and not np.array_equal(runs[0], runs[2])


def test_only_a_single_linear_regression_head_is_linear():
    model = probe_model()
    weight, bias = linear_head(model)
    lin = model.heads["regression"].net[-1]
    assert np.array_equal(weight, lin.weight.detach().numpy()) and np.array_equal(bias, lin.bias.detach().numpy())
    for cfg in (HeadsConfig(), HeadsConfig(bounded=False, hidden=8, norm=False),
                HeadsConfig(bounded=False), HeadsConfig(regression=False, corn=True)):
        assert linear_head(build_model(ModelParams(dim=32, depth=1, heads=2), cfg)) is None, cfg


def test_a_graph_that_fails_its_check_is_named_and_not_written(tmp_path, monkeypatch):
    monkeypatch.setattr(export_mod, "TOLERANCE", -1.0)  # no difference is small enough
    with pytest.raises(ExportError, match=r"scoring\.onnx: onnxruntime's embedding differs from torch's"):
        export_graphs(probe_model().backbone, tmp_path)
    assert list(tmp_path.iterdir()) == []
