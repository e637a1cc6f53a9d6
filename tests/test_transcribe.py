"""Transcription: Basic Pitch (bundled ONNX model) finds rendered notes; a transcriber that is
unknown or not installed is an error that names it and says how to get it."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from crescendai.tutor import transcribe as tr
from tutor_fixtures import piece, render, save_tiny_bundle, write_audio, write_score


def onset_prf(ref: np.ndarray, est: tr.Notes) -> tuple[float, float, float]:
    """Onset-only (precision, recall, F1) of ``est`` against notes ``ref`` (mir_eval, ±50 ms)."""
    import mir_eval

    ref_n = tr.Notes.from_midi_rows(ref)
    return mir_eval.transcription.precision_recall_f1_overlap(
        ref_n.intervals, ref_n.hz, est.intervals, est.hz, offset_ratio=None)[:3]


def test_basic_pitch_finds_the_rendered_notes():
    notes = piece(6, 3, 100, seed=4)
    est = tr.transcribe(render(notes), 22050, "basic-pitch")
    assert len(est) > 0 and np.all(np.diff(est.onset_sec) >= 0)
    assert np.all((est.pitch >= 21) & (est.pitch <= 108)) and np.all(est.offset_sec > est.onset_sec)
    assert np.all((est.confidence >= 0) & (est.confidence <= 1))
    _, recall, f1 = onset_prf(notes, est)
    # the additive test piano's held bass notes get re-onsets and partials (precision ~0.5)
    assert recall >= 0.9 and f1 >= 0.6


def test_basic_pitch_at_another_sample_rate_gives_the_same_notes():
    import soxr

    notes = piece(4, 3, 100, seed=5)
    y = render(notes)
    a = tr.transcribe(y, 22050)
    b = tr.transcribe(soxr.resample(y, 22050, 44100), 44100)
    assert abs(len(a) - len(b)) <= 1 and onset_prf(notes, b)[1] >= 0.9


def test_silence_has_no_notes():
    assert len(tr.transcribe(np.zeros(22050 * 3, np.float32), 22050)) == 0


def test_unknown_transcriber_lists_the_known_ones():
    with pytest.raises(tr.TranscriberError, match="unknown transcriber 'mt3'.*basic-pitch, transkun"):
        tr.transcribe(np.zeros(100, np.float32), 22050, "mt3")


@pytest.fixture
def without_transkun(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "transkun" else real(name, *a))


def test_a_missing_transcriber_says_how_to_install_it(without_transkun):
    assert not tr.available("transkun") and tr.available("basic-pitch")
    with pytest.raises(tr.TranscriberError, match="'transkun' is not installed.*uv sync --extra transkun"):
        tr.transcribe(np.zeros(100, np.float32), 22050, "transkun")


def test_analyze_with_a_missing_transcriber_is_one_line_before_any_work(without_transkun, tmp_path, capsys):
    from crescendai.cli import main

    notes = piece(6, 3, 100, seed=1)
    audio = write_audio(tmp_path / "take.wav", render(notes))
    score = write_score(tmp_path / "score.mid", notes)
    code = main(["analyze", str(audio), "--score", str(score), "--transcriber", "transkun",
                 "--model", str(tmp_path / "no-model"), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "'transkun' is not installed" in err and "uv sync --extra transkun" in err
    assert not (tmp_path / "take_report").exists()


def test_analyze_without_a_transcriber_has_no_note_check(tmp_path, capsys):
    import json

    from crescendai.cli import main

    notes = piece(6, 3, 100, seed=1)
    audio = write_audio(tmp_path / "take.wav", render(notes))
    score = write_score(tmp_path / "score.mid", notes)
    bundle = save_tiny_bundle(tmp_path / "bundle")
    assert main(["analyze", str(audio), "--score", str(score), "--transcriber", "none", "--model",
                 str(bundle), "--out", str(tmp_path / "out"), "--format", "json", "--no-progress"]) == 0
    assert json.loads(capsys.readouterr().out)["notes"] is None


@pytest.mark.slow
@pytest.mark.skipif(not tr.available("transkun"), reason="transkun is not installed here "
                    "(uv sync --extra transkun)")
def test_transkun_finds_the_rendered_notes():
    notes = piece(2, 3, 100, seed=4)
    est = tr.transcribe(render(notes), 22050, "transkun")
    assert onset_prf(notes, est)[1] >= 0.9


def test_auto_picks_transkun_only_on_a_gpu_where_installed(without_transkun):
    assert tr.resolve("auto", "cpu") == "basic-pitch" and tr.resolve("auto", "cuda") == "basic-pitch"
    assert tr.resolve("transkun", "cpu") == "transkun"
    with pytest.raises(tr.TranscriberError, match="unknown transcriber"):
        tr.resolve("nope")


def test_auto_on_a_gpu_with_transkun(monkeypatch):
    monkeypatch.setattr(tr, "available", lambda name: True)
    assert tr.resolve("auto", "cuda:0") == "transkun" and tr.resolve("auto", "cpu") == "basic-pitch"
