"""The one supervised recipe, shared by ``finetune_ssl`` and ``finetune_scratch``.

Data: the labelled feature set (``data/features/labelled``: ``windows.npy`` [W, 128, 128] dB and
``index.csv``, see docs/PIPELINE.md). A *segment* is one labelled item; its windows inherit the
segment's 19 labels (broadcast). Batches are built from whole segments (at most
``max_windows_per_segment`` consecutive windows each), so consecutive windows sit together for the
smoothness term and for within-segment proxy consistency.

Loss per batch (weights in ``params.finetune``)::

    L =  base(scores, y)                 MSE or MAE of the window scores vs the broadcast labels
       + corr_weight   · (1 − r̄)        differentiable Pearson surrogate over the batch, per dim
       + corn_weight   · CORN(y)         ordinal head on the 7 rating levels (0 = no head)
       + timbre_weight · CE(piano)       multi-task timbre head (0 = no head, or < 2 classes)
       + local_weight  · base(local, y)  local window head from broadcast labels, plus
         smooth_weight · mean ‖local_t − local_{t+1}‖²   (consecutive windows of a segment, and
                                                        time rows inside a window)
         proxy_weight  · (1 − sign·r(local_d, proxy))/2  within-segment consistency with proxies

Segment prediction = robust pooling (``median`` / ``trimmed_mean`` / ``mean``) of the window scores.

``mode: probe`` (the CPU default, :func:`run_probe_head`) trains nothing: the frozen backbone embeds
every labelled window once (eval mode, ``model.pooling``), each segment is the *mean* of its window
embeddings, and a ``StandardScaler → RidgeCV`` head (``crescendai.core.ridge``, the ridge peers' head)
is fitted on the same folds (alpha by leave-one-out on the training segments of each fold only).
The mean is the pooling because a linear head commutes with it: the head applied to each window and
averaged is exactly the segment prediction, so the shipped model scores windows with one ``Linear``
(scaler folded in) and the tutor's timeline is the same head. :func:`fit_probe_head` fits that head on
any per-window inputs (the fusion variant, ``crescendai.evaluate.fusion``, on the embedding ⊕ the
hand-crafted window features). The segment embeddings are written beside the model (``embeddings.npz``).
``mode: full`` is the end-to-end recipe below (for GPUs).

Cross-validation (performer-level folds from the manifest; fixed test set never trained on):
for each fold ``k`` (the one scored), the *selection* fold is the next one (``k+1 mod K``); the model
trains on the other ``K−2`` folds, early-stops / selects its epoch on the selection fold only, and
predicts fold ``k`` (out-of-fold). With ``selection: none`` it trains on all ``K−1`` other folds for a
fixed number of epochs. The *final* model (the one shipped to the tutor and scored on the test set)
trains on every non-test fold for the median of the selected epoch counts. Every run goes through
``crescendai.learn.loop.fit`` (warm-up + cosine schedule, AMP on CUDA, atomic resumable checkpoints). ``time_budget_sec`` caps
the whole stage (split evenly over the K+1 runs) so the CPU default fits the 15-minute pipeline.
Under ``torchrun`` the CV rounds run fold-parallel, one per rank (:func:`cross_validate`), and rank 0
trains the final model.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from crescendai.core import columns
from crescendai.core.config import FinetuneParams, ModelParams, Params, seed_everything
from crescendai.core.dims import N_DIMS
from crescendai.core.files import sha1_file
from crescendai.core.pooling import pool
from crescendai.core.stats import median_r
from crescendai.learn.batches import pad_mask_from_fraction
from crescendai.learn.checkpoints import prepare_shared_run_dir, run_hash
from crescendai.learn.distributed import (
    DistEnv,
    autocast,
    cleanup_distributed,
    gather_objects,
    resolve_device,
)
from crescendai.learn.loop import LoopConfig, cosine_schedule, fit

log = logging.getLogger(__name__)


# ------------------------------------------------------------------------------------------
# data
# ------------------------------------------------------------------------------------------


@dataclass
class LabelledSet:
    """The labelled windows and one row per segment.

    Attributes:
        windows: float16/32 [W, 128, 128] dB (may be a memmap or a torch tensor on the device).
        pad_fraction: float [W].
        index: the window table (``index.csv``), row ``w`` ↔ ``windows[w]``.
        segments: one row per segment: ``item, performer_id, piece_id, passage_id, split, fold, timbre_class`` and
            ``y_*``; ``rows[s]`` lists its window rows in time order.
    """

    windows: np.ndarray | torch.Tensor
    pad_fraction: np.ndarray
    index: pd.DataFrame
    segments: pd.DataFrame
    rows: list[np.ndarray] = field(default_factory=list)

    @property
    def y(self) -> np.ndarray:
        return self.segments[list(columns.LABELS)].to_numpy(np.float32)

    @property
    def is_test(self) -> np.ndarray:
        return (self.segments["split"] == "test").to_numpy()

    @property
    def folds(self) -> np.ndarray:
        return self.segments["fold"].fillna(-1).astype(int).to_numpy()

    @property
    def n_timbre_classes(self) -> int:
        t = self.segments["timbre_class"].to_numpy()
        return int(t.max()) + 1 if (t >= 0).any() else 0


def load_labelled(root: str | Path) -> LabelledSet:
    """Open a feature set (``crescendai.data.window_cache.load_feature_set``: memory-mapped windows and
    ``index.csv``) and keep the labelled windows of the supervised splits (``train`` folds, ``test``)."""
    from crescendai.data.window_cache import load_feature_set

    fs = load_feature_set(root)
    index = fs.index.copy()
    index["row"] = np.arange(len(index))
    keep = index["split"].isin(["train", "val", "test"]) & index[list(columns.LABELS)].notna().all(axis=1)
    if not keep.any():
        raise ValueError(f"{root}: no labelled train/test windows (check data.supervised and the manifest)")
    return build_set(fs.windows, index[keep].reset_index(drop=True))


def build_set(windows: np.ndarray | torch.Tensor, index: pd.DataFrame) -> LabelledSet:
    """Group window rows (``index['row']`` points into ``windows``) into segments."""
    if "row" not in index:
        index = index.assign(row=np.arange(len(index)))
    for c in ("timbre_class", "pad_fraction", "start_sec"):
        if c not in index:
            index[c] = -1 if c == "timbre_class" else 0.0
    sort_key = "start_sec" if "start_sec" in index else "window"
    index = index.sort_values(["item", sort_key], kind="stable").reset_index(drop=True)
    first = index.groupby("item", sort=False).head(1)
    segments = first[["item", "performer_id", "piece_id", "passage_id", "split", "fold", "timbre_class", *columns.LABELS]]
    segments = segments.reset_index(drop=True)
    pos = {it: i for i, it in enumerate(segments["item"])}
    seg_of = index["item"].map(pos).to_numpy()
    rows = [np.flatnonzero(seg_of == s) for s in range(len(segments))]  # positions into index
    return LabelledSet(windows, index["pad_fraction"].to_numpy(np.float32), index, segments, rows)


# ------------------------------------------------------------------------------------------
# pooling and CV plan (pure)
# ------------------------------------------------------------------------------------------


def pool_segments(window_preds: np.ndarray, rows: Sequence[np.ndarray], method: str, trim: float) -> np.ndarray:
    """Window predictions [W, D] + each segment's window positions → segment predictions [S, D]."""
    return np.stack([pool(window_preds[r], method, trim) for r in rows])


@dataclass(frozen=True)
class CVRound:
    """One CV round: score ``fold`` (out-of-fold), early-stop on ``select`` (None = fixed epochs),
    train on ``train``."""

    fold: int
    select: int | None
    train: tuple[int, ...]


def cv_plan(folds: Sequence[int], selection: str = "fold") -> list[CVRound]:
    """The CV rounds over the distinct non-negative fold ids (test rows carry -1).

    ``selection="fold"``: selection fold = the next fold (cyclic), never the scored one; needs K ≥ 3.
    ``selection="none"``: no selection fold; train on all other folds.
    """
    ks = sorted({int(f) for f in folds if int(f) >= 0})
    if len(ks) < 2:
        raise ValueError(f"need at least 2 folds for cross-validation, got {ks}; raise split.n_folds")
    if selection == "fold" and len(ks) < 3:
        raise ValueError("finetune.selection=fold needs split.n_folds >= 3 (score, select, train)")
    out = []
    for i, k in enumerate(ks):
        sel = ks[(i + 1) % len(ks)] if selection == "fold" else None
        out.append(CVRound(k, sel, tuple(f for f in ks if f not in (k, sel))))
    return out


# ------------------------------------------------------------------------------------------
# losses
# ------------------------------------------------------------------------------------------


def _segment_centre(x: torch.Tensor, seg: torch.Tensor) -> torch.Tensor:
    """x (B, k) minus the mean of its segment (seg (B,) ids): within-segment deviations."""
    _, inv = torch.unique(seg, return_inverse=True)
    n = torch.zeros(int(inv.max()) + 1, device=x.device, dtype=x.dtype).index_add_(
        0, inv, torch.ones_like(inv, dtype=x.dtype))
    m = torch.zeros(n.shape[0], x.shape[1], device=x.device, dtype=x.dtype).index_add_(0, inv, x)
    return x - (m / n[:, None])[inv]


def _runs(x: torch.Tensor, seg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Packed consecutive runs x (B, D) with run ids seg (B,) → padded (S, T, D) and mask (S, T)."""
    change = torch.ones_like(seg, dtype=torch.bool)
    change[1:] = seg[1:] != seg[:-1]
    run = torch.cumsum(change.long(), 0) - 1  # (B,)
    starts = torch.nonzero(change).flatten()
    pos = torch.arange(len(seg), device=x.device) - starts[run]
    S, T = int(run.max()) + 1, int(pos.max()) + 1
    out = x.new_zeros(S, T, x.shape[1])
    mask = torch.zeros(S, T, dtype=torch.bool, device=x.device)
    out[run, pos] = x
    mask[run, pos] = True
    return out, mask


def supervised_loss(out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor], cfg: FinetuneParams
                    ) -> tuple[torch.Tensor, dict[str, float]]:
    """The total loss of one batch (see the module docstring) and its parts as floats.

    The terms are ``crescendai.learn.objectives``' supervised losses; this function only wires them to the
    batch: smoothness runs over each segment's consecutive windows (and over the local head's time
    rows inside a window); proxy consistency compares *within-segment* deviations, so differences
    between pieces do not drive it.
    """
    from crescendai.learn import objectives as obj

    y = batch["y"]
    mse, mae = (1.0, 0.0) if cfg.loss == "mse" else (0.0, 1.0)
    parts: dict[str, torch.Tensor] = {
        "base": obj.regression_loss(out["scores"], y, mse=mse, mae=mae, corr=cfg.corr_weight)
    }
    if cfg.corn_weight > 0 and "corn_logits" in out:
        parts["corn"] = cfg.corn_weight * obj.corn_loss(out["corn_logits"], obj.labels_to_levels(y))
    if cfg.timbre_weight > 0 and "timbre_logits" in out:
        t = batch["timbre"]
        if bool((t >= 0).any()):
            parts["timbre"] = cfg.timbre_weight * F.cross_entropy(out["timbre_logits"][t >= 0].float(), t[t >= 0])
    if cfg.local_weight > 0 and "local" in out:
        loc = out["local"].float()
        parts["local"] = cfg.local_weight * obj.regression_loss(loc, y, mse=mse, mae=mae)
        if cfg.smooth_weight > 0:
            seq, m = _runs(loc, batch["run"])
            sm = obj.smoothness_loss(seq, m)
            if "local_rows" in out:
                sm = sm + obj.smoothness_loss(out["local_rows"].float())
            parts["smooth"] = cfg.smooth_weight * sm
        if cfg.proxy_weight > 0:
            prox = batch["proxies"]
            ok = torch.isfinite(prox).all(1)
            if int(ok.sum()) > 2:
                seg = batch["seg"][ok]
                parts["proxy"] = cfg.proxy_weight * obj.proxy_consistency_loss(
                    _segment_centre(loc[ok], seg), _segment_centre(prox[ok].float(), seg))
    total = torch.stack([v.float() for v in parts.values()]).sum()
    return total, {k: float(v.detach()) for k, v in parts.items()}


# ------------------------------------------------------------------------------------------
# batching, prediction
# ------------------------------------------------------------------------------------------


def _window_tensor(data: LabelledSet, pos: np.ndarray, device: torch.device) -> torch.Tensor:
    rows = data.index["row"].to_numpy()[pos]
    if isinstance(data.windows, torch.Tensor):
        return data.windows[torch.as_tensor(rows, device=data.windows.device)].to(device, torch.float32)
    order = np.argsort(rows)  # memmap reads in file order
    x = np.empty((len(rows), *data.windows.shape[1:]), dtype=np.float32)
    x[order] = data.windows[rows[order]]
    return torch.from_numpy(x).to(device)


def _pad_mask(pad_fraction: np.ndarray, device: torch.device) -> torch.Tensor | None:
    """Frame pad mask on ``device``, None when nothing is padded."""
    if not (pad_fraction > 0).any():
        return None
    return torch.from_numpy(pad_mask_from_fraction(pad_fraction)).to(device)


def iterate_batches(data: LabelledSet, segs: np.ndarray, cfg: FinetuneParams, rng: np.random.Generator
                    ) -> list[np.ndarray]:
    """Shuffle segments; take a random run of ≤ ``max_windows_per_segment`` consecutive windows from
    each; pack whole runs into batches of ≤ ``batch_size`` windows. Returns index positions per batch."""
    runs = []
    for s in rng.permutation(segs):
        r = data.rows[s]
        m = min(len(r), cfg.max_windows_per_segment)
        start = int(rng.integers(0, len(r) - m + 1))
        runs.append(r[start : start + m])
    batches, cur = [], []
    n = 0
    for r in runs:
        if n + len(r) > cfg.batch_size and cur:
            batches.append(np.concatenate(cur))
            cur, n = [], 0
        cur.append(r)
        n += len(r)
    if cur:
        batches.append(np.concatenate(cur))
    return batches


def make_batch(data: LabelledSet, pos: np.ndarray, device: torch.device) -> dict[str, torch.Tensor]:
    """Tensors for the windows at index positions ``pos`` (consecutive runs of segments)."""
    idx = data.index.iloc[pos]
    seg = idx["item"].astype("category").cat.codes.to_numpy()
    prox = (idx[list(columns.PROXIES)].to_numpy(np.float32, copy=True) if set(columns.PROXIES) <= set(idx.columns)
            else np.full((len(pos), len(columns.PROXIES)), np.nan, np.float32))
    return {
        "x": _window_tensor(data, pos, device),
        "pad_mask": _pad_mask(data.pad_fraction[pos], device),
        "y": torch.from_numpy(idx[list(columns.LABELS)].to_numpy(np.float32, copy=True)).to(device),
        "timbre": torch.from_numpy(idx["timbre_class"].fillna(-1).to_numpy(np.int64, copy=True)).to(device),
        "proxies": torch.from_numpy(prox).to(device),
        "seg": torch.from_numpy(seg.astype(np.int64)).to(device),
        "run": torch.from_numpy(seg.astype(np.int64)).to(device),  # runs are contiguous per segment
    }


@torch.no_grad()
def predict_windows(model: torch.nn.Module, data: LabelledSet, pos: np.ndarray, device: torch.device,
                    batch_size: int = 256, amp: bool = True) -> dict[str, np.ndarray]:
    """Eval-mode window scores at index positions ``pos``: ``scores`` [n, 19] and ``local`` [n, 19]
    (``local`` = ``scores`` when the model has no local head)."""
    model.eval()
    scores, local = [], []
    for s in range(0, len(pos), batch_size):
        p = pos[s : s + batch_size]
        with _autocast(device, amp):
            out = model(_window_tensor(data, p, device), _pad_mask(data.pad_fraction[p], device))
        scores.append(out["scores"].float().cpu().numpy())
        local.append(out.get("local", out["scores"]).float().cpu().numpy())
    empty = np.zeros((0, N_DIMS), np.float32)
    return {"scores": np.concatenate(scores) if scores else empty, "local": np.concatenate(local) if local else empty}


def _autocast(device: torch.device, amp: bool):
    return autocast(device, "auto" if amp else "off")


def predict_segments(model: torch.nn.Module, data: LabelledSet, segs: np.ndarray, cfg: FinetuneParams,
                     device: torch.device) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """(segment predictions [S, 19], window outputs over the segments' windows, window positions)."""
    pos = np.concatenate([data.rows[s] for s in segs])
    w = predict_windows(model, data, pos, device, amp=cfg.amp)
    offs = np.cumsum([0] + [len(data.rows[s]) for s in segs])
    rows = [np.arange(offs[i], offs[i + 1]) for i in range(len(segs))]
    return pool_segments(w["scores"], rows, cfg.pooling, cfg.trim), w, pos


def selection_score(y: np.ndarray, pred: np.ndarray, metric: str) -> float:
    """Higher is better: median Pearson r over dims, or −MSE."""
    if metric == "mse":
        return -float(((y - pred) ** 2).mean())
    r = median_r(y, pred)
    return r if math.isfinite(r) else -1.0


# ------------------------------------------------------------------------------------------
# training
# ------------------------------------------------------------------------------------------


@dataclass
class RunResult:
    """One training run: the model (best selected state loaded), its selected epoch, the history
    rows ``run, epoch, train_loss, select_score, lr``."""

    model: torch.nn.Module
    best_epoch: int
    history: list[dict[str, object]]


class _SegmentBatches:
    """``epoch_batches(epoch)`` for ``crescendai.learn.loop.fit``: :func:`iterate_batches` with an RNG
    seeded by (seed, epoch), so every epoch's batches are reproducible (and resumable)."""

    def __init__(self, data: LabelledSet, segs: np.ndarray, cfg: FinetuneParams, seed: int) -> None:
        self.data, self.segs, self.cfg, self.seed = data, segs, cfg, seed

    def epoch_batches(self, epoch: int) -> list[np.ndarray]:
        return iterate_batches(self.data, self.segs, self.cfg, np.random.default_rng([self.seed, epoch]))


def train_run(
    make_model: Callable[[], torch.nn.Module],
    data: LabelledSet,
    train_segs: np.ndarray,
    select_segs: np.ndarray | None,
    cfg: FinetuneParams,
    device: torch.device,
    *,
    epochs: int,
    seed: int,
    name: str = "run",
    budget_sec: float = 0.0,
    checkpoint_path: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> RunResult:
    """Train one model on ``train_segs`` with ``crescendai.learn.loop.fit`` (AdamW, warm-up + cosine,
    gradient clipping, AMP on CUDA, atomic resumable checkpoints at ``checkpoint_path``).

    With ``select_segs``, the selection score (:func:`selection_score` of the pooled segment
    predictions) is evaluated once per epoch; the best state is kept and training stops after
    ``patience`` epochs without improvement. ``budget_sec`` (> 0) caps the wall-clock time.
    """
    torch.manual_seed(seed)
    model = make_model().to(device)
    if hasattr(model, "init_output_prior"):  # start at the training-label mean, not at 0.57 ± noise
        model.init_output_prior(torch.as_tensor(np.nanmean(data.y[train_segs], axis=0), device=device))
    bb = [p for n, p in model.named_parameters() if n.startswith("backbone.")]
    hd = [p for n, p in model.named_parameters() if not n.startswith("backbone.")]
    opt = torch.optim.AdamW(
        [{"params": bb, "lr": cfg.lr * cfg.backbone_lr_mult}, {"params": hd, "lr": cfg.lr}],
        weight_decay=cfg.weight_decay,
    )
    batches = _SegmentBatches(data, train_segs, cfg, seed)
    per_epoch = max(1, len(batches.epoch_batches(0)))
    total = max(1, epochs * per_epoch)
    sched = cosine_schedule(opt, min(total, cfg.warmup_epochs * per_epoch), total)

    def step_fn(net: torch.nn.Module, rows: np.ndarray, _gen: torch.Generator) -> torch.Tensor:
        batch = make_batch(data, rows, device)
        loss, _ = supervised_loss(net(batch["x"], batch["pad_mask"]), batch, cfg)
        return loss

    val_fn = None
    if select_segs is not None and len(select_segs):
        def val_fn(net: torch.nn.Module) -> float:  # lower is better for the loop
            pred, _, _ = predict_segments(net, data, select_segs, cfg, device)
            return -selection_score(data.y[select_segs], pred, cfg.select_metric)

    loop = LoopConfig(max_steps=total, time_budget_sec=budget_sec, eval_every=per_epoch,
                      patience=cfg.patience if val_fn is not None else 0, amp="auto" if cfg.amp else "off",
                      progress=progress)
    st = fit(model, opt, batches, step_fn, cfg=loop, device=device, val_fn=val_fn, scheduler=sched,
             checkpoint_path=checkpoint_path, resume=resume)
    if st.best_state is not None:
        model.load_state_dict(st.best_state)
    model.eval()
    best_step = st.best_step if val_fn is not None else st.step
    best_epoch = max(1, math.ceil(best_step / per_epoch))
    history = [{"run": name, "epoch": r["step"] / per_epoch, "train_loss": r["train_loss"],
                "select_score": -r["val_loss"] if val_fn is not None else None, "lr": r["lr"]}
               for r in st.rows]
    log.info("%s: %s after %d steps (%.0f s); selected epoch %d", name, st.stop_reason, st.step,
             st.elapsed_sec, best_epoch)
    return RunResult(model, int(best_epoch), history)


@dataclass
class FinetuneResult:
    """Everything the stage writes: the final model, the predictions table and the history."""

    model: torch.nn.Module
    predictions: pd.DataFrame
    history: pd.DataFrame
    summary: dict[str, object]
    embeddings: tuple[np.ndarray, np.ndarray] | None = None
    """``mode: probe``: segment embeddings float32 [S, C] and their items [S]; None otherwise."""


def _pred_frame(data: LabelledSet, segs: np.ndarray, seg_pred: np.ndarray, w: dict[str, np.ndarray],
                pos: np.ndarray, set_name: str, fold: int) -> pd.DataFrame:
    seg = data.segments.iloc[segs]
    base = seg[["item", "performer_id", "piece_id", "passage_id"]].reset_index(drop=True)
    s = pd.concat([base.assign(level="segment", set=set_name, fold=fold, window=-1, start_sec=np.nan),
                   pd.DataFrame(data.y[segs], columns=list(columns.LABELS)),
                   pd.DataFrame(seg_pred, columns=list(columns.PREDICTIONS)),
                   pd.DataFrame(np.full_like(seg_pred, np.nan), columns=list(columns.LOCAL_PREDICTIONS))], axis=1)
    idx = data.index.iloc[pos].reset_index(drop=True)
    lab = idx[list(columns.LOCAL_LABELS)] if set(columns.LOCAL_LABELS) <= set(idx.columns) else None
    wf = pd.concat([idx[["item", "performer_id", "piece_id", "passage_id"]].assign(
                        level="window", set=set_name, fold=fold,
                        window=idx.get("window", -1), start_sec=idx["start_sec"]),
                    idx[list(columns.LABELS)],
                    pd.DataFrame(w["scores"], columns=list(columns.PREDICTIONS)),
                    pd.DataFrame(w["local"], columns=list(columns.LOCAL_PREDICTIONS))], axis=1)
    if lab is not None:
        wf = pd.concat([wf, lab.reset_index(drop=True)], axis=1)
    return pd.concat([s, wf], ignore_index=True)


def _run_budget(cfg: FinetuneParams, n_rounds: int) -> float:
    """Seconds for each of the ``n_rounds`` CV runs and the final run (0 = no cap)."""
    return cfg.time_budget_sec / (n_rounds + 1) if cfg.time_budget_sec > 0 else 0.0


def _ckpt(folder: str | Path | None, name: str) -> Path | None:
    return None if folder is None else Path(folder) / f"{name}.pt"


@dataclass
class CVResult:
    """Cross-validation in plan order: the fold scored by each round, its selected epoch, the
    out-of-fold predictions frame of that fold and the history rows of its run."""

    folds: list[int]
    best_epochs: list[int]
    frames: list[pd.DataFrame]
    history: list[dict[str, object]]


def cross_validate(
    make_model: Callable[[], torch.nn.Module],
    data: LabelledSet,
    cfg: FinetuneParams,
    seed: int,
    env: DistEnv | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
) -> CVResult:
    """The CV rounds of :func:`cv_plan` on the non-test folds (out-of-fold predictions of every
    non-test segment).

    ``env`` places the work (default: one process on ``cfg.device``). Under ``torchrun``
    (``env.world`` > 1) the rounds are spread over the ranks (round ``i`` on rank
    ``i mod world``, each on its own device) and gathered, so every rank returns the whole result.
    Each round is seeded by its index, not by where it runs: the result is the single-process one.
    Fold-parallel rather than DDP because the labelled sets are small (a few hundred to a few
    thousand segments): K independent runs keep K devices busy without all-reducing tiny batches.
    """
    t0 = time.perf_counter()
    env = env or DistEnv(0, 1, resolve_device(cfg.device))
    folds, is_test = data.folds, data.is_test
    plan = cv_plan(folds[~is_test], cfg.selection)
    budget = _run_budget(cfg, len(plan))
    mine: list[tuple[int, int, list[dict[str, object]], pd.DataFrame]] = []
    for i, rnd in enumerate(plan):
        if i % env.world != env.rank:
            continue
        tr = np.flatnonzero(~is_test & np.isin(folds, rnd.train))
        sel = None if rnd.select is None else np.flatnonzero(~is_test & (folds == rnd.select))
        res = train_run(make_model, data, tr, sel, cfg, env.device, epochs=cfg.epochs, seed=seed + 1000 * (i + 1),
                        name=f"fold{rnd.fold}", budget_sec=budget, resume=resume, progress=env.is_main,
                        checkpoint_path=_ckpt(checkpoint_dir, f"fold{rnd.fold}"))
        va = np.flatnonzero(~is_test & (folds == rnd.fold))
        pred, w, pos = predict_segments(res.model, data, va, cfg, env.device)
        mine.append((i, res.best_epoch, res.history, _pred_frame(data, va, pred, w, pos, "oof", rnd.fold)))
        log.info("fold %d: trained on %s, selected epoch %d on fold %s", rnd.fold, rnd.train, res.best_epoch, rnd.select)
    rounds = sorted(gather_objects(mine, env), key=lambda r: r[0])
    log.info("cross-validation took %.1f s", time.perf_counter() - t0)
    return CVResult([plan[r[0]].fold for r in rounds], [r[1] for r in rounds], [r[3] for r in rounds],
                    [row for r in rounds for row in r[2]])


def run_finetune(
    make_model: Callable[[], torch.nn.Module],
    data: LabelledSet,
    cfg: FinetuneParams,
    seed: int,
    device: torch.device | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    cv: CVResult | None = None,
) -> FinetuneResult:
    """Performer-level CV (out-of-fold predictions on every non-test segment; :func:`cross_validate`,
    or ``cv`` when it already ran, e.g. fold-parallel), then the final model on all non-test folds for
    the median selected epoch count, scored on the fixed test set. See the module docstring."""
    device = device or resolve_device(cfg.device)
    cv = cv or cross_validate(make_model, data, cfg, seed, DistEnv(0, 1, device), checkpoint_dir, resume)
    t0 = time.perf_counter()
    is_test = data.is_test
    budget = _run_budget(cfg, len(cv.folds))
    final_epochs = max(1, int(np.median(cv.best_epochs)))
    dev = np.flatnonzero(~is_test)
    res = train_run(make_model, data, dev, None, cfg, device, epochs=final_epochs, seed=seed,
                    name="final", budget_sec=budget, resume=resume,
                    checkpoint_path=_ckpt(checkpoint_dir, "final"))
    frames = list(cv.frames)
    test = np.flatnonzero(is_test)
    if len(test):
        pred, w, pos = predict_segments(res.model, data, test, cfg, device)
        frames.append(_pred_frame(data, test, pred, w, pos, "test", -1))
    summary = {"folds": cv.folds, "selected_epochs": cv.best_epochs, "final_epochs": final_epochs,
               "n_train_segments": int(len(dev)), "n_test_segments": int(len(test)),
               "device": str(device)}
    log.info("final model and test predictions took %.1f s", time.perf_counter() - t0)
    return FinetuneResult(res.model, pd.concat(frames, ignore_index=True),
                          pd.DataFrame(cv.history + res.history), summary)


def model_factory(model_params: ModelParams, cfg: FinetuneParams, n_timbre_classes: int,
                  init: str = "scratch", pretrain_dir: str | Path | None = None
                  ) -> Callable[[], torch.nn.Module]:
    """A function building a fresh :class:`crescendai.model.Model` for each run.

    ``init="ssl"`` loads the pretrained backbone from ``pretrain_dir`` (read once) into every run;
    ``"scratch"`` starts from the model's own random initialisation. Heads follow ``cfg``: CORN when
    ``corn_weight > 0``, timbre when ``timbre_weight > 0`` and the data has ≥ 2 piano classes, the
    local window head when ``local_weight > 0``.
    """
    from crescendai.model import HeadsConfig, build_model, load_backbone

    heads = HeadsConfig(
        regression=True,
        corn=cfg.corn_weight > 0,
        n_timbre_classes=n_timbre_classes if cfg.timbre_weight > 0 and n_timbre_classes >= 2 else 0,
        local=cfg.local_weight > 0,
        hidden=cfg.head_hidden,
    )
    state = None
    if init == "ssl":
        if pretrain_dir is None:
            raise ValueError("init=ssl needs pretrain_dir (models/pretrain)")
        state = load_backbone(pretrain_dir).state_dict()
    elif init != "scratch":
        raise ValueError(f"init must be 'ssl' or 'scratch', got {init!r}")

    def make() -> torch.nn.Module:
        m = build_model(model_params, heads)
        if state is not None:
            m.backbone.load_state_dict(state)
        return m

    return make


@torch.no_grad()
def window_embeddings(backbone: torch.nn.Module, data: LabelledSet, device: torch.device,
                      batch_size: int = 256) -> np.ndarray:
    """Eval-mode embeddings float32 [W, C] of every window of ``data``, in index-position order."""
    backbone.eval()
    out = []
    for s in range(0, len(data.index), batch_size):
        p = np.arange(s, min(s + batch_size, len(data.index)))
        out.append(backbone(_window_tensor(data, p, device), _pad_mask(data.pad_fraction[p], device)).float().cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, backbone.dim), np.float32)


def segment_means(emb: np.ndarray, rows: Sequence[np.ndarray]) -> np.ndarray:
    """Window embeddings [W, C] + each segment's window positions → segment embeddings [S, C] (means)."""
    return np.stack([emb[r].mean(axis=0) for r in rows])


@dataclass
class ProbeFit:
    """A ridge head fitted on per-window inputs by :func:`fit_probe_head`.

    Attributes:
        predictions: the ``predictions.csv`` rows (segments and windows, ``oof`` and ``test``).
        history: one row per run (``fold<k>``, ``final``): training MSE, selection median r, alpha.
        weight: float32 [19, F], bias: float32 [19]: the final head (scaler folded in) on the inputs.
        segment_inputs: float32 [S, F], the segment means of the inputs (``data.segments`` order).
        folds: the CV folds that were scored out of fold.
    """

    predictions: pd.DataFrame
    history: pd.DataFrame
    weight: np.ndarray
    bias: np.ndarray
    segment_inputs: np.ndarray
    folds: list[int]


def fit_probe_head(inputs: np.ndarray, data: LabelledSet) -> ProbeFit:
    """The probe head on any per-window inputs (see the module docstring): each segment is the mean
    of its windows' ``inputs`` (float [W, F], rows in ``data.index`` order), a ridge head is fitted per
    CV fold and once on every non-test segment, and every window is scored by the head of its fold.

    Raises:
        ValueError: fewer than two non-test segments.
    """
    from crescendai.core.ridge import fold_models, linear_weights

    Z, y, folds, is_test = segment_means(inputs, data.rows), data.y, data.folds, data.is_test
    models = fold_models(Z, y, folds, is_test)
    if -1 not in models:
        raise ValueError("finetune: the probe head needs at least 2 non-test segments")
    frames, history = [], []
    for k, pipe in sorted(models.items(), key=lambda kv: (kv[0] < 0, kv[0])):
        segs = np.flatnonzero(is_test if k < 0 else ~is_test & (folds == k))
        fit = np.flatnonzero(~is_test if k < 0 else ~is_test & (folds != k))
        if len(segs) == 0:
            continue
        pos = np.concatenate([data.rows[s] for s in segs])
        w = pipe.predict(inputs[pos]).astype(np.float32)
        frames.append(_pred_frame(data, segs, pipe.predict(Z[segs]), {"scores": w, "local": w}, pos,
                                  "test" if k < 0 else "oof", k))
        history.append({"run": "final" if k < 0 else f"fold{k}",
                        "train_loss": float(np.mean((pipe.predict(Z[fit]) - y[fit]) ** 2)),
                        "select_score": np.nan if k < 0 else median_r(y[segs], pipe.predict(Z[segs])),
                        "alpha": float(pipe[-1].alpha_)})
    W, b = linear_weights(models[-1])
    return ProbeFit(pd.concat(frames, ignore_index=True), pd.DataFrame(history), W, b, Z.astype(np.float32),
                    sorted(k for k in models if k >= 0))


def run_probe_head(backbone: torch.nn.Module, data: LabelledSet, device: torch.device) -> FinetuneResult:
    """``mode: probe``: the frozen ``backbone`` + :func:`fit_probe_head` on its window embeddings. The
    result's model is the backbone with the final head folded into a linear regression head
    (unbounded, no LayerNorm); its ``embeddings`` are the segment embeddings [S, C] and their items."""
    from crescendai.model import HeadsConfig, Model

    t0 = time.perf_counter()
    emb = window_embeddings(backbone.to(device), data, device)  # (W, C)
    fit = fit_probe_head(emb, data)
    model = Model(backbone, HeadsConfig(regression=True, hidden=0, bounded=False, norm=False))
    with torch.no_grad():
        model.heads["regression"].net[-1].weight.copy_(torch.from_numpy(fit.weight))
        model.heads["regression"].net[-1].bias.copy_(torch.from_numpy(fit.bias))
    is_test = data.is_test
    summary = {"mode": "probe", "folds": fit.folds,
               "alphas": [float(a) for a in fit.history["alpha"]],
               "n_train_segments": int((~is_test).sum()), "n_test_segments": int(is_test.sum()),
               "embedding_dim": int(emb.shape[1]), "device": str(device)}
    log.info("probe head: %d windows embedded, %d segments, alphas %s, %.1f s", len(emb), len(data.rows),
             summary["alphas"], time.perf_counter() - t0)
    return FinetuneResult(model.eval(), fit.predictions, fit.history, summary,
                          (fit.segment_inputs, data.segments["item"].to_numpy(str)))


def segment_pooling(cfg: FinetuneParams) -> str:
    """How the shipped model's window scores make a segment score: the mean for the probe head (it
    commutes with the linear head), ``cfg.pooling`` for full fine-tuning."""
    return "mean" if cfg.mode == "probe" else cfg.pooling


def finetune(params: Params, init: str, features: str | Path, env: DistEnv, *, run_dir: str | Path,
             pretrain_dir: str | Path | None = None, force_resume: bool = False) -> FinetuneResult | None:
    """The ``finetune_<init>`` stage's work: the labelled set of ``features``, a model per run
    (:func:`model_factory`; ``init="ssl"`` loads ``pretrain_dir``), checkpoints in ``run_dir`` under
    the hash of the params and inputs (an interrupted run continues; ``force_resume`` even when the
    hash differs), then :func:`run_finetune`.

    Under ``torchrun`` the CV rounds run fold-parallel on every rank (:func:`cross_validate`); the
    ranks then leave the process group and rank 0 trains the final model alone. Returns None on the
    other ranks.
    """
    cfg = params.finetune
    seed_everything(params.seed)
    data = load_labelled(features)
    if cfg.mode == "probe":
        cleanup_distributed()  # one embedding pass and a few ridge fits: rank 0 alone
        if not env.is_main:
            return None
        make = model_factory(params.model, cfg, 0, init, pretrain_dir if init == "ssl" else None)
        return run_probe_head(make().backbone, data, env.device)
    make = model_factory(params.model, cfg, data.n_timbre_classes, init, pretrain_dir if init == "ssl" else None)
    inputs = [sha1_file(Path(features) / "index.csv")]
    if init == "ssl":
        inputs.append(sha1_file(Path(pretrain_dir) / "backbone.pt"))
    resume = prepare_shared_run_dir(run_dir, run_hash(params.seed, params.model, cfg, init, inputs), env,
                                    force_resume=force_resume)
    cv = None
    if env.distributed:
        cv = cross_validate(make, data, cfg, params.seed, checkpoint_dir=run_dir, resume=resume, env=env)
        cleanup_distributed()
        if not env.is_main:
            return None
    return run_finetune(make, data, cfg, seed=params.seed, device=env.device, checkpoint_dir=run_dir,
                        resume=resume, cv=cv)
