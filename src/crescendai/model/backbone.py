"""The ultra-small Audio Spectrogram Transformer (AST) backbone, nanoGPT style: the whole network here.

Input: contract windows ``x`` [B, 128 time, 128 mel] in dB, range [-80, 0] (``crescendai.core.audio``).
The dB values are normalised *inside* the model with fixed constants (:data:`DB_CENTER`,
:data:`DB_SCALE`), so every caller feeds the raw contract and no data pipeline rescales anything.

    x (B, 128, 128) ─► (x - DB_CENTER) / DB_SCALE ─► 16×16 patches (B, 64, 256) ─► Linear ─► + pos
      ─► [CLS] + tokens (B, 65, 256) ─► 3 × pre-LN Block(4 heads, MLP 4×, dropout, drop-path) ─► LN
      ─► pooled (B, 256): CLS token or masked mean of patch tokens

Patches are taken on an 8 × 8 grid with patch index ``p = 8·t + f`` (``t`` time row, ``f`` mel column),
no overlap (stride 16). An optional ``pad_mask`` [B, 128] (True = padded frame, as
``crescendai.core.audio.Windows.pad_mask``) hides time rows whose 16 frames are all padding from attention
and from mean pooling. An optional ``token_mask`` [B, 64] replaces patch embeddings by a learned
``mask_token`` (masked patch modelling).
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from crescendai.core.config import ModelParams

N_FRAMES: int = 128
N_MELS: int = 128
DB_CENTER: float = -40.0
"""dB subtracted from the input: the centre of the contract range [-80, 0]."""
DB_SCALE: float = 20.0
"""dB per unit after normalisation: [-80, 0] maps to [-2, 2]."""


_KEEP_LEVELS: int = 1 << 16
"""Resolution of the CPU dropout draw: one 16-bit random integer per element."""


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Inverted dropout, ``F.dropout`` semantics: zero each element with probability ``p``, scale the rest.

    On CPU the keep mask comes from 16-bit slices of 64-bit random integers instead of
    ``bernoulli_``: ``bernoulli_`` draws one float per element and costs ~40 ms per 4 M elements on
    one core, about a sixth of a training step of this model. The keep probability is quantised to
    ``k / 65536`` (|error| ≤ 8e-6) and the survivors are scaled by exactly ``65536 / k``, so the
    expectation is preserved. On GPUs (where ``bernoulli_`` is cheap) this is ``F.dropout``.
    """
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, training=True)
    k = max(1, round((1.0 - p) * _KEEP_LEVELS))  # keep if a uniform 16-bit draw falls below k
    n = x.numel()
    bits = torch.empty((n + 3) // 4, dtype=torch.int64).random_(-(1 << 63), (1 << 63) - 1)
    draw = bits.view(torch.int16)[:n].view(x.shape)  # uniform in [-32768, 32767]
    keep = (draw < k - _KEEP_LEVELS // 2).to(x.dtype).mul_(_KEEP_LEVELS / k)
    return x * keep


class Dropout(nn.Module):
    """:func:`dropout` as a module (the backbone's dropout; heads keep ``nn.Dropout``)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch per sample with probability ``p`` (training)."""

    def __init__(self, p: float) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = x.new_empty(x.shape[0], *([1] * (x.ndim - 1))).bernoulli_(1.0 - self.p)
        return x * keep / (1.0 - self.p)


class Attention(nn.Module):
    def __init__(self, cfg: ModelParams) -> None:
        super().__init__()
        self.heads = cfg.heads
        self.qkv = nn.Linear(cfg.dim, 3 * cfg.dim)  # one fused projection for q, k, v
        self.proj = nn.Linear(cfg.dim, cfg.dim)
        self.dropout = cfg.dropout
        self.resid_drop = Dropout(cfg.dropout)

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, n_queries: int | None = None
    ) -> torch.Tensor:
        """Self-attention of ``x`` (B, T, C); only the first ``n_queries`` tokens query when given.

        Returns (B, T or n_queries, C).
        """
        B, T, C = x.shape
        hs = C // self.heads
        if n_queries is None:
            q, k, v = self.qkv(x).view(B, T, 3, self.heads, hs).permute(2, 0, 3, 1, 4)  # 3 × (B, nh, T, hs)
        else:  # keys and values for every token, queries for the first n_queries only
            w, b = self.qkv.weight, self.qkv.bias
            q = F.linear(x[:, :n_queries], w[:C], b[:C]).view(B, n_queries, self.heads, hs).transpose(1, 2)
            k, v = F.linear(x, w[C:], b[C:]).view(B, T, 2, self.heads, hs).permute(2, 0, 3, 1, 4)
        p = self.dropout if self.training else 0.0
        if p > 0.0 and q.device.type == "cpu":  # explicit softmax so the weights use the cheap dropout
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(hs))  # (B, nh, Tq, T)
            if attn_mask is not None:
                att = att.masked_fill(~attn_mask, float("-inf"))
            y = dropout(att.softmax(dim=-1), p, True) @ v  # (B, nh, Tq, hs)
        else:  # fused kernels (flash / memory-efficient) where they exist
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, dropout_p=p)  # (B, nh, Tq, hs)
        y = y.transpose(1, 2).reshape(B, q.shape[2], C)  # (B, Tq, C)
        return self.resid_drop(self.proj(y))


class Block(nn.Module):
    def __init__(self, cfg: ModelParams, drop_path: float) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.dim)
        self.attn = Attention(cfg)
        self.ln2 = nn.LayerNorm(cfg.dim)
        self.mlp = nn.Sequential(
            nn.Linear(cfg.dim, cfg.mlp_ratio * cfg.dim),
            nn.GELU(),
            nn.Linear(cfg.mlp_ratio * cfg.dim, cfg.dim),
            Dropout(cfg.dropout),
        )
        self.drop_path = DropPath(drop_path)

    def forward(
        self, x: torch.Tensor, attn_mask: torch.Tensor | None = None, n_queries: int | None = None
    ) -> torch.Tensor:
        """(B, T, C) → (B, T, C), or (B, n_queries, C): the outputs of the first tokens only."""
        res = x if n_queries is None else x[:, :n_queries]
        x = res + self.drop_path(self.attn(self.ln1(x), attn_mask, n_queries))  # (B, Tq, C)
        x = x + self.drop_path(self.mlp(self.ln2(x)))  # (B, Tq, C)
        return x


class Backbone(nn.Module):
    """Ultra-small AST. ``forward(x) -> (B, dim)``; ``tokens(x) -> (B, 1 + n_patches, dim)``."""

    def __init__(self, cfg: ModelParams | None = None) -> None:
        super().__init__()
        self.cfg = cfg = cfg or ModelParams()
        pdim = cfg.patch * cfg.patch
        self.patch_embed = nn.Linear(pdim, cfg.dim)  # a 16×16 stride-16 conv, as one matmul
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + cfg.n_patches, cfg.dim))
        self.drop = Dropout(cfg.dropout)
        rates = [cfg.drop_path * i / max(1, cfg.depth - 1) for i in range(cfg.depth)]  # linear rule
        self.blocks = nn.ModuleList(Block(cfg, r) for r in rates)
        self.ln_f = nn.LayerNorm(cfg.dim)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # GPT-2 scaled init of residual projections
            if name.endswith("attn.proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.depth))
        for p in (self.cls_token, self.mask_token, self.pos_embed):
            nn.init.normal_(p, mean=0.0, std=0.02)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        """The one place weights are initialised."""
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    @property
    def dim(self) -> int:
        return self.cfg.dim

    def n_params(self) -> int:
        """Number of trainable parameters (``mask_token`` included)."""
        return sum(p.numel() for p in self.parameters())

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised dB windows (B, 128, 128) → patches (B, n_patches, patch²), index ``8·t + f``."""
        B = x.shape[0]
        P = self.cfg.patch
        nt, nf = self.cfg.grid
        x = x.reshape(B, nt, P, nf, P).permute(0, 1, 3, 2, 4)  # (B, nt, nf, P, P)
        return x.reshape(B, nt * nf, P * P)  # (B, N, P²)

    @staticmethod
    def normalise(x: torch.Tensor) -> torch.Tensor:
        """Contract dB [-80, 0] → model units [-2, 2] (fixed constants)."""
        return (x - DB_CENTER) / DB_SCALE

    def patch_padding(self, pad_mask: torch.Tensor) -> torch.Tensor:
        """Frame pad mask (B, 128) → patch pad mask (B, n_patches): True where the time row is all padding."""
        nt, nf = self.cfg.grid
        rows = pad_mask.reshape(pad_mask.shape[0], nt, self.cfg.patch).all(dim=-1)  # (B, nt)
        return rows[:, :, None].expand(-1, nt, nf).reshape(pad_mask.shape[0], nt * nf)  # (B, N)

    def _embed(
        self, x: torch.Tensor, pad_mask: torch.Tensor | None, token_mask: torch.Tensor | None,
        always_mask: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Windows → input tokens (B, 1+N, C) and the attention mask (B, 1, 1, 1+N) or None (no
        ``pad_mask``, or nothing padded and not ``always_mask``)."""
        B = x.shape[0]
        h = self.patch_embed(self.patchify(self.normalise(x)))  # (B, N, C)
        if token_mask is not None:
            h = torch.where(token_mask[..., None], self.mask_token.to(h.dtype), h)  # (B, N, C)
        h = torch.cat([self.cls_token.expand(B, -1, -1), h], dim=1) + self.pos_embed  # (B, 1+N, C)
        h = self.drop(h)
        attn_mask = None
        if pad_mask is not None and (always_mask or bool(pad_mask.any())):
            keep = ~self.patch_padding(pad_mask)  # (B, N)
            keep = torch.cat([keep.new_ones(B, 1), keep], dim=1)  # (B, 1+N), CLS always visible
            attn_mask = keep[:, None, None, :]  # (B, 1, 1, 1+N) broadcast over heads and queries
        return h, attn_mask

    def tokens(
        self,
        x: torch.Tensor,
        pad_mask: torch.Tensor | None = None,
        token_mask: torch.Tensor | None = None,
        always_mask: bool = False,
    ) -> torch.Tensor:
        """All output tokens.

        Args:
            x: (B, 128, 128) dB windows in [-80, 0], [time, mel].
            pad_mask: optional (B, 128) bool, True = padded frame.
            token_mask: optional (B, n_patches) bool, True = replace the patch by ``mask_token``.
            always_mask: attend through the mask built from ``pad_mask`` even when nothing is padded
                (the same function: no branch on the mask's values, so a graph traced for export
                serves padded and unpadded windows alike).

        Returns:
            (B, 1 + n_patches, dim): the CLS token first, then patches in index order ``8·t + f``.
        """
        h, attn_mask = self._embed(x, pad_mask, token_mask, always_mask)
        for block in self.blocks:
            h = block(h, attn_mask)  # (B, 1+N, C)
        return self.ln_f(h)  # (B, 1+N, C)

    def pool(self, tokens: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Tokens (B, 1+N, C) → embedding (B, C) by ``cfg.pooling``."""
        if self.cfg.pooling == "cls":
            return tokens[:, 0]  # (B, C)
        patches = tokens[:, 1:]  # (B, N, C)
        if pad_mask is None:
            return patches.mean(dim=1)
        w = (~self.patch_padding(pad_mask)).to(patches.dtype)[..., None]  # (B, N, 1)
        return (patches * w).sum(1) / w.sum(1).clamp_min(1.0)  # (B, C)

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        """(B, 128, 128) dB windows → (B, dim) embeddings; equals ``pool(tokens(x, pad_mask), pad_mask)``.

        With CLS pooling the last block computes the CLS token only (its query attends to every
        token; the patch outputs of the last block would be discarded): about a quarter of the
        network's FLOPs saved, same function.
        """
        if self.cfg.pooling != "cls":
            return self.pool(self.tokens(x, pad_mask), pad_mask)
        h, attn_mask = self._embed(x, pad_mask, None)
        for block in self.blocks[:-1]:
            h = block(h, attn_mask)  # (B, 1+N, C)
        return self.ln_f(self.blocks[-1](h, attn_mask, n_queries=1))[:, 0]  # (B, C)
