"""The fusion variant: the frozen pretrained embedding ⊕ the hand-crafted audio window features, one
ridge head.

Per window the head reads ``[embedding (C) ⊕ window_features (30)]``
(:func:`crescendai.evaluate.audio_features.window_features`, the audio ridge's per-window inputs); a
segment is the mean of its windows' inputs and the head is the probe head
(:func:`crescendai.learn.finetune.fit_probe_head`: ``StandardScaler → RidgeCV``, same folds, alpha by
leave-one-out on each fold's training segments). Because the head is linear in per-window quantities
it ships as one ``Linear`` over ``C + 30`` inputs (:data:`HEAD_FILE`), and the tutor scores each window
with the features it already computes for the domain check.

Why one ridge over the concatenation, and not stacking or a per-block penalty (measured on the default
corpus, CV median r / mean r over 240 segments, ``uv run python docs/experiments/probe_variants.py``):
the concatenation 0.37 / 0.43; stacking the probe with the audio ridge per dimension 0.35 / 0.43, and
the stacked head reads per-segment std features, which no window-level head can compute; the feature
block scaled ×2 / ×3 / ×5 after standardisation 0.38 / 0.39 / 0.38 median r but 0.40 / 0.41 / 0.42
mean r; chosen inside each fold's training rows (leave-one-out, or grouped inner folds on MSE or
median r) 0.379–0.385 median r, 0.402–0.430 mean r: at best +0.01 median r at equal mean r, within
the noise, so the head keeps one penalty.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from crescendai.core.files import atomic_write
from crescendai.evaluate.audio_features import FEATURE_NAMES, window_features

if TYPE_CHECKING:  # the tutor loads the head without the training modules (pandas, the loop)
    from crescendai.learn.finetune import ProbeFit

HEAD_FILE = "fusion_head.npz"
"""The fused head beside the model: ``weight`` float32 [19, C + 30], ``bias`` float32 [19]."""


@dataclass(frozen=True)
class FusedHead:
    """The fused head: scores [N, 19] = ``[embedding ⊕ window features] @ weight.T + bias``.

    Attributes:
        weight: float32 [19, C + F]; bias: float32 [19]; embedding_dim: C.
        features: the window feature names, in input order (:data:`FEATURE_NAMES`), or () for a
            linear head on the embedding alone (the probe's, shipped the same way to the tutor).
    """

    weight: np.ndarray
    bias: np.ndarray
    embedding_dim: int
    features: tuple[str, ...] = FEATURE_NAMES

    def entry(self, file: str = HEAD_FILE) -> dict[str, object]:
        """What ``config.json`` keeps of the head saved as ``file`` (under ``fusion_head``)."""
        return {"weights": file, "embedding_dim": self.embedding_dim, "features": list(self.features)}


def fusion_inputs(embedding: np.ndarray, windows: np.ndarray, pad_fraction: np.ndarray) -> np.ndarray:
    """Per-window inputs of the fused head: embeddings float [W, C] ⊕ the window features of the dB
    windows [W, 128, 128] (``pad_fraction`` [W]) → float32 [W, C + 30]."""
    return np.hstack([np.asarray(embedding, np.float32), window_features(windows, pad_fraction)])


def fit_fusion(backbone, data, device: str = "cpu") -> tuple[ProbeFit, FusedHead]:
    """Fit the fused head on a labelled set (``crescendai.learn.finetune.LabelledSet``): every window
    embedded by the frozen ``backbone`` (eval mode) ⊕ its window features, then
    :func:`~crescendai.learn.finetune.fit_probe_head` on the same folds as the other variants."""
    import torch

    from crescendai.learn.finetune import fit_probe_head, window_embeddings

    emb = window_embeddings(backbone, data, torch.device(device))  # (W, C)
    rows = data.index["row"].to_numpy()
    fit = fit_probe_head(fusion_inputs(emb, data.windows[rows], data.pad_fraction), data)
    return fit, FusedHead(fit.weight, fit.bias, int(emb.shape[1]))


def save_fused_head(head: FusedHead, folder: str | os.PathLike[str], file: str = HEAD_FILE) -> dict[str, object]:
    """Write ``<folder>/<file>`` (default ``fusion_head.npz``) atomically; return its ``config.json`` entry."""
    with atomic_write(Path(folder) / file, "wb") as f:
        np.savez(f, weight=np.asarray(head.weight, np.float32), bias=np.asarray(head.bias, np.float32))
    return head.entry(file)


def load_fused_head(folder: str | os.PathLike[str], entry: dict[str, object],
                    embedding_dim: int | None = None) -> FusedHead:
    """The head that :func:`save_fused_head` wrote into ``folder`` (described by ``entry``), checked
    against the model's embedding width when ``embedding_dim`` is given.

    Raises:
        ValueError: the file is missing or unreadable, or does not fit the entry, this version's
            window features or the model (names the file and the fix).
    """
    p = Path(folder) / str(entry.get("weights", HEAD_FILE))
    fix = "re-run `uv run dvc repro`"
    try:
        with np.load(p) as z:
            weight, bias = z["weight"].astype(np.float32), z["bias"].astype(np.float32)
        dim, names = int(entry["embedding_dim"]), tuple(entry["features"])
    except (OSError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"{p}: cannot load the fused head ({type(err).__name__}: {err}); {fix}") from None
    if embedding_dim is not None and dim != int(embedding_dim):
        raise ValueError(f"{p}: fitted on embeddings of width {dim} but the model's are {embedding_dim}; {fix}")
    if names not in ((), FEATURE_NAMES):
        raise ValueError(f"{p}: fitted on other window features than this version computes; {fix}")
    if weight.shape != (len(bias), dim + len(names)):
        raise ValueError(f"{p}: weight of shape {weight.shape} does not fit {dim} + {len(names)} inputs; {fix}")
    return FusedHead(weight, bias, dim, names)
