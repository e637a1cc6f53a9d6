"""Training machinery shared by pretraining and fine-tuning: devices, AMP, DDP, a resumable loop.

Public API (what ``stages/pretrain.py`` uses and ``crescendai.learn.finetune`` may reuse)::

    device = resolve_device("auto")                      # cuda if visible, else cpu
    env = setup_distributed("auto")                      # torchrun → DDP (nccl on GPU, gloo on CPU)
    with autocast(device, amp="auto"): ...               # bf16/fp16 on CUDA; CPU bf16 only if amp="on"
    sched = cosine_schedule(opt, warmup_steps, total_steps)
    state = fit(model, opt, batches, step_fn, cfg=LoopConfig(max_steps=200, eval_every=10),
                device=device, val_fn=val_fn, scheduler=sched, checkpoint_path="…/last.pt",
                resume=True, log_path="plots/x.csv", env=env)
    state.best_state                                     # state dict at the best validation score

* ``batches`` is anything with ``epoch_batches(epoch) -> Sequence[np.ndarray]`` (row indices per
  global batch), deterministic in ``epoch`` — e.g. :class:`RecordingBatchSampler`. Under DDP each
  rank gets a contiguous slice of each global batch.
* ``step_fn(model, rows, generator) -> loss`` builds the batch on ``device`` and returns the scalar
  loss; it runs under :func:`autocast`. ``model`` is the DDP wrapper when distributed. ``generator``
  is the loop-owned CPU ``torch.Generator`` (augmentations), checkpointed with everything else.
* ``val_fn(model) -> float`` (lower is better) runs every ``eval_every`` steps in eval mode under
  ``no_grad``; early stopping counts evaluations without an improvement > ``min_delta``.
* ``after_step(step)`` runs after every optimiser step (e.g. BYOL's EMA).

Checkpoints (``torch.save`` to a temp file + ``os.replace``; load with ``weights_only=True``) hold the
model, optimiser, scheduler, grad scaler, loop state (step, epoch, position in the epoch, best score,
patience counter, best state, log rows) and every RNG (Python, NumPy, torch CPU/CUDA, the loop
generator; per rank under DDP). ``resume=True`` continues from ``checkpoint_path`` and gives the same
parameters as an uninterrupted run (tested). A wall-clock ``time_budget_sec`` stops early (after a
checkpoint); runs stopped by the budget are reproducible only when the budget is not hit.

Data: :class:`WindowDataset` is a torch ``Dataset`` over the preprocess cache
(``crescendai.data.window_cache.load_feature_set``), with a fast :meth:`WindowDataset.batch` for row arrays.
"""

from __future__ import annotations

import contextlib
import csv
import io
import logging
import math
import os
import random
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

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------
# devices, precision, distributed
# ------------------------------------------------------------------------------------------


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; ``cuda`` without a GPU is an error."""
    if name not in ("auto", "cpu", "cuda") and not name.startswith("cuda:"):
        raise ValueError(f"device must be auto, cpu or cuda, got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device={name} but no CUDA device is visible; use auto or cpu")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def amp_dtype(device: torch.device, amp: str = "auto") -> torch.dtype | None:
    """The autocast dtype: CUDA → bf16 (fp16 on GPUs without bf16) unless ``amp="off"``;
    CPU → bf16 only with ``amp="on"`` (fast on CPUs with AVX512-BF16/AMX, slow elsewhere)."""
    if amp == "off":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "on" else None


def autocast(device: torch.device, amp: str = "auto") -> contextlib.AbstractContextManager:
    """Mixed-precision context for ``device`` (see :func:`amp_dtype`); a no-op when disabled."""
    dt = amp_dtype(device, amp)
    if dt is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dt)


@dataclass(frozen=True)
class DistEnv:
    """Process placement: ``rank`` of ``world`` processes, on ``device``."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def setup_distributed(device: str = "auto") -> DistEnv:
    """Single process, or DDP when launched by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment).

    Backend: nccl when the device is CUDA (one GPU per ``LOCAL_RANK``), gloo on CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = resolve_device(device)
    if world <= 1:
        return DistEnv(0, 1, dev)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return DistEnv(rank, world, dev)


def cleanup_distributed() -> None:
    """Leave the process group; a barrier first, so no rank tears it down while another is still in a
    collective (gloo aborts the process: "terminate called without an active exception")."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


# ------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------


def pad_mask_from_fraction(pad_fraction: np.ndarray, n_frames: int = 128) -> np.ndarray:
    """(B,) share of padded frames → (B, n_frames) bool, True on the trailing padded frames."""
    valid = np.round(n_frames * (1.0 - np.asarray(pad_fraction, np.float64))).astype(int)
    return np.arange(n_frames)[None, :] >= valid[:, None]


class WindowDataset(torch.utils.data.Dataset):
    """Windows of one preprocess set (``data/features/<set>``), optionally restricted to ``rows``.

    ``ds[i]`` → ``{"x": float32 (128, 128), "pad_mask": bool (128,), "group": int64}`` where ``group``
    numbers the recording (``item``) of the window. :meth:`batch` does the same for many rows at
    once (sorted memmap reads).
    """

    def __init__(self, path: str | os.PathLike[str], rows: np.ndarray | None = None) -> None:
        from crescendai.data.window_cache import load_feature_set

        self.fs = load_feature_set(path)
        self.rows = np.arange(len(self.fs)) if rows is None else np.asarray(rows, np.int64)
        items = self.fs.index["item"].astype(str).to_numpy()
        self.group_all = np.unique(items, return_inverse=True)[1].astype(np.int64)  # (N_set,)
        self.pad_all = self.fs.index["pad_fraction"].to_numpy(np.float64)

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def groups(self) -> np.ndarray:
        """(len,) recording id of each dataset position."""
        return self.group_all[self.rows]

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        b = self.batch(np.array([i]))
        return {k: v[0] for k, v in b.items()}

    def batch(self, positions: np.ndarray, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
        """Dataset positions (B,) → ``x`` (B, 128, 128) float32, ``pad_mask`` (B, 128), ``group`` (B,)."""
        r = self.rows[np.asarray(positions, np.int64)]
        return {
            "x": torch.from_numpy(self.fs.batch(r)).to(device),
            "pad_mask": torch.from_numpy(pad_mask_from_fraction(self.pad_all[r])).to(device),
            "group": torch.from_numpy(self.group_all[r]).to(device),
        }


class RecordingBatchSampler(torch.utils.data.Sampler):
    """Batches with ``crops`` windows from each of ``batch_size // crops`` *distinct* recordings.

    A recording never appears more than ``crops`` times in a batch, and its crops sit next to each
    other (``[r0c0, r0c1, r1c0, r1c1, …]``), so the other items of a batch are always other
    recordings — the guard against false negatives in contrastive losses. Recordings are drawn
    without replacement within a batch, with probability ∝ their window count; crops of one
    recording are distinct windows when it has enough. An epoch has ``len(groups) // batch_size``
    batches (at least 1). Fully determined by ``(seed, epoch)``.

    Args:
        groups: (N,) recording id of each dataset position.
        batch_size: windows per batch (a multiple of ``crops``).
        crops: windows per recording per batch (2 = two crops as positives; 1 = one per recording).
    """

    def __init__(self, groups: np.ndarray, batch_size: int, crops: int = 2, seed: int = 0) -> None:
        if crops < 1 or batch_size % crops:
            raise ValueError(f"batch_size ({batch_size}) must be a positive multiple of crops ({crops})")
        self.groups = np.asarray(groups)
        self.ids, inv = np.unique(self.groups, return_inverse=True)
        self.members = [np.flatnonzero(inv == k) for k in range(len(self.ids))]
        sizes = np.array([len(m) for m in self.members], np.float64)
        self.p = sizes / sizes.sum()
        self.batch_size, self.crops, self.seed = batch_size, crops, seed
        self.n_rec = min(batch_size // crops, len(self.ids))
        self.epoch = 0

    def __len__(self) -> int:
        return max(1, len(self.groups) // self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        out = []
        for _ in range(len(self)):
            recs = rng.choice(len(self.ids), size=self.n_rec, replace=False, p=self.p)
            rows = []
            for k in recs:
                m = self.members[k]
                rows.append(rng.choice(m, size=self.crops, replace=len(m) < self.crops))
            out.append(np.concatenate(rows))
        return out

    def __iter__(self):
        yield from (b.tolist() for b in self.epoch_batches(self.epoch))


def split_groups(groups: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Positions of (train, val) with whole recordings held out: when ``val_fraction`` > 0, at least
    2 val recordings (contrastive validation needs negatives) if there are ≥ 4 recordings, else 1."""
    ids = np.unique(groups)
    n_val = 0 if val_fraction <= 0 else max(2 if len(ids) >= 4 else 1, round(val_fraction * len(ids)))
    n_val = min(n_val, len(ids) - 1)
    val_ids = np.random.default_rng(seed).permutation(ids)[:n_val]
    is_val = np.isin(groups, val_ids)
    return np.flatnonzero(~is_val), np.flatnonzero(is_val)


# ------------------------------------------------------------------------------------------
# schedule, checkpoints, RNG
# ------------------------------------------------------------------------------------------


def cosine_schedule(optimizer: torch.optim.Optimizer, warmup_steps: int, total_steps: int
                    ) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up over ``warmup_steps`` then cosine decay to 0 at ``total_steps``."""

    def f(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        frac = (step - warmup_steps) / max(1, total_steps - warmup_steps)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, frac)))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, f)


def rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Every RNG as tensors/ints (loadable with ``weights_only=True``)."""
    np_state = np.random.get_state()  # noqa: NPY002 - the global RNG is what we must restore
    st: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        st["generator"] = generator.get_state()
    return st


def set_rng_state(st: dict[str, Any], generator: torch.Generator | None = None) -> None:
    """Inverse of :func:`rng_state`."""
    v, internal, gauss = st["python"]
    random.setstate((v, tuple(internal), gauss))
    n = st["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))  # noqa: NPY002
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])
    if generator is not None and "generator" in st:
        generator.set_state(st["generator"])


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Atomic ``torch.save`` (temp file in the same folder, then ``os.replace``)."""
    with atomic_write(path, "wb") as f:
        torch.save(state, f)


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (``weights_only=True``)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no checkpoint to resume from; run without --resume first")
    return torch.load(p, map_location=map_location, weights_only=True)


def fingerprint(*parts: Any) -> str:
    """sha1 of ``parts`` as canonical JSON (params dicts, file digests): what a run depends on."""
    import hashlib
    import json

    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def prepare_run_dir(run_dir: str | os.PathLike[str], run_fingerprint: str) -> bool:
    """Make ``run_dir`` hold checkpoints of exactly this run; return True when they can be resumed.

    The checkpoints live outside DVC's outputs (DVC deletes a stage's outputs before it reruns it),
    beside a ``FINGERPRINT`` file. When a stage is interrupted and ``dvc repro`` runs it again with
    the same params and data, the fingerprints agree and training continues from the last
    checkpoint, reaching the same result as an uninterrupted run. Any change clears the folder.
    """
    import shutil

    d = Path(run_dir)
    marker = d / "FINGERPRINT"
    if marker.is_file() and marker.read_text().strip() == run_fingerprint:
        resumable = any(d.glob("*.pt"))
        if resumable:
            log.info("resuming interrupted run from %s", d)
        return resumable
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    marker.write_text(run_fingerprint + "\n")
    return False


def prepare_shared_run_dir(run_dir: str | os.PathLike[str], run_fingerprint: str, env: DistEnv,
                           force_resume: bool = False) -> bool:
    """:func:`prepare_run_dir` for a group of ranks sharing ``run_dir``: rank 0 prepares it, every rank
    waits for that and returns rank 0's answer (or True with ``force_resume``)."""
    resume = prepare_run_dir(run_dir, run_fingerprint) if env.is_main else False
    if env.distributed:
        box = [resume]
        dist.broadcast_object_list(box, src=0)
        resume = bool(box[0])
    return resume or force_resume


def finish_run_dir(run_dir: str | os.PathLike[str]) -> None:
    """Remove a run's checkpoints once the stage has written its outputs: a later rerun of the stage
    (DVC reruns it when any dependency changes) must start fresh, not "resume" a finished run."""
    import shutil

    shutil.rmtree(run_dir, ignore_errors=True)


# ------------------------------------------------------------------------------------------
# the loop
# ------------------------------------------------------------------------------------------


class BatchSource(Protocol):
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
        amp: "auto" | "on" | "off" (see :func:`amp_dtype`).
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
    ``lr``, ``seconds``.

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
        states = [rng_state(generator)]
        if env.distributed:
            gathered: list[Any] = [None] * env.world
            dist.all_gather_object(gathered, states[0])
            states = gathered
        if env.is_main and checkpoint_path:
            save_checkpoint(checkpoint_path, {
                "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
                "optimizer": optimizer.state_dict(),
                "scheduler": None if scheduler is None else scheduler.state_dict(),
                "scaler": scaler.state_dict(),
                "loop": st.to_dict(),
                "best_state": st.best_state,
                "rng": states,
            })
        if env.distributed:
            dist.barrier()

    def stop_now(flag: bool) -> bool:
        if not env.distributed:
            return flag
        t = torch.tensor([float(flag)], device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

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
        over = stop_now(bool(cfg.time_budget_sec) and time.perf_counter() - t_start > cfg.time_budget_sec)
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
                            "lr": optimizer.param_groups[0]["lr"], "seconds": round(st.elapsed_sec, 2)})
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
