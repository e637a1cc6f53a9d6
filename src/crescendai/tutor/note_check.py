"""The notes against the score, bar by bar: missing, extra and wrong notes, and the local tempo.

Input: the transcribed notes of the recording (:mod:`crescendai.tutor.transcribe`), the score's
notes and bar lines (:class:`crescendai.tutor.bars.Score`) and the audio-to-score alignment of
:func:`crescendai.tutor.bars.align_to_score` (its ``warp``: score seconds → recording seconds).

**Note-level alignment** (event DTW): the score's and the transcription's notes are grouped into
onset events (chords: onsets within :data:`EVENT_GAP_SEC`), and the two event sequences are aligned
by DTW (``librosa.sequence.dtw``) on the cosine distance of their pitch sets plus a pull towards
the chroma-DTW warp (:data:`TIME_WEIGHT`). Inside each aligned pair of events, notes of the same
pitch are matched (closest pairs first, each note once). The order of the events resolves what a
window of tolerance around the chroma path cannot: a chord repeated a few tenths of a second later
(measured on a rendered chorale: the chroma path strays by 0.6–0.8 s at held chords).

Per score bar: ``missing`` = score notes left unmatched, ``extra`` = transcribed notes whose onset
falls in the bar and that are left unmatched (re-onsets and partials of a sounding score note
excepted, :data:`PARTIALS`: a transcriber's usual false positives), ``wrong`` = an unmatched score
note and an unmatched played note within :data:`FINE_TOL_SEC` of each other and at most 2
semitones apart (counted once, not as missing + extra). The hand is told by register: a score note
below middle C (MIDI 60) is counted as the left hand's.

**Only where the transcription is confident.** A transcriber misses and adds notes everywhere
(Basic Pitch's onset F1 on our renders of real performance MIDI is 0.66, Transkun's 0.94:
``benchmarks/transcription.py``). So a bar is named only when its count stands out from the
recording's own background rate, measured on the other bars: a one-sided binomial test at
:data:`ALPHA` and at least :data:`MIN_COUNT` notes; a score note is not called missing when a
permissive decoding of the same activations has it (``Notes.evidence``, :data:`EVIDENCE_TOL_SEC`);
only the matched range of the score is checked. When fewer than :data:`MIN_RECALL` of the score's
notes are found at all, the transcription is judged unreliable for this recording and no note-level
finding is given (the report says why). The bar lines of the report come from this alignment when
the transcription is reliable (``crescendai.tutor.bars.remap_bars``).

**Local tempo**: per bar, the Theil–Sen slope of the recording's onsets against the score's (matched
notes, >= :data:`MIN_TEMPO_ONSETS` distinct score onsets). A bar is *rushed* (*dragged*) when its
tempo is at least :data:`TEMPO_RATIO` times faster (slower) than the rest of the performance would
have it (the score's tempo there × the performance's median ratio to the score) and the slope's
95 % interval excludes that; tempi are given in quarter notes per minute.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from crescendai.tutor.feedback import bar_span
from crescendai.tutor.transcribe import PIANO_HIGH, PIANO_LOW, Notes

PIANO_KEYS: int = PIANO_HIGH - PIANO_LOW + 1

EVENT_GAP_SEC: float = 0.05
"""Onsets closer than this form one onset event (a chord, a slightly spread chord)."""
TIME_WEIGHT: float = 0.5
TIME_SCALE_SEC: float = 1.0
"""The event DTW's cost: 1 − cosine of the two events' pitch sets, plus TIME_WEIGHT × the distance
from the chroma-DTW warp in units of TIME_SCALE_SEC (capped at 1): the notes decide, the warp
breaks ties between repeated chords far apart."""
STEP_PENALTY: float = 0.3
"""Added to the event DTW's cost for a step that repeats an event (an extra or a missing event): the
path shifts by a note only where the pitches, not a slightly offset warp, ask for it."""
EVIDENCE_TOL_SEC: float = 0.1
"""A score note is not called missing when the permissive transcription (``Notes.evidence``) has a
note of its pitch starting this close to it."""
FINE_TOL_SEC: float = 0.15
"""Unmatched score and played notes closer than this in time (and within 2 semitones) make a wrong
note."""
ALPHA: float = 0.001
MIN_COUNT: int = 2
MIN_RECALL: float = 0.5
MIN_TEMPO_ONSETS: int = 4
TEMPO_RATIO: float = 1.1
BAR_EPS_SEC: float = 0.02
"""Score notes this close before a bar line count in the bar that starts there (tick rounding)."""
PARTIALS: tuple[int, ...] = (0, 12, 19, 24, 28)
"""Semitones above a sounding score note where an unmatched transcribed note is taken for a
transcription artefact rather than an extra note: a re-onset of the held note itself (0) or one of
its partials (octave, twelfth, double octave, the fifth harmonic)."""
KINDS: tuple[str, ...] = ("missing", "extra", "wrong", "tempo")
"""The kinds of note-level finding, as ``report.json`` names them."""


@dataclass(frozen=True)
class BarNotes:
    """One score bar's note check. Times are recording seconds; tempi quarter notes per minute
    (None where too few matched notes to measure)."""

    number: int
    start_sec: float
    end_sec: float
    score_notes: int
    matched: int
    missing: int
    extra: int
    wrong: int
    missing_low: int
    """How many of the missing (and wrong) notes lie below middle C (the left hand, by register)."""
    tempo_qpm: float | None = None
    tempo_low: float | None = None
    tempo_high: float | None = None
    score_qpm: float | None = None


@dataclass(frozen=True)
class Finding:
    """A note-level finding for a run of bars: ``kind`` in :data:`KINDS`, ``bars`` (first, last),
    recording span, the sentence to show."""

    kind: str
    bars: tuple[int, int]
    start_sec: float
    end_sec: float
    text: str


@dataclass
class NoteCheck:
    """The recording's note check: the transcriber used, per-bar counts, the findings and the
    overall recall / precision of the transcription against the score (matched range only)."""

    transcriber: str
    bars: list[BarNotes]
    findings: list[Finding]
    recall: float
    precision: float
    reliable: bool
    median_ratio: float | None = None
    """The performance's median tempo relative to the score's (1.1: 10 % faster), None if unmeasured."""
    text: str = ""
    warp: np.ndarray | None = field(default=None, repr=False)
    """[K, 2] the note-corrected map, score seconds → recording seconds (monotone), for np.interp."""


def onset_events(notes: Notes, gap_sec: float = EVENT_GAP_SEC) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Onset events (chords): each note's event id [N], each event's time [E] (its first onset) and
    unit pitch vector [E, 88] (piano keys sounding at that onset, L2-normalised)."""
    from crescendai.core.midi import onset_clusters

    ids = onset_clusters(notes.onset_sec, gap_sec)
    n_ev = int(ids.max()) + 1 if len(ids) else 0
    times = np.full(n_ev, np.inf)
    np.minimum.at(times, ids, notes.onset_sec)
    vecs = np.zeros((n_ev, PIANO_KEYS))
    vecs[ids, notes.pitch - PIANO_LOW] = 1.0
    return ids, times, vecs / np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-9)


def align_notes(score: Notes, played: Notes, warp: np.ndarray, passes: int = 2
                ) -> tuple[np.ndarray, np.ndarray]:
    """The note-level alignment (module docstring): DTW over onset events, then same-pitch notes
    matched inside the aligned event pairs; a second pass pulls towards the first pass's map
    instead of the chroma warp (whose offset otherwise biases the pull between repeated notes).

    Returns:
        pairs [M, 2] (score index, played index), and the score onsets mapped into the recording
        [N_score] (seconds: the matched played onsets of their event, interpolated between events
        without a match and shifted along the DTW warp beyond the first and last).
    """
    s_ev, p_ev = onset_events(score), onset_events(played)
    s_map = np.interp(s_ev[1], warp[:, 0], warp[:, 1])
    pairs = np.zeros((0, 2), int)
    for _ in range(passes):
        pairs, s_map = _event_dtw(score, played, s_ev, p_ev, s_map)
    return pairs, s_map[s_ev[0]]


def _members(ids: np.ndarray) -> list[np.ndarray]:
    """The note indices of each event, from the non-decreasing event id of each note."""
    return np.split(np.arange(len(ids)), np.flatnonzero(np.diff(ids)) + 1) if len(ids) else []


def _event_dtw(score: Notes, played: Notes, s_ev: tuple, p_ev: tuple, s_map: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray]:
    """One pass of :func:`align_notes`: (pairs [M, 2], event times in the recording [E_score])."""
    import librosa

    s_id, s_t, s_v = s_ev
    p_id, p_t, p_v = p_ev
    mapped_ev = s_map.copy()
    pairs = np.zeros((0, 2), int)
    if len(s_t) and len(p_t):
        cost = 1.0 - s_v @ p_v.T + TIME_WEIGHT * np.minimum(1.0, np.abs(p_t[None, :] - s_map[:, None]) / TIME_SCALE_SEC)
        _, wp = librosa.sequence.dtw(C=cost, backtrack=True,
                                     weights_add=np.array([0.0, STEP_PENALTY, STEP_PENALTY]))
        cand = []  # (event-pair cost, |Δt|, score note, played note)
        s_notes, p_notes = _members(s_id), _members(p_id)
        for i, j in wp:
            for n in s_notes[i]:
                for m in p_notes[j]:
                    if score.pitch[n] == played.pitch[m]:
                        cand.append((cost[i, j], abs(played.onset_sec[m] - s_map[i]), n, m))
        used_s, used_p, out = set(), set(), []
        for _, _, n, m in sorted(cand):
            if n not in used_s and m not in used_p:
                used_s.add(n)
                used_p.add(m)
                out.append((n, m))
        pairs = np.asarray(sorted(out), int).reshape(-1, 2)
        if len(pairs):  # event times from their matched notes; monotone interpolation elsewhere
            t_sum = np.bincount(s_id[pairs[:, 0]], played.onset_sec[pairs[:, 1]], len(s_t))
            t_cnt = np.bincount(s_id[pairs[:, 0]], minlength=len(s_t))
            has = t_cnt > 0
            known = np.maximum.accumulate(t_sum[has] / t_cnt[has])
            shift = np.interp(s_t, s_t[has], known - s_map[has])  # held beyond the ends
            mapped_ev = s_map + shift
            mapped_ev[has] = known
    return pairs, mapped_ev


def _binomial_outlier(k: int, n: int, bg_k: int, bg_n: int) -> bool:
    """Whether ``k`` events in ``n`` trials stand out from a background of ``bg_k`` in ``bg_n``."""
    from scipy.stats import binom

    if k < MIN_COUNT or n <= 0:
        return False
    p = min(0.5, max((bg_k + 0.5) / (bg_n + 1.0), 0.01))
    return bool(binom.sf(k - 1, n, p) < ALPHA)


def _hand(low: int, total: int) -> str:
    if total and low >= 0.75 * total:
        return " (left hand)"
    if total and low <= 0.25 * total:
        return " (right hand)"
    return ""


def check_notes(score: Notes, bar_sec: np.ndarray, quarters_per_bar: float, played: Notes,
                warp: np.ndarray, duration_sec: float, transcriber: str) -> NoteCheck:
    """Compare ``played`` (transcribed, recording seconds) with ``score`` (score seconds) bar by bar.

    Args:
        score: the score's notes (score seconds).
        bar_sec: [B + 1] the score's bar lines (score seconds); bar k (1-based) is
            ``[bar_sec[k-1], bar_sec[k])``.
        quarters_per_bar: the metre's length in quarter notes (4 for 4/4, 3 for 6/8).
        played: the transcribed notes.
        warp: [K, 2] score seconds → recording seconds (the DTW alignment).
        duration_sec: the recording's duration; bars outside it are not checked.
        transcriber: the transcriber's name, for the report.
    """
    pairs, mapped = align_notes(score, played, warp)
    s_matched = np.zeros(len(score), bool)
    p_matched = np.zeros(len(played), bool)
    s_matched[pairs[:, 0]] = True
    p_matched[pairs[:, 1]] = True
    # the part of the score that was played: inside the recording, and from the first to the last
    # matched score note (a recording of an excerpt, or one that stops early, is not "missing" the rest)
    inside = (mapped >= -FINE_TOL_SEC) & (mapped <= duration_sec + FINE_TOL_SEC)
    if len(pairs):
        first, last = score.onset_sec[pairs[:, 0]].min(), score.onset_sec[pairs[:, 0]].max()
        inside &= (score.onset_sec >= first - BAR_EPS_SEC) & (score.onset_sec <= last + BAR_EPS_SEC)
    # 0-based bar of each score note; a note within BAR_EPS_SEC before a bar line (MIDI tick
    # rounding) belongs to the bar that starts there
    bar_of_score = np.searchsorted(bar_sec, score.onset_sec + BAR_EPS_SEC, side="right") - 1
    # played notes → score time through the inverse of the corrected map (monotone)
    order = np.argsort(score.onset_sec)
    inv_x = np.maximum.accumulate(mapped[order])
    played_score_t = np.interp(played.onset_sec, inv_x, score.onset_sec[order])
    bar_of_played = np.searchsorted(bar_sec, played_score_t + BAR_EPS_SEC, side="right") - 1
    # unmatched played notes that are a partial of a sounding score note are not counted as extra
    partial = np.zeros(len(played), bool)
    for j in np.flatnonzero(~p_matched):
        t = played.onset_sec[j]
        sounding = score.pitch[inside & (mapped <= t + FINE_TOL_SEC)
                               & (mapped + (score.offset_sec - score.onset_sec) >= t)]
        partial[j] = bool(np.isin(played.pitch[j] - sounding, PARTIALS).any())
    n_bars = len(bar_sec) - 1
    recall = float(s_matched[inside].mean()) if inside.any() else 0.0
    in_range = (played.onset_sec >= mapped[inside].min() - 1.0) & (played.onset_sec <= mapped[inside].max() + 1.0) \
        if inside.any() else np.zeros(len(played), bool)
    precision = float(p_matched[in_range].mean()) if in_range.any() else 0.0
    bars: list[BarNotes] = []
    evidenced = _evidenced(score.pitch, mapped, played.evidence)
    for k in range(n_bars):
        sel = inside & (bar_of_score == k)
        if not sel.any():
            continue
        lost = np.flatnonzero(sel & ~s_matched & ~evidenced)  # missing or wrong: not played as written
        extra = np.flatnonzero((bar_of_played == k) & ~p_matched & ~partial)
        wrong = _wrong_pairs(mapped[lost], score.pitch[lost], played.onset_sec[extra], played.pitch[extra])
        start = float(np.interp(bar_sec[k], score.onset_sec[order], inv_x))
        end = float(np.interp(bar_sec[k + 1], score.onset_sec[order], inv_x))
        tempo = _bar_tempo(score.onset_sec[pairs[:, 0]], played.onset_sec[pairs[:, 1]],
                           bar_of_score[pairs[:, 0]] == k)
        score_qpm = 60.0 * quarters_per_bar / max(bar_sec[k + 1] - bar_sec[k], 1e-6)
        bars.append(BarNotes(
            number=k + 1, start_sec=max(0.0, start), end_sec=min(duration_sec, max(end, start)),
            score_notes=int(sel.sum()), matched=int((sel & s_matched).sum()),
            missing=len(lost) - len(wrong), extra=len(extra) - len(wrong), wrong=len(wrong),
            missing_low=int((score.pitch[lost] < 60).sum()),
            score_qpm=score_qpm,
            **({} if tempo is None else {"tempo_qpm": score_qpm / tempo[0],
                                        "tempo_low": score_qpm / tempo[2],
                                        "tempo_high": score_qpm / tempo[1]}),
        ))
    check = NoteCheck(transcriber=transcriber, bars=bars, findings=[], recall=recall,
                      precision=precision, reliable=recall >= MIN_RECALL,
                      warp=np.stack([score.onset_sec[order], inv_x], axis=1))
    ratios = [b.tempo_qpm / b.score_qpm for b in bars if b.tempo_qpm is not None]
    check.median_ratio = float(np.median(ratios)) if ratios else None
    if not check.reliable:
        check.text = (f"The transcription ({transcriber}) found only {recall:.0%} of the score's notes "
                      "in this recording: too few to judge notes or tempo bar by bar, so no note-level "
                      "finding is given. Check that the score is the piece that was played.")
        return check
    check.findings = _findings(bars, check.median_ratio)
    check.text = (f"Notes transcribed by {transcriber} and matched to the score: {recall:.0%} of the "
                  f"score's notes found, {precision:.0%} of the transcribed notes in the score. A bar "
                  "is named only where it stands out from the rest of this recording, so that the "
                  "transcriber's own errors, which it makes everywhere, are not taken for yours.")
    return check


def _evidenced(pitch: np.ndarray, mapped: np.ndarray, evidence: Notes | None) -> np.ndarray:
    """[N] bool: the permissive transcription has a note of that pitch starting within
    :data:`EVIDENCE_TOL_SEC` of each mapped score onset (all False without one)."""
    out = np.zeros(len(pitch), bool)
    if evidence is None:
        return out
    for p in np.unique(pitch):
        on = np.sort(evidence.onset_sec[evidence.pitch == p])
        if len(on):
            idx = np.flatnonzero(pitch == p)
            k = np.searchsorted(on, mapped[idx])  # the nearest onset is on[k - 1] or on[k]
            near = np.minimum(np.abs(on[np.clip(k - 1, 0, len(on) - 1)] - mapped[idx]),
                              np.abs(on[np.clip(k, 0, len(on) - 1)] - mapped[idx]))
            out[idx] = near <= EVIDENCE_TOL_SEC
    return out


def _wrong_pairs(miss_t: np.ndarray, miss_p: np.ndarray, extra_t: np.ndarray,
                 extra_p: np.ndarray) -> np.ndarray:
    """[W, 2] (index into the missing, index into the extra) greedy pairs close in time and pitch."""
    out: list[tuple[int, int]] = []
    used: set[int] = set()
    for i in np.argsort(miss_t):
        cand = [j for j in range(len(extra_t)) if j not in used
                and abs(extra_t[j] - miss_t[i]) <= FINE_TOL_SEC and 0 < abs(extra_p[j] - miss_p[i]) <= 2]
        if cand:
            j = min(cand, key=lambda j: abs(extra_t[j] - miss_t[i]))
            used.add(j)
            out.append((int(i), j))
    return np.asarray(out, int).reshape(-1, 2)


def _bar_tempo(score_on: np.ndarray, played_on: np.ndarray, sel: np.ndarray):
    """Theil–Sen (slope, low, high) of played onset against score onset over a bar's matched notes,
    one point per distinct score onset (the earliest played note of a chord); None if too few."""
    from scipy.stats import theilslopes

    s, p = score_on[sel], played_on[sel]
    if len(s) == 0:
        return None
    uniq, inv = np.unique(np.round(s, 3), return_inverse=True)
    if len(uniq) < MIN_TEMPO_ONSETS:
        return None
    first = np.full(len(uniq), np.inf)
    np.minimum.at(first, inv, p)
    slope, _, low, high = theilslopes(first, uniq)
    if not slope > 0 or not low > 0:
        return None
    return float(slope), float(low), float(high)


def _findings(bars: list[BarNotes], median_ratio: float | None) -> list[Finding]:
    """Sentences for the bars whose counts stand out (binomial test against the other bars) and for
    the runs of rushed or dragged bars."""
    tot_n = sum(b.score_notes for b in bars)
    tot_miss = sum(b.missing + b.wrong for b in bars)
    tot_extra = sum(b.extra for b in bars)
    out: list[Finding] = []
    for b in bars:
        miss = b.missing + b.wrong
        if _binomial_outlier(miss, b.score_notes, tot_miss - miss, tot_n - b.score_notes):
            detail = f"{b.wrong} wrong" if b.wrong and not b.missing else (
                f"{b.missing} missing, {b.wrong} wrong" if b.wrong else "missing")
            word = "wrong" if detail == f"{b.wrong} wrong" else "missing"
            text = (f"bar {b.number}: {miss} of {b.score_notes} notes {word}"
                    f"{'' if word == 'wrong' or not b.wrong else f' ({detail})'}"
                    f"{_hand(b.missing_low, miss)}")
            out.append(Finding("wrong" if word == "wrong" else "missing", (b.number, b.number),
                               b.start_sec, b.end_sec, text))
        if _binomial_outlier(b.extra, max(b.score_notes, b.extra), tot_extra - b.extra,
                             tot_n - b.score_notes):
            out.append(Finding("extra", (b.number, b.number), b.start_sec, b.end_sec,
                               f"bar {b.number}: {b.extra} extra note{'s' if b.extra > 1 else ''} "
                               "not in the score"))
    if median_ratio is not None:
        out += _tempo_findings(bars, median_ratio)
    return sorted(out, key=lambda f: (f.bars[0], KINDS.index(f.kind)))


def _tempo_findings(bars: list[BarNotes], median_ratio: float) -> list[Finding]:
    """Runs of consecutive bars played at least :data:`TEMPO_RATIO` faster (rushed) or slower
    (dragged) than the rest of the performance would have them (the score's tempo × the
    performance's median ratio to it), the slope's 95 % interval excluding that expectation."""
    def kind(b: BarNotes | None) -> str | None:
        if b is None or b.tempo_qpm is None:
            return None
        expect = b.score_qpm * median_ratio
        if b.tempo_qpm >= TEMPO_RATIO * expect and b.tempo_low > expect:
            return "rushed"
        if b.tempo_qpm <= expect / TEMPO_RATIO and b.tempo_high < expect:
            return "dragged"
        return None

    out: list[Finding] = []
    run: list[BarNotes] = []
    for b in [*bars, None]:
        k = kind(b)
        if run and (b is None or k != kind(run[0]) or b.number != run[-1].number + 1):
            q = float(np.median([r.tempo_qpm for r in run]))
            e = float(np.median([r.score_qpm * median_ratio for r in run]))
            out.append(Finding(
                "tempo", (run[0].number, run[-1].number), run[0].start_sec, run[-1].end_sec,
                f"{bar_span(run[0].number, run[-1].number)}: {kind(run[0])}, ♩≈{q:.0f} against "
                f"♩≈{e:.0f} in the rest of the performance"))
            run = []
        if k is not None:
            run.append(b)
    return out
