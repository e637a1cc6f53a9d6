"""Isotonic calibrator: matches sklearn, round-trips through JSON, reduces miscalibration."""

import json

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression

from crescendai.core import columns
from crescendai.core.files import read_json
from crescendai.evaluate.calibration import (
    Calibrator,
    calibrate_tutor,
    calibration_report,
    cross_fitted_error,
    expected_calibration_error,
    reliability_rows,
)


@pytest.fixture
def miscalibrated():
    rng = np.random.default_rng(0)
    y = rng.uniform(0.2, 0.9, (200, 19))
    raw = 0.5 + 0.3 * (y - 0.55) + rng.normal(0, 0.02, y.shape)  # shrunk towards the mean
    return raw, y


def test_matches_sklearn_and_roundtrips(miscalibrated, tmp_path):
    raw, y = miscalibrated
    cal = Calibrator.fit(raw, y)
    iso = IsotonicRegression(y_min=1 / 7, y_max=1.0, out_of_bounds="clip").fit(raw[:, 3], y[:, 3])
    x = np.linspace(0, 1, 50)
    grid = np.tile(x[:, None], (1, 19))
    assert np.allclose(cal.transform(grid)[:, 3], iso.predict(x))
    cal.save(tmp_path / "c.json")
    json.loads((tmp_path / "c.json").read_text())
    assert np.allclose(Calibrator.load(tmp_path / "c.json").transform(grid), cal.transform(grid))
    assert cal.transform(grid[0]).shape == (19,)
    out = cal.transform(grid)
    assert out.min() >= 1 / 7 - 1e-12 and out.max() <= 1.0 and np.all(np.diff(out, axis=0) >= -1e-12)


def test_reduces_error_on_held_out(miscalibrated):
    raw, y = miscalibrated
    cal = Calibrator.fit(raw[:100], y[:100])
    rep = calibration_report(cal, raw[100:], y[100:], n_bins=10)
    assert rep["ece_after"] < rep["ece_before"] and rep["mse_after"] < rep["mse_before"]
    assert len(reliability_rows(raw, y, 5, "raw")) > 19


def test_constant_dimension_is_identity_and_bad_file_errors(tmp_path):
    raw = np.random.default_rng(1).uniform(0.2, 0.8, (20, 2))
    y = np.column_stack([raw[:, 0], np.full(20, 0.5)])
    cal = Calibrator.fit(raw, y)
    assert cal.knots[1] is None and np.allclose(cal.transform(raw)[:, 1], raw[:, 1])
    (tmp_path / "bad.json").write_text('{"format": "other"}')
    with pytest.raises(ValueError, match="bad.json"):
        Calibrator.load(tmp_path / "bad.json")


def test_ece_zero_for_perfect():
    y = np.random.default_rng(2).uniform(0.2, 0.9, (50, 3))
    assert np.allclose(expected_calibration_error(y, y), 0.0)


def test_cross_fitted_error_is_the_held_out_error(miscalibrated, tmp_path):
    """The stored error is the calibrated model's error on folds the maps never saw: close to the
    label noise when predictions carry the signal, close to the label spread when they carry none,
    and above the in-sample error (isotonic fits overfit)."""
    raw, y = miscalibrated
    folds = np.arange(len(y)) % 4
    err = cross_fitted_error(raw, y, folds)
    in_sample = np.sqrt(((Calibrator.fit(raw, y).transform(raw) - y) ** 2).mean(0))
    assert err.shape == (19,) and np.all(err > in_sample)
    noise = np.random.default_rng(3).uniform(0.2, 0.9, y.shape)  # predictions unrelated to y
    err_noise = cross_fitted_error(noise, y, folds)
    assert np.all(err < 0.1) and np.all(err_noise > 0.15)  # y spread: sd of U(0.2, 0.9) = 0.20
    with pytest.raises(ValueError, match="2 folds"):
        cross_fitted_error(raw, y, np.zeros(len(y)))
    cal = Calibrator.fit(raw, y)
    cal.error, cal.r = err, np.full(19, np.nan)
    cal.save(tmp_path / "c.json")
    back = Calibrator.load(tmp_path / "c.json")
    assert np.allclose(back.error, err, atol=1e-6) and np.isnan(back.r).all()
    bare = json.loads((tmp_path / "c.json").read_text())
    for dim in bare["dims"]:
        del dim["error"], dim["r"]
    (tmp_path / "bare.json").write_text(json.dumps(bare))
    assert Calibrator.load(tmp_path / "bare.json").error is None  # a file without them: no error
    Calibrator.identity().save(tmp_path / "id.json")
    assert Calibrator.load(tmp_path / "id.json").r is None  # unknown stays unknown, not NaN


def test_calibrate_tutor_picks_the_better_variant_and_writes_the_bundle(miscalibrated, tmp_path):
    """… and the bundle's domain description: fitted on the cache's non-test windows with the
    chosen model's backbone, it finds the cache's test recording in domain and noise far out."""
    import pandas as pd

    from crescendai.evaluate.domain import DomainModel
    from crescendai.model import save_model
    from tutor_fixtures import domain_renders, tiny_model, write_window_cache

    raw, y = miscalibrated
    noise = np.random.default_rng(4).uniform(0.2, 0.9, y.shape)
    ids = {"level": "segment", "set": np.where(np.arange(200) < 160, "oof", "test"), "fold": np.arange(200) % 4,
           "item": [f"s{i:03d}" for i in range(200)], "performer_id": np.arange(200) % 8, "passage_id": 0}
    for variant, pred in (("ssl", noise), ("scratch", raw)):
        d = tmp_path / "models" / f"finetune_{variant}"
        d.mkdir(parents=True)
        frame = pd.DataFrame({**ids, **dict(zip(columns.LABELS, y.T, strict=True)),
                              **dict(zip(columns.PREDICTIONS, pred.T, strict=True))})
        frame.to_csv(d / "predictions.csv", index=False)
        if variant == "scratch":  # the chosen one: a real (tiny) model, whose backbone embeds the windows
            save_model(tiny_model(), d / "model.pt")
        else:
            (d / "model.pt").write_bytes(variant.encode())
            (d / "config.json").write_text('{"kind": "model"}')
    renders = domain_renders(9)
    labelled = write_window_cache(tmp_path / "features" / "labelled", renders, [0, 1, 2, 3, 0, 1, 2, 3, None])
    noise = np.random.default_rng(5).normal(0, 0.1, 22050 * 10).astype(np.float32)
    ood = write_window_cache(tmp_path / "features" / "ood", [noise], [None])
    metrics = calibrate_tutor(tmp_path / "models", tmp_path / "tutor", tmp_path / "plots", "auto", 5,
                              labelled, {"ood": ood, "absent": tmp_path / "nothing"})
    assert metrics["variant"] == "scratch" and metrics["cv_median_r"]["scratch"] > metrics["cv_median_r"]["ssl"]
    assert metrics["test"]["set"] == "test" and metrics["test"]["ece_after"] < metrics["test"]["ece_before"]
    assert (tmp_path / "tutor" / "model.pt").read_bytes() == (tmp_path / "models" / "finetune_scratch" / "model.pt").read_bytes()
    config = read_json(tmp_path / "tutor" / "config.json")
    assert config["variant"] == "scratch" and config["domain"] == "domain.npz"
    # its head (LayerNorm → Linear → sigmoid) is not linear: no ONNX runtime, the tutor loads torch
    assert metrics["tutor_runtime"] == "torch" and config["onnx"] is None
    assert not (tmp_path / "tutor" / "scoring.onnx").exists()
    assert config["trained_on"] == ["synthetic"]
    assert Calibrator.load(tmp_path / "tutor" / "calibration.json").error is not None
    assert (tmp_path / "plots" / "calibration.csv").is_file() and (tmp_path / "plots" / "calibration.png").is_file()
    dm = DomainModel.load(tmp_path / "tutor" / "domain.npz")
    dom = metrics["domain"]
    n_train = int(pd.read_csv(labelled / "index.csv")["split"].eq("train").sum())
    assert dm.n_windows == dom["n_windows"] == n_train > 100 and dm.n_folds == 4
    assert dm.embedding_dim == 32 and dom["blocks"]["features"]["dim"] == 30
    assert 0 < dom["blocks"]["embedding"]["ref_d2_q95"] <= dom["blocks"]["embedding"]["ref_d2_q99"]
    assert set(dom["checks"]) == {"test", "ood"}  # a missing check set is skipped
    assert dom["checks"]["test"]["median_percentile"] < 0.95 and dom["checks"]["ood"]["median_percentile"] >= 0.99
    json.dumps(metrics)  # the stage writes them as JSON
    # without a window cache: no description, and a stale one is removed
    calibrate_tutor(tmp_path / "models", tmp_path / "tutor", tmp_path / "plots", "scratch", 5, None)
    assert not (tmp_path / "tutor" / "domain.npz").exists()


def test_calibrate_tutor_auto_chooses_among_every_variant_and_ships_its_heads(miscalibrated, tmp_path):
    """``auto`` takes the fusion variant when its out-of-fold predictions are the best, and ships its
    fused head; a variant without one leaves no stale fused head in the bundle."""
    import pandas as pd

    from crescendai.core.files import write_json

    raw, y = miscalibrated
    rng = np.random.default_rng(4)
    ids = {"level": "segment", "set": np.where(np.arange(200) < 160, "oof", "test"), "fold": np.arange(200) % 4,
           "item": [f"s{i:03d}" for i in range(200)], "performer_id": np.arange(200) % 8, "passage_id": 0}
    preds = {"ssl": rng.uniform(0.2, 0.9, y.shape), "scratch": raw + rng.normal(0, 0.2, y.shape), "fusion": raw}
    for variant, pred in preds.items():
        d = tmp_path / "models" / f"finetune_{variant}"
        d.mkdir(parents=True)
        pd.DataFrame({**ids, **dict(zip(columns.LABELS, y.T, strict=True)),
                      **dict(zip(columns.PREDICTIONS, pred.T, strict=True))}).to_csv(d / "predictions.csv", index=False)
        (d / "model.pt").write_bytes(variant.encode())
        config = {"kind": "model", "variant": variant}
        if variant == "fusion":
            (d / "fusion_head.npz").write_bytes(b"head")
            config["fusion_head"] = {"weights": "fusion_head.npz"}
        write_json(d / "config.json", config)
    metrics = calibrate_tutor(tmp_path / "models", tmp_path / "tutor", tmp_path / "plots", "auto", 5, None, onnx=False)
    assert metrics["variant"] == "fusion" and set(metrics["cv_median_r"]) == {"ssl", "scratch", "fusion"}
    assert max(metrics["cv_median_r"], key=metrics["cv_median_r"].get) == "fusion"
    assert (tmp_path / "tutor" / "fusion_head.npz").read_bytes() == b"head"
    assert read_json(tmp_path / "tutor" / "config.json")["fusion_head"] == {"weights": "fusion_head.npz"}
    calibrate_tutor(tmp_path / "models", tmp_path / "tutor", tmp_path / "plots", "scratch", 5, None, onnx=False)
    assert not (tmp_path / "tutor" / "fusion_head.npz").exists()
    assert (tmp_path / "tutor" / "model.pt").read_bytes() == b"scratch"
    with pytest.raises(ValueError, match="unknown variant 'mystery'.*ssl, scratch, fusion"):
        calibrate_tutor(tmp_path / "models", tmp_path / "tutor", tmp_path / "plots", "mystery", 5, None, onnx=False)
