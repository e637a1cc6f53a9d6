"""Per-window scores of one recording and what is derived from them: calibration, pooling, bars.

:func:`score_windows` scores streamed window batches into a :class:`WindowSeries` (memory is
bounded by the batch size: only per-window vectors [N, 19] are kept). :func:`mark_quiet` leaves
pauses out, :func:`pool` gives the whole-performance :class:`Pooled` statistics, and
:func:`per_bar` averages window values over bars.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from crescendai.core import dims
from crescendai.core.audio import FRAME_SEC, WINDOW_FRAMES, WINDOW_SEC, Windows
from crescendai.core.pooling import trimmed_mean
from crescendai.evaluate.audio_features import window_features
from crescendai.evaluate.domain import DomainModel, assess_windows
from crescendai.tutor.bundle import Calibration
from crescendai.tutor.scorer import SAL_F, SAL_T, Scorer

QUANTILES: tuple[float, ...] = (0.1, 0.25, 0.5, 0.75, 0.9)
"""The quantiles of :attr:`Pooled.quantiles`, in order."""


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
        saliency_done: [N] bool, saliency computed for this window
            (see :func:`crescendai.tutor.saliency.add_saliency`).
        pad_fraction: [N] share of padded frames.
        valid: [N] bool, window used for pooling and feedback (not mostly padding).
        duration_sec: recording duration in seconds.
        hop_sec: window hop in seconds.
        domain_pct: [N] each window's percentile against the held-out training windows, in [0, 1]
            (``crescendai.evaluate.domain``: 0.99 = further out than 99 % of them), or None when
            the bundle has no domain description.
        domain_ratio: [N] each window's distance over the training reference's 95th-percentile
            distance (>= 0), or None likewise.
        heard: float16 [N, rows, K] the teacher row head's output per window (what was played
            where; ``crescendai.tutor.heard``), or None when the bundle has no such head.
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
    domain_pct: np.ndarray | None = None
    domain_ratio: np.ndarray | None = None
    heard: np.ndarray | None = None

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
    ``uncertainty`` = √(median MC std² + (w · ``model_error``)²): the MC-dropout spread and, when the
    calibration stores it, the model's error on performers it never saw (``model_error``, None
    otherwise), widened by the recording's domain factor ``w`` >= 1 (1 unless the analysis is
    given one); ``validation_r`` the out-of-fold Pearson r per dimension (or None).
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
         validation_r: np.ndarray | None = None, domain_widening: float | np.ndarray = 1.0) -> Pooled:
    """Robust whole-performance pooling over valid windows (all windows if none is valid);
    ``model_error`` [19] (label scale), times ``domain_widening`` (>= 1, scalar or [19]), widens
    the uncertainty, see :class:`Pooled`."""
    keep = series.valid if series.valid.any() else np.ones(len(series), bool)
    s = series.scores[keep]
    q = np.quantile(s, QUANTILES, axis=0)
    mc = np.median(series.std[keep], axis=0)
    err = np.zeros_like(mc) if model_error is None else np.nan_to_num(np.asarray(model_error, float))
    err = err * np.maximum(1.0, np.asarray(domain_widening, float))
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
    domain: DomainModel | None = None,
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
        domain: the training description of the bundle: each window's hand-crafted features
            (``evaluate.audio_features.window_features``) and the scorer's embedding are measured
            against it (``domain_pct``, ``domain_ratio``); None: not measured.

    Returns:
        :class:`WindowSeries`; every window is valid unless more than half of it is padding.

    Raises:
        ValueError: ``batches`` is empty.
    """
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("start", "mean", "std", "pad", "pct", "ratio", "heard")}
    duration = 0.0
    for w in batches:
        for lo in range(0, len(w), batch_size):
            sl = slice(lo, lo + batch_size)
            b = scorer.score(w.db[sl], mc_samples=mc_samples, pad_mask=w.pad_mask[sl])
            parts["mean"].append(b.mean)
            parts["std"].append(b.std)
            if b.heard is not None:
                parts["heard"].append(b.heard.astype(np.float16))
            if domain is not None:
                wf = b.features if b.features is not None else window_features(w.db[sl], w.pad_fraction[sl])
                chk = assess_windows(domain, b.embedding, wf)
                parts["pct"].append(chk.percentile)
                parts["ratio"].append(chk.ratio)
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
        domain_pct=np.concatenate(parts["pct"]) if domain is not None else None,
        domain_ratio=np.concatenate(parts["ratio"]) if domain is not None else None,
        heard=np.concatenate(parts["heard"]) if len(parts["heard"]) == len(parts["mean"]) else None,
    )


def mark_quiet(series: WindowSeries, frame_level_db: np.ndarray, floor_db: float = -50.0) -> None:
    """Mark windows whose loudest frame is ``floor_db`` below the recording's peak as invalid.

    Per-window dB normalisation (``ref=np.max``) makes a pause look like loud noise to the model,
    so such windows are left out of pooling and feedback. If that leaves no valid window, every
    window that is loud enough or not mostly padding stays valid.

    Args:
        series: modified in place (``valid``).
        frame_level_db: [T] frame level in dB at the contract's frame rate (hop 512).
        floor_db: threshold relative to the peak, < 0.
    """
    if frame_level_db.size == 0:
        return
    peak = float(np.max(frame_level_db))
    f0 = np.round(series.start_sec / FRAME_SEC).astype(int)
    # max over each window's frames via a sliding maximum on a padded array
    lvl = np.full(frame_level_db.size + WINDOW_FRAMES, -np.inf)
    lvl[: frame_level_db.size] = frame_level_db
    win_max = sliding_window_view(lvl, WINDOW_FRAMES).max(axis=1)
    idx = np.clip(f0, 0, win_max.size - 1)
    loud = win_max[idx] >= peak + floor_db
    series.valid = series.valid & loud
    if not series.valid.any():
        series.valid = loud | (series.pad_fraction <= 0.5)


def per_bar(series: WindowSeries, bar_starts: np.ndarray, bar_ends: np.ndarray, values: np.ndarray,
            chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Average per-window ``values`` [N, ...] over bars by overlap of window and bar.

    The overlap matrix is built ``chunk`` windows at a time (for a 60-minute recording the whole
    [N, n_bars] matrix and its temporaries took ~80 MB).

    Returns:
        (per-bar values [n_bars, ...] (NaN where no valid window overlaps), coverage [n_bars]
        = total overlap in seconds).
    """
    flat = values.reshape(values.shape[0], -1)
    acc = np.zeros((len(bar_starts), flat.shape[1]))
    cov = np.zeros(len(bar_starts))
    for lo in range(0, len(series), chunk):
        s = series.start_sec[lo: lo + chunk, None]
        e = np.minimum(s + WINDOW_SEC, series.duration_sec)
        ov = np.clip(np.minimum(e, bar_ends[None, :]) - np.maximum(s, bar_starts[None, :]), 0, None)
        ov = ov * series.valid[lo: lo + chunk, None]  # (chunk, n_bars)
        cov += ov.sum(axis=0)
        acc += ov.T @ flat[lo: lo + chunk]
    out = acc / np.where(cov > 0, cov, 1.0)[:, None]
    out[cov <= 0] = np.nan
    return out.reshape((len(bar_starts),) + values.shape[1:]), cov
