"""The notes against the score: note matching, per-bar counts, the binomial gate, the local tempo,
and end to end on rendered performances (notes deleted from one bar; one bar rushed)."""

from __future__ import annotations

import numpy as np
import pytest

from crescendai.tutor import note_check as nc
from crescendai.tutor.transcribe import Notes
from tutor_fixtures import render, write_audio, write_score

BPM = 100.0
BAR = 4 * 60 / BPM  # 2.4 s


def score_piece(n_bars: int = 12, seed: int = 3) -> np.ndarray:
    """[n, 4] (onset s, offset s, pitch, velocity) in 4/4 at 100 bpm: right-hand eighths over a
    left-hand fifth on beats 1 and 3 (12 notes a bar)."""
    rng = np.random.default_rng(seed)
    beat = 60 / BPM
    scale = np.array([60, 62, 64, 65, 67, 69, 71, 72, 74, 76])
    notes, i = [], 4
    for bar in range(n_bars):
        root = [41, 46, 48, 43][bar % 4]  # the left hand lies below middle C
        for e in range(8):
            t = (bar * 4 + e / 2) * beat
            i = int(np.clip(i + rng.integers(-2, 3), 0, len(scale) - 1))
            notes.append([t, t + 0.45 * beat, scale[i], 75])
        for b in (0, 2):
            t = (bar * 4 + b) * beat
            notes += [[t, t + 1.9 * beat, root, 65], [t, t + 1.9 * beat, root + 7, 60]]
    return np.array(sorted(notes, key=lambda r: (r[0], r[2])), float)


def rush_map(t: np.ndarray, rush_bar: int | None, rush: float = 0.75, lead: float = 0.3) -> np.ndarray:
    """Score seconds → performance seconds of :func:`perform`'s timing (noise aside)."""
    t = np.asarray(t, float)
    if rush_bar is None:
        return t + lead
    a, b = (rush_bar - 1) * BAR, rush_bar * BAR
    return lead + np.where(t <= a, t, np.where(t <= b, a + (t - a) * rush, t - (1 - rush) * BAR))


def perform(score: np.ndarray, *, delete_bar: int | None = None, rush_bar: int | None = None,
            rush: float = 0.75, lead: float = 0.3, seed: int = 0) -> np.ndarray:
    """A performance of ``score``: ~10 ms onset noise, the left hand and 40 % of the right hand of
    ``delete_bar`` left out, ``rush_bar`` played in ``rush`` of its time."""
    rng = np.random.default_rng(seed)

    out = []
    for on, off, p, v in score:
        if delete_bar == int((on + 1e-6) // BAR) + 1 and (p < 60 or rng.random() < 0.4):
            continue
        on_p, off_p = rush_map(np.array([on, off]), rush_bar, rush, lead)
        out.append([on_p + rng.normal(0, 0.01), off_p, p, v])
    return np.array(out)


def as_notes(rows: np.ndarray) -> Notes:
    return Notes.from_midi_rows(rows)


def bar_lines(n_bars: int = 12) -> np.ndarray:
    return np.arange(n_bars + 1) * BAR


IDENTITY_WARP = np.array([[0.0, 0.3], [100.0, 100.3]])  # score s → recording s, 0.3 s lead


# --- pure functions on note lists --------------------------------------------------------------

def test_a_clean_performance_has_no_finding():
    score = score_piece()
    chk = nc.check_notes(as_notes(score), bar_lines(), 4.0, as_notes(perform(score)), IDENTITY_WARP,
                         30.0, "t")
    assert chk.reliable and chk.recall == 1.0 and chk.precision == 1.0 and chk.findings == []
    assert [b.number for b in chk.bars] == list(range(1, 13)) and all(b.score_notes == 12 for b in chk.bars)
    assert chk.median_ratio == pytest.approx(1.0, abs=0.02)


def test_missing_notes_name_their_bar_and_hand():
    score = score_piece()
    played = perform(score, delete_bar=6)
    chk = nc.check_notes(as_notes(score), bar_lines(), 4.0, as_notes(played), IDENTITY_WARP, 30.0, "t")
    assert [(f.kind, f.bars) for f in chk.findings] == [("missing", (6, 6))]
    b6 = chk.bars[5]
    assert b6.missing == 12 - sum(1 for r in played if 5 * BAR - 0.05 <= r[0] - 0.3 < 6 * BAR - 0.05)
    assert b6.missing_low >= 4 and chk.findings[0].text.startswith(f"bar 6: {b6.missing} of 12 notes missing")


def test_a_misses_spread_evenly_name_no_bar():
    """A transcriber that loses one note in eight everywhere: nothing stands out, nothing is said."""
    score = score_piece()
    played = perform(score)
    keep = np.random.default_rng(1).random(len(played)) > 0.125
    chk = nc.check_notes(as_notes(score), bar_lines(), 4.0, as_notes(played[keep]), IDENTITY_WARP, 30.0, "t")
    assert chk.reliable and 0.8 < chk.recall < 0.95 and chk.findings == []


def test_wrong_extra_and_partials():
    score = score_piece()
    played = perform(score)
    in_bar3 = np.flatnonzero((played[:, 0] >= 2 * BAR + 0.3) & (played[:, 0] < 3 * BAR + 0.3) & (played[:, 2] >= 60))
    played[in_bar3[:4], 2] += 1  # four right-hand notes a semitone off
    octave = played[played[:, 2] < 60][:6].copy()
    octave[:, 2] += 12  # partials of left-hand notes: not extra notes
    extra = np.array([[8 * BAR + 0.3 + k * 0.3, 8 * BAR + 0.5 + k * 0.3, 94, 70] for k in range(5)])
    chk = nc.check_notes(as_notes(score), bar_lines(), 4.0, as_notes(np.vstack([played, octave, extra])),
                         IDENTITY_WARP, 30.0, "t")
    kinds = {(f.kind, f.bars[0]) for f in chk.findings}
    assert kinds == {("wrong", 3), ("extra", 9)}
    assert chk.bars[2].wrong == 4 and chk.bars[2].missing == 0
    assert sum(b.extra for b in chk.bars) == 5


def test_a_rushed_bar_is_named_with_its_tempo():
    """With the warp of a DTW that followed the rush only in steps of 0.1 s."""
    score = score_piece()
    grid = np.arange(0, 40, 0.1)
    warp = np.stack([grid, np.round(rush_map(grid, 9), 1)], axis=1)
    chk = nc.check_notes(as_notes(score), bar_lines(), 4.0, as_notes(perform(score, rush_bar=9)),
                         warp, 30.0, "t")
    assert [(f.kind, f.bars) for f in chk.findings] == [("tempo", (9, 9))]
    assert "rushed" in chk.findings[0].text and chk.bars[8].tempo_qpm == pytest.approx(BPM / 0.75, rel=0.05)


def test_a_poor_transcription_gives_no_finding():
    score = score_piece()
    played = perform(score, delete_bar=6)
    keep = np.random.default_rng(2).random(len(played)) < 0.4
    chk = nc.check_notes(as_notes(score), bar_lines(), 4.0, as_notes(played[keep]), IDENTITY_WARP, 30.0, "t")
    assert not chk.reliable and chk.findings == [] and "too few" in chk.text


def test_the_alignment_corrects_a_coarse_warp():
    """A warp 0.2–0.3 s late and stepping (as the DTW path is) is corrected by the matched notes."""
    score = score_piece()
    grid = np.arange(0, 40, 0.1)
    warp = np.stack([grid, grid + 0.3 + 0.2 + 0.1 * (np.floor(grid / 0.5) % 2)], axis=1)
    pairs, mapped = nc.align_notes(as_notes(score), as_notes(perform(score)), warp)
    assert len(pairs) == len(score)
    assert np.median(np.abs(mapped - (as_notes(score).onset_sec + 0.3))) < 0.03


# --- end to end on renders ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def renders(tmp_path_factory):
    d = tmp_path_factory.mktemp("notes")
    score = score_piece()
    out = {"score": write_score(d / "score.mid", score, beats=4, bpm=BPM)}
    for name, kw in {"deleted": {"delete_bar": 6}, "rushed": {"rush_bar": 9}}.items():
        out[name] = write_audio(d / f"{name}.wav", render(perform(score, **kw)))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("case, kind, bar", [("deleted", "missing", 6), ("rushed", "tempo", 9)])
def test_the_report_names_the_bar(renders, tmp_path, capsys, case, kind, bar):
    """Rendered, transcribed (Basic Pitch), aligned to the score: the text report names the bar."""
    import json

    from crescendai.cli import main
    from tutor_fixtures import save_tiny_bundle

    bundle = save_tiny_bundle(tmp_path / "bundle")
    assert main([ "analyze", str(renders[case]), "--score", str(renders["score"]), "--model", str(bundle),
                  "--out", str(tmp_path / "out"), "--format", "json", "--no-progress"]) == 0
    rep = json.loads(capsys.readouterr().out)
    notes = rep["notes"]
    assert notes["transcriber"] == "basic-pitch" and notes["reliable"]
    # the bar lines come from the note alignment: close to where the performance put them
    items = rep["bars"]["items"]
    true = rush_map((np.array([it["number"] for it in items]) - 1) * BAR, bar if case == "rushed" else None)
    assert np.median(np.abs(np.array([it["start_sec"] for it in items]) - true)) < 0.05
    assert [(ln["kind"], ln["bars"]) for ln in notes["lines"]] == [(kind, [bar, bar])]
    text = (tmp_path / "out" / "report.txt").read_text()
    assert f"bar {bar}: " in text and "The notes (against the score)" in text
