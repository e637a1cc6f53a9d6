"""Metric functions against known values and scipy/sklearn references."""

import numpy as np
import pytest
from scipy.stats import pearsonr
from sklearn.metrics import r2_score

from crescendai.evaluate import metrics as ev


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    y = rng.uniform(0.2, 0.9, (60, 19))
    p = y + rng.normal(0, 0.1, y.shape)
    return y, p


def test_per_dim_metrics_match_references(data):
    y, p = data
    r = ev.pearson_per_dim(y, p)
    assert np.allclose(r, [pearsonr(y[:, d], p[:, d])[0] for d in range(19)])
    assert np.allclose(ev.r2_per_dim(y, p), r2_score(y, p, multioutput="raw_values"))
    assert np.allclose(ev.mse_per_dim(y, p), ((y - p) ** 2).mean(0))


def test_constant_column_gives_nan_and_is_skipped():
    y = np.column_stack([np.arange(5.0), np.ones(5)])
    r = ev.pearson_per_dim(y, y)
    assert r[0] == pytest.approx(1.0) and np.isnan(r[1])
    assert ev.median_r(y, y) == pytest.approx(1.0)


def test_pairwise_accuracy_within_piece_only():
    y = np.array([[0.1], [0.2], [0.9], [0.8]])
    p = np.array([[0.1], [0.2], [0.0], [0.5]])  # piece B reversed; across pieces would be wrong too
    acc = ev.pairwise_accuracy_per_dim(y, p, ["A", "A", "B", "B"])
    assert acc[0] == pytest.approx(0.5)
    assert ev.pairwise_accuracy_per_dim(y, y, ["A", "A", "B", "B"])[0] == 1.0


def test_cluster_bootstrap_keeps_whole_groups():
    rng = np.random.default_rng(0)
    groups = np.repeat(["a", "b", "c"], [2, 3, 5])
    for idx in ev.cluster_resamples(groups, 20, rng):
        picked = groups[idx]
        for g in np.unique(picked):
            assert (picked == g).sum() % (groups == g).sum() == 0


def test_segment_bootstrap_draws_rows_with_replacement():
    """The seed's generator draws the resamples as one [n_boot, n] block of row indices."""
    dist = ev.bootstrap_distribution(lambda idx: float(idx @ np.arange(60)), 60, 30, seed=3)
    ref = np.random.default_rng(3).integers(0, 60, (30, 60)) @ np.arange(60)
    np.testing.assert_array_equal(dist, ref)


def test_bootstrap_ci_brackets_value(data):
    y, p = data
    iv = ev.bootstrap_median_r(y, p, n_boot=200, seed=1)
    assert iv.lo <= iv.value <= iv.hi and 0.5 < iv.value < 1.0


def test_paired_gain_positive_when_a_is_better(data):
    y, p = data
    worse = y + np.random.default_rng(2).normal(0, 0.4, y.shape)
    groups = np.repeat(np.arange(6), 10)
    iv, p_le0 = ev.paired_bootstrap_gain(y, p, worse, n_boot=200, groups=groups, unit="performer")
    assert iv.value > 0 and iv.lo > 0 and p_le0 == 0.0
    same, _ = ev.paired_bootstrap_gain(y, p, p, n_boot=50)
    assert same.value == 0.0 and same.lo == 0.0 == same.hi


def test_summarize_is_json_ready(data, tmp_path):
    import json

    y, p = data
    s = ev.summarize(y, p, np.repeat(np.arange(6), 10), np.tile(np.arange(10), 6), n_boot=50)
    json.dumps(s)
    assert set(s["per_dim"]) == set(ev.KEYS) and len(s["best_dims"]) == 3
    lo, hi = s["median_r_ci_performer"]
    assert lo <= s["median_r"] <= hi
    ev.write_csv(tmp_path / "x.csv", ev.scatter_rows(y, p, [f"s{i}" for i in range(60)], dims=[0]))
    assert (tmp_path / "x.csv").read_text().startswith("item,dim,key,true,pred")
    ev.plot_per_dim_bars(tmp_path / "bars.png", {"a": s["per_dim"] and ev.pearson_per_dim(y, p)})
    ev.plot_scatter(tmp_path / "sc.png", y, p)
    assert (tmp_path / "bars.png").stat().st_size > 0 and (tmp_path / "sc.png").stat().st_size > 0


def test_best_variant_picks_the_higher_cv_median_r_and_ignores_test(tmp_path):
    import pandas as pd

    rng = np.random.default_rng(1)
    y = rng.uniform(0.2, 0.9, (12, 19))

    def write(name, oof_noise, test_pred):
        rows = []
        for i in range(12):
            is_test = i >= 8
            pred = test_pred[i] if is_test else y[i] + rng.normal(0, oof_noise, 19)
            rows.append({"level": "segment", "set": "test" if is_test else "oof", "item": f"s{i}",
                         "performer_id": str(i % 4), "passage_id": "p",
                         **{f"y_{d}": y[i, d] for d in range(19)}, **{f"pred_{d}": pred[d] for d in range(19)}})
        pd.DataFrame(rows).to_csv(tmp_path / f"{name}.csv", index=False)
        return tmp_path / f"{name}.csv"

    good = write("good", 0.01, rng.uniform(0, 1, (12, 19)))  # good on validation, random on test
    bad = write("bad", 1.0, y)  # perfect on test: must not matter
    name, scores = ev.best_variant({"bad": bad, "good": good})
    assert name == "good" and scores["good"] > 0.9 > scores["bad"]
