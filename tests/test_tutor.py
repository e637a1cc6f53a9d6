"""Window scoring: the Scorer contract, head-only MC dropout, saliency, calibration, pooling."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from crescendai.core import dims
from crescendai.core.audio import WINDOW_SEC, windows_from_waveform
from crescendai.evaluate.calibration import Calibrator
from crescendai.tutor.analysis import analyze_windows_of_file
from crescendai.tutor.bundle import IdentityCalibration, ModelError, load_bundle, split_model
from crescendai.tutor.saliency import add_saliency, saliency_weights
from crescendai.tutor.scorer import SAL_F, SAL_T, TorchScorer
from crescendai.tutor.series import (
    WindowSeries,
    calibrate_std,
    judged_dims,
    mark_quiet,
    per_bar,
    pool,
    score_windows,
)
from tutor_fixtures import save_tiny_bundle, tiny_model


def _db(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.clip(rng.normal(-40, 15, (n, 128, 128)), -80, 0).astype(np.float32)


def test_torch_scorer_shapes_uncertainty_and_saliency():
    m = tiny_model()
    backbone, head, _ = split_model(m)
    sc = TorchScorer(backbone, head)
    b = sc.score(_db(5), mc_samples=8)
    assert b.mean.shape == b.std.shape == (5, 19)
    assert np.all((b.mean >= dims.LABEL_MIN - 1e-6) & (b.mean <= 1 + 1e-6))
    assert np.all(b.std >= 0) and b.std.mean() > 0  # dropout in the head gives a spread
    sal = sc.saliency(_db(5), saliency_weights(b.mean))
    assert sal.shape == (5, SAL_T, SAL_F)
    np.testing.assert_allclose(sal.sum(axis=(1, 2)), 1.0, rtol=1e-4)
    # deterministic mean = the model's eval output
    with torch.no_grad():
        ref = m(torch.from_numpy(_db(5)))["scores"].numpy()
    np.testing.assert_allclose(b.mean, ref, atol=1e-5)
    assert sc.score(_db(5), mc_samples=1).std.max() == 0


def test_backbone_runs_once_per_window_and_mc_only_on_the_head():
    backbone, head, _ = split_model(tiny_model())
    calls = {"backbone": 0, "head": 0}
    backbone.register_forward_hook(lambda *a: calls.__setitem__("backbone", calls["backbone"] + 1))
    head.register_forward_hook(lambda *a: calls.__setitem__("head", calls["head"] + 1))
    TorchScorer(backbone, head).score(_db(6), mc_samples=20)
    assert calls == {"backbone": 1, "head": 2}  # one deterministic pass + one batched MC pass


def test_mc_dropout_has_its_own_seeded_generator():
    """The spread is reproducible from the scorer's seed alone: the global RNG neither drives it
    (no global seeding needed) nor is disturbed by it."""
    backbone, head, _ = split_model(tiny_model())
    torch.manual_seed(1)
    a = TorchScorer(backbone, head, seed=7).score(_db(4), mc_samples=8).std
    torch.manual_seed(2)
    state = torch.get_rng_state()
    b = TorchScorer(backbone, head, seed=7).score(_db(4), mc_samples=8).std
    assert torch.equal(torch.get_rng_state(), state)
    np.testing.assert_array_equal(a, b)
    c = TorchScorer(backbone, head, seed=8).score(_db(4), mc_samples=8).std
    assert not np.array_equal(a, c) and c.mean() > 0


def test_saliency_weights_pick_the_worst_problem_dims():
    mean = np.full((1, 19), 4 / 7)
    mean[0, dims.by_key("timing").index] = 0.95  # very unstable
    mean[0, dims.by_key("balance").index] = 0.2  # very disproportioned (problem pole: low)
    mean[0, dims.by_key("mood_valence").index] = 1.0  # no problem pole: never chosen
    w = saliency_weights(mean, top_k=2)
    assert w[0, dims.by_key("timing").index] == 1 and w[0, dims.by_key("balance").index] == -1
    assert np.count_nonzero(w) == 2


class LinearCal:
    def transform(self, s):
        return np.asarray(s) * 2.0


def test_calibrated_std_follows_the_slope_and_pooling():
    raw = np.full((4, 19), 0.3)
    std = np.full((4, 19), 0.05)
    np.testing.assert_allclose(calibrate_std(LinearCal(), raw, std), 0.1, rtol=1e-5)
    vals = np.array([0.1, 0.2, 0.3, 0.4, 10.0])  # one outlier window
    s = WindowSeries(
        start_sec=np.arange(5.0), raw=np.tile(vals[:, None], 19), scores=np.tile(vals[:, None], 19),
        std=np.zeros((5, 19)), saliency=np.zeros((5, 16, 16)), pad_fraction=np.zeros(5),
        valid=np.ones(5, bool), duration_sec=8.0, hop_sec=1.0)
    p = pool(s, trim=0.2)
    assert p.median[0] == pytest.approx(0.3) and p.trimmed_mean[0] == pytest.approx(0.3)
    assert p.quantiles.shape == (5, 19) and p.spread[0] == pytest.approx(0.2)
    assert np.all(p.uncertainty == 0) and p.model_error is None  # no validation record: MC only
    s.std[:] = 0.03
    err = np.full(19, 0.04)
    r = np.where(np.arange(19) % 2 == 0, 0.35, 0.05)
    r[4] = np.nan  # not measurable (constant labels): not judged
    p = pool(s, trim=0.2, model_error=err, validation_r=r)
    np.testing.assert_allclose(p.uncertainty, 0.05, rtol=1e-5)  # √(0.03² + 0.04²)
    wide = pool(s, trim=0.2, model_error=err, domain_widening=2.0)
    np.testing.assert_allclose(wide.uncertainty, np.hypot(0.03, 0.08), rtol=1e-5)
    judged = judged_dims(p.validation_r, 0.2)
    assert judged.tolist() == [i % 2 == 0 and i != 4 for i in range(19)]
    assert judged_dims(None, 0.2).all()


def test_score_windows_streams_and_per_bar_weighting():
    y = (np.random.default_rng(0).normal(0, 0.1, 22050 * 8)).astype(np.float32)
    w = windows_from_waveform(y, 1.0)
    backbone, head, _ = split_model(tiny_model())
    parts = [type(w)(w.db[:3], w.pad_mask[:3], w.start_sec[:3], 8.0),
             type(w)(w.db[3:], w.pad_mask[3:], w.start_sec[3:], 8.0)]
    seen = []
    s = score_windows(parts, TorchScorer(backbone, head), Calibrator.identity(),
                            hop_sec=1.0, mc_samples=4, batch_size=2, progress=seen.append)
    assert len(s) == len(w) and s.scores.shape == (len(w), 19) and seen[-1] == pytest.approx(8.0)
    assert s.valid.sum() == np.count_nonzero(w.pad_fraction <= 0.5)
    # per-bar: a bar covered only by window 0 gets window 0's values
    vals = np.arange(len(s), dtype=float)[:, None]
    s.valid[:] = True
    out, cov = per_bar(s, np.array([0.0, 0.0]), np.array([0.5, WINDOW_SEC + 0.5]), vals)
    assert out[0, 0] == pytest.approx(0.0) and cov[0] == pytest.approx(0.5)
    assert 0 < out[1, 0] < 1


def test_mark_quiet_excludes_a_silent_gap():
    from crescendai.core.audio import FRAME_SEC

    s = WindowSeries(
        start_sec=np.arange(10.0), raw=np.zeros((10, 19)), scores=np.zeros((10, 19)),
        std=np.zeros((10, 19)), saliency=np.zeros((10, 16, 16)), pad_fraction=np.zeros(10),
        valid=np.ones(10, bool), duration_sec=13.0, hop_sec=1.0)
    level = np.zeros(int(13 / FRAME_SEC))
    level[int(3 / FRAME_SEC): int(9.5 / FRAME_SEC)] = -90  # silence from 3 s to 9.5 s
    mark_quiet(s, level)
    assert list(np.flatnonzero(~s.valid)) == [3, 4, 5, 6]


def test_a_bug_while_loading_keeps_its_traceback(tmp_path, monkeypatch):
    import crescendai.model

    def broken(*_a, **_k):
        raise TypeError("a bug, not a damaged file")

    monkeypatch.setattr(crescendai.model, "load_model", broken)
    with pytest.raises(TypeError, match="a bug"):
        load_bundle(save_tiny_bundle(tmp_path / "ok"))


def test_load_bundle_errors_and_success(tmp_path):
    with pytest.raises(ModelError, match="dvc repro"):
        load_bundle(tmp_path / "nothing")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "model.pt").write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load the model"):
        load_bundle(bad)
    save_tiny_bundle(tmp_path / "damaged")
    (tmp_path / "damaged" / "model.pt").write_bytes(b"not a model")  # config.json is fine
    with pytest.raises(ModelError, match="cannot load the weights"):
        load_bundle(tmp_path / "damaged")
    b = load_bundle(save_tiny_bundle(tmp_path / "ok"))
    assert not isinstance(b.calibration, IdentityCalibration)
    assert b.scorer.score(_db(2), mc_samples=3).mean.shape == (2, 19)
    (tmp_path / "ok" / "calibration.json").write_text("{}")
    with pytest.raises(ModelError, match="calibration.json: cannot load calibration"):
        load_bundle(tmp_path / "ok")


def test_add_saliency_only_for_targets(tmp_path):
    from tutor_fixtures import piece, render, write_audio

    audio = write_audio(tmp_path / "a.wav", render(piece(6, 3, 100, seed=2)))
    backbone, head, _ = split_model(tiny_model())
    sc = TorchScorer(backbone, head)
    s = analyze_windows_of_file(audio, sc, Calibrator.identity(), mc_samples=2)
    assert not s.saliency_done.any()
    w = np.zeros(19, np.float32)
    w[0] = 1
    add_saliency(audio, s, sc, [(np.array([2, 3, 4]), w), (np.array([7]), w)], max_windows=3)
    assert s.saliency_done.sum() == 3 and not s.saliency_done[:2].any()
    done = s.saliency[s.saliency_done].astype(np.float32)
    np.testing.assert_allclose(done.sum(axis=(1, 2)), 1.0, rtol=1e-2)


@pytest.fixture(scope="module")
def onnx_bundle(tmp_path_factory):
    from tutor_fixtures import save_onnx_bundle

    return save_onnx_bundle(tmp_path_factory.mktemp("onnx") / "bundle")


def test_an_onnx_bundle_analyses_a_recording_without_importing_torch(onnx_bundle, tmp_path):
    """The CLI on a bundle with an ONNX runtime: a report, and torch never imported."""
    import subprocess
    import sys

    from tutor_fixtures import piece, render, write_audio

    audio = write_audio(tmp_path / "take.wav", render(piece(6, 3, 100, seed=2)))
    code = ("import sys; from crescendai.cli import main; "
            f"rc = main(['analyze', {str(audio)!r}, '--out', {str(tmp_path / 'out')!r}, '--model', "
            f"{str(onnx_bundle)!r}, '--no-progress']); "
            "print('torch' in sys.modules); sys.exit(rc)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "False"
    assert (tmp_path / "out" / "report.json").is_file()


def test_onnx_and_torch_runtimes_of_one_bundle_give_the_same_analysis(onnx_bundle, tmp_path):
    import shutil

    from crescendai.core.files import read_json, write_json
    from crescendai.tutor.scorer import OnnxScorer
    from tutor_fixtures import piece, render, write_audio

    torch_copy = shutil.copytree(onnx_bundle, tmp_path / "torch")
    config = read_json(torch_copy / "config.json")
    del config["onnx"]
    write_json(torch_copy / "config.json", config)
    a, b = load_bundle(onnx_bundle), load_bundle(torch_copy)
    assert isinstance(a.scorer, OnnxScorer) and isinstance(b.scorer, TorchScorer)
    assert a.info["runtime"] == "onnxruntime" and b.info["runtime"] == "torch"
    audio = write_audio(tmp_path / "a.wav", render(piece(6, 3, 100, seed=3)))
    sa, sb = (analyze_windows_of_file(audio, x.scorer, x.calibration, mc_samples=1) for x in (a, b))
    np.testing.assert_allclose(sa.scores, sb.scores, atol=1e-5)
    w = np.zeros(19, np.float32)
    w[2] = 1
    for s, x in ((sa, a), (sb, b)):
        add_saliency(audio, s, x.scorer, [(np.array([1, 2]), w)], max_windows=2)
    np.testing.assert_allclose(sa.saliency[sa.saliency_done].astype(np.float32),
                               sb.saliency[sb.saliency_done].astype(np.float32), atol=1e-3)


def test_an_onnx_bundle_with_a_missing_or_damaged_graph_names_it(onnx_bundle, tmp_path):
    import shutil

    gone = shutil.copytree(onnx_bundle, tmp_path / "gone")
    (gone / "saliency.onnx").unlink()
    with pytest.raises(ModelError, match=r"saliency\.onnx: missing from the bundle; re-run `uv run dvc repro calibrate`"):
        load_bundle(gone)
    damaged = shutil.copytree(onnx_bundle, tmp_path / "damaged")
    (damaged / "scoring.onnx").write_bytes(b"not a graph")
    with pytest.raises(ModelError, match=r"scoring\.onnx: onnxruntime cannot load it"):
        load_bundle(damaged)
    (damaged / "linear_head.npz").write_bytes(b"not a head")
    with pytest.raises(ModelError, match=r"linear_head\.npz: cannot load the fused head"):
        load_bundle(damaged)
