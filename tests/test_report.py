"""report.json schema, text, plots and the self-contained HTML, from a real (tiny-model) analysis."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest

from crescendai.tutor import feedback as fb
from crescendai.tutor.analysis import analyze_file
from crescendai.tutor.bundle import Bundle, IdentityCalibration, split_model
from crescendai.tutor.report import (
    SchemaError,
    build_report,
    text_report,
    validate_report,
    write_report,
)
from crescendai.tutor.report.schema import region_name
from crescendai.tutor.scorer import TorchScorer
from tutor_fixtures import piece, render, tiny_model, write_audio


@pytest.fixture(scope="module")
def analysis(tmp_path_factory):
    d = tmp_path_factory.mktemp("rep")
    audio = write_audio(d / "a.wav", render(piece(6, 3, 100, seed=2)))
    backbone, head, _ = split_model(tiny_model())
    bundle = Bundle(TorchScorer(backbone, head), IdentityCalibration(), "tiny")
    a = analyze_file(audio, bundle, meter="3/4")
    # add one feedback line so every part of the report is exercised
    a.lines = [fb.Line(first=1, last=2, spans=(), severity=0.1, confidence=0.9, dims=(0, 18))]
    return a


def test_report_follows_the_schema_and_is_json(analysis):
    rep = build_report(analysis)
    validate_report(rep)
    assert json.loads(json.dumps(rep)) == rep
    assert rep["schema_version"] == 3 and rep["notes"] is None and len(rep["dimensions"]) == 19
    n = len(rep["windows"]["start_sec"])
    assert np.array(rep["windows"]["scores"]).shape == (n, 19)
    f = rep["feedback"][0]
    assert f["dims"] == ["timing", "interpretation"] and f["bars"][0] <= f["bars"][1]
    assert "Hz" in f["saliency_region"] and f["subjective"] is False


def test_schema_catches_bars_outside_the_recording(analysis):
    rep = build_report(analysis)
    bad = copy.deepcopy(rep)
    bad["bars"]["items"][-1]["end_sec"] = rep["input"]["duration_sec"] + 5
    with pytest.raises(SchemaError, match="outside the recording"):
        validate_report(bad)
    bad = copy.deepcopy(rep)
    bad["feedback"][0]["bars"] = [90, 99]
    with pytest.raises(SchemaError, match="not bars of the recording"):
        validate_report(bad)
    bad = copy.deepcopy(rep)
    del bad["overall"]["timing"]
    with pytest.raises(SchemaError, match="overall"):
        validate_report(bad)


def test_text_and_files(analysis, tmp_path):
    rep = build_report(analysis)
    txt = text_report(rep)
    assert "timing stability" in txt and "interpretation" in txt and "try:" in txt
    assert "approximate" in txt
    written = write_report(rep, tmp_path / "out")
    assert set(written) == {"timeline", "overall", "saliency", "json", "text", "html"}
    for p in written.values():
        assert p.stat().st_size > 0
    assert (tmp_path / "out" / "timeline.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    html = written["html"].read_text()
    name = Path(rep["input"]["path"]).name
    assert f"<h1>CrescendAI analysis: {name}</h1>" in html and f"<title>CrescendAI — {name}</title>" in html
    assert html.count("data:image/png;base64,") == 3 and "<script src" not in html and "src=\"http" not in html
    assert json.loads(written["json"].read_text())["plots"]["timeline"] == "timeline.png"


def test_the_report_names_the_corpus_the_model_learned_from(analysis, tmp_path):
    import dataclasses

    unknown = build_report(analysis)
    assert unknown["model"]["trained_on"] == [] and "training corpus not recorded" in text_report(unknown)
    rep = build_report(dataclasses.replace(analysis, trained_on=["percepiano"]))
    validate_report(rep)
    assert rep["model"]["trained_on"] == ["percepiano"] and "trained on PercePiano" in text_report(rep)
    assert "trained on PercePiano" in write_report(rep, tmp_path / "out")["html"].read_text()


def test_region_name():
    prof = np.zeros(16)
    prof[0] = 1
    assert region_name(prof).startswith("bass")
    prof = np.zeros(16)
    prof[15] = 1
    assert region_name(prof).startswith("treble")
    assert region_name(np.zeros(16)) == "unavailable"


def test_the_report_shows_what_the_model_heard(tmp_path):
    """A bundle with the teacher row head: the analysis, report.json, the text and the timeline
    carry what the model heard, with the head's held-out quality."""
    from crescendai.data.teacher import N_TEACHER
    from crescendai.model import RowTeacherHead

    audio = write_audio(tmp_path / "a.wav", render(piece(6, 3, 100, seed=2)))
    backbone, head, _ = split_model(tiny_model())
    teacher = RowTeacherHead(backbone.dim, backbone.cfg.grid[1], N_TEACHER)
    bundle = Bundle(TorchScorer(backbone, head, teacher_head=teacher), IdentityCalibration(), "tiny",
                    heard_quality={"teacher_onset_f1": 0.69, "teacher_cells": 2829})
    a = analyze_file(audio, bundle, meter="3/4")
    assert a.heard is not None and a.series.heard.shape == (len(a.series.start_sec), 8, N_TEACHER)
    rep = build_report(a)
    validate_report(rep)
    h = rep["heard"]
    assert len(h["start_sec"]) == len(h["pedal"]) == len(h["onsets"]) == len(h["velocity"]) > 0
    assert h["quality"] == {"onset F1": 0.69}
    assert all(v is None or 1 <= v <= 127 for v in h["velocity"])
    written = write_report(rep, tmp_path / "out")
    assert "What the model heard" in written["text"].read_text()
    assert "onset F1 0.69" in written["text"].read_text()
    assert "What the model heard" in written["html"].read_text()  # the page says what the text says
    broken = copy.deepcopy(rep)
    broken["heard"]["pedal"] = broken["heard"]["pedal"][:-1]
    with pytest.raises(SchemaError, match="report.heard.pedal"):
        validate_report(broken)


def test_validation_phrase_never_rounds_up_to_the_threshold():
    from crescendai.tutor.report.text import validation_phrase

    assert validation_phrase({"validation_r": 0.195}) == "r 0.19"
    assert validation_phrase({"validation_r": -0.048}) == "r -0.05"
    assert validation_phrase({"validation_r": None}) == "r unknown"
