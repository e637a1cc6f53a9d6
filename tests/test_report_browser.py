"""report.html as a teacher uses it: the recording plays from the page, and clicking a bar, a
feedback line or a note finding plays that span. Plain-HTML checks run everywhere; the headless
Chromium check skips when playwright or a Chromium executable is missing."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from crescendai.tutor.report import text_report, validate_report, write_report
from crescendai.tutor.report.html import html_report

SR = 22050
DUR = 6.0
BAR = 1.5  # four bars of 1.5 s


def write_wav(path: Path, seconds: float = DUR, sr: int = SR) -> Path:
    """Decaying tones, one every 0.75 s (a real 16-bit PCM WAV)."""
    import soundfile as sf

    t = np.arange(int(seconds * sr)) / sr
    freq = np.where((t // 0.75) % 2 == 0, 440.0, 330.0)
    y = 0.3 * np.sin(2 * np.pi * freq * t) * np.exp(-(t % 0.75) * 5.0)
    sf.write(path, y.astype(np.float32), sr, subtype="PCM_16")
    return path


def minimal_report(audio: Path, units: str = "bar", notes: dict[str, Any] | None = None) -> dict[str, Any]:
    """A small valid report of ``audio`` (DUR s, 4 bars, one feedback line on bars 3–4)."""
    from crescendai.core import dims
    from crescendai.core.audio import WINDOW_SEC
    from crescendai.tutor.report.schema import SCHEMA, SCHEMA_VERSION
    from crescendai.tutor.report.text import domain_phrase

    starts = [0.0, 1.0, 2.0, 3.0]
    q = {"q10": 0.4, "q25": 0.45, "q50": 0.5, "q75": 0.55, "q90": 0.6}
    domain: dict[str, Any] = {"checked": False, "level": None, "percentile": None, "distance_ratio": None,
                              "far_share": None, "widening": 1.0, "advice": True, "withheld": []}
    domain["text"] = domain_phrase(domain)
    rep = {
        "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "crescendai_version": "0.1.0",
        "created": "2024-01-01T00:00:00+00:00",
        "input": {"path": str(audio), "duration_sec": DUR, "score": None},
        "model": {"path": "tiny", "calibrated": False, "mc_samples": 1, "hop_sec": 1.0,
                  "min_reliable_r": 0.2, "trained_on": []},
        "dimensions": [{"index": d.index, "key": d.key, "name": d.name, "low": d.low, "high": d.high,
                        "problem_pole": d.problem_pole, "subjective": d.subjective} for d in dims.DIMENSIONS],
        "overall": {d.key: {"median": 0.5, "trimmed_mean": 0.5, "spread": 0.1, "uncertainty": 0.05,
                            "model_error": None, "validation_r": None, "judged": True, "rating": 3.5,
                            "quantiles": q} for d in dims.DIMENSIONS},
        "bars": {"source": "beats", "approximate": True, "meter": "3/4", "tempo_bpm": 120.0, "match": None,
                 "units": units,
                 "items": [{"number": i + 1, "start_sec": i * BAR, "end_sec": (i + 1) * BAR, "scores": None}
                           for i in range(4)]},
        "windows": {"window_sec": WINDOW_SEC, "start_sec": starts, "valid": [True] * 4,
                    "scores": [[0.5] * 19] * 4, "std": [[0.02] * 19] * 4,
                    "saliency_mel": [None, None, [0.1] * 16, [0.2] * 16], "domain_percentile": None},
        "feedback": [{"bars": [3, 4] if units == "bar" else None, "start_sec": 3.0, "end_sec": 6.0,
                      "dims": ["timing"], "text": "Bars 3–4: timing is unstable.",
                      "advice": ["practise with a metronome"], "severity": 0.2, "confidence": 0.9,
                      "subjective": False, "saliency_region": "mid (500–1000 Hz)"}],
        "summary": {"strengths": [], "weaknesses": ["timing"]},
        "domain": domain, "plots": {}, "timings": {},
    }
    if notes is not None:
        rep["notes"] = notes
    validate_report(rep)
    return rep


NOTES = {"transcriber": "test-transcriber", "text": "2 differences from the score.", "reliable": True,
         "recall": 0.9, "precision": 0.8, "tempo_ratio": 1.0, "bars": [],
         "lines": [{"bars": [2, 2], "start_sec": 1.5, "end_sec": 3.0, "kind": "wrong",
                    "text": "Bar 2: E played instead of F."},
                   {"bars": [4, 4], "start_sec": 4.5, "end_sec": 6.0, "kind": "missing",
                    "text": "Bar 4: the last G is missing."}]}


@pytest.fixture
def recording(tmp_path: Path) -> Path:
    (tmp_path / "rec dir").mkdir()
    return write_wav(tmp_path / "rec dir" / "take 1.wav")


# --- plain HTML: run everywhere ---------------------------------------------------------------

def test_write_report_links_the_recording_relative_to_the_report(recording, tmp_path):
    written = write_report(minimal_report(recording), tmp_path / "out", plots=False)
    page = written["html"].read_text()
    assert page.count("<audio") == 1
    assert '<audio id="recording" controls preload="metadata" src="../rec%20dir/take%201.wav">' in page
    assert "../rec dir/take 1.wav" in page and "keep the two folders together" in page
    assert not list((tmp_path / "out").glob("*.wav"))  # not copied
    assert "src=\"http" not in page and "<script src" not in page


def test_every_line_and_bar_is_playable(recording):
    rep = minimal_report(recording, notes=NOTES)
    page = html_report(rep, {}, audio_src="a.wav")
    feedback = re.findall(r'<li class="play" tabindex="0" role="button" data-start="([\d.]+)" '
                          r'data-end="([\d.]+)"[^>]*><b>', page)
    assert [(float(a), float(b)) for a, b in feedback] == [(f["start_sec"], f["end_sec"]) for f in rep["feedback"]]
    bars = re.findall(r'<button class="bar( flagged)?" data-start="([\d.]+)" data-end="([\d.]+)" '
                      r'title="bar (\d+), ([\d:]+)–([\d:]+)"', page)
    assert [int(b[3]) for b in bars] == [it["number"] for it in rep["bars"]["items"]]
    assert [(float(b[1]), float(b[2])) for b in bars] == [(it["start_sec"], it["end_sec"])
                                                          for it in rep["bars"]["items"]]
    assert [bool(b[0]) for b in bars] == [False, False, True, True]  # inside the feedback line (3–6 s)
    assert bars[1][4:] == ("0:01", "0:03") and "lie in a passage of the feedback" in page
    assert "<h2>The notes (against the score)</h2>" in page and "2 differences from the score." in page
    assert page.count('<li class="play"') == 1 + len(NOTES["lines"])
    assert page.count("<script>") == 1


def test_bar_strip_labels_times_and_thins_many_bars(recording):
    rep = minimal_report(recording, units="time")
    page = html_report(rep, {}, audio_src="a.wav")
    assert re.findall(r'<button class="bar[^>]*>([^<]*)</button>', page) == ["0:00", "0:01", "0:03", "0:04"]
    rep = minimal_report(recording)
    rep["bars"]["items"] = [{"number": i + 1, "start_sec": i * 0.05, "end_sec": (i + 1) * 0.05,
                             "scores": None} for i in range(120)]
    labels = re.findall(r'<button class="bar[^>]*>([^<]*)</button>', html_report(rep, {}, audio_src="a.wav"))
    assert len(labels) == 120 and [x for x in labels if x] == ["1"] + [str(n) for n in range(5, 121, 5)]


def test_without_audio_there_is_no_player_and_nothing_to_click(recording):
    rep = minimal_report(recording, notes=NOTES)
    page = html_report(rep, {})
    assert "<audio" not in page and "<script" not in page and 'class="play"' not in page
    assert "data-start" in page and page.count(" disabled>") == 4  # the bar strip still shows where
    rep["notes"] = {**NOTES, "text": "No differences from the score.", "lines": []}
    page = html_report(rep, {}, audio_src="a.wav")
    assert "No differences from the score." in page and "No bar stands out" in page  # as the text says
    assert "No bar stands out" in text_report(rep)
    rep["notes"] = None
    assert "The notes" not in html_report(rep, {}, audio_src="a.wav")


# --- headless Chromium ------------------------------------------------------------------------

def chromium() -> str | None:
    """The Chromium to drive: $CRESCENDAI_CHROMIUM, else chromium / chromium-browser / google-chrome."""
    return (os.environ.get("CRESCENDAI_CHROMIUM") or shutil.which("chromium")
            or shutil.which("chromium-browser") or shutil.which("google-chrome"))


@pytest.mark.slow  # ~5–6 s: Chromium start, the plots, 1.5 s of real playback
def test_the_page_plays_the_recording_in_chromium(recording, tmp_path):
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    exe = chromium()
    if not exe or not Path(exe).exists():
        pytest.skip(f"no Chromium executable ({exe or 'none on PATH'}); set CRESCENDAI_CHROMIUM or install chromium")
    rep = minimal_report(recording, notes=NOTES)
    page_path = write_report(rep, tmp_path / "out")["html"]
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=exe, headless=True,
                                     args=["--no-sandbox", "--autoplay-policy=no-user-gesture-required"])
        try:
            page = browser.new_page()
            errors: list[str] = []
            page.on("pageerror", lambda err: errors.append(str(err)))
            page.goto(page_path.as_uri())
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 0
            page.wait_for_function("document.getElementById('recording').readyState >= 1", timeout=10_000)
            audio = "document.getElementById('recording')"
            assert page.evaluate(f"{audio}.duration") == pytest.approx(DUR, abs=0.05)
            page.evaluate(f"{audio}.muted = true")

            def now() -> float:
                return float(page.evaluate(f"{audio}.currentTime"))

            bar2 = rep["bars"]["items"][1]
            page.click("button.bar[title^='bar 2,']")
            page.wait_for_function(f"{audio}.currentTime >= {bar2['start_sec']} && !{audio}.seeking",
                                   timeout=5_000)
            assert bar2["start_sec"] <= now() <= bar2["end_sec"] + 0.3
            page.wait_for_function(f"{audio}.paused", timeout=5_000)  # it stops at the bar's end
            assert now() == pytest.approx(bar2["end_sec"], abs=0.3)

            line = rep["feedback"][0]
            page.click("li.play >> nth=0")
            page.wait_for_function(f"Math.abs({audio}.currentTime - {line['start_sec']}) < 0.3", timeout=5_000)
            assert now() == pytest.approx(line["start_sec"], abs=0.3)

            note = NOTES["lines"][1]  # the keyboard: focus the note finding and press Enter
            page.focus("li.play >> nth=2")
            page.keyboard.press("Enter")
            page.wait_for_function(f"Math.abs({audio}.currentTime - {note['start_sec']}) < 0.3", timeout=5_000)
            assert errors == []
        finally:
            browser.close()
