"""Losses: self-supervised (pretraining) and supervised (fine-tuning). Pure functions of tensors.

Self-supervised (the losses behind ``crescendai.learn.ssl.OBJECTIVES``, chosen by ``pretrain.objective``):

==============  ===========================================================================
``infonce``     :func:`infonce` — positives are other views/crops of the *same recording*; negatives
                are items of *other* recordings; same-recording items never act as negatives.
``byol``        :func:`byol` + :func:`ema_momentum` / :func:`ema_update` (online → target network).
``masked``      :func:`masked_patch` — masked patch modelling: InfoNCE over the masked patches of
                one window (softmax over the candidate-patch axis) and/or reconstruction MSE.
``repulsive``   :func:`repulsive` — off-diagonal repulsion, an ablation, with the
                same-recording guard (pairs of one recording are pulled together, never pushed apart).
``performance`` :func:`teacher_loss` + :func:`teacher_stats` + :func:`playing_loss` — the performance
                teacher: each window's MIDI-derived targets (``crescendai.data.teacher``: per time
                row and register band onsets, onset velocity, sounding notes; sustain pedal per row)
                predicted from its tokens, and from the pooled embedding their window means and,
                with ``pretrain.playing_weight`` > 0, the window's statistics of the playing
                (velocity spread, IOI variability, chord asynchrony, legato, … standardised).
``none``        no pretraining (the random-init baseline); :func:`none` returns a zero that keeps
                the autograd graph.
==============  ===========================================================================

Objectives combine with ``+`` (``performance+masked``: the sum of both losses, equal weights).

Supervised (``crescendai.learn.finetune`` calls these): :func:`regression_loss` (MSE / MAE /
differentiable Pearson surrogate, weights as arguments), :func:`corn_loss` (ordinal; with
:func:`labels_to_levels`), :func:`smoothness_loss` (temporal regulariser for the local head),
:func:`proxy_consistency_loss` (agreement with the time-local MIR proxies).

Losses are computed in float32 whatever the autocast dtype of their inputs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from crescendai.data.teacher import ONSET_COLS, PEDAL_COL, SOUNDING_COLS, VELOCITY_COLS

_NEG: float = -1e9  # "minus infinity" that keeps gradients finite


# ------------------------------------------------------------------------------------------
# self-supervised
# ------------------------------------------------------------------------------------------


def same_recording(rec: torch.Tensor) -> torch.Tensor:
    """(N,) recording ids → (N, N) bool, True where items i and j come from the same recording."""
    return rec[:, None] == rec[None, :]


def infonce_from_logits(logits: torch.Tensor, rec: torch.Tensor) -> torch.Tensor:
    """Multi-positive InfoNCE on a similarity matrix with the same-recording guard.

    For every ordered positive pair (i, p) — i ≠ p, same recording — the term is
    ``-log( exp(s_ip) / (exp(s_ip) + Σ_{n: rec_n ≠ rec_i} exp(s_in)) )``. The denominator holds the
    pair's own positive and the *other recordings* only: another crop of i's recording is never a
    negative, in any term. Anchors without a positive contribute nothing.

    Args:
        logits: (N, N) similarities already divided by the temperature.
        rec: (N,) integer recording ids.

    Returns:
        scalar, the mean over positive pairs (0 when the batch has none).
    """
    logits = logits.float()
    same = same_recording(rec)  # (N, N)
    pos = same & ~torch.eye(len(rec), dtype=torch.bool, device=rec.device)  # (N, N)
    neg_lse = logits.masked_fill(same, _NEG).logsumexp(dim=1, keepdim=True)  # (N, 1)
    pair = torch.logaddexp(logits, neg_lse) - logits  # (N, N) -log softmax of s_ip against negatives
    return (pair * pos).sum() / pos.sum().clamp_min(1)


def infonce(z: torch.Tensor, rec: torch.Tensor, temperature: float = 0.1) -> torch.Tensor:
    """InfoNCE on projections ``z`` (N, D) grouped by recording id ``rec`` (N,); cosine similarity / τ.

    Build batches with two (or more) crops/views per recording; see :func:`infonce_from_logits`.
    """
    z = F.normalize(z.float(), dim=-1)  # (N, D)
    return infonce_from_logits(z @ z.T / temperature, rec)  # (N, N)


def byol(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """BYOL regression loss ``2 - 2·cos(p, sg(z))``, mean over rows.

    Args:
        p: (N, D) online predictions for view a.
        z: (N, D) target projections for view b (gradient stopped here).
    """
    return (2.0 - 2.0 * F.cosine_similarity(p.float(), z.detach().float(), dim=-1)).mean()


def ema_momentum(step: int, total_steps: int, base: float = 0.996) -> float:
    """BYOL's cosine schedule: ``τ = 1 - (1 - base)(cos(π·step/total) + 1)/2``, from ``base`` to 1."""
    frac = min(max(step / max(total_steps, 1), 0.0), 1.0)
    return 1.0 - (1.0 - base) * (math.cos(math.pi * frac) + 1.0) / 2.0


@torch.no_grad()
def ema_update(target: nn.Module, online: nn.Module, momentum: float) -> None:
    """``θ_target ← m·θ_target + (1 - m)·θ_online`` for every parameter (buffers copied)."""
    for pt, po in zip(target.parameters(), online.parameters(), strict=True):
        pt.lerp_(po.detach(), 1.0 - momentum)
    for bt, bo in zip(target.buffers(), online.buffers(), strict=True):
        bt.copy_(bo)


def masked_patch(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    recon: torch.Tensor | None = None,
    temperature: float = 0.1,
    recon_weight: float = 1.0,
) -> torch.Tensor:
    """Masked patch modelling (SSAST-style), per window.

    Discriminative term: for window b and masked slot i, the candidates are the M masked patches of
    the *same* window; ``logits[b, i, j] = cos(pred[b, i], target[b, j]) / τ`` and the softmax runs
    over the candidate axis j (``dim=-1``), the correct class being j = i. Generative term (when
    ``recon`` is given): MSE between ``recon`` and ``target``.

    Args:
        pred: (B, M, P) predictions at the M masked positions (P = patch², e.g. 256).
        target: (B, M, P) the true (normalised) patch contents at those positions.
        recon: optional (B, M, P) reconstruction predictions.
        temperature: τ > 0.
        recon_weight: weight of the generative term.
    """
    B, M, _ = pred.shape
    logits = F.normalize(pred.float(), dim=-1) @ F.normalize(target.float(), dim=-1).transpose(1, 2)  # (B, M, M)
    labels = torch.arange(M, device=pred.device).expand(B, M)  # (B, M)
    loss = F.cross_entropy((logits / temperature).reshape(B * M, M), labels.reshape(B * M))
    if recon is not None:
        loss = loss + recon_weight * F.mse_loss(recon.float(), target.float())
    return loss


def repulsive(z: torch.Tensor, rec: torch.Tensor, repel_weight: float = 1.0) -> torch.Tensor:
    """Off-diagonal repulsion with the same-recording guard (ablation only).

    ``mean_{same rec, i≠j} (1 - cos_ij) + repel_weight · mean_{other rec} cos_ij²``: off-diagonal
    pairs are pushed towards orthogonality only when they come from *different* recordings.

    Args:
        z: (N, D) projections; rec: (N,) recording ids.
    """
    z = F.normalize(z.float(), dim=-1)
    sim = z @ z.T  # (N, N)
    same = same_recording(rec)
    pos = same & ~torch.eye(len(rec), dtype=torch.bool, device=rec.device)
    neg = ~same
    align = ((1.0 - sim) * pos).sum() / pos.sum().clamp_min(1)
    repel = (sim.pow(2) * neg).sum() / neg.sum().clamp_min(1)
    return align + repel_weight * repel


VELOCITY_WEIGHT: float = 10.0
"""Weight of the velocity MSE beside the BCE terms: velocities/127 spread by ~0.1, so their squared
error is ~10–100× smaller than a binary cross-entropy; 10 puts the terms on one order."""


def _teacher_columns(k: int, device: torch.device) -> torch.Tensor:
    """(K,) bool, True on the velocity columns of the teacher layout (:data:`VELOCITY_COLS`)."""
    is_vel = torch.zeros(k, dtype=torch.bool, device=device)
    is_vel[as_slice(VELOCITY_COLS)] = True
    return is_vel


def as_slice(cols: np.ndarray) -> slice:
    """Evenly spaced column indices (the teacher layout's bands) as the equivalent ``slice``."""
    step = int(cols[1] - cols[0]) if len(cols) > 1 else 1
    if not np.array_equal(cols, np.arange(cols[0], cols[-1] + 1, step)):
        raise ValueError(f"columns {cols.tolist()} are not evenly spaced")
    return slice(int(cols[0]), int(cols[-1]) + 1, step)


def teacher_loss(pred: torch.Tensor, target: torch.Tensor, row_valid: torch.Tensor | None = None,
                 velocity_weight: float = VELOCITY_WEIGHT) -> torch.Tensor:
    """The performance teacher's per-row loss.

    Args:
        pred: (B, T, K) logits. target: (B, T, K) in [0, 1] in the ``crescendai.data.teacher`` layout
            (per band ``onset``, ``velocity``, ``sounding``; ``pedal`` last), NaN where undefined (no
            onset → no velocity; a window without MIDI → all NaN).
        row_valid: optional (B, T) bool, False on padded time rows.

    Returns:
        scalar: mean binary cross-entropy (with logits, soft targets) over the onset, sounding and
        pedal cells + ``velocity_weight`` · mean squared error of ``sigmoid(pred)`` on the velocity
        cells; undefined cells are ignored (a zero that keeps the graph when none is defined).
    """
    pred, target = pred.float(), target.float()
    valid = torch.isfinite(target)
    if row_valid is not None:
        valid = valid & row_valid[..., None]
    is_vel = _teacher_columns(target.shape[-1], target.device)
    t = torch.nan_to_num(target).clamp(0.0, 1.0)
    bce = F.binary_cross_entropy_with_logits(pred, t, reduction="none")
    mse = (torch.sigmoid(pred) - t).pow(2)
    m_b, m_v = (valid & ~is_vel).float(), (valid & is_vel).float()
    return (bce * m_b).sum() / m_b.sum().clamp_min(1) + velocity_weight * (mse * m_v).sum() / m_v.sum().clamp_min(1)


N_WINDOW_MEANS: int = 4
"""The window means :func:`teacher_stats` returns (its output width)."""


def teacher_stats(target: torch.Tensor, row_valid: torch.Tensor | None = None) -> torch.Tensor:
    """Window-level statistics of the playing from teacher targets (B, T, K) → (B, 4) in [0, 1], NaN
    where undefined: share of row-bands with an onset, mean onset velocity, share of row-bands
    sounding, share of the window with the pedal down (padded rows excluded)."""
    target = target.float()
    valid = torch.isfinite(target)
    if row_valid is not None:
        valid = valid & row_valid[..., None]
    t = torch.where(valid, target, torch.zeros_like(target))
    w = valid.float()

    def mean(cols: np.ndarray) -> torch.Tensor:
        sl = as_slice(cols)
        n = w[..., sl].sum(dim=(1, 2))
        return torch.where(n > 0, t[..., sl].sum(dim=(1, 2)) / n.clamp_min(1), torch.full_like(n, float("nan")))

    return torch.stack([mean(ONSET_COLS), mean(VELOCITY_COLS), mean(SOUNDING_COLS),
                        mean(np.array([PEDAL_COL]))], dim=1)  # (B, 4)


def stats_loss(pred: torch.Tensor, target: torch.Tensor, weight: float = VELOCITY_WEIGHT) -> torch.Tensor:
    """``weight`` · MSE of ``sigmoid(pred)`` (B, S) against window statistics (B, S), NaN ignored."""
    valid = torch.isfinite(target).float()
    err = (torch.sigmoid(pred.float()) - torch.nan_to_num(target.float())).pow(2)
    return weight * (err * valid).sum() / valid.sum().clamp_min(1)


def playing_loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE of ``pred`` (B, F) against standardised statistics of the playing (B, F), NaN ignored (a
    zero that keeps the graph when none is defined)."""
    valid = torch.isfinite(target).float()
    err = (pred.float() - torch.nan_to_num(target.float())).pow(2)
    return (err * valid).sum() / valid.sum().clamp_min(1)


def none(z: torch.Tensor, *_: object, **__: object) -> torch.Tensor:
    """The ``none`` objective: a zero connected to the graph (no learning signal)."""
    return z.float().sum() * 0.0


# ------------------------------------------------------------------------------------------
# supervised
# ------------------------------------------------------------------------------------------


def _masked_rows(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Float32 copies and a (N, D) weight tensor from an optional (N,) or (N, D) mask."""
    pred, target = pred.float(), target.float()
    if mask is None:
        return pred, target, torch.ones_like(pred)
    w = mask.float() if mask.ndim == pred.ndim else mask.float()[:, None]
    return pred, target, w.expand_as(pred)


def pearson_loss(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor | None = None,
                 eps: float = 1e-6) -> torch.Tensor:
    """Differentiable correlation surrogate ``1 - mean_d r_d``; r is Pearson's r over the batch axis.

    Args:
        pred, target: (N, D). mask: optional (N,) or (N, D) bool/float weights (True = use).

    Returns:
        scalar in [0, 2]; 0 when every dimension is perfectly correlated.
    """
    pred, target, w = _masked_rows(pred, target, mask)
    n = w.sum(0).clamp_min(1.0)  # (D,)
    pc = pred - (pred * w).sum(0) / n  # (N, D)
    tc = target - (target * w).sum(0) / n
    cov = (w * pc * tc).sum(0)  # (D,)
    r = cov / torch.sqrt((w * pc * pc).sum(0) * (w * tc * tc).sum(0) + eps)  # (D,)
    return 1.0 - r.mean()


def regression_loss(
    pred: torch.Tensor,
    target: torch.Tensor,
    *,
    mse: float = 1.0,
    mae: float = 0.0,
    corr: float = 0.0,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """``mse·MSE + mae·MAE + corr·(1 - mean Pearson r)`` between (N, D) predictions and labels.

    ``mask`` (N,) or (N, D) excludes rows/entries (e.g. missing labels); weights are plain floats.
    """
    p, t, w = _masked_rows(pred, target, mask)
    n = w.sum().clamp_min(1.0)
    loss = p.new_zeros(())
    if mse:
        loss = loss + mse * (w * (p - t).pow(2)).sum() / n
    if mae:
        loss = loss + mae * (w * (p - t).abs()).sum() / n
    if corr:
        loss = loss + corr * pearson_loss(p, t, mask)
    return loss


def labels_to_levels(y: torch.Tensor, n_levels: int = 7) -> torch.Tensor:
    """PercePiano labels in [1/K, 1] → integer ranks 0..K-1 (nearest rating level minus one)."""
    return (torch.round(y.float() * n_levels) - 1).clamp(0, n_levels - 1).long()


def corn_loss(logits: torch.Tensor, levels: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """CORN ordinal loss (conditional binary tasks; Shi et al. 2021).

    Task k ∈ 0..K-2 is trained on the items with ``level ≥ k`` (those that passed task k-1), with
    target ``level > k``; the loss is the mean binary cross-entropy over all (item, dim, task) terms
    that take part.

    Args:
        logits: (N, D, K-1) from :class:`crescendai.model.CornHead`.
        levels: (N, D) long ranks 0..K-1 (:func:`labels_to_levels`).
        mask: optional (N,) or (N, D) bool, False = ignore.
    """
    K1 = logits.shape[-1]
    k = torch.arange(K1, device=logits.device)  # (K-1,)
    lv = levels[..., None]  # (N, D, 1)
    take = (lv >= k).float()  # (N, D, K-1)
    if mask is not None:
        m = mask if mask.ndim == levels.ndim else mask[:, None].expand_as(levels)
        take = take * m[..., None].float()
    tgt = (lv > k).float()
    bce = F.binary_cross_entropy_with_logits(logits.float(), tgt, reduction="none")
    return (bce * take).sum() / take.sum().clamp_min(1.0)


def smoothness_loss(seq: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Temporal smoothness: mean squared first difference along time.

    Args:
        seq: (B, T, D) scores over consecutive time steps (local head rows, or consecutive windows
            of one recording). mask: optional (B, T) bool, True = valid step; a difference counts
            only when both of its steps are valid.
    """
    d = (seq[:, 1:] - seq[:, :-1]).float().pow(2)  # (B, T-1, D)
    if mask is None:
        return d.mean()
    w = (mask[:, 1:] & mask[:, :-1]).float()[..., None].expand_as(d)
    return (d * w).sum() / w.sum().clamp_min(1.0)


DEFAULT_PROXY_PAIRS: tuple[tuple[int, int, float], ...] = (
    (0, 1, -1.0),   # timing (high = unstable)      vs tempo stability
    (3, 3, +1.0),   # pedal_amount (high = wet)     vs pedal proxy
    (10, 2, +1.0),  # dynamic_range (high = large)  vs loudness dynamics
    (11, 0, -1.0),  # pace (high = slow)            vs onset density
)
"""(dimension index, proxy index in :data:`crescendai.core.columns.PROXIES`, expected sign of the correlation)."""


def proxy_consistency_loss(
    pred: torch.Tensor,
    proxies: torch.Tensor,
    pairs: Sequence[tuple[int, int, float]] = DEFAULT_PROXY_PAIRS,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Agreement of predicted dimensions with time-local proxies across the batch.

    ``mean over pairs (1 - sign · r(pred[:, d], proxies[:, p])) / 2`` ∈ [0, 1]; 0 when each
    dimension moves exactly with its proxy in the expected direction.

    Args:
        pred: (N, 19) window scores. proxies: (N, P) proxy values. mask: optional (N,) bool.
    """
    if not pairs:
        return pred.float().sum() * 0.0
    d_idx = [d for d, _, _ in pairs]
    p_idx = [p for _, p, _ in pairs]
    sign = torch.tensor([s for _, _, s in pairs], device=pred.device, dtype=torch.float32)
    r = 1.0 - _pearson_per_dim(pred[:, d_idx], proxies[:, p_idx].to(pred.dtype), mask)  # (n_pairs,)
    return ((1.0 - sign * r) / 2.0).mean()


def _pearson_per_dim(a: torch.Tensor, b: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """1 - r per column (helper that keeps :func:`pearson_loss`'s masking)."""
    return torch.stack([pearson_loss(a[:, i : i + 1], b[:, i : i + 1], mask) for i in range(a.shape[1])])
