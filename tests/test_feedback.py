"""Feedback span logic on per-bar scores that encode known faults (pure functions, no model)."""

from __future__ import annotations

import numpy as np
import pytest

from crescendai.core import dims
from crescendai.tutor import feedback as fb

TIMING = dims.by_key("timing").index
TOUCH = dims.by_key("articulation_touch").index
PEDAL = dims.by_key("pedal_clarity").index
INTERP = dims.by_key("interpretation").index
MOOD = dims.by_key("mood_valence").index


def clean(n_bars: int = 24, seed: int = 0) -> np.ndarray:
    """A clean performance: every dimension near its good side with small noise."""
    rng = np.random.default_rng(seed)
    s = np.full((n_bars, 19), 4 / 7) + rng.normal(0, 0.01, (n_bars, 19))
    for d in dims.DIMENSIONS:  # good side of problem dims: 3/7 for "high is bad", 5/7 for "low is bad"
        s[:, d.index] -= dims.problem_direction(d) * 1 / 7
    return s


def units(n: int, first_bar: int = 1, approximate: bool = False) -> fb.Units:
    starts = np.arange(n) * 2.0
    return fb.Units(np.arange(first_bar, first_bar + n), starts, starts + 2.0, "bar", approximate)


def test_timing_fault_is_found_at_its_bars():
    s = clean()
    s[13:18, TIMING] = 5.5 / 7  # bars 14–18 (index 13..17): unstable timing
    spans = fb.find_spans(s, np.full_like(s, 0.02), np.median(s, axis=0))
    assert [(sp.dim, sp.first, sp.last) for sp in spans] == [(TIMING, 13, 17)]
    (line,) = fb.merge_spans(spans)
    text, advice = fb.line_text(line, units(len(s)))
    assert text.startswith("bars 14–18: timing stability (unstable) needs work")
    assert "metronome" in advice[0]


def test_overlapping_faults_merge_into_one_line_and_separate_ones_do_not():
    s = clean()
    s[13:18, TIMING] = 5.5 / 7
    s[14:18, TOUCH] = 5.3 / 7
    s[2:4, PEDAL] = 5.8 / 7  # a separate pedal fault, bars 3–4
    lines = fb.merge_spans(fb.find_spans(s, np.full_like(s, 0.02), np.median(s, axis=0)))
    texts = [fb.line_text(ln, units(len(s)))[0] for ln in lines]
    assert texts[0].startswith("bars 3–4: pedal clarity (blurred) needs work")
    assert texts[1].startswith("bars 14–18: ")
    assert "timing stability (unstable) and touch (hard / solid) need work" in texts[1]


def test_uncertain_fault_is_not_reported():
    s = clean()
    s[13:18, TIMING] = 5.0 / 7
    std = np.full_like(s, 0.02)
    assert fb.find_spans(s, std, np.median(s, axis=0))
    std[13:18, TIMING] = 0.5  # the model is unsure there
    assert not fb.find_spans(s, std, np.median(s, axis=0), min_confidence=0.8)


def test_relative_and_absolute_criteria():
    s = clean()
    s[:, TIMING] = 5.5 / 7  # unstable everywhere: no passage stands out
    assert not [sp for sp in fb.find_spans(s, np.zeros_like(s), np.median(s, axis=0)) if sp.dim == TIMING]
    strengths, weaknesses = fb.overall_notes(np.median(s, axis=0))
    assert TIMING in weaknesses and TIMING not in strengths
    wide = np.full(19, 0.25)  # 1.75 rating points of model error: 5.5 vs the middle 4 is not enough
    assert TIMING not in fb.overall_notes(np.median(s, axis=0), uncertainty=wide)[1]
    judged = np.ones(19, bool)
    judged[TIMING] = False
    assert TIMING not in fb.overall_notes(np.median(s, axis=0), judged=judged)[1]
    assert not [sp for sp in fb.find_spans(s, np.zeros_like(s), np.full(19, 4 / 7), judged=judged)
                if sp.dim == TIMING]
    assert [sp for sp in fb.find_spans(s, np.zeros_like(s), np.full(19, 4 / 7)) if sp.dim == TIMING]
    s = clean()
    s[5:8, TIMING] = 3.6 / 7  # worse than the rest but still on the good side of the scale
    assert not fb.find_spans(s, np.zeros_like(s), np.median(s, axis=0))


def test_subjective_is_cautious_and_character_dims_are_never_faults():
    s = clean()
    s[4:7, INTERP] = 2.0 / 7  # unconvincing interpretation (problem pole: low)
    s[10:14, MOOD] = 6.8 / 7  # a dark mood is character, not a fault
    spans = fb.find_spans(s, np.full_like(s, 0.01), np.median(s, axis=0))
    assert [sp.dim for sp in spans] == [INTERP]
    text, _ = fb.line_text(fb.merge_spans(spans)[0], units(len(s)))
    assert "may come across as unsatisfactory / doubtful" in text and "needs work" not in text


def test_bars_never_outside_the_units_and_approximate_wording():
    s = clean(6)
    s[4:, TIMING] = 6 / 7
    u = units(6, first_bar=0, approximate=True)  # pickup bar 0 … bar 5
    (line,) = fb.merge_spans(fb.find_spans(s, np.zeros_like(s), np.median(s, axis=0)))
    text, _ = fb.line_text(line, u)
    assert text.startswith("around bars 4–5:")
    assert line.last <= len(u) - 1


def test_nan_units_are_skipped_and_time_units():
    s = clean(10)
    s[3:6, TIMING] = 6 / 7
    s[4] = np.nan  # a bar without valid windows (silence)
    spans = fb.find_spans(s, np.zeros_like(s), np.nanmedian(s, axis=0))
    assert spans and spans[0].first == 3 and spans[0].last == 5  # bridged over the gap
    u = fb.time_units(10.0, 3.0)
    assert len(u) == 4 and u.end_sec[-1] == pytest.approx(10.0)
    assert fb.where(u, 1, 2) == "0:03–0:09"


def test_max_lines_keeps_the_most_severe():
    s = clean(30)
    for k, sev in enumerate([5.0, 6.5, 5.5]):
        s[k * 10 + 2: k * 10 + 4, TIMING] = sev / 7
    lines = fb.merge_spans(fb.find_spans(s, np.zeros_like(s), np.median(s, axis=0)), max_lines=2)
    assert [ln.first for ln in lines] == [12, 22]


# ------------------------------------------------------------------------------------------
# honest confidence: MC spread, the model's out-of-fold error, the domain widening
# ------------------------------------------------------------------------------------------


def test_a_weak_model_gives_no_confident_line():
    s = clean()
    s[13:18, TIMING] = 6.0 / 7  # a large fault, two rating points past the middle
    std = np.full_like(s, 0.005)  # MC dropout is sure of itself
    good = fb.find_spans(s, std, np.median(s, axis=0), model_error=np.full(19, 0.05))
    assert [sp.dim for sp in good] == [TIMING] and good[0].confidence > 0.99 - 1e-9
    weak = np.full(19, 0.4)  # out-of-fold RMSE of ~3 rating points: the model is not to be trusted
    assert not fb.find_spans(s, std, np.median(s, axis=0), model_error=weak, min_confidence=0.8)
    # the same dimension's error only: other dimensions keep their (small) error
    err = np.full(19, 0.05)
    err[TIMING] = 0.4
    assert not fb.find_spans(s, std, np.median(s, axis=0), model_error=err, min_confidence=0.8)
    # no validation record at all: one rating point of error is assumed, not zero
    assert fb.model_error_per_dim(None).tolist() == [fb.UNKNOWN_MODEL_ERROR] * 19
    nan = np.full(19, np.nan)
    assert fb.model_error_per_dim(nan).tolist() == [fb.UNKNOWN_MODEL_ERROR] * 19
    (sp,) = fb.find_spans(s, np.zeros_like(s), np.median(s, axis=0))
    assert sp.confidence < fb.MAX_CONFIDENCE and sp.sigma == pytest.approx(fb.UNKNOWN_MODEL_ERROR)


def test_domain_widening_lowers_confidence():
    s = clean()
    s[13:18, TIMING] = 5.5 / 7
    err = np.full(19, 0.08)
    base = np.median(s, axis=0)
    (plain,) = fb.find_spans(s, np.full_like(s, 0.02), base, model_error=err, min_confidence=0.0)
    (wide,) = fb.find_spans(s, np.full_like(s, 0.02), base, model_error=err, min_confidence=0.0,
                            domain_widening=2.0)
    assert wide.confidence < plain.confidence and wide.sigma == pytest.approx(np.hypot(0.02, 0.16))
    w = np.ones(19)
    w[TIMING] = 3.0  # per dimension
    (per_dim,) = fb.find_spans(s, np.full_like(s, 0.02), base, model_error=err, min_confidence=0.0,
                               domain_widening=w)
    assert per_dim.confidence < wide.confidence
    (narrow,) = fb.find_spans(s, np.full_like(s, 0.02), base, model_error=err, min_confidence=0.0,
                              domain_widening=0.5)  # a widening never narrows
    assert narrow.confidence == plain.confidence


def test_confidence_reaches_99_percent_only_on_strong_evidence():
    rng = np.random.default_rng(0)
    for _ in range(2000):
        delta = float(rng.uniform(-0.1, 0.6))
        mc, err, w = (float(v) for v in rng.uniform(0, 0.3, 3))
        conf, sigma = fb.span_confidence(delta, mc, err, 1 + w)
        assert 0.0 <= conf <= fb.MAX_CONFIDENCE
        assert sigma == pytest.approx(np.hypot(mc, (1 + w) * err))
        if conf >= 0.99:
            assert delta >= 2.326 * sigma
    assert fb.span_confidence(0.3, 0.0, 0.0) == (fb.MAX_CONFIDENCE, 0.0)  # never 100 %
    assert fb.span_confidence(-0.1, 0.01, 0.05)[0] == 0.0


def test_stated_confidence_is_rounded_down():
    from crescendai.tutor.report.text import percent

    assert percent(0.987) == "98%" and percent(0.99) == "99%" and percent(0.6) == "60%"


def test_a_span_inside_a_line_that_names_its_dimension_adds_no_line():
    wide = [fb.Span(dim=d, first=0, last=5, severity=0.2, level=0.6, confidence=0.7) for d in (2, 12)]
    inner = fb.Span(dim=12, first=4, last=4, severity=0.1, level=0.6, confidence=0.65)
    outer = fb.Span(dim=12, first=8, last=9, severity=0.1, level=0.6, confidence=0.65)
    lines = fb.merge_spans([*wide, inner, outer])
    assert [(ln.first, ln.last, sorted(ln.dims)) for ln in lines] == [(0, 5, [2, 12]), (8, 9, [12])]
