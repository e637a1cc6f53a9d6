"""``crescendai analyze`` end to end on rendered fixtures: outputs, schema, bars, feedback, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from crescendai.cli import main
from crescendai.core import dims
from crescendai.tutor import analysis
from crescendai.tutor import bundle as bundle_mod
from crescendai.tutor.bundle import Bundle, IdentityCalibration, load_bundle
from crescendai.tutor.report import validate_report
from crescendai.tutor.scorer import ScoreBatch
from tutor_fixtures import piece, render, save_tiny_bundle, write_audio, write_score

TIMING = dims.by_key("timing").index


@pytest.fixture(scope="module")
def fx(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    notes = piece(8, 3, 100, seed=3, timing_jitter=0.005)
    return {
        "dir": d,
        "bundle": save_tiny_bundle(d / "tutor"),
        "audio": write_audio(d / "take.wav", render(notes)),
        "score": write_score(d / "score.mid", piece(8, 3, 100, seed=3)),
        "other": write_score(d / "other.mid", piece(8, 3, 100, seed=11)[:, :] + [0, 0, 6, 0]),
    }


def run(args, capsys):
    rc = main(["analyze", *map(str, args)])
    out, err = capsys.readouterr()
    return rc, out, err


def test_json_report_with_score(fx, capsys):
    out_dir = fx["dir"] / "r1"
    rc, out, err = run([fx["audio"], "--score", fx["score"], "--model", fx["bundle"], "--out", out_dir,
                        "--format", "json", "--params", "none.yaml"], capsys)
    assert rc == 0, err
    rep = json.loads(out)
    validate_report(rep)
    assert rep == json.loads((out_dir / "report.json").read_text())
    assert rep["bars"]["source"] == "score" and rep["bars"]["approximate"] is False
    numbers = [it["number"] for it in rep["bars"]["items"]]
    assert numbers == list(range(1, 9))
    dur = rep["input"]["duration_sec"]
    assert all(0 <= it["start_sec"] < it["end_sec"] <= dur for it in rep["bars"]["items"])
    for name in ("report.html", "report.txt", "timeline.png", "overall.png", "saliency.png"):
        assert (out_dir / name).stat().st_size > 0
    html = (out_dir / "report.html").read_text()
    assert "data:image/png;base64," in html and "http" not in html.replace("http-equiv", "")


def test_text_report_without_score_says_bars_are_approximate(fx, capsys):
    rc, out, _ = run([fx["audio"], "--model", fx["bundle"], "--out", fx["dir"] / "r2", "--meter", "3/4",
                      "--tempo-hint", "100"], capsys)
    assert rc == 0
    assert "bars from beat tracking (3/4" in out and "approximate" in out
    assert "timing stability" in out and "report:" in out
    rep = json.loads((fx["dir"] / "r2" / "report.json").read_text())
    assert rep["bars"]["source"] == "beats" and rep["bars"]["approximate"] is True


def test_help_has_examples(capsys):
    with pytest.raises(SystemExit):
        main(["analyze", "--help"])
    out = capsys.readouterr().out
    assert "examples:" in out and "--score piece.mid" in out


@pytest.mark.parametrize("case", ["missing", "corrupt", "silent", "short"])
def test_bad_audio_is_a_one_line_error_naming_the_file(fx, capsys, case):
    d = fx["dir"]
    path = d / f"{case}.wav"
    if case == "corrupt":
        path.write_bytes(b"RIFF....WAVEfmt garbage" * 10)
    elif case == "silent":
        write_audio(path, np.zeros(22050 * 5, np.float32))
    elif case == "short":
        write_audio(path, render(piece(1, 1, 100))[:22050])
    rc, out, err = run([path, "--model", fx["bundle"], "--out", d / "rx"], capsys)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and str(path) in err
    assert {"missing": "not found", "corrupt": "cannot be read as audio",
            "silent": "silence", "short": "shorter than the minimum"}[case] in err


def test_missing_model_says_run_dvc_repro(fx, capsys):
    rc, _, err = run([fx["audio"], "--model", fx["dir"] / "no_model"], capsys)
    assert rc == 2 and "dvc repro" in err and "--model" in err


@pytest.mark.parametrize("case", ["meter", "model", "tempo"])
def test_a_user_mistake_is_one_line_with_status_2(fx, capsys, case):
    extra = {
        "meter": ["--model", fx["bundle"], "--meter", "3:4"],
        "model": ["--model", fx["dir"] / "no_model"],
        "tempo": ["--model", fx["bundle"], "--tempo-hint", "5"],
    }[case]
    rc, out, err = run([fx["audio"], "--out", fx["dir"] / "rz", *extra], capsys)
    assert rc == 2 and out == ""
    assert err.startswith("crescendai analyze: error: ") and err.count("\n") == 1, err
    assert {"meter": "--meter '3:4'", "model": "no_model", "tempo": "--tempo-hint"}[case] in err


def test_an_unexpected_exception_keeps_its_traceback(fx, capsys, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(analysis, "analyze_file", boom)
    with pytest.raises(RuntimeError, match="boom"):
        main(["analyze", str(fx["audio"]), "--model", str(fx["bundle"]), "--out", str(fx["dir"] / "rb")])
    assert "error:" not in capsys.readouterr().err


@pytest.mark.parametrize("case", ["mismatch", "musicxml", "meter", "missing"])
def test_score_and_argument_errors(fx, capsys, case):
    extra = {
        "mismatch": ["--score", fx["other"]],
        "musicxml": ["--score", fx["dir"] / "s.musicxml"],
        "meter": ["--score", fx["score"], "--meter", "3:4"],
        "missing": ["--score", fx["dir"] / "nope.mid"],
    }[case]
    (fx["dir"] / "s.musicxml").write_text("<score-partwise/>")
    rc, out, err = run([fx["audio"], "--model", fx["bundle"], "--out", fx["dir"] / "ry", *extra], capsys)
    assert rc == 2 and out == ""
    assert {"mismatch": "does not match the recording", "musicxml": "only MIDI",
            "meter": "--meter", "missing": "not found"}[case] in err


# ------------------------------------------------------------------------------------------
# a deliberate timing fault rendered into an otherwise clean performance
# ------------------------------------------------------------------------------------------


class OnsetTimingScorer:
    """A transparent stand-in model: timing score from the irregularity of inter-onset intervals
    measured in each window (spectral flux peaks); every other dimension sits on its good side.
    It exercises the real plumbing (streaming, calibration, bars, per-bar pooling, feedback)."""

    def score(self, db, *, mc_samples, pad_mask=None):
        B = db.shape[0]
        base = np.full((B, 19), 4 / 7, np.float32)
        for d in dims.DIMENSIONS:
            base[:, d.index] -= dims.problem_direction(d) / 7
        for i in range(B):
            flux = np.maximum(0, np.diff(db[i].astype(float), axis=0)).mean(axis=1)
            thr = flux.mean() + 1.5 * flux.std()
            peaks = [t for t in range(1, len(flux) - 1)
                     if flux[t] > thr and flux[t] >= flux[t - 1] and flux[t] >= flux[t + 1]]
            ioi = np.diff(peaks) * 512 / 22050
            ioi = ioi[ioi > 0.08]
            cv = float(ioi.std() / ioi.mean()) if ioi.size >= 2 else 0.0
            base[i, TIMING] = np.clip(3 / 7 + 2.0 * cv, 1 / 7, 1)
        return ScoreBatch(base, np.full((B, 19), 0.01, np.float32))

    def saliency(self, db, weights, *, pad_mask=None):
        return np.full((db.shape[0], 16, 16), 1 / 256, np.float32)


def test_feedback_points_at_a_rendered_timing_fault(fx, capsys, monkeypatch):
    d = fx["dir"]
    clean = piece(16, 3, 100, seed=5)
    faulty = piece(16, 3, 100, seed=5, timing_jitter=0.003, fault_bars=(9, 12), fault_jitter=0.1)
    score = write_score(d / "fault_score.mid", clean)
    audio = write_audio(d / "fault_take.wav", render(faulty))
    oracle = Bundle(scorer=OnsetTimingScorer(), calibration=IdentityCalibration(), path="oracle")
    monkeypatch.setattr(bundle_mod, "load_bundle", lambda *a, **k: oracle)
    rc, out, err = run([audio, "--score", score, "--out", d / "fault", "--format", "json"], capsys)
    assert rc == 0, err
    rep = json.loads(out)
    timing_lines = [f for f in rep["feedback"] if "timing" in f["dims"]]
    assert timing_lines, rep["feedback"]
    for f in timing_lines:  # every timing line overlaps the fault and none is far from it
        a, b = f["bars"]
        assert a <= 12 and b >= 9 and a >= 7 and b <= 14, f
    assert "bars" in timing_lines[0]["text"] and "timing stability (unstable)" in timing_lines[0]["text"]
    # the same performance without the fault: no timing feedback (no false alarm)
    audio_clean = write_audio(d / "clean_take.wav", render(piece(16, 3, 100, seed=5, timing_jitter=0.003)))
    rc, out, err = run([audio_clean, "--score", score, "--out", d / "clean", "--format", "json"], capsys)
    assert rc == 0, err
    assert not [f for f in json.loads(out)["feedback"] if "timing" in f["dims"]]


class ValidatedIdentity(IdentityCalibration):
    """Identity maps with the validation record a calibrate stage stores: error and r per dimension."""

    def __init__(self, error: np.ndarray, r: np.ndarray) -> None:
        self.error, self.r = error, r


def test_a_dimension_the_model_cannot_judge_gets_no_advice(fx, capsys, monkeypatch):
    """The same timing fault, but the bundle's validation says timing r is 0.05: no timing advice,
    the score is flagged as unreliable, and ± carries the model's validation error."""
    d = fx["dir"]
    clean = piece(16, 3, 100, seed=5)
    faulty = piece(16, 3, 100, seed=5, timing_jitter=0.003, fault_bars=(9, 12), fault_jitter=0.1)
    score = write_score(d / "judge_score.mid", clean)
    audio = write_audio(d / "judge_take.wav", render(faulty))
    r = np.full(19, 0.5)
    r[TIMING] = 0.05
    cal = ValidatedIdentity(np.full(19, 0.1), r)
    oracle = Bundle(scorer=OnsetTimingScorer(), calibration=cal, path="oracle")
    monkeypatch.setattr(bundle_mod, "load_bundle", lambda *a, **k: oracle)
    rc, out, err = run([audio, "--score", score, "--out", d / "judge", "--format", "json"], capsys)
    assert rc == 0, err
    rep = json.loads(out)
    timing = rep["overall"][dims.DIMENSIONS[TIMING].key]
    assert not [f for f in rep["feedback"] if "timing" in f["dims"]]
    assert timing["judged"] is False and timing["validation_r"] == pytest.approx(0.05)
    assert all(o["uncertainty"] >= 0.1 for o in rep["overall"].values())  # never below the model's error
    rc, out, err = run([audio, "--score", score, "--out", d / "judge_text"], capsys)
    assert rc == 0 and "[unreliable: r 0.05]" in out and "gives no advice on them" in out


def test_a_weak_model_gives_no_confident_line(fx):
    """The rendered timing fault again, scored by the transparent timing model: with a small
    out-of-fold error the fault is reported; with a large one (a weak model) no line reaches the
    confidence threshold, however sure MC dropout is. A domain widening acts like a larger error."""
    from crescendai.core.config import TutorParams

    d = fx["dir"]
    faulty = piece(16, 3, 100, seed=5, timing_jitter=0.003, fault_bars=(9, 12), fault_jitter=0.1)
    score = write_score(d / "weak_score.mid", piece(16, 3, 100, seed=5))
    audio = write_audio(d / "weak_take.wav", render(faulty))
    params = TutorParams(min_confidence=0.8)

    def lines(error: float, **kw) -> list:
        cal = ValidatedIdentity(np.full(19, error), np.full(19, 0.5))
        a = analysis.analyze_file(audio, Bundle(OnsetTimingScorer(), cal, "oracle"), score_path=score,
                                  params=params, **kw)
        assert all(ln.confidence <= 0.99 for ln in a.lines)
        return [ln for ln in a.lines if TIMING in ln.dims]

    assert lines(0.01)
    assert not lines(0.5)
    assert not lines(0.01, domain_widening=50.0)
    assert not lines(0.01, domain_widening=lambda feats, series: np.full(19, 50.0))


@pytest.mark.slow
@pytest.mark.xfail(
    strict=False,
    reason="known gap: the default model does not hear timing (out-of-fold r for timing ≈ 0 in "
    "metrics/eval_fusion.json and eval_ssl.json): its 0.37-s teacher rows and the mean over windows do not "
    "carry 10–100 ms deviations. The fusion bundle passes this one render (its window features react to "
    "the jitter) while the probe bundle failed it: one fault is no evidence against r −0.05, so it stays "
    "xfail; the feedback logic itself is tested with a timing scorer above",
)
def test_trained_model_hears_the_rendered_timing_fault(fx, tmp_path):
    """With the pipeline's trained bundle: bars with a timing fault score less stable than clean bars."""
    model = Path("models/tutor")
    if not (model / "model.pt").is_file():
        pytest.skip("models/tutor not built (run `uv run dvc repro`)")
    clean = piece(24, 3, 100, seed=5)
    faulty = piece(24, 3, 100, seed=5, timing_jitter=0.003, fault_bars=(9, 16), fault_jitter=0.1)
    score = write_score(tmp_path / "s.mid", clean)
    audio = write_audio(tmp_path / "t.wav", render(faulty))
    a = analysis.analyze_file(audio, load_bundle(model), score_path=score)
    nums = np.asarray(a.units.labels)
    t = a.unit_scores[:, TIMING]
    fault = np.nanmedian(t[(nums >= 9) & (nums <= 16)])
    rest = np.nanmedian(t[(nums < 8) | (nums > 17)])
    assert fault > rest
