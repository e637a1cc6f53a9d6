"""``report.json``: the versioned, self-describing record of one analysis.

Schema ``crescendai.tutor.report`` version :data:`SCHEMA_VERSION` (bump on any incompatible change)::

    {
      "schema": "crescendai.tutor.report", "schema_version": 2, "crescendai_version": str, "created": ISO-8601,
      "input":  {"path": str, "duration_sec": float, "score": str | null},
      "model":  {"path": str, "calibrated": bool, "mc_samples": int, "hop_sec": float,
                 "min_reliable_r": float (dimensions below it are not judged),
                 "trained_on": [str] (the corpora its scores were learned from; [] = not recorded)},
      "dimensions": [{"index", "key", "name", "low", "high", "problem_pole": "low"|"high"|null,
                      "subjective": bool}] × 19,
      "overall": {<key>: {"median", "trimmed_mean", "spread" (IQR),
                          "uncertainty" (√(median MC std² + model_error²)),
                          "model_error" (out-of-fold RMSE after calibration, or null),
                          "validation_r" (out-of-fold Pearson r, or null),
                          "judged" (bool: reliable enough for feedback),
                          "rating" (median × 7, on 1–7), "quantiles": {"q10","q25","q50","q75","q90"}}},
      "bars":   {"source": "score"|"beats"|"none", "approximate": bool, "meter": "3/4",
                 "tempo_bpm": float|null, "match": float|null,
                 "units": "bar"|"time",
                 "items": [{"number": int, "start_sec", "end_sec", "scores": [19 floats] | null}]},
      "windows": {"window_sec": float, "start_sec": [N], "valid": [N bool],
                  "scores": [N × 19], "std": [N × 19], "saliency_mel": [N × (16 | null)],
                  "domain_percentile": [N] | null (each window's percentile; null: not checked)},
      "feedback": [{"bars": [first, last] | null, "start_sec", "end_sec", "dims": [keys],
                    "text": str, "advice": [str], "severity",
                    "confidence" (≤ 0.99, rounded down; see crescendai.tutor.feedback), "subjective": bool,
                    "saliency_region": str}],
      "summary": {"strengths": [keys], "weaknesses": [keys]},
      "domain": {"checked": bool (false: the bundle has no domain.npz, no check was made),
                 "level": "in domain"|"unusual"|"far"|null, "percentile": float|null (median window
                 percentile against held-out training windows, 0–1), "distance_ratio": float|null
                 (median window distance / the training reference's 95th-percentile distance),
                 "far_share": float|null (share of windows beyond the 99th percentile),
                 "widening": float (>= 1, the factor applied to the model error),
                 "advice": bool (false: no feedback, strengths or weaknesses are given),
                 "withheld": [str] (passages without advice because they alone are far out),
                 "text": str (the plain-words sentence the text and HTML reports print)},
      "notes":  null (no score, or no transcriber) |
                {"transcriber": str, "reliable": bool (false: too few score notes found, no finding),
                 "recall": float (share of the score's notes found), "precision": float (share of the
                 transcribed notes in the score), "tempo_ratio": float|null (median performed / score
                 tempo), "text": str (the plain-words sentence),
                 "bars": [{"number", "start_sec", "end_sec", "score_notes", "matched", "missing",
                           "extra", "wrong", "missing_low" (of missing + wrong, below middle C),
                           "tempo_qpm": float|null, "score_qpm": float}],
                 "lines": [{"bars": [first, last], "start_sec", "end_sec",
                            "kind": "missing"|"extra"|"wrong"|"tempo", "text": str}]},
      "heard":  null (the bundle has no teacher row head) |
                {"row_sec": float (one cell, ≈ 0.37 s), "start_sec": [M],
                 "onsets": [M] (register bands with a note starting, expected count 0–8),
                 "velocity": [M] (attack velocity, MIDI 1–127; null where nothing is struck),
                 "pedal": [M] (P(sustain pedal down), 0–1), null in cells no window covers,
                 "quality": {name: float} (the head's measures on held-out recordings)},
      "plots": {"timeline": "timeline.png", "overall": "overall.png", "saliency": "saliency.png"},
      "timings": {...seconds}
    }

``windows.saliency_mel[i]`` is window i's gradient × input summed over time per mel cell (low →
high frequency), explaining the dimensions of the feedback line it falls in; null where it was not
computed (saliency is computed only for the reported passages, at most 64 windows).

``domain`` is the domain check (``crescendai.evaluate.domain``): how far the recording lies from the
recordings the model learned from. Version 2 added it and ``windows.domain_percentile``.

``notes`` is the note check against the score (``crescendai.tutor.note_check``) and ``heard`` what the
model heard where (``crescendai.tutor.heard``); version 3 added them.

All scores are calibrated, on PercePiano's label scale [1/7, 1] (rating = label × 7). Floats are
rounded to 4 decimals. ``bars.items`` lie inside [0, duration_sec].
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

import numpy as np

from crescendai.core import dims
from crescendai.core.errors import CrescendAIError

SCHEMA: str = "crescendai.tutor.report"
SCHEMA_VERSION: int = 3
DOMAIN_LEVELS: tuple[str, ...] = ("in domain", "unusual", "far")
MEL_CELL_NAMES = ("bass", "low-mid", "mid", "upper-mid", "treble")


def _r(x: Any, nd: int = 4) -> Any:
    """Round floats (and arrays) to ``nd`` decimals; NaN → None."""
    if isinstance(x, np.ndarray):
        return [_r(v, nd) for v in x.tolist()] if x.ndim else _r(x.item(), nd)
    if isinstance(x, list | tuple):
        return [_r(v, nd) for v in x]
    if isinstance(x, float | np.floating):
        return None if not np.isfinite(x) else round(float(x), nd)
    return x


def mel_cell_hz(cell: int) -> tuple[float, float]:
    """Frequency range (Hz) of saliency mel cell ``cell`` (0..15: 8 of the 128 mel bands each)."""
    from crescendai.core.audio import N_MELS
    from crescendai.tutor.frontend import mel_frequencies

    edges = mel_frequencies(N_MELS + 2)  # librosa.mel_frequencies(130, fmax=11025)
    return float(edges[cell * 8]), float(edges[min(N_MELS + 1, cell * 8 + 9)])


def region_name(mel_profile: np.ndarray) -> str:
    """Describe where a [16] mel saliency profile peaks: "bass (60–250 Hz)"-style."""
    prof = np.asarray(mel_profile, float)
    if not np.any(prof > 0):
        return "unavailable"
    c = int(np.argmax(prof))
    lo, hi = mel_cell_hz(c)
    centre = (lo * hi) ** 0.5 if lo > 0 else hi / 2
    band = MEL_CELL_NAMES[int(np.searchsorted([250, 500, 2000, 4000], centre))]
    return f"{band} ({lo:.0f}–{hi:.0f} Hz)"


def build_report(analysis, *, version: str = "0.1.0") -> dict[str, Any]:
    """Turn a :class:`crescendai.tutor.analysis.Analysis` into the JSON-ready dict described above."""
    from crescendai.core.audio import WINDOW_SEC
    from crescendai.tutor import feedback as fb

    a = analysis
    s = a.series
    pooled = a.pooled
    qnames = ("q10", "q25", "q50", "q75", "q90")
    overall = {
        d.key: {
            "median": _r(pooled.median[d.index]),
            "trimmed_mean": _r(pooled.trimmed_mean[d.index]),
            "spread": _r(pooled.spread[d.index]),
            "uncertainty": _r(pooled.uncertainty[d.index]),
            "model_error": None if pooled.model_error is None else _r(pooled.model_error[d.index]),
            "validation_r": None if pooled.validation_r is None else _r(pooled.validation_r[d.index]),
            "judged": bool(a.judged[d.index]),
            "rating": _r(pooled.median[d.index] * 7, 2),
            "quantiles": {q: _r(pooled.quantiles[i, d.index]) for i, q in enumerate(qnames)},
        }
        for d in dims.DIMENSIONS
    }
    units = a.units
    items = [
        {"number": int(units.labels[i]), "start_sec": _r(units.start_sec[i], 3),
         "end_sec": _r(units.end_sec[i], 3),
         "scores": None if not np.all(np.isfinite(a.unit_scores[i])) else _r(a.unit_scores[i])}
        for i in range(len(units))
    ]
    sal_mel = s.saliency.astype(np.float32).sum(axis=1)  # (N, 16): over time cells
    feedback = []
    for line in a.lines:
        text, advice = fb.line_text(line, units)
        lo, hi = float(units.start_sec[line.first]), float(units.end_sec[line.last])
        inside = s.saliency_done & (s.start_sec + WINDOW_SEC > lo) & (s.start_sec < hi)
        prof = sal_mel[inside].mean(axis=0) if inside.any() else np.zeros(16)
        feedback.append({
            "bars": [int(units.labels[line.first]), int(units.labels[line.last])] if units.kind == "bar" else None,
            "start_sec": _r(lo, 3), "end_sec": _r(hi, 3),
            "dims": [dims.DIMENSIONS[i].key for i in line.dims],
            "text": text, "advice": advice,
            "severity": _r(line.severity),
            "confidence": math.floor(float(line.confidence) * 1000 + 1e-9) / 1000,  # never rounded up
            "subjective": all(dims.DIMENSIONS[i].subjective for i in line.dims),
            "saliency_region": region_name(prof),
        })
    g = a.grid
    dpct = s.domain_pct
    return {
        "schema": SCHEMA,
        "schema_version": SCHEMA_VERSION,
        "crescendai_version": version,
        "created": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "input": {"path": a.path, "duration_sec": _r(s.duration_sec, 3), "score": a.score_path},
        "model": {"path": a.model_path, "calibrated": a.calibrated, "mc_samples": a.mc_samples,
                  "hop_sec": s.hop_sec, "min_reliable_r": a.min_reliable_r, "trained_on": list(a.trained_on)},
        "dimensions": [
            {"index": d.index, "key": d.key, "name": d.name, "low": d.low, "high": d.high,
             "problem_pole": d.problem_pole, "subjective": d.subjective}
            for d in dims.DIMENSIONS
        ],
        "overall": overall,
        "bars": {
            "source": g.source, "approximate": bool(units.approximate), "meter": str(g.meter),
            "tempo_bpm": _r(g.tempo_bpm, 1) if g.tempo_bpm else None,
            "match": _r(g.match, 3) if g.match is not None else None,
            "units": units.kind, "items": items,
        },
        "windows": {
            "window_sec": _r(WINDOW_SEC), "start_sec": _r(s.start_sec, 3),
            "valid": [bool(v) for v in s.valid], "scores": _r(s.scores), "std": _r(s.std),
            "saliency_mel": [_r(row, 3) if done else None
                             for row, done in zip(sal_mel, s.saliency_done, strict=True)],
            "domain_percentile": None if dpct is None else _r(dpct),
        },
        "feedback": feedback,
        "summary": {"strengths": [dims.DIMENSIONS[i].key for i in a.strengths],
                    "weaknesses": [dims.DIMENSIONS[i].key for i in a.weaknesses]},
        "domain": domain_section(a),
        "notes": notes_section(a.notes),
        "heard": heard_section(a.heard),
        "plots": {},
        "timings": {k: _r(v, 3) for k, v in a.timings.items()},
    }


def domain_section(a) -> dict[str, Any]:
    """The report's ``domain`` entry of an analysis (schema above)."""
    from crescendai.tutor import feedback as fb
    from crescendai.tutor.report.text import domain_phrase

    v = a.domain.verdict
    far = np.asarray(a.domain.far_units, bool)
    withheld = []
    if a.domain.advice and far.any():  # runs of far-out units
        edges = np.flatnonzero(np.diff(np.concatenate([[0], far.astype(int), [0]])))
        withheld = [fb.where(a.units, int(i), int(j) - 1) for i, j in zip(edges[::2], edges[1::2], strict=True)]
    out: dict[str, Any] = {
        "checked": v is not None,
        "level": None if v is None else v.level,
        "percentile": None if v is None else _r(v.percentile),
        "distance_ratio": None if v is None else _r(v.ratio, 3),
        "far_share": None if v is None else _r(v.far_share, 3),
        "widening": _r(float(np.max(a.domain_widening)), 3),
        "advice": bool(a.domain.advice),
        "withheld": withheld,
    }
    out["text"] = domain_phrase(out)
    return out


def heard_section(heard) -> dict[str, Any] | None:
    """The report's ``heard`` entry of a :class:`crescendai.tutor.heard.Heard` (or None)."""
    if heard is None:
        return None
    from crescendai.tutor.heard import ROW_SEC

    return {"row_sec": _r(ROW_SEC), "start_sec": _r(heard.start_sec, 3), "onsets": _r(heard.onsets, 3),
            "velocity": _r(heard.velocity, 1), "pedal": _r(heard.pedal, 3),
            "quality": {k: _r(float(v), 3) for k, v in heard.quality.items() if isinstance(v, int | float)}}


def notes_section(check) -> dict[str, Any] | None:
    """The report's ``notes`` entry of a :class:`crescendai.tutor.note_check.NoteCheck` (or None)."""
    if check is None:
        return None
    return {
        "transcriber": check.transcriber, "reliable": bool(check.reliable),
        "recall": _r(check.recall, 3), "precision": _r(check.precision, 3),
        "tempo_ratio": None if check.median_ratio is None else _r(check.median_ratio, 3),
        "text": check.text,
        "bars": [{"number": b.number, "start_sec": _r(b.start_sec, 3), "end_sec": _r(b.end_sec, 3),
                  "score_notes": b.score_notes, "matched": b.matched, "missing": b.missing,
                  "extra": b.extra, "wrong": b.wrong, "missing_low": b.missing_low,
                  "tempo_qpm": None if b.tempo_qpm is None else _r(b.tempo_qpm, 1),
                  "score_qpm": _r(b.score_qpm, 1)} for b in check.bars],
        "lines": [{"bars": list(f.bars), "start_sec": _r(f.start_sec, 3), "end_sec": _r(f.end_sec, 3),
                   "kind": f.kind, "text": f.text} for f in check.findings],
    }


class SchemaError(CrescendAIError):
    """A report dict does not follow the schema; the message names the key."""


_TOP = {"schema": str, "schema_version": int, "crescendai_version": str, "created": str,
        "input": dict, "model": dict, "dimensions": list, "overall": dict, "bars": dict,
        "windows": dict, "feedback": list, "summary": dict, "domain": dict, "plots": dict, "timings": dict}


def validate_report(rep: dict[str, Any]) -> None:
    """Check a report against the schema (types, sizes, ranges); raise :class:`SchemaError`."""
    for k, t in _TOP.items():
        if not isinstance(rep.get(k), t):
            raise SchemaError(f"report.{k}: expected {t.__name__}, got {type(rep.get(k)).__name__}")
    if rep["schema"] != SCHEMA or rep["schema_version"] != SCHEMA_VERSION:
        raise SchemaError(f"report.schema: expected {SCHEMA} v{SCHEMA_VERSION}")
    if [d["key"] for d in rep["dimensions"]] != list(dims.KEYS):
        raise SchemaError("report.dimensions: keys must be the 19 dims in PercePiano order")
    if set(rep["overall"]) != set(dims.KEYS):
        raise SchemaError("report.overall: one entry per dimension key")
    for k, v in rep["overall"].items():
        for f in ("median", "trimmed_mean", "spread", "uncertainty", "rating", "quantiles"):
            if f not in v:
                raise SchemaError(f"report.overall.{k}.{f}: missing")
        if not 0.0 <= v["median"] <= 1.0:
            raise SchemaError(f"report.overall.{k}.median: {v['median']} outside [0, 1]")
    dur = rep["input"]["duration_sec"]
    b = rep["bars"]
    if b["source"] not in ("score", "beats", "none") or b["units"] not in ("bar", "time"):
        raise SchemaError(f"report.bars: bad source/units {b['source']}/{b['units']}")
    for i, it in enumerate(b["items"]):
        if not (0 <= it["start_sec"] < it["end_sec"] <= dur + 1e-3):
            raise SchemaError(f"report.bars.items[{i}]: span {it['start_sec']}–{it['end_sec']} "
                              f"outside the recording (0–{dur})")
        if it["scores"] is not None and len(it["scores"]) != 19:
            raise SchemaError(f"report.bars.items[{i}].scores: expected 19 values")
    w = rep["windows"]
    n = len(w["start_sec"])
    for f in ("valid", "scores", "std", "saliency_mel"):
        if len(w[f]) != n:
            raise SchemaError(f"report.windows.{f}: {len(w[f])} rows, expected {n}")
    if w.get("domain_percentile") is not None and len(w["domain_percentile"]) != n:
        raise SchemaError(f"report.windows.domain_percentile: {len(w['domain_percentile'])} rows, expected {n}")
    dom = rep["domain"]
    for f in ("checked", "level", "percentile", "widening", "advice", "withheld", "text"):
        if f not in dom:
            raise SchemaError(f"report.domain.{f}: missing")
    if dom["checked"] != (dom["level"] in DOMAIN_LEVELS):
        raise SchemaError(f"report.domain.level: {dom['level']!r} with checked={dom['checked']}")
    if not dom["advice"] and (rep["feedback"] or rep["summary"]["strengths"] or rep["summary"]["weaknesses"]):
        raise SchemaError("report.domain.advice is false but the report gives feedback or a summary")
    numbers = {it["number"] for it in b["items"]}
    for i, fbk in enumerate(rep["feedback"]):
        for f in ("bars", "start_sec", "end_sec", "dims", "text", "advice", "severity", "confidence"):
            if f not in fbk:
                raise SchemaError(f"report.feedback[{i}].{f}: missing")
        if fbk["bars"] is not None and not set(fbk["bars"]) <= numbers:
            raise SchemaError(f"report.feedback[{i}].bars: {fbk['bars']} not bars of the recording")
        if not 0 <= fbk["start_sec"] < fbk["end_sec"] <= dur + 1e-3:
            raise SchemaError(f"report.feedback[{i}]: span outside the recording")
    _validate_notes(rep.get("notes"), dur)
    heard = rep.get("heard")
    if heard is not None:
        m = len(heard["start_sec"])
        for f in ("onsets", "velocity", "pedal"):
            if len(heard[f]) != m:
                raise SchemaError(f"report.heard.{f}: {len(heard[f])} cells, expected {m}")


def _validate_notes(notes: dict[str, Any] | None, dur: float) -> None:
    """Check the report's ``notes`` entry (None is valid: no note check was made)."""
    from crescendai.tutor.note_check import KINDS

    if notes is None:
        return
    if not isinstance(notes, dict):
        raise SchemaError(f"report.notes: expected dict or null, got {type(notes).__name__}")
    for f in ("transcriber", "reliable", "recall", "precision", "text", "bars", "lines"):
        if f not in notes:
            raise SchemaError(f"report.notes.{f}: missing")
    if not notes["reliable"] and notes["lines"]:
        raise SchemaError("report.notes: an unreliable transcription must give no line")
    for i, line in enumerate(notes["lines"]):
        if line.get("kind") not in KINDS:
            raise SchemaError(f"report.notes.lines[{i}].kind: {line.get('kind')!r} not one of {KINDS}")
        if not 0 <= line["start_sec"] <= line["end_sec"] <= dur + 1e-3:
            raise SchemaError(f"report.notes.lines[{i}]: span outside the recording")
