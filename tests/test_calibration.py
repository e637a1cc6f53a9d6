"""Isotonic calibrator: matches sklearn, round-trips through JSON, reduces miscalibration."""

import json

import numpy as np
import pytest
from sklearn.isotonic import IsotonicRegression

from crescendai.calibration import (
    Calibrator,
    calibration_report,
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
    probe = np.linspace(0, 1, 50)
    grid = np.tile(probe[:, None], (1, 19))
    assert np.allclose(cal.transform(grid)[:, 3], iso.predict(probe))
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
