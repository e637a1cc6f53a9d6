"""The pretraining recipe: a self-supervised backbone on the unlabelled set, then a frozen-embedding probe.

    env = setup_distributed(params.pretrain.device)
    res = pretrain(params, "data/features", env, run_dir="runs/pretrain", log_path="models/pretrain/log.csv")
    res.backbone, res.metrics, res.rows      # rank 0; None on the other ranks

Training (``params.pretrain``): the objective of ``crescendai.learn.ssl.OBJECTIVES`` on augmented
views of ``<features>/ssl``, batches of ``crops_per_recording`` windows from distinct recordings,
whole recordings held out for validation (the same views at every evaluation), warm-up + cosine
schedule, early stopping, the best validation state kept. Checkpoints live in ``run_dir`` under the
hash of the params, the world size and the SSL index, so an interrupted run continues. Under
``torchrun`` the ranks train one DDP model and leave the process group when training ends. With the
performance teacher (``performance`` alone or in a ``+`` mixture) the metrics also say how well its
head reads the held-out recordings' MIDI (:func:`teacher_quality`).

The probe (rank 0) embeds ``<features>/labelled`` (non-test rows) with the frozen backbone and with a
randomly initialised one: ridge R² of the labels and kNN piano-class accuracy
(``crescendai.learn.probe``). Wall-clock figures are logged, not returned: the metrics are reproducible.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from crescendai.core.config import Params, seed_everything
from crescendai.core.files import sha1_file
from crescendai.core.midi_features import FEATURE_NAMES
from crescendai.data.teacher import ONSET_COLS, PEDAL_COL, SOUNDING_COLS, VELOCITY_COLS
from crescendai.learn.augment import augment
from crescendai.learn.batches import (
    RecordingBatchSampler,
    WindowDataset,
    pad_mask_from_fraction,
    split_groups,
)
from crescendai.learn.checkpoints import prepare_shared_run_dir, run_hash
from crescendai.learn.distributed import DistEnv, cleanup_distributed
from crescendai.learn.loop import LoopConfig, cosine_schedule, fit
from crescendai.learn.objectives import N_WINDOW_MEANS, as_slice
from crescendai.learn.probe import embed, probe
from crescendai.learn.ssl import SSLModel, performance_part
from crescendai.model import Backbone, RowTeacherHead, build_backbone

log = logging.getLogger(__name__)

N_VAL_BATCHES = 4
"""Validation batches, the same ones at every evaluation."""


@dataclass
class PretrainResult:
    """The trained backbone (best validation state), the metrics and the loss-curve rows."""

    backbone: Backbone
    metrics: dict[str, object]
    rows: list[dict[str, float]] = field(default_factory=list)
    teacher_head: RowTeacherHead | None = None
    """The performance objective's row head (best validation state), None for other objectives."""

    def loss_curve_csv(self) -> str:
        """``step,train_loss,val_loss`` per evaluation."""
        lines = ["step,train_loss,val_loss"] + [f"{r['step']},{r['train_loss']},{r['val_loss']}" for r in self.rows]
        return "\n".join(lines) + "\n"


def pretrain(params: Params, features: str | Path, env: DistEnv, *, run_dir: str | Path,
             log_path: str | Path | None = None, force_resume: bool = False) -> PretrainResult | None:
    """Train (unless the objective does not train or the step budget is 0), then probe on rank 0.

    Returns None on ranks other than 0. ``force_resume`` continues from ``run_dir`` even when its run
    hash differs.
    """
    t0 = time.perf_counter()
    p, pp = params, params.pretrain
    seed_everything(p.seed + env.rank)
    torch.manual_seed(p.seed)  # identical initial weights on every rank
    backbone = build_backbone(p.model).to(env.device)
    ssl = SSLModel(backbone, pp).to(env.device)
    metrics: dict[str, object] = {"objective": pp.objective, "n_params_backbone": backbone.n_params(),
                                  "device": str(env.device), "world_size": env.world}
    rows: list[dict[str, float]] = []
    if ssl.objective.trains and pp.max_steps > 0 and pp.epochs > 0:
        ssl_set = Path(features) / "ssl"
        resume = prepare_shared_run_dir(run_dir, run_hash(p.seed, p.model, pp, env.world, sha1_file(ssl_set / "index.csv")),
                                        env, force_resume=force_resume)
        rows = _train(ssl, p, WindowDataset(ssl_set), env, Path(run_dir) / "last.pt", resume, log_path, metrics)
    cleanup_distributed()
    if not env.is_main:
        return None
    metrics.update(run_probe(backbone, Path(features) / "labelled", p, env.device))
    log.info("pretrain took %.1f s", time.perf_counter() - t0)
    head = getattr(ssl, "teacher_head", None)
    return PretrainResult(backbone, metrics, rows, head.cpu() if isinstance(head, RowTeacherHead) else None)


def _train(ssl: SSLModel, p: Params, ds: WindowDataset, env: DistEnv, checkpoint: Path, resume: bool,
           log_path: str | Path | None, metrics: dict[str, object]) -> list[dict[str, float]]:
    """Fit ``ssl`` (its best validation state loaded at the end); add the training figures to
    ``metrics``; return the log rows."""
    pp = p.pretrain
    tr, va = split_groups(ds.groups, pp.val_fraction, p.seed)
    sampler = RecordingBatchSampler(ds.groups[tr], pp.batch_size, pp.crops_per_recording, seed=p.seed)
    steps = min(pp.max_steps, pp.epochs * len(sampler))
    opt = torch.optim.AdamW([q for q in ssl.parameters() if q.requires_grad], lr=pp.lr, weight_decay=pp.weight_decay)
    sched = cosine_schedule(opt, min(pp.warmup_steps, steps // 4), steps)

    def views_loss(net: torch.nn.Module, rows: np.ndarray, g: torch.Generator) -> torch.Tensor:
        b = ds.batch(rows, env.device)
        return net(augment(b["x"], g, pad_mask=b["pad_mask"]), b["group"], b["pad_mask"], b.get("teacher"),
                   b.get("playing"))

    val_fn = None
    if len(va):
        n_val_rec = len(np.unique(ds.groups[va]))
        vs = RecordingBatchSampler(ds.groups[va], min(pp.batch_size, pp.crops_per_recording * n_val_rec),
                                   pp.crops_per_recording, seed=p.seed + 1)
        val_batches = [b for e in range(N_VAL_BATCHES) for b in vs.epoch_batches(e)][:N_VAL_BATCHES]

        def val_fn(model: torch.nn.Module) -> float:
            g = torch.Generator().manual_seed(p.seed)  # the same views at every evaluation
            torch_state = torch.get_rng_state()
            losses = [float(views_loss(model, va[pos], g)) for pos in val_batches]
            torch.set_rng_state(torch_state)  # evaluation leaves the training RNG untouched
            return float(np.mean(losses))

    cfg = LoopConfig(max_steps=steps, time_budget_sec=pp.time_budget_sec, eval_every=pp.eval_every,
                     patience=pp.patience, amp=pp.amp)
    st = fit(ssl, opt, sampler, lambda net, pos, g: views_loss(net, tr[pos], g), cfg=cfg, device=env.device,
             val_fn=val_fn, scheduler=sched, generator=torch.Generator().manual_seed(p.seed + 1000 * env.rank),
             checkpoint_path=checkpoint, resume=resume, log_path=log_path,
             after_step=lambda s: ssl.after_step(s, steps), env=env)
    ssl.load_state_dict(st.best_state)
    if len(va) and performance_part(ssl.objective) is not None and ds.fs.teacher is not None:
        metrics.update(teacher_quality(ssl, ds, va, env.device))
    metrics.update(steps=st.step, planned_steps=steps, best_step=st.best_step,
                   best_val_loss=round(st.best_val, 6) if np.isfinite(st.best_val) else None,
                   final_train_loss=st.rows[-1]["train_loss"] if st.rows else None, stop_reason=st.stop_reason,
                   train_windows=int(len(tr)), val_windows=int(len(va)))
    log.info("trained %d steps in %.1f s (%.1f windows/s)", st.step, st.elapsed_sec,
             st.step * pp.batch_size / max(st.elapsed_sec, 1e-9))
    return st.rows


@torch.no_grad()
def teacher_quality(ssl: SSLModel, ds: WindowDataset, rows: np.ndarray, device: torch.device,
                    batch_size: int = 128) -> dict[str, float]:
    """How well the performance teacher's head reads held-out recordings (un-augmented windows ``rows``).

    Cells are (time row ≈ 0.37 s) × (register band of 11 semitones), the resolution of the targets
    (``crescendai.data.teacher``), not notes: ``teacher_onset_f1`` is the F1 of "an onset in this
    cell" (probability > 0.5, scikit-learn ``f1_score``); ``teacher_velocity_r`` the Pearson r of the
    predicted and true mean onset velocity over cells with an onset; ``teacher_sounding_r`` the r of
    the sounding share; ``teacher_pedal_acc`` the accuracy of "pedal down for most of the row".
    Padded rows and windows without MIDI are left out. When the stats head learns the statistics of
    the playing (``pretrain.playing_weight`` > 0) and the set has them,
    ``teacher_playing_r`` maps each (:data:`crescendai.core.midi_features.FEATURE_NAMES`) to the
    Pearson r of the stats head's prediction and the truth over held-out windows, and
    ``teacher_playing_median_r`` is their median.
    """
    from scipy.stats import pearsonr
    from sklearn.metrics import f1_score

    perf = performance_part(ssl.objective)
    was_training = ssl.training
    ssl.eval()
    preds, targets, valids, play_p, play_t = [], [], [], [], []
    for s in range(0, len(rows), batch_size):
        b = ds.batch(rows[s : s + batch_size], device)
        logits, stats, valid = perf.predict(ssl, b["x"], b["pad_mask"])
        if "playing" in b and stats.shape[1] > N_WINDOW_MEANS:
            play_p.append(stats[:, N_WINDOW_MEANS:].float().cpu().numpy())
            play_t.append(b["playing"].cpu().numpy())
        preds.append(torch.sigmoid(logits.float()).cpu().numpy())
        targets.append(b["teacher"].cpu().numpy())
        valids.append(np.ones(logits.shape[:2], bool) if valid is None else valid.cpu().numpy())
    ssl.train(was_training)
    p, t, v = np.concatenate(preds), np.concatenate(targets), np.concatenate(valids)
    p, t = p[v], t[v]  # (cells rows, K)
    p, t = p[np.isfinite(t[:, 0])], t[np.isfinite(t[:, 0])]  # windows with MIDI
    if len(t) == 0:
        return {}
    on, vel, snd = as_slice(ONSET_COLS), as_slice(VELOCITY_COLS), as_slice(SOUNDING_COLS)
    on_p, on_t = p[:, on].ravel() > 0.5, t[:, on].ravel() > 0.5
    vel_p, vel_t = p[:, vel].ravel(), t[:, vel].ravel()
    has = np.isfinite(vel_t)
    snd_p, snd_t = p[:, snd].ravel(), t[:, snd].ravel()

    def r(a: np.ndarray, b: np.ndarray) -> float:
        return float(pearsonr(a, b)[0]) if len(a) > 2 and a.std() > 0 and b.std() > 0 else float("nan")

    out: dict[str, object] = {}
    if play_t:
        pp_, pt_ = np.concatenate(play_p), np.concatenate(play_t)
        by = {name: r(pp_[ok, j], pt_[ok, j]) for j, name in enumerate(FEATURE_NAMES)
              for ok in [np.isfinite(pt_[:, j])]}
        out["teacher_playing_r"] = {k: round(v, 4) for k, v in by.items()}
        out["teacher_playing_median_r"] = round(float(np.nanmedian(list(by.values()))), 4)
    return {**out, "teacher_onset_f1": round(float(f1_score(on_t, on_p, zero_division=0.0)), 4),
            "teacher_onset_rate": round(float(on_t.mean()), 4),
            "teacher_velocity_r": round(r(vel_p[has], vel_t[has]), 4),
            "teacher_sounding_r": round(r(snd_p, snd_t), 4),
            "teacher_pedal_acc": round(float(((p[:, PEDAL_COL] > 0.5) == (t[:, PEDAL_COL] > 0.5)).mean()), 4),
            "teacher_cells": int(len(t))}


def run_probe(backbone: Backbone, labelled: Path, p: Params, device: torch.device) -> dict[str, object]:
    """Probe metrics of ``backbone`` and of a random-init one on the non-test labelled rows ({} without
    a labelled set)."""
    from crescendai.data.window_cache import load_feature_set

    if not (labelled / "windows.npy").is_file():
        return {}
    fs = load_feature_set(labelled)
    rows = fs.rows("train", labelled=True, include_augmented=False)
    if len(rows) == 0:
        return {}
    ix = fs.index.iloc[rows]
    groups = ix["fold"].fillna(-1).astype(int).to_numpy() if ix["fold"].notna().any() else ix["performer_id"].to_numpy()
    x, pad = fs.batch(rows), pad_mask_from_fraction(ix["pad_fraction"].to_numpy())
    out: dict[str, object] = {}
    for name, bb in (("", backbone), ("_random_init", build_backbone(p.model).to(device))):
        r = probe(embed(bb, x, pad, device=device), ix["item"].to_numpy(), groups, fs.labels(rows),
                  ix["timbre_class"].to_numpy(), alpha=p.pretrain.probe_alpha, k=p.pretrain.probe_k)
        out[f"probe_r2{name}"] = round(r.r2, 4)
        if r.timbre_acc is not None:
            out[f"probe_timbre_acc{name}"] = round(r.timbre_acc, 4)
        out["probe_segments"] = r.n_segments
    return out
