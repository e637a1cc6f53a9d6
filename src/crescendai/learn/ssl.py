"""Self-supervised objectives: the one table of them, and the model that trains a backbone with one.

    ssl = SSLModel(backbone, params.pretrain)   # params.pretrain.objective: entries of OBJECTIVES joined by +
    loss = ssl(x, rec, pad_mask, teacher, playing)  # x (B, 128, 128) augmented dB views, rec (B,) recording
                            # ids; teacher (B, 8, 25) MIDI targets and playing (B, F) standardised window
                            # statistics of the playing (the performance objective)
    ssl.after_step(step, total)  # BYOL: EMA update of the target network (no-op otherwise)

An :class:`Objective` says which small networks it adds beside the backbone and computes its loss;
only the modules of the chosen objective are built (DDP needs no unused parameters). Adding one is a
subclass here, an entry in :data:`OBJECTIVES` and its name in ``params.yaml``; its losses live in
``crescendai.learn.objectives``. Names joined by ``+`` (``performance+masked``) train on the sum of
the losses (:class:`Mixture`).

Batch layout: the sampler (``crescendai.learn.batches.RecordingBatchSampler``) puts ``crops`` windows
of each recording next to each other, so for BYOL item ``i``'s partner is the next item of the same
recording (cyclically).
"""

from __future__ import annotations

import copy

import torch
import torch.nn as nn

from crescendai.core.config import ConfigError, PretrainParams
from crescendai.core.midi_features import N_MIDI_FEATURES
from crescendai.data.teacher import TEACHER_FIELDS, TEACHER_ROWS
from crescendai.learn import objectives as obj
from crescendai.learn.distributed import gather_across_ranks
from crescendai.model.backbone import Backbone
from crescendai.model.heads import RowTeacherHead


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


class Objective:
    """One self-supervised objective (stateless; its settings come from ``PretrainParams``)."""

    trains: bool = True
    """False for the random-init baseline: the stage skips training."""
    uses_mask_token: bool = False
    """Whether the backbone's mask token takes part (it is frozen otherwise)."""
    needs_teacher: bool = False
    """Whether the loss reads the MIDI teacher targets (``data/features/ssl/teacher.npy``)."""

    def modules(self, backbone: Backbone, p: PretrainParams) -> dict[str, nn.Module]:
        """The networks to build beside ``backbone``, by attribute name, in construction order."""
        return {}

    def loss(self, m: SSLModel, x: torch.Tensor, rec: torch.Tensor, pad_mask: torch.Tensor | None,
             teacher: torch.Tensor | None = None, playing: torch.Tensor | None = None) -> torch.Tensor:
        """Views (B, 128, 128) dB, recording ids (B,), optional teacher targets (B, 8, 25) and
        statistics of the playing (B, F) → scalar loss."""
        raise NotImplementedError

    def after_step(self, m: SSLModel, step: int, total_steps: int) -> None:
        """Runs after each optimiser step."""


class NoPretraining(Objective):
    """The random-init baseline: a zero loss that keeps the autograd graph."""

    trains = False

    def loss(self, m, x, rec, pad_mask, teacher=None, playing=None):
        return obj.none(m.backbone(x, pad_mask))


class Contrastive(Objective):
    """A projection head; the loss sees every rank's projections (negatives from all ranks under DDP)."""

    def modules(self, backbone, p):
        return {"projector": _mlp(backbone.dim, backbone.dim, p.proj_dim)}

    def loss(self, m, x, rec, pad_mask, teacher=None, playing=None):
        zg, rg = gather_across_ranks(m.projector(m.backbone(x, pad_mask)), rec)  # (N, D), (N,)
        return self.contrast(zg, rg, m.params)

    def contrast(self, z: torch.Tensor, rec: torch.Tensor, p: PretrainParams) -> torch.Tensor:
        raise NotImplementedError


class InfoNCE(Contrastive):
    def contrast(self, z, rec, p):
        return obj.infonce(z, rec, p.temperature)


class Repulsive(Contrastive):
    repel_weight: float = 1.0

    def contrast(self, z, rec, p):
        return obj.repulsive(z, rec, self.repel_weight)


class BYOL(Objective):
    """Online network (projector + predictor) predicts an EMA target network, both directions."""

    def modules(self, backbone, p):
        C, D = backbone.dim, p.proj_dim
        projector = _mlp(C, C, D)
        return {"projector": projector, "predictor": _mlp(D, C, D),
                "target_backbone": copy.deepcopy(backbone).requires_grad_(False),
                "target_projector": copy.deepcopy(projector).requires_grad_(False)}

    def loss(self, m, x, rec, pad_mask, teacher=None, playing=None):
        p = m.predictor(m.projector(m.backbone(x, pad_mask)))  # (B, D)
        with torch.no_grad():
            m.target_backbone.train(m.training)
            zt = m.target_projector(m.target_backbone(x, pad_mask))  # (B, D)
        return obj.byol(p, zt[partner_index(rec)])

    def after_step(self, m, step, total_steps):
        momentum = obj.ema_momentum(step, total_steps, m.params.ema_base)
        obj.ema_update(m.target_backbone, m.backbone, momentum)
        obj.ema_update(m.target_projector, m.projector, momentum)


class Masked(Objective):
    """Masked patch modelling: discriminate and reconstruct the masked patches of each window."""

    uses_mask_token = True
    recon_weight: float = 1.0

    def modules(self, backbone, p):
        P2 = backbone.cfg.patch ** 2
        return {"disc_head": nn.Linear(backbone.dim, P2), "recon_head": nn.Linear(backbone.dim, P2)}

    def loss(self, m, x, rec, pad_mask, teacher=None, playing=None):
        bb = m.backbone
        B, N = x.shape[0], bb.cfg.n_patches
        M = max(2, round(m.params.mask_ratio * N))
        idx = torch.rand(B, N, device=x.device).argsort(dim=1)[:, :M]  # (B, M) masked positions
        token_mask = torch.zeros(B, N, dtype=torch.bool, device=x.device).scatter_(1, idx, True)
        h = bb.tokens(x, pad_mask, token_mask)[:, 1:]  # (B, N, C)
        h = h.gather(1, idx[..., None].expand(-1, -1, h.shape[-1]))  # (B, M, C)
        target = bb.patchify(bb.normalise(x))  # (B, N, P²)
        target = target.gather(1, idx[..., None].expand(-1, -1, target.shape[-1]))  # (B, M, P²)
        return obj.masked_patch(m.disc_head(h), target, recon=m.recon_head(h),
                                temperature=m.params.temperature, recon_weight=self.recon_weight)


class Performance(Objective):
    """The performance teacher: predict each window's MIDI (``crescendai.data.teacher``) from it.

    ``teacher_head`` reads the tokens of one time row (its ``nf`` register columns concatenated,
    LayerNorm → Linear) and predicts that row's onsets, onset velocity and sounding notes per register
    band and its pedal share (logits, (B, T, K)); ``stats_head`` reads the pooled embedding and
    predicts the window's means of those (:func:`crescendai.learn.objectives.teacher_stats`, 4 logits)
    and, with ``pretrain.playing_weight`` > 0 and when the batch has them, its standardised statistics
    of the playing (the MIDI performance features of its notes,
    :func:`crescendai.data.teacher.window_playing`; F more outputs, MSE × that weight). The
    stats head is thrown away after pretraining; the row head is kept beside the backbone
    (``models/pretrain/teacher_head.pt``) and, with a frozen backbone, ships in the tutor bundle.
    Augmentations never shift time (``crescendai.learn.augment``), so the targets stay aligned.
    """

    needs_teacher = True

    def modules(self, backbone, p):
        nt, nf = backbone.cfg.grid
        if nt != TEACHER_ROWS:
            raise ConfigError(f"pretrain.objective: performance needs {TEACHER_ROWS} time rows per window "
                              f"(the teacher targets'), model.patch {backbone.cfg.patch} gives {nt}; set "
                              f"model.patch to {128 // TEACHER_ROWS}")
        C = backbone.dim
        n_playing = N_MIDI_FEATURES if p.playing_weight > 0 else 0
        return {"teacher_head": RowTeacherHead(C, nf, len(TEACHER_FIELDS)),
                "stats_head": nn.Linear(C, obj.N_WINDOW_MEANS + n_playing)}

    def predict(self, m: SSLModel, x: torch.Tensor, pad_mask: torch.Tensor | None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Row logits (B, T, K), window outputs (B, 4 + F) — logits of the 4 window means, then the
        standardised statistics of the playing — and the valid rows (B, T) or None."""
        bb = m.backbone
        nt, nf = bb.cfg.grid
        tokens = bb.tokens(x, pad_mask)  # (B, 1+N, C)
        valid = None if pad_mask is None else ~pad_mask.reshape(x.shape[0], nt, -1).all(-1)  # (B, T)
        return m.teacher_head.from_tokens(tokens), m.stats_head(bb.pool(tokens, pad_mask)), valid

    def loss(self, m, x, rec, pad_mask, teacher=None, playing=None):
        if teacher is None:
            raise ConfigError("pretrain.objective: performance needs the MIDI teacher targets "
                              "(<features>/ssl/teacher.npy); re-run the preprocess stage")
        rows, stats, valid = self.predict(m, x, pad_mask)
        loss = obj.teacher_loss(rows, teacher, valid) + obj.stats_loss(stats[:, :obj.N_WINDOW_MEANS],
                                                                       obj.teacher_stats(teacher, valid))
        if playing is None or m.params.playing_weight == 0:
            return loss
        return loss + m.params.playing_weight * obj.playing_loss(stats[:, obj.N_WINDOW_MEANS:], playing)


class Mixture(Objective):
    """Several objectives trained together: the sum of their losses (equal weights)."""

    def __init__(self, parts: list[Objective]) -> None:
        self.parts = parts
        self.trains = any(o.trains for o in parts)
        self.uses_mask_token = any(o.uses_mask_token for o in parts)
        self.needs_teacher = any(o.needs_teacher for o in parts)

    def modules(self, backbone, p):
        out: dict[str, nn.Module] = {}
        for o in self.parts:
            out.update(o.modules(backbone, p))
        return out

    def loss(self, m, x, rec, pad_mask, teacher=None, playing=None):
        return sum(o.loss(m, x, rec, pad_mask, teacher, playing) for o in self.parts)

    def after_step(self, m, step, total_steps):
        for o in self.parts:
            o.after_step(m, step, total_steps)


OBJECTIVES: dict[str, Objective] = {
    "infonce": InfoNCE(),
    "byol": BYOL(),
    "masked": Masked(),
    "repulsive": Repulsive(),
    "performance": Performance(),
    "none": NoPretraining(),
}
"""``pretrain.objective`` → objective: the one list of the names (combine with ``+``)."""


def objective_named(name: str) -> Objective:
    """The entry of :data:`OBJECTIVES`, or a :class:`Mixture` for names joined by ``+``; an unknown or
    repeated name is a :class:`ConfigError` naming the key."""
    names = [n.strip() for n in name.split("+")]
    unknown = [n for n in names if n not in OBJECTIVES]
    if unknown or len(set(names)) < len(names) or (len(names) > 1 and "none" in names):
        raise ConfigError(f"pretrain.objective: {name!r} must be one of {list(OBJECTIVES)} or several of "
                          "them (not none) joined by +, each once")
    return OBJECTIVES[names[0]] if len(names) == 1 else Mixture([OBJECTIVES[n] for n in names])


def performance_part(objective: Objective) -> Performance | None:
    """The :class:`Performance` objective inside ``objective`` (itself or a mixture part), or None."""
    parts = objective.parts if isinstance(objective, Mixture) else [objective]
    return next((o for o in parts if isinstance(o, Performance)), None)


class SSLModel(nn.Module):
    """The backbone plus the modules of ``params.objective``; ``forward`` returns that objective's loss."""

    def __init__(self, backbone: Backbone, params: PretrainParams) -> None:
        super().__init__()
        self.objective = objective_named(params.objective)
        self.backbone, self.params = backbone, params
        backbone.mask_token.requires_grad_(self.objective.uses_mask_token)  # DDP needs no idle params
        for name, module in self.objective.modules(backbone, params).items():
            self.add_module(name, module)

    def forward(self, x: torch.Tensor, rec: torch.Tensor, pad_mask: torch.Tensor | None = None,
                teacher: torch.Tensor | None = None, playing: torch.Tensor | None = None) -> torch.Tensor:
        """Views (B, 128, 128) dB, recording ids (B,), optional teacher targets (B, 8, 25) and
        statistics of the playing (B, F) → scalar loss."""
        return self.objective.loss(self, x, rec, pad_mask, teacher, playing)

    @torch.no_grad()
    def after_step(self, step: int, total_steps: int) -> None:
        """Call after each optimiser step (BYOL's EMA target update; nothing for the others)."""
        self.objective.after_step(self, step, total_steps)
