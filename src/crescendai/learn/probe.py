"""Embedding checks on a labelled set: frozen-backbone linear probe and kNN timbre accuracy.

The backbone is frozen; window embeddings are averaged per segment (``item``). A ridge regression
from segment embeddings to the 19 labels is scored by grouped cross-validation (groups = the
performer-level ``fold`` of the index, else the performer), as the mean R² over dimensions. When the
set has ≥ 2 piano classes, a kNN classifier of ``timbre_class`` from window embeddings is scored the
same way. The fixed test split is never read.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from crescendai.model.backbone import Backbone


@torch.no_grad()
def embed(backbone: Backbone, windows: np.ndarray, pad_mask: np.ndarray | None = None, *,
          device: torch.device | str = "cpu", batch_size: int = 256) -> np.ndarray:
    """Eval-mode embeddings (N, dim) float32 of windows (N, 128, 128) dB."""
    backbone.eval()
    out = []
    for s in range(0, len(windows), batch_size):
        x = torch.as_tensor(np.asarray(windows[s : s + batch_size], np.float32), device=device)
        m = None if pad_mask is None else torch.as_tensor(pad_mask[s : s + batch_size], device=device)
        out.append(backbone(x, m).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, backbone.dim), np.float32)


@dataclass(frozen=True)
class ProbeResult:
    r2: float
    """mean over the 19 dimensions of the cross-validated R² of the ridge probe (segment level)."""
    timbre_acc: float | None
    """kNN accuracy of the piano class (window level), or None without ≥ 2 classes."""
    n_segments: int
    n_groups: int


def probe(emb: np.ndarray, items: np.ndarray, groups: np.ndarray, y: np.ndarray,
          timbre: np.ndarray | None = None, *, alpha: float = 1.0, k: int = 5, n_splits: int = 4) -> ProbeResult:
    """Score window embeddings.

    Args:
        emb: (N, C) window embeddings. items: (N,) segment id per window. groups: (N,) CV group
            (performer fold). y: (N, 19) segment labels (rows of one item identical).
        timbre: optional (N,) piano class (-1 = unknown).
        alpha: ridge penalty. k: neighbours. n_splits: at most this many group folds.
    """
    from sklearn.linear_model import Ridge
    from sklearn.metrics import r2_score
    from sklearn.model_selection import GroupKFold, cross_val_predict
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    uniq, inv = np.unique(items, return_inverse=True)
    seg_emb = np.stack([emb[inv == i].mean(0) for i in range(len(uniq))])
    seg_y = np.stack([y[inv == i][0] for i in range(len(uniq))])
    seg_g = np.array([groups[inv == i][0] for i in range(len(uniq))])
    n_groups = len(np.unique(seg_g))
    if n_groups < 2 or len(uniq) < 4:
        return ProbeResult(float("nan"), None, len(uniq), n_groups)
    cv = GroupKFold(n_splits=min(n_splits, n_groups))
    pred = cross_val_predict(make_pipeline(StandardScaler(), Ridge(alpha=alpha)), seg_emb, seg_y, groups=seg_g, cv=cv)
    r2 = float(np.mean([r2_score(seg_y[:, d], pred[:, d]) for d in range(seg_y.shape[1])]))
    acc = None
    if timbre is not None:
        ok = timbre >= 0
        if len(np.unique(timbre[ok])) >= 2 and len(np.unique(groups[ok])) >= 2:
            knn = make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=min(k, ok.sum() - 1)))
            cvw = GroupKFold(n_splits=min(n_splits, len(np.unique(groups[ok]))))
            p = cross_val_predict(knn, emb[ok], timbre[ok], groups=groups[ok], cv=cvw)
            acc = float((p == timbre[ok]).mean())
    return ProbeResult(r2, acc, len(uniq), n_groups)
