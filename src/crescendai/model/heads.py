"""Task heads on top of the backbone.

=================  ==========================  ==============================================
head               input                       output
=================  ==========================  ==============================================
RegressionHead     embedding (B, C)            scores (B, 19) in [1/7, 1] (PercePiano scale)
CornHead           embedding (B, C)            logits (B, 19, K-1), CORN conditional logits
TimbreHead         embedding (B, C)            logits (B, n_classes), piano model / brand
LocalHead          tokens (B, 1 + N, C)        per-time-row scores (B, nt, 19) and their window
                                               mean (B, 19): the window's local 19-D scores
RowTeacherHead     tokens (B, 1 + N, C)        per-time-row logits (B, nt, K) of the MIDI
                                               teacher's targets (``crescendai.data.teacher``):
                                               what was played where, per register band
=================  ==========================  ==============================================

CORN (Shi et al. 2021, "Deep neural networks for rank-consistent ordinal regression"): logit ``k`` of
a dimension models ``P(rank > k | rank > k-1)``; ranks are the 1..7 rating levels (``K = 7``).
:func:`corn_to_score` turns logits into an expected label on the PercePiano scale.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from crescendai.core.dims import LABEL_MIN

N_DIMS: int = 19
N_LEVELS: int = 7
"""Rating levels 1..7 (labels are level / 7)."""


def _mlp(dim: int, hidden: int, out: int, dropout: float, norm: bool = True) -> nn.Sequential:
    if hidden <= 0:
        return nn.Sequential(nn.LayerNorm(dim) if norm else nn.Identity(), nn.Dropout(dropout), nn.Linear(dim, out))
    return nn.Sequential(
        nn.LayerNorm(dim), nn.Linear(dim, hidden), nn.GELU(), nn.Dropout(dropout), nn.Linear(hidden, out)
    )


def init_to_prior(net: nn.Sequential, prior: torch.Tensor, weight_scale: float = 0.1) -> None:
    """Start a bounded head at the label prior: the last layer's bias becomes the logit of
    ``prior`` (B-independent, [n_out] labels in (1/7, 1)) and its weights shrink by
    ``weight_scale``, so the first predictions are the training mean (R² ≈ 0) instead of 0.57 ± noise.
    """
    last = net[-1]
    p = ((prior - LABEL_MIN) / (1.0 - LABEL_MIN)).clamp(1e-3, 1 - 1e-3)
    with torch.no_grad():
        last.bias.copy_(torch.logit(p).to(last.bias))
        last.weight.mul_(weight_scale)


class RegressionHead(nn.Module):
    """Embedding (B, C) → 19 scores (B, 19). ``bounded`` squashes to [1/7, 1] with a sigmoid;
    ``norm=False`` drops the input LayerNorm (a linear head fitted outside torch, e.g. the ridge probe)."""

    def __init__(self, dim: int, n_out: int = N_DIMS, hidden: int = 0, dropout: float = 0.1,
                 bounded: bool = True, norm: bool = True) -> None:
        super().__init__()
        self.net = _mlp(dim, hidden, n_out, dropout, norm)
        self.bounded = bounded

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        z = self.net(emb)  # (B, 19)
        if self.bounded:
            return LABEL_MIN + (1.0 - LABEL_MIN) * torch.sigmoid(z)
        return z


class CornHead(nn.Module):
    """Embedding (B, C) → CORN logits (B, n_dims, K-1)."""

    def __init__(self, dim: int, n_dims: int = N_DIMS, n_levels: int = N_LEVELS, dropout: float = 0.1) -> None:
        super().__init__()
        self.n_dims, self.n_levels = n_dims, n_levels
        self.net = _mlp(dim, 0, n_dims * (n_levels - 1), dropout)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return self.net(emb).view(emb.shape[0], self.n_dims, self.n_levels - 1)  # (B, D, K-1)


def corn_to_score(logits: torch.Tensor) -> torch.Tensor:
    """CORN logits (..., K-1) → expected label on the PercePiano scale, (...) in [1/K, 1].

    ``P(rank > k) = Π_{j≤k} sigmoid(logit_j)``; expected rank = 1 + Σ_k P(rank > k); label = rank / K.
    """
    K = logits.shape[-1] + 1
    p_gt = torch.cumprod(torch.sigmoid(logits), dim=-1)  # (..., K-1)
    return (1.0 + p_gt.sum(-1)) / K


class TimbreHead(nn.Module):
    """Embedding (B, C) → class logits (B, n_classes); ``n_classes`` comes from the data."""

    def __init__(self, dim: int, n_classes: int, dropout: float = 0.1) -> None:
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"TimbreHead needs at least 2 classes, got {n_classes}")
        self.net = _mlp(dim, 0, n_classes, dropout)

    def forward(self, emb: torch.Tensor) -> torch.Tensor:
        return self.net(emb)  # (B, n_classes)


class LocalHead(nn.Module):
    """Patch tokens → local 19-D scores per time row and per window.

    Tokens (B, 1 + nt·nf, C) → mean over the nf mel columns of each time row → (B, nt, C) → MLP →
    (B, nt, 19) (one score vector every ``patch`` frames ≈ 0.37 s), and their mean (B, 19), the
    window's local scores (trained against the preprocess cache's ``l_*`` local labels).
    """

    def __init__(self, dim: int, grid: tuple[int, int], n_out: int = N_DIMS, hidden: int = 128,
                 dropout: float = 0.1, bounded: bool = True) -> None:
        super().__init__()
        self.grid = grid
        self.net = _mlp(dim, hidden, n_out, dropout)
        self.bounded = bounded

    def forward(self, tokens: torch.Tensor, pad_mask_rows: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: tokens (B, 1+N, C); pad_mask_rows optional (B, nt) bool, True = padded time row.

        Returns: (per_row (B, nt, 19), window (B, 19)).
        """
        B, _, C = tokens.shape
        nt, nf = self.grid
        rows = tokens[:, 1:].reshape(B, nt, nf, C).mean(dim=2)  # (B, nt, C)
        z = self.net(rows)  # (B, nt, 19)
        if self.bounded:
            z = LABEL_MIN + (1.0 - LABEL_MIN) * torch.sigmoid(z)
        if pad_mask_rows is None:
            return z, z.mean(dim=1)
        w = (~pad_mask_rows).to(z.dtype)[..., None]  # (B, nt, 1)
        return z, (z * w).sum(1) / w.sum(1).clamp_min(1.0)  # (B, nt, 19), (B, 19)


class RowTeacherHead(nn.Sequential):
    """The performance teacher's row head: a time row's ``n_freq`` register tokens, concatenated,
    → LayerNorm → Linear → ``n_fields`` logits (the ``crescendai.data.teacher`` layout: per band
    onset, velocity and sounding, then pedal; ``sigmoid`` gives probabilities / velocity / 127).

    Trained by the ``performance`` pretraining objective on MIDI-derived targets and kept with a
    frozen backbone, it tells the tutor what was played where (:meth:`from_tokens`).
    """

    def __init__(self, dim: int, n_freq: int, n_fields: int) -> None:
        super().__init__(nn.LayerNorm(n_freq * dim), nn.Linear(n_freq * dim, n_fields))
        self.n_freq = n_freq

    def from_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        """Tokens (B, 1 + nt·nf, C), patches in index order ``nf·t + f`` → logits (B, nt, K)."""
        patches = tokens[:, 1:]
        B, N, C = patches.shape
        return self(patches.reshape(B, N // self.n_freq, self.n_freq * C))
