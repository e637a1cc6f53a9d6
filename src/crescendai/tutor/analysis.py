"""Analysis of one recording: contract windows → calibrated scores, uncertainty, saliency, pooling.

Pipeline for one file (``analyze_file``)::

    stream_windows(path, hop)  ─►  Scorer.score(db [B,128,128])  ─►  calibrate  ─►  pool
         (bounded memory)           mean [B,19], std [B,19],          (isotonic,     median, trimmed
                                    saliency [B,16,16]                 per dim)       mean, quantiles

The :class:`Scorer` protocol is the only thing the analysis needs from a model, so tests drive it
with a tiny random model and the CLI with the trained bundle (:class:`TorchScorer` over
``crescendai.model``). The backbone runs ONCE per window, without autograd (inference mode); MC
dropout samples only the small head on those features, so uncertainty costs ``mc_samples`` head
passes (one batched call), not backbone passes.

Saliency — gradient × input on the dB window, pooled to a 16 × 16 grid (8 frames × 8 mel bands per
cell) — explains the dimensions that feedback reports, in the windows of the reported passages
(:func:`add_saliency`; at most ``max_windows`` windows, re-read from the file segment by segment).
A backward pass through the backbone for every window would double the cost of the analysis for
windows nobody looks at.

Memory is bounded by the batch size: windows are produced, scored and dropped batch by batch; only
per-window vectors ([N, 19] floats) and the pooled saliency are kept.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from crescendai.core import dims
from crescendai.core.audio import (
    DB_FLOOR,
    FRAME_SEC,
    WINDOW_FRAMES,
    WINDOW_SEC,
    Windows,
    stream_windows,
)
from crescendai.core.errors import CrescendAIError
from crescendai.core.pooling import trimmed_mean

log = logging.getLogger(__name__)

SAL_T: int = 16
"""Saliency grid rows (time): 8 frames ≈ 0.19 s each."""
SAL_F: int = 16
"""Saliency grid columns (mel bands): 8 mel bands each, low → high frequency."""
QUANTILES: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9)


class ModelError(CrescendAIError):
    """The model bundle is missing or unusable; the message names the folder and the fix."""


# ------------------------------------------------------------------------------------------
# the scorer interface
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoreBatch:
    """Scores of a batch of windows (raw, i.e. before calibration).

    Attributes:
        mean: float32 [B, 19], deterministic (dropout off) prediction on the label scale [1/7, 1].
        std: float32 [B, 19], MC-dropout standard deviation (>= 0) of the head's prediction.
    """

    mean: np.ndarray
    std: np.ndarray


class Scorer(Protocol):
    """Anything that scores contract windows: ``db`` float32 [B, 128, 128] in [-80, 0] dB,
    ``pad_mask`` optional bool [B, 128] (True = padded frame)."""

    def score(self, db: np.ndarray, *, mc_samples: int, pad_mask: np.ndarray | None = None
              ) -> ScoreBatch: ...

    def saliency(self, db: np.ndarray, weights: np.ndarray, *, pad_mask: np.ndarray | None = None
                 ) -> np.ndarray:
        """float32 [B, 16, 16] (time cell, mel cell): |gradient × input| of ``Σ_d weights[b, d] ·
        score[b, d]``, each window normalised to sum 1 (all zeros if the gradient is zero)."""
        ...


class Calibration(Protocol):
    """Per-dimension monotone map from raw to calibrated scores (both [N, 19]), with the model's
    validation record when the calibrate stage measured it: ``error`` [19] (out-of-fold RMSE, label
    scale) and ``r`` [19] (out-of-fold Pearson r), else None."""

    error: np.ndarray | None
    r: np.ndarray | None

    def transform(self, scores: np.ndarray) -> np.ndarray: ...


class IdentityCalibration:
    """No calibration (used when a bundle has none, and in tests); no validation record."""

    error: np.ndarray | None = None
    r: np.ndarray | None = None

    def transform(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores, dtype=np.float32)


def saliency_weights(mean: np.ndarray, top_k: int = 2) -> np.ndarray:
    """Which outputs the saliency explains: each window's ``top_k`` worst problem dimensions.

    "Worst" = largest ``direction · (score − 4/7)`` (4/7 is the middle rating 4) among dimensions
    with a problem pole; the weight is the direction (+1 / −1) so the gradient points towards
    "more of the problem".

    Args:
        mean: [B, 19] raw scores.
        top_k: dimensions per window, >= 1.

    Returns:
        float32 [B, 19] weights in {-1, 0, +1}.
    """
    direction = np.array([dims.problem_direction(d) for d in dims.DIMENSIONS], np.float32)
    bad = direction[None, :] * (np.asarray(mean, np.float32) - 4.0 / 7.0)
    bad = np.where(direction[None, :] != 0, bad, -np.inf)
    k = min(top_k, int(np.count_nonzero(direction)))
    idx = np.argsort(-bad, axis=1)[:, :k]
    w = np.zeros_like(bad, dtype=np.float32)
    np.put_along_axis(w, idx, direction[idx], axis=1)
    return w


def pool_saliency(gx: np.ndarray) -> np.ndarray:
    """|grad × input| [B, 128, 128] → [B, 16, 16] cell sums, each window normalised to sum 1."""
    B = gx.shape[0]
    a = np.abs(gx).reshape(B, SAL_T, WINDOW_FRAMES // SAL_T, SAL_F, 128 // SAL_F).sum(axis=(2, 4))
    s = a.sum(axis=(1, 2), keepdims=True)
    return np.where(s > 0, a / np.maximum(s, 1e-12), 0.0).astype(np.float32)


class TorchScorer:
    """A :class:`Scorer` over a torch ``backbone`` (db [B,128,128] → features [B,D]) and a
    ``head`` (features → raw scores [B,19]).

    :meth:`score` runs the backbone once per window in eval + inference mode; MC dropout then runs
    the head ``mc_samples`` times (one batched call) on those features with only its dropout layers
    in train mode. A head without dropout layers gets feature dropout with
    probability ``fallback_dropout`` (so the uncertainty is never silently zero).
    """

    def __init__(
        self,
        backbone,
        head,
        *,
        fallback_dropout: float = 0.1,
        device: str = "cpu",
        seed: int = 0,
    ) -> None:
        import torch

        self.backbone = backbone.to(device).eval()
        self.head = head.to(device).eval()
        self.device = device
        self.fallback_dropout = fallback_dropout
        self._dropouts = [m for m in self.head.modules() if isinstance(m, torch.nn.Dropout)]
        self._gen = torch.Generator(device=device).manual_seed(seed)
        import inspect

        try:
            self._takes_mask = len(inspect.signature(self.backbone.forward).parameters) >= 2
        except (TypeError, ValueError):  # pragma: no cover
            self._takes_mask = False

    def _features(self, x, pad_mask):
        import torch

        if pad_mask is not None and self._takes_mask and bool(np.any(pad_mask)):
            return self.backbone(x, torch.as_tensor(np.asarray(pad_mask, bool), device=self.device))
        return self.backbone(x)  # (B, D)

    def score(self, db: np.ndarray, *, mc_samples: int, pad_mask: np.ndarray | None = None
              ) -> ScoreBatch:
        import torch

        with torch.inference_mode():
            x = torch.as_tensor(np.asarray(db, np.float32), device=self.device)
            feats = self._features(x, pad_mask)  # (B, D): the one backbone pass
            mean = self.head(feats).float().cpu().numpy()  # (B, 19)
            std = self._mc_std(feats, mc_samples)
        return ScoreBatch(mean=mean.astype(np.float32), std=std)

    def saliency(self, db: np.ndarray, weights: np.ndarray, *, pad_mask: np.ndarray | None = None
                 ) -> np.ndarray:
        import torch

        x = torch.as_tensor(np.asarray(db, np.float32), device=self.device).requires_grad_(True)
        out = self.head(self._features(x, pad_mask))  # (B, 19)
        w = torch.as_tensor(np.asarray(weights, np.float32), device=self.device)
        (grad,) = torch.autograd.grad((out * w).sum(), x)
        return pool_saliency((grad * (x.detach() - DB_FLOOR)).cpu().numpy())  # (B, 16, 16)

    def _mc_std(self, feats, mc_samples: int) -> np.ndarray:
        import torch

        if mc_samples <= 1:
            return np.zeros((feats.shape[0], dims.N_DIMS), np.float32)
        with torch.no_grad():
            # (S·B, D): all samples in one head pass
            rep = feats.repeat(mc_samples, 1)
            if self._dropouts:
                for m in self._dropouts:
                    m.train()
                try:
                    samples = self.head(rep)  # dropout draws from torch's global RNG (seeded by the CLI)
                finally:
                    for m in self._dropouts:
                        m.eval()
            else:
                p = self.fallback_dropout
                keep = (torch.rand(rep.shape, generator=self._gen, device=rep.device) >= p).float()
                samples = self.head(rep * keep / (1 - p))
            samples = samples.view(mc_samples, feats.shape[0], -1)  # (S, B, 19)
            return samples.std(dim=0).float().cpu().numpy().astype(np.float32)


# ------------------------------------------------------------------------------------------
# the trained bundle
# ------------------------------------------------------------------------------------------


@dataclass
class Bundle:
    """A loaded tutor bundle: the scorer, its calibration and where it came from."""

    scorer: Scorer
    calibration: Calibration
    path: str
    info: dict = field(default_factory=dict)


def load_bundle(path: str | os.PathLike[str], *, device: str = "cpu") -> Bundle:
    """Load ``models/tutor/`` (``model.pt``, ``calibration.json``, ``config.json``).

    The model is read with ``crescendai.model``'s loader; the calibrator with
    ``crescendai.evaluate.calibration.Calibrator``. A missing ``calibration.json`` falls back to identity
    (logged).

    Raises:
        ModelError: the folder or ``model.pt`` is missing, or the model cannot be loaded.
    """
    p = Path(path)
    if not (p / "model.pt").is_file():
        raise ModelError(
            f"{p}: no trained model here (model.pt missing); run `uv run dvc repro` first "
            "or pass --model DIR pointing at a tutor bundle"
        )
    try:
        backbone, head, info = _load_model_parts(p, device)
    except ModelError:
        raise
    except Exception as err:  # the bundle is damaged or from another version
        raise ModelError(
            f"{p / 'model.pt'}: cannot load the model ({type(err).__name__}: {err}); "
            "re-run `uv run dvc repro` to rebuild it"
        ) from None
    calibration: Calibration = IdentityCalibration()
    cal_path = p / "calibration.json"
    if cal_path.is_file():
        calibration = _load_calibration(cal_path)
    else:
        log.warning("%s missing: scores are uncalibrated", cal_path)
    scorer = TorchScorer(backbone, head, device=device,
                         fallback_dropout=float(info.get("dropout", 0.1) or 0.1))
    return Bundle(scorer=scorer, calibration=calibration, path=str(p), info=info)


def _load_model_parts(p: Path, device: str):
    """(backbone: db → features, head: features → 19 raw scores, info) from a bundle folder."""
    from crescendai.model import load_model

    m = load_model(p, map_location=device)
    return split_model(m)


class _CornScores:
    """Wrap a CORN head so it returns expected labels (B, 19) like the regression head."""

    def __new__(cls, corn):
        import torch

        from crescendai.model import corn_to_score

        class CornScores(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.corn = corn

            def forward(self, emb):
                return corn_to_score(self.corn(emb))  # (B, 19)

        return CornScores()


def split_model(m):
    """(backbone, 19-score head, info) of a ``crescendai.model.Model``: the regression head, or the
    CORN head turned into expected labels when there is no regression head."""
    heads = getattr(m, "heads", None)
    backbone = getattr(m, "backbone", None)
    if backbone is None or heads is None:
        raise ModelError("the model has no .backbone / .heads; it is not a crescendai.model.Model")
    if "regression" in heads:
        head = heads["regression"]
    elif "corn" in heads:
        head = _CornScores(heads["corn"])
    else:
        raise ModelError("the model has neither a regression nor a CORN head; cannot score windows")
    info = {"dropout": float(getattr(getattr(m, "heads_cfg", None), "dropout", 0.1)),
            "n_params": int(sum(q.numel() for q in m.parameters()))}
    return backbone, head, info


def _load_calibration(path: Path) -> Calibration:
    from crescendai.evaluate.calibration import Calibrator

    load = getattr(Calibrator, "load", None) or getattr(Calibrator, "from_json", None)
    cal = load(path)
    if not hasattr(cal, "transform"):
        raise ModelError(f"{path}: calibrator has no transform(); update the package")
    return cal


# ------------------------------------------------------------------------------------------
# analysis
# ------------------------------------------------------------------------------------------


@dataclass
class WindowSeries:
    """Per-window results of one recording (N windows).

    Attributes:
        start_sec: [N] window start in seconds (window spans ``WINDOW_SEC`` ≈ 2.97 s).
        raw: [N, 19] raw model scores.
        scores: [N, 19] calibrated scores on the label scale [1/7, 1].
        std: [N, 19] calibrated MC-dropout std (raw std × local slope of the calibration).
        saliency: [N, 16, 16] float16 pooled gradient × input (rows = time cells, cols = mel
            cells) for the windows where ``saliency_done``; zeros elsewhere.
        saliency_done: [N] bool, saliency computed for this window (see :func:`add_saliency`).
        pad_fraction: [N] share of padded frames.
        valid: [N] bool, window used for pooling and feedback (not mostly padding).
        duration_sec: recording duration in seconds.
        hop_sec: window hop in seconds.
    """

    start_sec: np.ndarray
    raw: np.ndarray
    scores: np.ndarray
    std: np.ndarray
    saliency: np.ndarray
    pad_fraction: np.ndarray
    valid: np.ndarray
    duration_sec: float
    hop_sec: float
    saliency_done: np.ndarray | None = None

    def __post_init__(self) -> None:
        if self.saliency_done is None:
            self.saliency_done = np.zeros(len(self.start_sec), bool)

    @property
    def centre_sec(self) -> np.ndarray:
        """[N] window centre times (clipped to the recording)."""
        return np.minimum(self.start_sec + WINDOW_SEC / 2, self.duration_sec)

    def __len__(self) -> int:
        return int(self.start_sec.shape[0])


@dataclass(frozen=True)
class Pooled:
    """Whole-performance statistics per dimension (each [19]).

    ``median`` is the headline score; ``trimmed_mean`` drops ``trim`` of windows at each end;
    ``spread`` is the interquartile range; ``quantiles`` [5, 19] at :data:`QUANTILES`;
    ``uncertainty`` = √(median MC std² + ``model_error``²): the MC-dropout spread and, when the
    calibration stores it, the model's error on performers it never saw (``model_error``, None
    otherwise); ``validation_r`` the out-of-fold Pearson r per dimension (or None).
    """

    median: np.ndarray
    trimmed_mean: np.ndarray
    spread: np.ndarray
    quantiles: np.ndarray
    uncertainty: np.ndarray
    n_windows: int
    model_error: np.ndarray | None = None
    validation_r: np.ndarray | None = None


def calibrate_std(cal: Calibration, raw: np.ndarray, std: np.ndarray) -> np.ndarray:
    """Propagate an uncertainty through a monotone calibration: half the width of the image of
    ``raw ± std``. Shapes [N, 19]; returns [N, 19] >= 0."""
    hi = cal.transform(np.clip(raw + std, 0.0, 1.2))
    lo = cal.transform(np.clip(raw - std, 0.0, 1.2))
    return (np.abs(np.asarray(hi) - np.asarray(lo)) / 2).astype(np.float32)


def pool(series: WindowSeries, trim: float = 0.1, model_error: np.ndarray | None = None,
         validation_r: np.ndarray | None = None) -> Pooled:
    """Robust whole-performance pooling over valid windows (all windows if none is valid);
    ``model_error`` [19] (label scale) widens the uncertainty, see :class:`Pooled`."""
    keep = series.valid if series.valid.any() else np.ones(len(series), bool)
    s = series.scores[keep]
    q = np.quantile(s, QUANTILES, axis=0)
    mc = np.median(series.std[keep], axis=0)
    err = np.zeros_like(mc) if model_error is None else np.nan_to_num(np.asarray(model_error, float))
    return Pooled(
        median=np.median(s, axis=0).astype(np.float32),
        trimmed_mean=trimmed_mean(s, trim).astype(np.float32),
        spread=(q[QUANTILES.index(0.75)] - q[QUANTILES.index(0.25)]).astype(np.float32),
        quantiles=q.astype(np.float32),
        uncertainty=np.sqrt(mc**2 + err**2).astype(np.float32),
        n_windows=int(keep.sum()),
        model_error=None if model_error is None else np.asarray(model_error, np.float32),
        validation_r=None if validation_r is None else np.asarray(validation_r, np.float32),
    )


def judged_dims(validation_r: np.ndarray | None, min_r: float) -> np.ndarray:
    """[19] bool: dimensions whose out-of-fold r is at least ``min_r`` (all when r is unknown)."""
    if validation_r is None:
        return np.ones(dims.N_DIMS, bool)
    return np.nan_to_num(np.asarray(validation_r, float), nan=-1.0) >= min_r


def score_windows(
    batches: Iterable[Windows],
    scorer: Scorer,
    calibration: Calibration,
    *,
    hop_sec: float,
    mc_samples: int = 20,
    batch_size: int = 32,
    progress: Callable[[float], None] | None = None,
) -> WindowSeries:
    """Score streamed window batches (see :func:`crescendai.core.audio.stream_windows`).

    Args:
        batches: consecutive :class:`~crescendai.core.audio.Windows` of one recording.
        scorer: the model.
        calibration: raw → calibrated map.
        hop_sec: the hop the windows were cut with (recorded in the result).
        mc_samples: MC-dropout samples of the head, >= 1 (1 = no uncertainty).
        batch_size: windows per model call (bounds memory).
        progress: called with the seconds of audio covered so far.

    Returns:
        :class:`WindowSeries`.
    """
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("start", "mean", "std", "pad")}
    duration = 0.0
    for w in batches:
        for lo in range(0, len(w), batch_size):
            sl = slice(lo, lo + batch_size)
            b = scorer.score(w.db[sl], mc_samples=mc_samples, pad_mask=w.pad_mask[sl])
            parts["mean"].append(b.mean)
            parts["std"].append(b.std)
        parts["start"].append(w.start_sec)
        parts["pad"].append(w.pad_fraction)
        duration = w.duration_sec
        if progress is not None:
            progress(min(duration, float(w.start_sec[-1]) + WINDOW_SEC))
    if not parts["mean"]:
        raise ValueError("no windows to score")
    raw = np.concatenate(parts["mean"])
    raw_std = np.concatenate(parts["std"])
    pad = np.concatenate(parts["pad"])
    scores = np.asarray(calibration.transform(raw), np.float32)
    std = calibrate_std(calibration, raw, raw_std)
    valid = pad <= 0.5
    return WindowSeries(
        start_sec=np.concatenate(parts["start"]), raw=raw, scores=scores, std=std,
        saliency=np.zeros((len(raw), SAL_T, SAL_F), np.float16), pad_fraction=pad, valid=valid,
        duration_sec=float(duration), hop_sec=hop_sec,
    )


def analyze_windows_of_file(
    path: str | os.PathLike[str],
    scorer: Scorer,
    calibration: Calibration,
    *,
    hop_sec: float = 1.0,
    mc_samples: int = 20,
    batch_size: int = 32,
    min_duration_sec: float = 3.0,
    progress: Callable[[float], None] | None = None,
) -> WindowSeries:
    """Stream ``path`` through the contract and score it (bounded memory: ~``batch_size`` windows).

    Raises:
        AudioError: missing, unreadable, corrupt, silent or too-short audio (names the file).
    """
    chunk = max(batch_size, 16)
    batches = stream_windows(path, hop_sec, chunk_windows=chunk, min_duration_sec=min_duration_sec)
    return score_windows(batches, scorer, calibration, hop_sec=hop_sec, mc_samples=mc_samples,
                         batch_size=batch_size, progress=progress)


def read_segment(path: str | os.PathLike[str], t0: float, t1: float) -> np.ndarray:
    """Mono float32 samples of ``path`` between ``t0`` and ``t1`` seconds, at 22 050 Hz."""
    import soundfile as sf
    import soxr

    from crescendai.core.audio import SAMPLE_RATE

    with sf.SoundFile(str(path)) as f:
        sr = int(f.samplerate)
        f.seek(max(0, int(t0 * sr)))
        y = f.read(max(1, int((t1 - max(0.0, t0)) * sr)), dtype="float32", always_2d=True).mean(axis=1)
    return y if sr == SAMPLE_RATE else soxr.resample(y, sr, SAMPLE_RATE, quality="HQ").astype(np.float32)


def add_saliency(
    path: str | os.PathLike[str],
    series: WindowSeries,
    scorer: Scorer,
    targets: list[tuple[np.ndarray, np.ndarray]],
    *,
    max_windows: int = 64,
    batch_size: int = 32,
) -> None:
    """Compute saliency for chosen windows, re-reading only their audio segments.

    Args:
        path: the recording.
        series: filled in place (``saliency``, ``saliency_done``).
        scorer: the model.
        targets: (window indices [k], weights [19]) pairs: which windows, and which outputs to
            explain there (e.g. +1 on timing for an unstable-timing passage).
        max_windows: total windows at most, spread evenly over the targets' windows.
        batch_size: windows per backward pass.
    """
    from crescendai.core.audio import AudioError, windows_from_waveform

    chosen: dict[int, np.ndarray] = {}
    uniq = np.unique(np.array([int(i) for idx, _ in targets for i in idx], int))
    pick = np.linspace(0, uniq.size - 1, min(max_windows, uniq.size)).round().astype(int)
    keep = set(uniq[pick].tolist()) if uniq.size else set()
    for idx, w in targets:
        for i in idx:
            if int(i) in keep and int(i) not in chosen:
                chosen[int(i)] = np.asarray(w, np.float32)
    if not chosen:
        return
    order = sorted(chosen)
    runs: list[list[int]] = [[order[0]]]  # consecutive window indices share one segment read
    for i in order[1:]:
        if i == runs[-1][-1] + 1:
            runs[-1].append(i)
        else:
            runs.append([i])
    dbs, masks, ids = [], [], []
    for run in runs:
        t0 = float(series.start_sec[run[0]])
        t1 = min(series.duration_sec, float(series.start_sec[run[-1]]) + WINDOW_SEC)
        try:
            w = windows_from_waveform(read_segment(path, t0, t1), series.hop_sec)
        except AudioError:  # e.g. a silent segment
            continue
        n = min(len(w), len(run))
        dbs.append(w.db[:n])
        masks.append(w.pad_mask[:n])
        ids += run[:n]
    if not ids:
        return
    db, mask = np.concatenate(dbs), np.concatenate(masks)
    weights = np.stack([chosen[i] for i in ids])
    for lo in range(0, len(ids), batch_size):
        sl = slice(lo, lo + batch_size)
        sal = scorer.saliency(db[sl], weights[sl], pad_mask=mask[sl])
        series.saliency[ids[sl]] = sal.astype(np.float16)
        series.saliency_done[ids[sl]] = True


def saliency_targets(series: WindowSeries, lines: list, units, pooled_median: np.ndarray,
                     n_fallback: int = 16) -> list[tuple[np.ndarray, np.ndarray]]:
    """(windows, weights) to explain: each feedback line's valid windows and its dimensions; with no
    line, the ``n_fallback`` windows where the performance's two worst problem dimensions peak."""
    direction = np.array([dims.problem_direction(d) for d in dims.DIMENSIONS], np.float32)
    out = []
    end = series.start_sec + WINDOW_SEC
    for ln in lines:
        lo, hi = float(units.start_sec[ln.first]), float(units.end_sec[ln.last])
        idx = np.flatnonzero(series.valid & (end > lo) & (series.start_sec < hi))
        w = np.zeros(dims.N_DIMS, np.float32)
        w[list(ln.dims)] = direction[list(ln.dims)]
        if idx.size and np.any(w):
            out.append((idx, w))
    if not out:
        w = saliency_weights(pooled_median[None, :], top_k=2)[0]
        bad = (series.scores * w[None, :]).sum(axis=1)
        bad[~series.valid] = -np.inf
        idx = np.sort(np.argsort(-bad)[:n_fallback])
        out.append((idx[np.isfinite(bad[idx])], w))
    return out


def mark_quiet(series: WindowSeries, frame_level_db: np.ndarray, floor_db: float = -50.0) -> None:
    """Mark windows whose loudest frame is ``floor_db`` below the recording's peak as invalid.

    Per-window dB normalisation (``ref=np.max``) makes a pause look like loud noise to the model,
    so such windows are left out of pooling and feedback.

    Args:
        series: modified in place (``valid``).
        frame_level_db: [T] frame RMS in dB at the contract's frame rate (hop 512).
        floor_db: threshold relative to the peak, < 0.
    """
    if frame_level_db.size == 0:
        return
    peak = float(np.max(frame_level_db))
    f0 = np.round(series.start_sec / FRAME_SEC).astype(int)
    # max over each window's frames via a sliding maximum on a padded array
    lvl = np.full(frame_level_db.size + WINDOW_FRAMES, -np.inf)
    lvl[: frame_level_db.size] = frame_level_db
    from numpy.lib.stride_tricks import sliding_window_view

    win_max = sliding_window_view(lvl, WINDOW_FRAMES).max(axis=1)
    idx = np.clip(f0, 0, win_max.size - 1)
    loud = win_max[idx] >= peak + floor_db
    series.valid = series.valid & loud
    if not series.valid.any():  # never leave nothing to report on
        series.valid = loud | (series.pad_fraction <= 0.5)


def per_bar(series: WindowSeries, bar_starts: np.ndarray, bar_ends: np.ndarray, values: np.ndarray
            ) -> tuple[np.ndarray, np.ndarray]:
    """Average per-window ``values`` [N, ...] over bars by overlap of window and bar.

    Returns:
        (per-bar values [n_bars, ...] (NaN where no valid window overlaps), coverage [n_bars]
        = total overlap in seconds).
    """
    s = series.start_sec[:, None]
    e = np.minimum(s + WINDOW_SEC, series.duration_sec)
    ov = np.clip(np.minimum(e, bar_ends[None, :]) - np.maximum(s, bar_starts[None, :]), 0, None)
    ov = ov * series.valid[:, None]  # (N, n_bars)
    cov = ov.sum(axis=0)
    flat = values.reshape(values.shape[0], -1)
    out = (ov.T @ flat) / np.where(cov > 0, cov, 1.0)[:, None]
    out[cov <= 0] = np.nan
    return out.reshape((len(bar_starts),) + values.shape[1:]), cov


def estimate_seconds(duration_sec: float, hop_sec: float) -> int:
    """Number of windows a recording of ``duration_sec`` will give (for progress bars)."""
    frames = 1 + int(duration_sec / FRAME_SEC)
    h = max(1, round(hop_sec / FRAME_SEC))
    return 1 if frames <= WINDOW_FRAMES else 1 + math.ceil((frames - WINDOW_FRAMES) / h)


# ------------------------------------------------------------------------------------------
# one recording, end to end (windows → scores → bars → feedback)
# ------------------------------------------------------------------------------------------


@dataclass
class Analysis:
    """Everything the report needs about one recording."""

    path: str
    series: WindowSeries
    pooled: Pooled
    grid: object  # crescendai.tutor.bars.BarGrid
    units: object  # crescendai.tutor.feedback.Units
    unit_scores: np.ndarray  # [U, 19]
    unit_std: np.ndarray  # [U, 19]
    lines: list  # [crescendai.tutor.feedback.Line]
    strengths: list[int]
    weaknesses: list[int]
    score_path: str | None
    model_path: str
    calibrated: bool
    mc_samples: int
    timings: dict[str, float] = field(default_factory=dict)
    min_reliable_r: float = -1.0

    @property
    def judged(self) -> np.ndarray:
        """[19] bool: dimensions reliable enough to give feedback on (:func:`judged_dims`)."""
        return judged_dims(self.pooled.validation_r, self.min_reliable_r)


def analyze_file(
    path: str | os.PathLike[str],
    bundle: Bundle,
    *,
    score_path: str | os.PathLike[str] | None = None,
    meter: str | None = None,
    tempo_hint: float | None = None,
    params=None,
    progress: Callable[[float], None] | None = None,
) -> Analysis:
    """Analyse one recording end to end.

    Args:
        path: audio file (wav, flac, ogg, mp3; any rate and channel count).
        bundle: the model (:func:`load_bundle`, or a test bundle).
        score_path: optional MIDI score; bars are then the score's (aligned by DTW).
        meter: "3/4" etc.; overrides the score's time signature; used for beat-tracked bars.
        tempo_hint: beats per minute to seed beat tracking.
        params: :class:`crescendai.core.config.TutorParams` (defaults when None).
        progress: called with seconds of audio analysed.

    Raises:
        AudioError: unusable audio. ScoreError: unusable or non-matching score. ValueError: bad meter.
    """
    import time

    from crescendai.core.config import TutorParams
    from crescendai.tutor import bars as bars_mod
    from crescendai.tutor import feedback as fb

    p = params or TutorParams()
    m = bars_mod.parse_meter(meter) if meter else None
    score = bars_mod.read_score(score_path, m) if score_path else None  # fail fast on a bad score
    t0 = time.perf_counter()
    feats = bars_mod.frame_features(path, chroma=score is not None)
    t1 = time.perf_counter()
    series = analyze_windows_of_file(
        path, bundle.scorer, bundle.calibration, hop_sec=p.hop_sec, mc_samples=p.mc_samples,
        batch_size=p.batch_size, min_duration_sec=p.min_duration_sec, progress=progress,
    )
    t2 = time.perf_counter()
    mark_quiet(series, feats.level_db)
    if score is not None:
        grid = bars_mod.align_to_score(feats, score, path=score_path, min_match=p.min_score_match)
    else:
        grid = bars_mod.bars_from_beats(feats, m or bars_mod.Meter(), tempo_hint)
    t3 = time.perf_counter()
    if len(grid):
        units = fb.Units(grid.numbers, grid.start_sec, grid.end_sec, "bar", grid.approximate)
    else:
        units = fb.time_units(series.duration_sec)
    pooled = pool(series, p.trim, bundle.calibration.error, bundle.calibration.r)
    judged = judged_dims(pooled.validation_r, p.min_reliable_r)
    u_scores, _ = per_bar(series, units.start_sec, units.end_sec, series.scores)
    u_std, _ = per_bar(series, units.start_sec, units.end_sec, series.std)
    spans = fb.find_spans(u_scores, u_std, pooled.median, rel_margin=p.rel_margin,
                          min_confidence=p.min_confidence, judged=judged)
    lines = fb.merge_spans(spans, p.max_lines)
    strengths, weaknesses = fb.overall_notes(pooled.median, margin=p.rel_margin, judged=judged,
                                             uncertainty=pooled.uncertainty)
    t4 = time.perf_counter()
    add_saliency(path, series, bundle.scorer, saliency_targets(series, lines, units, pooled.median))
    t5 = time.perf_counter()
    return Analysis(
        path=str(path), series=series, pooled=pooled, grid=grid, units=units, unit_scores=u_scores,
        unit_std=u_std, lines=lines, strengths=strengths, weaknesses=weaknesses,
        score_path=None if score_path is None else str(score_path), model_path=bundle.path,
        calibrated=not isinstance(bundle.calibration, IdentityCalibration), mc_samples=p.mc_samples,
        min_reliable_r=p.min_reliable_r,
        timings={"features_sec": t1 - t0, "scoring_sec": t2 - t1, "bars_sec": t3 - t2,
                 "feedback_sec": t4 - t3, "saliency_sec": t5 - t4},
    )
