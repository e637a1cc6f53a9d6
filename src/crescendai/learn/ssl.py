"""Self-supervised wrapper: backbone + the small task networks one objective needs, returning its loss.

    ssl = SSLModel(backbone, "infonce", SSLConfig(temperature=0.1))
    loss = ssl(x, rec)           # x (B, 128, 128) augmented dB views, rec (B,) recording ids
    ssl.after_step(step, total)  # BYOL: EMA update of the target network (no-op otherwise)

Batch layout: the sampler (``crescendai.learn.loop.RecordingBatchSampler``) puts ``crops`` windows of
each recording next to each other, so for BYOL item ``i``'s partner is the next item of the same
recording (cyclically). Only the modules an objective uses are built (DDP needs no unused parameters).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import torch
import torch.nn as nn

from crescendai.learn import objectives as obj
from crescendai.model.backbone import Backbone


@dataclass(frozen=True)
class SSLConfig:
    """Objective settings (the ``pretrain`` params section feeds these)."""

    proj_dim: int = 128
    temperature: float = 0.1
    mask_ratio: float = 0.4
    recon_weight: float = 1.0
    ema_base: float = 0.996
    repel_weight: float = 1.0


def _mlp(i: int, h: int, o: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(i, h), nn.LayerNorm(h), nn.GELU(), nn.Linear(h, o))


def partner_index(rec: torch.Tensor) -> torch.Tensor:
    """(N,) recording ids → (N,) index of the next item of the same recording (cyclic); self if alone."""
    N = rec.shape[0]
    idx = torch.arange(N, device=rec.device)
    same = obj.same_recording(rec)  # (N, N)
    # distance forward (cyclic) to each same-recording item; pick the smallest positive one
    dist = (idx[None, :] - idx[:, None]) % N  # (N, N)
    dist = torch.where(same & (dist > 0), dist, torch.full_like(dist, N))
    nxt = (idx + dist.min(dim=1).values) % N
    return torch.where(dist.min(dim=1).values < N, nxt, idx)


class SSLModel(nn.Module):
    def __init__(self, backbone: Backbone, objective: str, cfg: SSLConfig | None = None) -> None:
        super().__init__()
        if objective not in obj.SSL_OBJECTIVES:
            raise ValueError(f"pretrain.objective must be one of {obj.SSL_OBJECTIVES}, got {objective!r}")
        self.backbone, self.objective, self.cfg = backbone, objective, cfg or SSLConfig()
        C, D = backbone.dim, self.cfg.proj_dim
        backbone.mask_token.requires_grad_(objective == "masked")  # unused otherwise (DDP needs no idle params)
        if objective in ("infonce", "repulsive", "byol"):
            self.projector = _mlp(C, C, D)
        if objective == "byol":
            self.predictor = _mlp(D, C, D)
            self.target_backbone = copy.deepcopy(backbone).requires_grad_(False)
            self.target_projector = copy.deepcopy(self.projector).requires_grad_(False)
        if objective == "masked":
            P2 = backbone.cfg.patch ** 2
            self.disc_head = nn.Linear(C, P2)
            self.recon_head = nn.Linear(C, P2)

    def forward(self, x: torch.Tensor, rec: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Views (B, 128, 128) dB and recording ids (B,) → scalar loss."""
        o, c = self.objective, self.cfg
        if o == "none":
            return obj.none(self.backbone(x, pad_mask))
        if o == "masked":
            return self._masked(x, pad_mask)
        z = self.projector(self.backbone(x, pad_mask))  # (B, D)
        if o in ("infonce", "repulsive"):  # negatives from every rank under DDP
            zg, rg = obj.gather_across_ranks(z, rec)
            if o == "infonce":
                return obj.infonce(zg, rg, c.temperature)
            return obj.repulsive(zg, rg, c.repel_weight)
        # byol: online(view i) predicts target(partner of i), both directions
        p = self.predictor(z)  # (B, D)
        with torch.no_grad():
            self.target_backbone.train(self.training)
            zt = self.target_projector(self.target_backbone(x, pad_mask))  # (B, D)
        return obj.byol(p, zt[partner_index(rec)])

    def _masked(self, x: torch.Tensor, pad_mask: torch.Tensor | None) -> torch.Tensor:
        bb = self.backbone
        B, N = x.shape[0], bb.cfg.n_patches
        M = max(2, round(self.cfg.mask_ratio * N))
        idx = torch.rand(B, N, device=x.device).argsort(dim=1)[:, :M]  # (B, M) masked positions
        token_mask = torch.zeros(B, N, dtype=torch.bool, device=x.device).scatter_(1, idx, True)
        h = bb.tokens(x, pad_mask, token_mask)[:, 1:]  # (B, N, C)
        h = h.gather(1, idx[..., None].expand(-1, -1, h.shape[-1]))  # (B, M, C)
        target = bb.patchify(bb.normalise(x))  # (B, N, P²)
        target = target.gather(1, idx[..., None].expand(-1, -1, target.shape[-1]))  # (B, M, P²)
        return obj.masked_patch(self.disc_head(h), target, recon=self.recon_head(h),
                                temperature=self.cfg.temperature, recon_weight=self.cfg.recon_weight)

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        """Call after each optimiser step: BYOL's EMA target update (others: nothing)."""
        if self.objective == "byol":
            m = obj.ema_momentum(step, total_steps, self.cfg.ema_base)
            obj.ema_update(self.target_backbone, self.backbone, m)
            obj.ema_update(self.target_projector, self.projector, m)
