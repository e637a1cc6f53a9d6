"""Bars from a MIDI score (DTW alignment) and from beat tracking, on small rendered fixtures."""

from __future__ import annotations

import numpy as np
import pytest

from crescendai.tutor import bars
from tutor_fixtures import piece, render, write_audio, write_score


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    d = tmp_path_factory.mktemp("bars")
    score = write_score(d / "score.mid", piece(12, 3, 100, seed=1))
    perf = piece(12, 3, 90, seed=1, timing_jitter=0.01)  # played slower than written
    audio = write_audio(d / "perf.wav", render(perf))
    other = piece(12, 3, 100, seed=7)
    other[:, 2] += 5
    return {"dir": d, "score": score, "audio": audio, "other": write_score(d / "other.mid", other),
            "feats": bars.frame_features(audio, chroma=True)}


def test_parse_meter():
    assert bars.parse_meter("3/4") == bars.Meter(3, 4)
    assert bars.parse_meter("6/8").beats == 2
    for bad in ("3-4", "0/4", "3/5", "x"):
        with pytest.raises(bars.MeterError, match=f"--meter '{bad}'.*e.g. --meter 3/4"):
            bars.parse_meter(bad)


def test_read_score_bar_lines_and_errors(fx, tmp_path):
    s = bars.read_score(fx["score"])
    assert s.meter == bars.Meter(3, 4)
    np.testing.assert_allclose(np.diff(s.bar_sec)[:5], 1.8, atol=1e-6)  # 3 beats at 100 bpm
    assert bars.read_score(fx["score"], bars.Meter(6, 4)).bar_sec[1] == pytest.approx(3.6)
    with pytest.raises(bars.ScoreError, match="MusicXML .*only MIDI"):
        (tmp_path / "s.musicxml").write_text("<score-partwise/>")
        bars.read_score(tmp_path / "s.musicxml")
    with pytest.raises(bars.ScoreError, match="not found"):
        bars.read_score(tmp_path / "missing.mid")
    (tmp_path / "junk.mid").write_bytes(b"garbage")
    with pytest.raises(bars.ScoreError, match="junk.mid: cannot be read as MIDI"):
        bars.read_score(tmp_path / "junk.mid")


def test_frame_features_shapes(fx):
    f = fx["feats"]
    T = 1 + int(round(f.duration_sec * 22050)) // 512
    assert f.level_db.shape == f.onset.shape == (T,) and f.chroma.shape == (12, T)


def test_score_alignment_maps_bars_into_the_recording(fx):
    g = bars.align_to_score(fx["feats"], bars.read_score(fx["score"]))
    assert g.source == "score" and not g.approximate and g.match > 0.5
    assert list(g.numbers) == list(range(1, 13))
    truth = (g.numbers - 1) * 3 * 60 / 90  # bar k starts at (k-1) · 2 s in the performance
    err = np.abs(g.start_sec - truth)[1:]  # bar 1's start is the fuzzy first onset
    assert np.median(err) < 0.15 and err.max() < 0.4
    assert g.start_sec.min() >= 0 and g.end_sec.max() <= fx["feats"].duration_sec + 1e-6


def test_wrong_score_is_an_error(fx, tmp_path):
    with pytest.raises(bars.ScoreError, match="does not match the recording"):
        bars.align_to_score(fx["feats"], bars.read_score(fx["other"]))
    long = write_score(tmp_path / "long.mid", piece(80, 3, 100, seed=1))
    with pytest.raises(bars.ScoreError, match="cannot be the same music"):
        bars.align_to_score(fx["feats"], bars.read_score(long))


def test_beat_bars_are_approximate_and_inside_the_recording(fx):
    g = bars.bars_from_beats(fx["feats"], bars.Meter(3, 4), tempo_hint=90)
    assert g.source == "beats" and g.approximate and len(g) >= 8
    assert g.start_sec.min() >= 0 and g.end_sec.max() <= fx["feats"].duration_sec + 1e-6
    bar_len = np.median(g.end_sec - g.start_sec)
    assert bar_len == pytest.approx(2.0, rel=0.15)  # 3 beats at 90 bpm


def test_no_beats_gives_no_bars():
    f = bars.FrameFeatures(np.zeros(50), np.zeros(50), None, 1.2)
    assert bars.bars_from_beats(f).source == "none"
