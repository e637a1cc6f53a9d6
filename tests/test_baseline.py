"""Ridge baseline: features are finite and shaped; CV predictions never see the scored fold."""

import numpy as np

from crescendai.evaluate.audio_features import (
    N_WINDOW_FEATURES,
    segment_features,
    window_features,
)
from crescendai.evaluate.ridge import make_ridge, ridge_cv_predict


def test_window_features_shape_and_finite():
    rng = np.random.default_rng(0)
    db = np.clip(rng.normal(-40, 15, (6, 128, 128)), -80, 0).astype(np.float16)
    db[5, 64:] = -80.0
    f = window_features(db, pad_fraction=np.array([0, 0, 0, 0, 0, 0.5]))
    assert f.shape == (6, N_WINDOW_FEATURES) and np.isfinite(f).all()
    seg, ids = segment_features(f, ["a", "a", "b", "b", "b", "c"])
    assert seg.shape == (3, 2 * N_WINDOW_FEATURES) and ids == ["a", "b", "c"]


def test_ridge_cv_learns_linear_signal_and_respects_folds():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 10))
    Y = X[:, :3] @ rng.normal(size=(3, 19)) * 0.1 + 0.5
    folds = np.arange(80) % 4
    is_test = np.arange(80) >= 64
    oof, test = ridge_cv_predict(X, Y, folds, is_test)
    assert np.isnan(oof[is_test]).all() and np.isfinite(oof[~is_test]).all()
    assert np.isnan(test[~is_test]).all() and np.isfinite(test[is_test]).all()
    assert np.corrcoef(oof[~is_test, 0], Y[~is_test, 0])[0, 1] > 0.9
    for k in range(4):  # each held-out fold is predicted by a model fitted on the other folds only
        held, fit = ~is_test & (folds == k), ~is_test & (folds != k)
        np.testing.assert_array_equal(oof[held], make_ridge().fit(X[fit], Y[fit]).predict(X[held]))
