"""The training loop shared by pretraining and fine-tuning: warm-up + cosine schedule, AMP, DDP,
gradient clipping, validation with early stopping, resumable checkpoints.

    sched = cosine_schedule(opt, warmup_steps, total_steps)
    state = fit(model, opt, batches, step_fn, cfg=LoopConfig(max_steps=200, eval_every=10),
                device=device, val_fn=val_fn, scheduler=sched, checkpoint_path="…/last.pt",
                resume=True, log_path="models/x/log.csv", env=env)
    state.best_state                                     # state dict at the best validation score

* ``batches`` is anything with ``epoch_batches(epoch) -> Sequence[np.ndarray]`` (row indices per
  global batch), deterministic in ``epoch`` — e.g. ``crescendai.learn.batches.RecordingBatchSampler``.
  Under DDP each rank gets a contiguous slice of each global batch.
* ``step_fn(model, rows, generator) -> loss`` builds the batch on ``device`` and returns the scalar
  loss; it runs under ``autocast``. ``model`` is the DDP wrapper when distributed. ``generator``
  is the loop-owned CPU ``torch.Generator`` (augmentations), checkpointed with everything else.
* ``val_fn(model) -> float`` (lower is better) runs every ``eval_every`` steps in eval mode under
  ``no_grad``; early stopping counts evaluations without an improvement > ``min_delta``.
* ``after_step(step)`` runs after every optimiser step (e.g. BYOL's EMA).

Checkpoints (written atomically; see ``crescendai.learn.checkpoints``) hold the model, optimiser,
scheduler, grad scaler, loop state (step, epoch, position in the epoch, best score, patience counter,
best state, log rows) and every RNG (per rank under DDP). ``resume=True`` continues from
``checkpoint_path`` and gives the same parameters as an uninterrupted run (tested). A wall-clock
``time_budget_sec`` stops early (after a checkpoint); runs stopped by the budget are reproducible only
when the budget is not hit. Wall-clock time is logged, never written to the log rows.
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

from crescendai.core.files import atomic_write
from crescendai.learn.checkpoints import load_checkpoint, rng_state, set_rng_state
from crescendai.learn.distributed import DistEnv, amp_dtype, any_rank, autocast, gather_objects
from crescendai.model import save_state_dict

log = logging.getLogger(__name__)


def cosine_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_steps`` then cosine decay to 0 at ``total_steps``."""

    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        frac = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, f)


class BatchSource(Protocol):
    """Row indices of every global batch of an epoch, deterministic in ``epoch``."""

    def epoch_batches(self, epoch: int) -> Sequence[np.ndarray]: ...


@dataclass(frozen=True)
class LoopConfig:
    """How long and how carefully to train.

    Attributes:
        max_steps: optimiser steps (also the schedule length the caller used).
        time_budget_sec: wall-clock cap in seconds (0 = none); the loop checkpoints and stops.
        eval_every: steps between validations, log rows and checkpoints.
        patience: evaluations without improvement before stopping (0 = never stop early).
        min_delta: improvement smaller than this does not count.
        grad_clip: max global gradient norm (0 = off).
        amp: "auto" | "on" | "off" (see ``crescendai.learn.distributed.amp_dtype``).
        progress: show a tqdm bar (main process only).
    """

    max_steps: int
    time_budget_sec: float = 0.0
    eval_every: int = 10
    patience: int = 0
    min_delta: float = 0.0
    grad_clip: float = 1.0
    amp: str = "auto"
    progress: bool = True


@dataclass
class LoopState:
    """Where training stands; saved in every checkpoint."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    best_val: float = math.inf
    best_step: int = -1
    bad_evals: int = 0
    elapsed_sec: float = 0.0
    stop_reason: str = ""
    rows: list[dict[str, float]] = field(default_factory=list)
    best_state: dict[str, torch.Tensor] | None = None

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("best_state")
        return d


def _unwrap(model: nn.Module) -> nn.Module:
    return getattr(model, "module", model)


def _write_log(path: Path, rows: list[dict[str, float]]) -> None:
    if not rows:
        return
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    with atomic_write(path) as f:
        f.write(buf.getvalue())


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: BatchSource,
    step_fn: Callable[[nn.Module, np.ndarray, torch.Generator], torch.Tensor],
    *,
    cfg: LoopConfig,
    device: torch.device,
    val_fn: Callable[[nn.Module], float] | None = None,
    scheduler: Any | None = None,
    generator: torch.Generator | None = None,
    checkpoint_path: str | os.PathLike[str] | None = None,
    resume: bool = False,
    log_path: str | os.PathLike[str] | None = None,
    after_step: Callable[[int], None] | None = None,
    env: DistEnv | None = None,
) -> LoopState:
    """Train ``model`` (already on ``device``) for ``cfg.max_steps`` steps; see the module docstring.

    Log rows (written to ``log_path`` at each evaluation, main process): ``step, train_loss``
    (mean since the previous row), ``val_loss`` (or the train loss when there is no ``val_fn``),
    ``lr``.

    Returns:
        the final :class:`LoopState`; ``best_state`` holds the model state dict (CPU) at the best
        validation loss (the last state when there is no ``val_fn``).
    """
    from tqdm.auto import tqdm

    env = env or DistEnv(device=device)
    generator = generator or torch.Generator().manual_seed(0)
    net = nn.parallel.DistributedDataParallel(model) if env.distributed else model
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype(device, cfg.amp) == torch.float16)
    st = LoopState()
    if resume and checkpoint_path and Path(checkpoint_path).is_file():
        ck = load_checkpoint(checkpoint_path, device)
        model.load_state_dict(ck["model"])
        optimizer.load_state_dict(ck["optimizer"])
        if scheduler is not None and ck.get("scheduler") is not None:
            scheduler.load_state_dict(ck["scheduler"])
        scaler.load_state_dict(ck["scaler"])
        st = LoopState(**ck["loop"], best_state=ck.get("best_state"))
        st.stop_reason = ""  # a finished budget or step count may be extended; patience is rechecked
        set_rng_state(ck["rng"][min(env.rank, len(ck["rng"]) - 1)], generator)
        log.info("resumed from %s at step %d", checkpoint_path, st.step)

    def checkpoint() -> None:
        states = gather_objects([rng_state(generator)], env)
        if env.is_main and checkpoint_path:
            save_state_dict({
                "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "optimizer": optimizer.state_dict(),
                "scheduler": None if scheduler is None else scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "loop": st.to_dict(),
                "best_state": st.best_state,
                "rng": states,
            }, checkpoint_path)
        if env.distributed:
            dist.barrier()

    bar = tqdm(total=cfg.max_steps, initial=st.step, desc="train", disable=not (cfg.progress and env.is_main),
               leave=False)
    t_start = time.perf_counter() - st.elapsed_sec
    losses: list[float] = []
    epoch_batches = batches.epoch_batches(st.epoch)
    if cfg.patience and st.bad_evals >= cfg.patience:
        st.stop_reason = f"early stop: no improvement in {cfg.patience} evaluations"
    while st.step < cfg.max_steps and not st.stop_reason:
        if st.batch_in_epoch >= len(epoch_batches):
            st.epoch, st.batch_in_epoch = st.epoch + 1, 0
            epoch_batches = batches.epoch_batches(st.epoch)
        rows = epoch_batches[st.batch_in_epoch]
        if env.distributed:
            rows = np.array_split(rows, env.world)[env.rank]
        net.train()
        with autocast(device, cfg.amp):
            loss = step_fn(net, rows, generator)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        if cfg.grad_clip:
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        scaler.step(optimizer)
        scaler.update()
        if scheduler is not None:
            scheduler.step()
        st.step += 1
        st.batch_in_epoch += 1
        if after_step is not None:
            after_step(st.step)
        lv = loss.detach().float()
        if env.distributed:
            dist.all_reduce(lv)
            lv /= env.world
        losses.append(float(lv))
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.4f}")
        last = st.step >= cfg.max_steps
        over = any_rank(bool(cfg.time_budget_sec) and time.perf_counter() - t_start > cfg.time_budget_sec, env)
        if st.step % cfg.eval_every == 0 or last or over:
            train_loss = float(np.mean(losses))
            losses = []
            if val_fn is not None:
                net.eval()
                with torch.no_grad(), autocast(device, cfg.amp):
                    val = float(val_fn(_unwrap(net)))
            else:
                val = train_loss
            if val < st.best_val - cfg.min_delta:
                st.best_val, st.best_step, st.bad_evals = val, st.step, 0
                st.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            else:
                st.bad_evals += 1
            if val_fn is None:  # no validation: the last state is the result
                st.best_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
            st.elapsed_sec = time.perf_counter() - t_start
            st.rows.append({"step": st.step, "train_loss": round(train_loss, 6), "val_loss": round(val, 6),
                            "lr": optimizer.param_groups[0]["lr"]})
            log.debug("step %d: train_loss %.6g, val_loss %.6g, %.1f s", st.step, train_loss, val, st.elapsed_sec)
            if cfg.patience and st.bad_evals >= cfg.patience:
                st.stop_reason = f"early stop: no improvement in {cfg.patience} evaluations"
            if over and not st.stop_reason:
                st.stop_reason = f"time budget {cfg.time_budget_sec:.0f} s spent"
            if last and not st.stop_reason:
                st.stop_reason = "max_steps reached"
            if env.is_main and log_path:
                _write_log(Path(log_path), st.rows)
            checkpoint()
    bar.close()
    st.elapsed_sec = time.perf_counter() - t_start
    return st
