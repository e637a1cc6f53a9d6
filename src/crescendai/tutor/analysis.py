"""Analysis of one recording, end to end: one pass → windows → calibrated scores → bars → feedback.

Pipeline of :func:`analyze_file`::

    read_recording(path)  ─►  FrameFeatures: mel [T,128], level [T], onset [T] (, chroma [12,T])
      (decoded, resampled           │
       and transformed once)        ├─► iter_windows ─► Scorer.score(db [B,128,128]) ─► calibrate ─► pool
                                    │                   mean [B,19], std [B,19]        (isotonic)   median, …
                                    ├─► bars (beats from the onset envelope, or DTW to a score)
                                    └─► saliency windows of the reported passages

then per-bar scores and feedback lines (:mod:`crescendai.tutor.feedback`). The parts live in
:mod:`~crescendai.tutor.frontend` (the one pass), :mod:`~crescendai.tutor.scorer` (the model
interface), :mod:`~crescendai.tutor.bundle` (the trained bundle and its calibration) and
:mod:`~crescendai.tutor.series` (per-window scores, pooling, per-bar averages).

**Domain check** (when the bundle has ``domain.npz``): every window's backbone embedding and
hand-crafted features are measured against the training windows (``crescendai.evaluate.domain``);
the recording's verdict (median window percentile: in domain / unusual ≥ 0.95 / far ≥ 0.99) widens
the model error by its factor (``domain_widening``, unless the caller passes one), a far recording
gets no advice at all (no lines, strengths or weaknesses), and units whose windows are mostly far
out on their own get no line.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from crescendai.core import dims
from crescendai.core.config import TutorParams
from crescendai.evaluate.domain import FAR_PERCENTILE, DomainModel, Verdict, recording_verdict
from crescendai.tutor import bars as bars_mod
from crescendai.tutor import feedback as fb
from crescendai.tutor.bundle import Bundle, Calibration, IdentityCalibration
from crescendai.tutor.frontend import FrameFeatures, iter_windows, read_recording
from crescendai.tutor.heard import Heard, heard_timeline
from crescendai.tutor.note_check import NoteCheck
from crescendai.tutor.saliency import add_saliency, saliency_targets
from crescendai.tutor.scorer import Scorer
from crescendai.tutor.series import (
    Pooled,
    WindowSeries,
    judged_dims,
    mark_quiet,
    per_bar,
    pool,
    score_windows,
)


def analyze_windows_of_file(
    recording: FrameFeatures | str | os.PathLike[str],
    scorer: Scorer,
    calibration: Calibration,
    *,
    hop_sec: float = 1.0,
    mc_samples: int = 20,
    batch_size: int = 32,
    min_duration_sec: float = 3.0,
    progress: Callable[[float], None] | None = None,
    domain: DomainModel | None = None,
) -> WindowSeries:
    """Score every contract window of a recording (its one-pass features, or a path read here);
    memory beyond the mel frames is ~``batch_size`` windows. With ``domain`` each window is also
    measured against the training windows (``WindowSeries.domain_pct``).

    Raises:
        AudioError: missing, unreadable, corrupt, silent or too-short audio (names the file).
    """
    feats = recording if isinstance(recording, FrameFeatures) else \
        read_recording(recording, min_duration_sec=min_duration_sec)
    batches = iter_windows(feats, hop_sec, chunk_windows=max(batch_size, 16))
    return score_windows(batches, scorer, calibration, hop_sec=hop_sec, mc_samples=mc_samples,
                         batch_size=batch_size, progress=progress, domain=domain)


SALIENCY_BATCH: int = 8
"""Windows per backward pass of the saliency, whose activations are kept for the backward pass:
64 windows in passes of 32 raised the analysis's peak memory by ~85 MB, in passes of 8 by nothing
measurable, at the same speed."""

DomainWidening = float | np.ndarray | Callable[[FrameFeatures, WindowSeries], "float | np.ndarray"]
"""A domain widening of the model error: a factor >= 1 (scalar or [19]), or a function of the
recording's features and scored windows that returns one (e.g. from a distance to the training
data). See :mod:`crescendai.tutor.feedback`."""


@dataclass
class DomainCheck:
    """The domain check of one recording.

    ``verdict`` (None: the bundle has no training description, the check was not available);
    ``far_units`` [U] bool: units whose valid windows are mostly (>= half their overlap) at or beyond
    :data:`~crescendai.evaluate.domain.FAR_PERCENTILE` on their own — no feedback line there.
    """

    verdict: Verdict | None = None
    far_units: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))

    @property
    def checked(self) -> bool:
        return self.verdict is not None

    @property
    def advice(self) -> bool:
        """Whether advice may be given at all (unchecked, or not far out)."""
        return self.verdict is None or self.verdict.advice


@dataclass
class Analysis:
    """Everything the report needs about one recording.

    ``units`` are the grid's bars, or time slices when no bars were found; ``unit_scores`` and
    ``unit_std`` [U, 19] are the calibrated scores and std averaged over each unit (NaN where no
    valid window overlaps it); ``lines`` index into ``units``; ``strengths`` / ``weaknesses`` are
    dimension indices; ``timings`` maps each step to its seconds; ``domain_widening`` [19] the
    factor on the model error used for this recording (ones: none); ``domain`` the domain check.
    """

    path: str
    series: WindowSeries
    pooled: Pooled
    grid: bars_mod.BarGrid
    units: fb.Units
    unit_scores: np.ndarray
    unit_std: np.ndarray
    lines: list[fb.Line]
    strengths: list[int]
    weaknesses: list[int]
    score_path: str | None
    model_path: str
    calibrated: bool
    mc_samples: int
    timings: dict[str, float] = field(default_factory=dict)
    min_reliable_r: float = -1.0
    trained_on: list[str] = field(default_factory=list)
    """The corpora the model's scores were learned from (the bundle's record; [] = unknown)."""
    domain_widening: np.ndarray = field(default_factory=lambda: np.ones(dims.N_DIMS))
    domain: DomainCheck = field(default_factory=DomainCheck)
    notes: NoteCheck | None = None
    """The notes against the score (``--score`` with a transcriber), else None."""
    heard: Heard | None = None
    """What the model heard where (the bundle's teacher row head), else None."""

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
    domain_widening: DomainWidening | None = None,
    transcriber: str | None = "basic-pitch",
    device: str = "cpu",
) -> Analysis:
    """Analyse one recording end to end.

    Args:
        path: audio file (wav, flac, ogg, mp3; any rate and channel count).
        bundle: the model (:func:`crescendai.tutor.bundle.load_bundle`, or a test bundle).
        score_path: optional MIDI score; bars are then the score's (aligned by DTW).
        meter: "3/4" etc.; overrides the score's time signature; used for beat-tracked bars.
        tempo_hint: beats per minute to seed beat tracking.
        params: :class:`crescendai.core.config.TutorParams` (defaults when None).
        progress: called with seconds of audio analysed.
        domain_widening: widening of the model error for this recording (:data:`DomainWidening`;
            None: the domain check's, or none without one). It widens the overall uncertainty and
            lowers feedback confidence.
        transcriber: with a score, the transcriber whose notes are checked against it bar by bar
            (:data:`crescendai.tutor.transcribe.TRANSCRIBERS` or ``"auto"``; None: no note check).
        device: torch device of the transcriber (transkun).

    Raises:
        AudioError: unusable audio. ScoreError: unusable or non-matching score. MeterError: bad
            ``meter``. TranscriberError: the transcriber is unknown or not installed (checked before
            any work).
    """
    p = params or TutorParams()
    m = bars_mod.parse_meter(meter) if meter else None
    score = bars_mod.read_score(score_path, m) if score_path else None  # fail fast on a bad score
    with_notes = score is not None and transcriber is not None
    if with_notes:
        from crescendai.tutor.transcribe import require, resolve

        transcriber = require(resolve(transcriber, device))  # before any work: names it, how to install
    t0 = time.perf_counter()
    feats = read_recording(path, chroma=score is not None, min_duration_sec=p.min_duration_sec,
                           keep_audio=with_notes)
    t1 = time.perf_counter()
    series = analyze_windows_of_file(
        feats, bundle.scorer, bundle.calibration, hop_sec=p.hop_sec, mc_samples=p.mc_samples,
        batch_size=p.batch_size, progress=progress, domain=bundle.domain,
    )
    t2 = time.perf_counter()
    mark_quiet(series, feats.level_db)
    if score is not None:
        grid = bars_mod.align_to_score(feats, score, path=score_path, min_match=p.min_score_match)
    else:
        grid = bars_mod.bars_from_beats(feats, m or bars_mod.Meter(), tempo_hint)
    t3 = time.perf_counter()
    notes = None
    if with_notes and grid.warp is not None:
        notes = note_check(feats, score, grid, transcriber, device)
        if notes.reliable and notes.warp is not None:  # the notes place bar lines better than chroma
            grid = bars_mod.remap_bars(grid, score, notes.warp, feats.duration_sec)
    t3n = time.perf_counter()
    if len(grid):
        units = fb.Units(grid.numbers, grid.start_sec, grid.end_sec, "bar", grid.approximate)
    else:
        units = fb.time_units(series.duration_sec)
    check = domain_check(series, units)
    if domain_widening is None and check.verdict is not None:
        domain_widening = check.verdict.widening
    widen = _widening(domain_widening, feats, series)
    pooled = pool(series, p.trim, bundle.calibration.error, bundle.calibration.r, widen)
    judged = judged_dims(pooled.validation_r, p.min_reliable_r)
    u_scores, _ = per_bar(series, units.start_sec, units.end_sec, series.scores)
    u_std, _ = per_bar(series, units.start_sec, units.end_sec, series.std)
    lines: list[fb.Line] = []
    strengths: list[int] = []
    weaknesses: list[int] = []
    if check.advice:  # a recording far from the training data gets no advice at all
        near = np.where(check.far_units[:, None], np.nan, u_scores)  # far-out units: no line
        spans = fb.find_spans(near, u_std, pooled.median, rel_margin=p.rel_margin,
                              min_confidence=p.min_confidence, judged=judged,
                              model_error=bundle.calibration.error, domain_widening=widen)
        lines = fb.merge_spans(spans, p.max_lines)
        strengths, weaknesses = fb.overall_notes(pooled.median, margin=p.rel_margin, judged=judged,
                                                 uncertainty=pooled.uncertainty)
    t4 = time.perf_counter()
    add_saliency(feats, series, bundle.scorer, saliency_targets(series, lines, units, pooled.median),
                 batch_size=SALIENCY_BATCH)
    t5 = time.perf_counter()
    _release_free_memory()
    return Analysis(
        path=str(path), series=series, pooled=pooled, grid=grid, units=units, unit_scores=u_scores,
        unit_std=u_std, lines=lines, strengths=strengths, weaknesses=weaknesses,
        score_path=None if score_path is None else str(score_path), model_path=bundle.path,
        calibrated=not isinstance(bundle.calibration, IdentityCalibration), mc_samples=p.mc_samples,
        min_reliable_r=p.min_reliable_r, domain_widening=widen, domain=check, trained_on=list(bundle.trained_on),
        notes=notes,
        heard=None if series.heard is None else heard_timeline(
            series.start_sec, series.heard, series.valid, series.duration_sec, bundle.heard_quality),
        timings={"features_sec": t1 - t0, "scoring_sec": t2 - t1, "bars_sec": t3 - t2,
                 "notes_sec": t3n - t3, "feedback_sec": t4 - t3n, "saliency_sec": t5 - t4},
    )


def note_check(feats: FrameFeatures, score: bars_mod.Score, grid: bars_mod.BarGrid,
               transcriber: str, device: str = "cpu") -> NoteCheck:
    """Transcribe the recording (its one decode, ``feats.audio``) and check the notes against the
    score bar by bar (:func:`crescendai.tutor.note_check.check_notes`)."""
    from crescendai.core.audio import SAMPLE_RATE
    from crescendai.tutor import note_check as nc
    from crescendai.tutor.transcribe import Notes, transcribe

    if feats.audio is None or grid.warp is None:
        raise ValueError("note_check needs read_recording(..., keep_audio=True) and a score alignment")
    played = transcribe(feats.audio, SAMPLE_RATE, transcriber, device=device)
    written = Notes.from_midi_rows(score.notes)
    quarters = score.meter.numerator * 4.0 / score.meter.denominator
    return nc.check_notes(written, score.bar_sec, quarters, played, grid.warp, feats.duration_sec,
                          transcriber)


def domain_check(series: WindowSeries, units: fb.Units) -> DomainCheck:
    """The recording's :class:`DomainCheck` from its windows' percentiles (valid windows; all when
    none is valid); an unchecked one when the series carries none."""
    if series.domain_pct is None or series.domain_ratio is None:
        return DomainCheck(None, np.zeros(len(units), bool))
    keep = series.valid if series.valid.any() else np.ones(len(series), bool)
    verdict = recording_verdict(series.domain_pct[keep], series.domain_ratio[keep])
    far = (series.domain_pct >= FAR_PERCENTILE).astype(np.float64)  # (N,)
    share, _ = per_bar(series, units.start_sec, units.end_sec, far)  # (U,), NaN: no valid window
    return DomainCheck(verdict, np.nan_to_num(share, nan=0.0) >= 0.5)


def _widening(w: DomainWidening | None, feats: FrameFeatures, series: WindowSeries) -> np.ndarray:
    """[19] the domain widening factor (>= 1) for this recording; ones when ``w`` is None."""
    if w is None:
        return np.ones(dims.N_DIMS)
    value = w(feats, series) if callable(w) else w
    out = np.broadcast_to(np.asarray(value, float), (dims.N_DIMS,)).copy()
    if not np.all(np.isfinite(out)):
        raise ValueError(f"domain widening must be finite, got {value!r}")
    return np.maximum(out, 1.0)


def _release_free_memory() -> None:
    """Hand the C heap's free pages back to the OS (glibc ``malloc_trim``; a no-op elsewhere).

    The analysis's transient buffers (STFT blocks, activations) are freed by then but glibc keeps
    tens of MB of them in its heap; the report's plots would otherwise raise the peak on top of it.
    """
    import ctypes
    import ctypes.util

    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass
