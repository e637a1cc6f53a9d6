"""Bars of a recording: from a score (audio-to-score DTW) or, without one, from beat tracking.

Two ways to get bar lines in audio seconds:

- **with a score** (MIDI): bar lines come from the score's time signatures and tempo map; the
  recording is aligned to the score by subsequence DTW (``librosa.sequence.dtw``, cosine cost) on
  chroma plus an onset channel, and each score bar line is mapped into the recording. Bar numbers are
  the score's (1 = first bar of the file). A score that does not match raises :class:`ScoreError`.
- **without a score**: beat tracking on the onset envelope (librosa's tempo estimator and dynamic
  programme, in NumPy: :mod:`crescendai.tutor.rhythm`; ``--tempo-hint`` seeds the tempo), grouped
  into bars of ``meter`` beats at the phase with the strongest accents. These bars are
  **approximate** and the report says so.

The audio features (frame level, onset envelope, optionally chroma, at the contract's frame rate
512 / 22 050 s) come from the analysis's one pass over the recording
(:func:`crescendai.tutor.frontend.read_recording`); librosa is imported only with a score (chroma
and DTW).
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from crescendai.core.audio import FRAME_SEC
from crescendai.core.errors import CrescendAIError
from crescendai.tutor import rhythm
from crescendai.tutor.frontend import FrameFeatures, read_recording

__all__ = ["BarGrid", "FrameFeatures", "Meter", "MeterError", "Score", "ScoreError", "align_to_score",
           "bars_from_beats", "estimate_tempo", "frame_features", "parse_meter", "read_score", "remap_bars"]

log = logging.getLogger(__name__)

MAX_DTW_FRAMES: int = 2500
"""DTW resolution is coarsened so neither sequence exceeds this (bounds the O(N·M) cost matrix)."""


class ScoreError(CrescendAIError):
    """A score cannot be used with this recording; ``path`` names it, the message says why and what to do."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        self.path = str(path)
        super().__init__(f"{self.path}: {reason}")


class MeterError(CrescendAIError):
    """A time signature (``--meter``) is not one; the message quotes it and shows the format."""


@dataclass(frozen=True)
class Meter:
    """A time signature; ``beats`` is what a beat tracker counts per bar (2 for 6/8, 3 for 9/8)."""

    numerator: int = 4
    denominator: int = 4

    @property
    def beats(self) -> int:
        if self.denominator == 8 and self.numerator in (6, 9, 12):
            return self.numerator // 3
        return self.numerator

    def __str__(self) -> str:
        return f"{self.numerator}/{self.denominator}"


def parse_meter(text: str) -> Meter:
    """``"3/4"`` → ``Meter(3, 4)``.

    Raises:
        MeterError: ``text`` is not ``N/D`` with N in 1–32 and D a power of two up to 32.
    """
    try:
        a, b = (int(x) for x in text.strip().split("/"))
    except ValueError:
        raise MeterError(f"--meter {text!r}: not a time signature; write it as N/D, e.g. "
                         "--meter 3/4 or --meter 6/8") from None
    if not (1 <= a <= 32 and b in (1, 2, 4, 8, 16, 32)):
        raise MeterError(f"--meter {text!r}: the numerator must be 1–32 and the denominator a power "
                         "of two up to 32, e.g. --meter 3/4")
    return Meter(a, b)


@dataclass(frozen=True)
class BarGrid:
    """Bar lines of one recording.

    Attributes:
        numbers: int [n] bar numbers (score numbering, or 1.. from the first downbeat; 0 = pickup).
        start_sec, end_sec: float [n] bar spans in recording seconds, inside [0, duration].
        source: ``"score"``, ``"beats"`` or ``"none"`` (no bars could be found: feedback uses times).
        approximate: True unless the bars come from a matched score.
        meter: the metre used.
        tempo_bpm: estimated tempo (beats per minute) or None.
        match: audio–score similarity after alignment (score source only), else None.
        warp: float [K, 2] the alignment's monotone map from score seconds (column 0) to recording
            seconds (column 1), for ``numpy.interp`` (score source only), else None.
    """

    numbers: np.ndarray
    start_sec: np.ndarray
    end_sec: np.ndarray
    source: str
    approximate: bool
    meter: Meter
    tempo_bpm: float | None = None
    match: float | None = None
    warp: np.ndarray | None = None

    def __len__(self) -> int:
        return int(self.numbers.shape[0])


def frame_features(path: str | os.PathLike[str], *, chroma: bool = False) -> FrameFeatures:
    """Level, onset envelope, mel and optionally chroma of ``path`` in one streamed pass
    (:func:`crescendai.tutor.frontend.read_recording`).

    Raises:
        AudioError: as :func:`crescendai.core.audio.stream_audio`, and for a silent recording.
    """
    return read_recording(path, chroma=chroma)


# ------------------------------------------------------------------------------------------
# without a score: beats + metre
# ------------------------------------------------------------------------------------------


def estimate_tempo(onset: np.ndarray, tempo_hint: float | None = None, block_sec: float = 30.0,
                   max_blocks: int = 8) -> float:
    """Tempo (bpm): median of the tempo estimates (:func:`crescendai.tutor.rhythm.tempo`, librosa's
    estimator) on up to ``max_blocks`` blocks of ``block_sec`` (a whole-file tempogram of a
    60-minute recording would need ~1 GB)."""
    n = max(8, int(block_sec / FRAME_SEC))
    starts = np.arange(0, max(1, onset.size - n // 2), n)
    if starts.size > max_blocks:
        starts = starts[np.linspace(0, starts.size - 1, max_blocks).round().astype(int)]
    tempos = [rhythm.tempo(onset[a: a + n], start_bpm=float(tempo_hint) if tempo_hint else 120.0)
              for a in starts if np.any(onset[a: a + n] > 0)]
    return float(np.median(tempos)) if tempos else float(tempo_hint or 120.0)


def bars_from_beats(
    feats: FrameFeatures, meter: Meter = Meter(), tempo_hint: float | None = None
) -> BarGrid:
    """Approximate bars from beat tracking on the onset envelope.

    Downbeats are every ``meter.beats``-th beat at the phase whose beats carry the most onset
    strength. Bars are numbered 1.. from the first downbeat; a pickup before it is bar 0. The last
    bar ends one bar length after its downbeat or at the end of the recording, whichever is first.
    Returns a grid with ``source="none"`` when fewer than two bars of beats are found.
    """
    none = BarGrid(np.zeros(0, int), np.zeros(0), np.zeros(0), "none", True, meter)
    if feats.onset.size < 8 or not np.any(feats.onset > 0):
        return none
    tempo = estimate_tempo(feats.onset, tempo_hint)
    beats = rhythm.beat_track(feats.onset, tempo)  # librosa's dynamic programme (Ellis 2007)
    m = meter.beats
    if beats.size < 2 * m:
        return none
    strength = rhythm.normalize_max(feats.onset)[beats]
    phase = int(np.argmax([strength[p::m].mean() for p in range(m)]))
    down = beats[phase::m] * FRAME_SEC
    bar_len = float(np.median(np.diff(down))) if down.size > 1 else m * 60.0 / float(np.atleast_1d(tempo)[0])
    starts = list(down)
    numbers = list(range(1, len(down) + 1))
    if down[0] > 0.5 * bar_len:
        starts.insert(0, max(0.0, down[0] - bar_len))
        numbers.insert(0, 0)
    starts_a = np.asarray(starts, float)
    ends = np.append(starts_a[1:], min(starts_a[-1] + bar_len, feats.duration_sec))
    keep = ends > starts_a + 1e-3
    return BarGrid(
        numbers=np.asarray(numbers, int)[keep], start_sec=starts_a[keep], end_sec=ends[keep],
        source="beats", approximate=True, meter=meter,
        tempo_bpm=float(np.atleast_1d(tempo)[0]),
    )


# ------------------------------------------------------------------------------------------
# with a score: read, align, map bar lines
# ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Score:
    """A score read from MIDI: notes (onset s, offset s, pitch, velocity) and bar lines (s)."""

    notes: np.ndarray  # (n, 4) float
    bar_sec: np.ndarray  # (n_bars + 1,) bar-line times; the last closes the final bar
    meter: Meter
    end_sec: float


def read_score(path: str | os.PathLike[str], meter: Meter | None = None) -> Score:
    """Read a MIDI score; ``meter`` overrides the file's first time signature.

    Raises:
        ScoreError: missing file, MusicXML (not supported: export MIDI), unreadable or empty MIDI.
    """
    import mido

    p = Path(path)
    if not p.is_file():
        raise ScoreError(p, "score file not found; check the path")
    suffix = p.suffix.lower()
    if suffix in (".musicxml", ".xml", ".mxl"):
        raise ScoreError(
            p, "MusicXML scores are not supported; only MIDI scores (.mid) are. Export the score "
            "as MIDI (e.g. MuseScore: File → Export → MIDI) and pass the .mid file",
        )
    if suffix not in (".mid", ".midi"):
        raise ScoreError(p, f"unknown score format {suffix!r}; pass a MIDI score (.mid)")
    from crescendai.core.midi import MidiError, read_midi

    try:
        perf = read_midi(p)
        mf = mido.MidiFile(str(p))
    except (MidiError, OSError, EOFError, ValueError, KeyError, IndexError) as err:
        raise ScoreError(p, f"cannot be read as MIDI ({err}); re-export the score as MIDI") from None
    if not perf.notes:
        raise ScoreError(p, "the MIDI score has no notes; pass the score of the piece that was played")
    notes = np.array([[n.onset_sec, n.offset_sec, n.pitch, n.velocity] for n in perf.notes], float)
    end_sec = float(notes[:, 1].max())
    bar_sec, file_meter = _bar_lines(mf, end_sec, meter)
    return Score(notes=notes, bar_sec=bar_sec, meter=meter or file_meter, end_sec=end_sec)


def _bar_lines(mf, end_sec: float, override: Meter | None) -> tuple[np.ndarray, Meter]:
    """Bar-line times in seconds from a mido file's time signatures and tempo map."""
    import mido

    tpb = mf.ticks_per_beat
    tempo_changes = [(0, 500_000)]
    sigs: list[tuple[int, Meter]] = []
    tick = 0
    for msg in mido.merge_tracks(mf.tracks):
        tick += msg.time
        if msg.type == "set_tempo":
            tempo_changes.append((tick, msg.tempo))
        elif msg.type == "time_signature":
            sigs.append((tick, Meter(msg.numerator, msg.denominator)))
    if override is not None or not sigs:
        sigs = [(0, override or Meter())]
    tempo_changes.sort()

    def tick_to_sec(t: int) -> float:
        sec, last_t, tempo = 0.0, 0, 500_000
        for ct, ctempo in tempo_changes:
            if ct >= t:
                break
            sec += (ct - last_t) * tempo / tpb / 1e6
            last_t, tempo = ct, ctempo
        return sec + (t - last_t) * tempo / tpb / 1e6

    lines: list[float] = []
    t, si = 0, 0
    meter = sigs[0][1]
    while True:
        while si + 1 < len(sigs) and sigs[si + 1][0] <= t:
            si += 1
            meter = sigs[si][1]
        s = tick_to_sec(t)
        lines.append(s)
        if s >= end_sec - 1e-6 or len(lines) > 100_000:
            break
        t += int(round(meter.numerator * tpb * 4 / meter.denominator))
    return np.asarray(lines), sigs[0][1]


def score_features(score: Score, n_frames: int, frame_sec: float) -> np.ndarray:
    """[13, n_frames] chroma with piano-like decay (τ = 1 s) + onset channel, from score notes."""
    feat = np.zeros((13, n_frames), np.float32)
    t = np.arange(n_frames) * frame_sec
    for on, off, pitch, vel in score.notes:
        i0 = int(on / frame_sec)
        i1 = min(n_frames, int((off + 0.2) / frame_sec) + 1)
        if i0 >= n_frames:
            continue
        feat[int(pitch) % 12, i0:i1] += (vel / 127.0) * np.exp(-(t[i0:i1] - on) / 1.0)
        feat[12, i0] += vel / 127.0
    return feat


def _coarsen(x: np.ndarray, factor: int) -> np.ndarray:
    """Average [d, T] frames in groups of ``factor`` → [d, ceil(T / factor)]."""
    if factor <= 1:
        return x
    d, T = x.shape
    pad = (-T) % factor
    xp = np.concatenate([x, np.zeros((d, pad), x.dtype)], axis=1) if pad else x
    return xp.reshape(d, -1, factor).mean(axis=2)


def _normalise(feat: np.ndarray) -> np.ndarray:
    """Chroma rows L2-normalised per frame; onset row scaled to its 95th percentile, weight 0.5."""
    norm = np.linalg.norm(feat[:12], axis=0, keepdims=True)
    c = np.where(norm > 1e-6, feat[:12] / np.maximum(norm, 1e-6), 1 / np.sqrt(12))  # silence: flat
    o = feat[12:13]
    scale = np.percentile(o, 95) if np.any(o > 0) else 1.0
    o = 0.5 * np.clip(o / max(scale, 1e-9), 0, 1)
    return np.vstack([c, o])


def _path_similarity(Xa: np.ndarray, Ys: np.ndarray, wp: np.ndarray) -> float:
    a = Xa[:, wp[:, 0]]
    b = Ys[:, wp[:, 1]]
    num = (a * b).sum(axis=0)
    den = np.linalg.norm(a, axis=0) * np.linalg.norm(b, axis=0)
    return float(np.mean(num / np.maximum(den, 1e-9)))


def align_to_score(
    feats: FrameFeatures, score: Score, *, path: str | os.PathLike[str] = "<score>",
    min_match: float = 0.5,
) -> BarGrid:
    """Align the recording to ``score`` and map its bar lines into recording seconds.

    Subsequence DTW (the recording may be an excerpt of the score) on coarsened chroma + onset
    features with cosine cost. The match is the mean cosine similarity along the path, rescaled
    against a null alignment of the same score transposed by a tritone: ``(sim − null) / (1 − null)``.

    Raises:
        ScoreError: durations incompatible (ratio outside [0.2, 3] for the matched part), or the
            match below ``min_match`` — the score is not the piece that was played.
    """
    import librosa

    if feats.chroma is None:
        raise ValueError("frame_features(..., chroma=True) is needed for score alignment")
    dur = feats.duration_sec
    if dur > 3.0 * score.end_sec or dur < 0.2 * score.end_sec:
        raise ScoreError(
            path, f"the score lasts {score.end_sec:.0f} s at its own tempo but the recording "
            f"{dur:.0f} s; they cannot be the same music. Pass the right score, or omit --score "
            "for approximate bars",
        )
    Ta = feats.chroma.shape[1]
    Ts = int(score.end_sec / FRAME_SEC) + 1
    factor = max(1, int(np.ceil(max(Ta, Ts) / MAX_DTW_FRAMES)), int(round(0.1 / FRAME_SEC)))
    xa = np.vstack([feats.chroma, feats.onset[None, : feats.chroma.shape[1]]])
    Xa = _normalise(_coarsen(xa, factor))
    Ys = _normalise(_coarsen(score_features(score, Ts, FRAME_SEC), factor))
    # silent audio frames have meaningless chroma: give them a flat profile
    level = _coarsen(feats.level_db[None, :Ta], factor)[0]
    quiet = level < level.max() - 50
    Xa[:12, quiet] = 1 / np.sqrt(12)
    _, wp = librosa.sequence.dtw(X=Xa, Y=Ys, metric="cosine", subseq=True, backtrack=True)
    wp = wp[::-1]
    sim = _path_similarity(Xa, Ys, wp)
    Yn = Ys.copy()
    Yn[:12] = np.roll(Ys[:12], 6, axis=0)
    _, wpn = librosa.sequence.dtw(X=Xa, Y=Yn, metric="cosine", subseq=True, backtrack=True)
    null = _path_similarity(Xa, Yn, wpn[::-1])
    match = (sim - null) / max(1e-6, 1 - null)
    log.info("score alignment: similarity %.3f, null %.3f, match %.3f", sim, null, match)
    if match < min_match:
        raise ScoreError(
            path, f"the score does not match the recording (alignment match {match:.2f} < "
            f"{min_match:.2f}); pass the score of the piece that was played, or omit --score for "
            "approximate bars from beat tracking",
        )
    step = factor * FRAME_SEC
    # score time → audio time: mean audio time per score frame along the path, monotone interp
    js, inv = np.unique(wp[:, 1], return_inverse=True)
    a_of_j = np.bincount(inv, weights=wp[:, 0]) / np.bincount(inv)
    a_of_j = np.maximum.accumulate(a_of_j)
    s_lo, s_hi = js[0] * step, (js[-1] + 1) * step
    lines = score.bar_sec
    mapped = np.interp(lines / step, js, a_of_j) * step
    mapped = np.clip(mapped, 0.0, dur)
    numbers, starts, ends = [], [], []
    for k in range(len(lines) - 1):
        if lines[k + 1] <= s_lo + 1e-6 or lines[k] >= s_hi - 1e-6:
            continue  # bar outside the matched part of the score
        a0, a1 = mapped[k], mapped[k + 1]
        if lines[k + 1] >= s_hi - 1e-6:
            a1 = dur if lines[k + 1] >= score.end_sec - 1e-6 else a1
        if a1 - a0 > 1e-3:
            numbers.append(k + 1)
            starts.append(a0)
            ends.append(a1)
    if not numbers:
        raise ScoreError(path, "no bar of the score falls inside the recording after alignment")
    return BarGrid(
        numbers=np.asarray(numbers, int), start_sec=np.asarray(starts), end_sec=np.asarray(ends),
        source="score", approximate=False, meter=score.meter, match=float(match),
        warp=np.stack([js * step, a_of_j * step], axis=1),
    )


def remap_bars(grid: BarGrid, score: Score, warp: np.ndarray, duration_sec: float) -> BarGrid:
    """``grid``'s score bars placed by another score → recording map ``warp`` [K, 2] (e.g. the
    note-level alignment of :mod:`crescendai.tutor.note_check`, whose bar lines are 4× closer to
    the annotated downbeats than the chroma DTW's on renders of ASAP: ``benchmarks/transcription.py``).
    Bars left empty by the new map are dropped; the first and last keep the grid's outer edges."""
    lines = np.clip(np.interp(score.bar_sec, warp[:, 0], warp[:, 1]), 0.0, duration_sec)
    lines = np.maximum.accumulate(lines)
    starts = lines[grid.numbers - 1].copy()
    ends = lines[grid.numbers].copy()
    if len(grid):
        starts[0] = min(starts[0], grid.start_sec[0]) if grid.numbers[0] == 1 else starts[0]
        ends[-1] = grid.end_sec[-1] if grid.end_sec[-1] >= duration_sec - 1e-6 else ends[-1]
    keep = ends - starts > 1e-3
    return dataclasses.replace(grid, numbers=grid.numbers[keep], start_sec=starts[keep],
                               end_sec=ends[keep], warp=np.asarray(warp, float))
