"""Bar-level feedback: where each dimension is worst, merged into readable, actionable lines.

Pure functions over per-unit arrays (a unit is a bar, or a time slice when no bars were found):

1. :func:`find_spans` — per problem dimension (``dims.problem_pole`` set), units whose calibrated
   score is worse than the performance's own median by at least ``rel_margin`` (relative to the rest)
   AND at or past the scale's middle rating 4/7 on the problem side (relative to the calibrated
   scale). Consecutive flagged units form a span (a single unflagged unit between two flagged ones is
   bridged). A span is kept only when its confidence ≥ ``min_confidence`` (below).
2. :func:`merge_spans` — spans of different dimensions that overlap (≥ half of the shorter) become
   one line; the ``max_lines`` most severe lines are kept, in bar order.
3. :func:`line_text` — "bars 14–18: timing stability (unstable) and touch (hard / solid) need
   work", subjective dimensions worded cautiously, plus the dimensions' practice advice.

Bar labels come only from the units given, so feedback never names a bar outside the recording.

**Confidence of a span** (:func:`span_confidence`): ``min(Φ(Δ / σ), 0.99)``, where ``Δ`` is the
smaller of the two margins (label units) and

    σ = √(σ_mc² + (w · e_d)²)

- ``σ_mc``: the span's RMS MC-dropout std (calibrated): how unsure the network is about *these*
  windows;
- ``e_d``: the model's known error on dimension ``d`` — the cross-fitted out-of-fold RMSE on
  performers it never saw, stored by the calibrate stage (``calibration.json``, per dimension
  ``error``). The whole of it is counted: a span's margin is a difference between scores of one
  recording, and part of the error is shared with the rest of the recording and would cancel, but
  how much is not measured, so none is assumed to. Where the bundle has no validation record,
  ``e_d`` is :data:`UNKNOWN_MODEL_ERROR` (one rating point) rather than zero — an unvalidated model
  must not sound certain;
- ``w`` >= 1: the **domain widening** of the model error for this recording (default 1, none) —
  the hook for a widening from the recording's distance to the training data
  (``analysis.analyze_file(domain_widening=…)``).

So MC dropout alone, which is small for a confident but wrong network, can no longer make a line
sound certain: a weak model (large ``e_d``) gives no confident line, and ``Φ`` reaches 0.99 only
when ``Δ ≥ 2.33 σ``. The stated confidence never exceeds :data:`MAX_CONFIDENCE` (0.99): a Gaussian
tail beyond that is more than an RMSE measured on a few dozen validation segments can support.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from crescendai.core import dims

NEUTRAL: float = 4.0 / 7.0
"""The middle rating (4 of 7) on the label scale."""
UNKNOWN_MODEL_ERROR: float = 1.0 / 7.0
"""Model error assumed for a dimension without a validation record: one rating point (label units;
the calibrated tutor's out-of-fold RMSEs are 0.08–0.25)."""
MAX_CONFIDENCE: float = 0.99
"""The highest confidence a line states."""


@dataclass(frozen=True)
class Units:
    """The units feedback talks about.

    Attributes:
        labels: [U] int bar numbers (``kind == "bar"``) or unit indices (``kind == "time"``).
        start_sec, end_sec: [U] spans in recording seconds.
        kind: ``"bar"`` or ``"time"``.
        approximate: bars from beat tracking (worded "around bars …").
    """

    labels: np.ndarray
    start_sec: np.ndarray
    end_sec: np.ndarray
    kind: str = "bar"
    approximate: bool = False

    def __len__(self) -> int:
        return int(self.labels.shape[0])


def time_units(duration_sec: float, step_sec: float = 3.0) -> Units:
    """Consecutive time slices of ``step_sec`` covering [0, duration] (when no bars are known)."""
    n = max(1, math.ceil(duration_sec / step_sec - 1e-9))
    starts = np.arange(n) * step_sec
    return Units(np.arange(n), starts, np.minimum(starts + step_sec, duration_sec), "time", True)


@dataclass(frozen=True)
class Span:
    """A run of units ``[first, last]`` (indices into the units) where dimension ``dim`` is worst."""

    dim: int
    first: int
    last: int
    severity: float
    """Mean excess badness over the performance's median, in label units (1/7 = one rating point)."""
    level: float
    """Mean calibrated score in the span, label scale."""
    confidence: float
    sigma: float = float("nan")
    """The σ of the confidence: MC spread and model error combined (label units)."""


@dataclass(frozen=True)
class Line:
    """One feedback line: a unit range and the dimensions that need work there."""

    first: int
    last: int
    spans: tuple[Span, ...]
    severity: float
    confidence: float
    dims: tuple[int, ...] = field(default=())


def _phi(x: float) -> float:
    return 0.5 * (1.0 + math.erf(x / math.sqrt(2.0)))


def _runs(flag: np.ndarray) -> list[tuple[int, int]]:
    """Inclusive index runs of True in ``flag``, bridging single False gaps between Trues."""
    f = flag.copy()
    for i in range(1, len(f) - 1):
        if not f[i] and f[i - 1] and f[i + 1]:
            f[i] = True
    runs, start = [], None
    for i, v in enumerate(f):
        if v and start is None:
            start = i
        elif not v and start is not None:
            runs.append((start, i - 1))
            start = None
    if start is not None:
        runs.append((start, len(f) - 1))
    return runs


def model_error_per_dim(model_error: np.ndarray | None) -> np.ndarray:
    """[19] the model error ``e_d`` the confidence uses: the validation record where it is finite,
    :data:`UNKNOWN_MODEL_ERROR` elsewhere (all of it when ``model_error`` is None)."""
    if model_error is None:
        return np.full(dims.N_DIMS, UNKNOWN_MODEL_ERROR)
    e = np.asarray(model_error, float)
    return np.where(np.isfinite(e) & (e >= 0), e, UNKNOWN_MODEL_ERROR)


def span_confidence(delta: float, mc_sigma: float, model_error: float, widening: float = 1.0
                    ) -> tuple[float, float]:
    """(confidence, σ) of a margin ``delta`` (label units): ``min(Φ(Δ/σ), MAX_CONFIDENCE)`` with
    ``σ = √(mc_sigma² + (widening · model_error)²)`` (module docstring); 0 when ``delta <= 0``."""
    sigma = math.hypot(mc_sigma, max(1.0, widening) * model_error)
    if delta <= 0:
        return 0.0, sigma
    conf = 1.0 if sigma <= 1e-12 else _phi(delta / sigma)
    return min(conf, MAX_CONFIDENCE), sigma


def find_spans(
    unit_scores: np.ndarray,
    unit_std: np.ndarray,
    baseline: np.ndarray,
    *,
    rel_margin: float = 0.07,
    min_confidence: float = 0.8,
    judged: np.ndarray | None = None,
    model_error: np.ndarray | None = None,
    domain_widening: float | np.ndarray = 1.0,
) -> list[Span]:
    """Spans of units where a problem dimension is worst (see module docstring).

    Args:
        unit_scores: [U, 19] calibrated scores per unit (NaN where the unit has no valid window).
        unit_std: [U, 19] calibrated MC-dropout std per unit.
        baseline: [19] the performance's pooled (median) scores.
        rel_margin: minimum excess over the baseline, label units (0.07 ≈ half a rating point).
        min_confidence: minimum confidence in [0, 1] (:func:`span_confidence`).
        judged: [19] bool, the dimensions the model can judge (None: all).
        model_error: [19] the model's out-of-fold RMSE per dimension, label units (the
            calibration's ``error``); None or NaN: :data:`UNKNOWN_MODEL_ERROR`.
        domain_widening: factor >= 1 (scalar or [19]) on the model error for this recording,
            e.g. from its distance to the training data; 1 = none.

    Returns:
        Spans sorted by descending severity.
    """
    s = np.asarray(unit_scores, float)
    sd = np.nan_to_num(np.asarray(unit_std, float), nan=0.0)
    err = model_error_per_dim(model_error)
    widen = np.broadcast_to(np.asarray(domain_widening, float), (dims.N_DIMS,))
    out: list[Span] = []
    for d in dims.DIMENSIONS:
        direction = dims.problem_direction(d)
        if direction == 0 or (judged is not None and not judged[d.index]):
            continue
        col = s[:, d.index]
        bad = direction * (col - NEUTRAL)  # > 0: on the problem side of the middle rating
        base = direction * (float(baseline[d.index]) - NEUTRAL)
        ok = np.isfinite(bad)
        flag = ok & (np.nan_to_num(bad - base, nan=-1) >= rel_margin) & (np.nan_to_num(bad, nan=-1) >= 0)
        for a, b in _runs(flag):
            sel = np.arange(a, b + 1)
            sel = sel[ok[sel]]
            if sel.size == 0:
                continue
            mb = float(bad[sel].mean())
            delta = min(mb - base, mb)
            mc = float(np.sqrt(np.mean(sd[sel, d.index] ** 2)))
            conf, sigma = span_confidence(delta, mc, float(err[d.index]), float(widen[d.index]))
            if delta <= 0 or conf < min_confidence:
                continue
            out.append(Span(d.index, a, b, severity=mb - base, level=float(col[sel].mean()),
                            confidence=conf, sigma=sigma))
    return sorted(out, key=lambda sp: -sp.severity)


def merge_spans(spans: list[Span], max_lines: int = 6) -> list[Line]:
    """Merge overlapping spans of different dimensions into lines; keep the ``max_lines`` most
    severe lines, returned in unit order. A dimension appears at most once per line, and a span
    inside a line that already names its dimension adds nothing (it is dropped)."""
    groups: list[list[Span]] = []
    for sp in sorted(spans, key=lambda x: -x.severity):
        if any(x.dim == sp.dim and min(y.first for y in g) <= sp.first and sp.last <= max(y.last for y in g)
               for g in groups for x in g):
            continue
        for g in groups:
            lo, hi = min(x.first for x in g), max(x.last for x in g)
            overlap = min(hi, sp.last) - max(lo, sp.first) + 1
            shorter = min(hi - lo + 1, sp.last - sp.first + 1)
            if overlap >= max(1, shorter / 2) and all(x.dim != sp.dim for x in g):
                g.append(sp)
                break
        else:
            groups.append([sp])
    lines = [
        Line(first=min(x.first for x in g), last=max(x.last for x in g), spans=tuple(g),
             severity=max(x.severity for x in g), confidence=min(x.confidence for x in g),
             dims=tuple(x.dim for x in g))
        for g in groups
    ]
    lines = sorted(lines, key=lambda ln: -ln.severity)[:max_lines]
    return sorted(lines, key=lambda ln: (ln.first, ln.last))


def _join(words: list[str]) -> str:
    if len(words) <= 1:
        return "".join(words)
    return ", ".join(words[:-1]) + " and " + words[-1]


def _fmt_time(sec: float) -> str:
    return f"{int(sec // 60)}:{int(round(sec % 60)):02d}" if sec % 60 < 59.5 else f"{int(sec // 60) + 1}:00"


def where(units: Units, first: int, last: int) -> str:
    """"bars 14–18" / "bar 3" / "around bars 14–18" / "0:14–0:20"."""
    if units.kind == "time":
        return f"{_fmt_time(float(units.start_sec[first]))}–{_fmt_time(float(units.end_sec[last]))}"
    core = bar_span(int(units.labels[first]), int(units.labels[last]))
    return f"around {core}" if units.approximate else core


def bar_span(first: int, last: int) -> str:
    """"bar 3" / "bars 14–18"."""
    return f"bar {first}" if first == last else f"bars {first}–{last}"


def _pole(d: dims.Dimension) -> str:
    return d.high if d.problem_pole == "high" else d.low


def line_text(line: Line, units: Units) -> tuple[str, list[str]]:
    """The sentence of a line and its practice suggestions (one per dimension, in order).

    Objective dimensions "need work"; subjective ones (``dims.subjective``) are worded as a
    possibility for the player to judge.
    """
    ds = [dims.DIMENSIONS[i] for i in line.dims]
    obj = [d for d in ds if not d.subjective]
    subj = [d for d in ds if d.subjective]
    parts = []
    if obj:
        verb = "needs" if len(obj) == 1 else "need"
        parts.append(f"{_join([f'{d.name} ({_pole(d)})' for d in obj])} {verb} work")
    if subj:
        phr = _join([f"the {d.name} may come across as {_pole(d)}" for d in subj])
        parts.append(("and " if obj else "") + phr + " here (a matter of taste: trust your ear)")
    text = f"{where(units, line.first, line.last)}: " + "; ".join(parts) + "."
    return text, [d.advice for d in ds]


def overall_notes(pooled_median: np.ndarray, *, margin: float = 0.07, top: int = 2,
                  judged: np.ndarray | None = None, uncertainty: np.ndarray | None = None
                  ) -> tuple[list[int], list[int]]:
    """(strengths, weaknesses): up to ``top`` problem dimensions whose whole-performance median is
    at least ``margin`` — and at least its ``uncertainty`` [19], when given — on the good (resp.
    problem) side of the middle rating; only ``judged`` dimensions ([19] bool, None: all)."""
    good, bad = [], []
    for d in dims.DIMENSIONS:
        direction = dims.problem_direction(d)
        if direction == 0 or d.subjective or (judged is not None and not judged[d.index]):
            continue
        b = direction * (float(pooled_median[d.index]) - NEUTRAL)
        need = margin if uncertainty is None else max(margin, float(uncertainty[d.index]))
        if b >= need:
            bad.append((b, d.index))
        elif b <= -need:
            good.append((-b, d.index))
    return ([i for _, i in sorted(good, reverse=True)[:top]],
            [i for _, i in sorted(bad, reverse=True)[:top]])
