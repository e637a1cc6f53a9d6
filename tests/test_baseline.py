"""Ridge baseline: features are finite and shaped; CV predictions never see the scored fold."""

import numpy as np

from crescendai.core.ridge import make_ridge, ridge_cv_predict
from crescendai.evaluate.audio_features import (
    N_WINDOW_FEATURES,
    segment_features,
    window_features,
)


def test_window_features_shape_and_finite():
    rng = np.random.default_rng(0)
    db = np.clip(rng.normal(-40, 15, (6, 128, 128)), -80, 0).astype(np.float16)
    db[5, 64:] = -80.0
    f = window_features(db, pad_fraction=np.array([0, 0, 0, 0, 0, 0.5]))
    assert f.shape == (6, N_WINDOW_FEATURES) and np.isfinite(f).all()
    seg, ids = segment_features(f, ["a", "a", "b", "b", "b", "c"])
    assert seg.shape == (3, 2 * N_WINDOW_FEATURES) and ids == ["a", "b", "c"]


def _window_features_reference(db: np.ndarray, pad_fraction: np.ndarray) -> np.ndarray:
    """The feature definitions one window at a time (the vectorised code must equal this)."""
    out = np.zeros((len(db), N_WINDOW_FEATURES), np.float32)
    bins = np.arange(128, dtype=np.float32)
    for i, x in enumerate(np.asarray(db, np.float32)):
        w = x[: max(2, round(128 * (1.0 - pad_fraction[i])))]
        level, p = w.max(1), 10.0 ** (w / 10.0)
        ps = p.sum(1) + 1e-12
        cen = (p * bins).sum(1) / ps
        spread = np.sqrt((p * (bins - cen[:, None]) ** 2).sum(1) / ps)
        bands = w.reshape(len(w), 8, 16).mean(2).mean(0)
        flux = np.maximum(np.diff(w, axis=0), 0.0).mean(1)
        thr = flux.mean() + flux.std()
        onsets = np.sum((flux[1:-1] > thr) & (flux[1:-1] >= flux[:-2]) & (flux[1:-1] >= flux[2:]))
        a, b = w[:-1] - w[:-1].mean(1, keepdims=True), w[1:] - w[1:].mean(1, keepdims=True)
        corr = (a * b).sum(1) / (np.sqrt((a * a).sum(1) * (b * b).sum(1)) + 1e-9)
        tt = np.arange(len(w), dtype=np.float32)
        slope = np.polyfit(tt, level, 1)[0] if len(w) > 2 else 0.0
        cslope = np.polyfit(tt, cen, 1)[0] if len(w) > 2 else 0.0
        hf = w[:, 64:].mean(1)
        d = np.diff(hf)
        out[i] = (
            level.mean(), level.std(), (level > -20).mean(), cen.mean(), cen.std(), spread.mean(),
            spread.std(), *bands, flux.mean(), flux.std(), np.percentile(flux, 90), onsets / len(w),
            corr.mean(), hf.mean() - w[:, :32].mean(), np.ptp(level), slope, cslope,
            flux.std() / (flux.mean() + 1e-6), bands.max() - bands.min(), (level < -60).mean(),
            w.mean(), w.std(), d[d < 0].mean() if np.any(d < 0) else 0.0,
        )
    return out


def test_window_features_equal_the_per_window_definition():
    rng = np.random.default_rng(1)
    db = np.clip(rng.normal(-40, 15, (40, 128, 128)), -80, 0).astype(np.float32)
    pad = rng.choice([0.0, 0.0, 0.25, 0.5, 0.99, 1.0, -0.1], size=40)  # groups of equal lengths
    for i, f in enumerate(pad):
        db[i, max(2, round(128 * (1 - f))):] = -80.0
    db[0] = -80.0  # a silent window
    got = window_features(db, pad_fraction=pad)
    np.testing.assert_allclose(got, _window_features_reference(db, pad), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(window_features(db[:5]), _window_features_reference(db[:5], np.zeros(5)),
                               rtol=1e-5, atol=1e-6)


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


def _feature_dir(root, proxies: np.ndarray, midi_dir=None):
    """A window cache of 16 segments × 2 windows (4 folds of 3 + a test set of 4) with the given proxy
    columns; labels and windows are the same in every call; ``midi_dir`` gives every item a MIDI file
    (else none has one)."""
    import pandas as pd

    from crescendai.core.midi import Note, Performance, write_midi

    rng = np.random.default_rng(1)
    target = rng.normal(size=(16, 4))
    rows, wins = [], []
    for s in range(16):
        item = f"seg{s}"
        midi = ""
        if midi_dir is not None:
            midi = str(midi_dir / f"{item}.mid")
            write_midi(midi, Performance([Note(0.3 * i, 0.3 * i + 0.25, 60 + i % 5, 40 + 5 * s % 80) for i in range(8)], []))
        for w in range(2):
            wins.append(np.clip(rng.normal(-40, 15, (128, 128)), -80, 0))
            rows.append({"item": item, "item_idx": s, "window": w, "pad_fraction": 0.0, "split": "test" if s >= 12 else "train",
                         "fold": None if s >= 12 else s % 4, "midi_path": midi,
                         "performer_id": str(s % 4), "passage_id": f"p{s // 4}",
                         **{f"y_{d}": 0.5 + 0.1 * target[s, d % 4] for d in range(19)},
                         **{c: proxies[s, i] for i, c in enumerate(["p_onset_density", "p_tempo_stability",
                                                                      "p_loudness_dynamics", "p_pedal"])}})
    root.mkdir()
    np.save(root / "windows.npy", np.stack(wins).astype(np.float16))
    pd.DataFrame(rows).to_csv(root / "index.csv", index=False)
    return [f"seg{s}" for s in range(12)], [f"seg{s}" for s in range(12, 16)]


def test_the_audio_peer_reads_the_waveform_only(tmp_path):
    """Changing the (MIDI-derived) proxy columns moves the audio+proxies peer, never the audio peer;
    the MIDI peers exist only when every item has MIDI."""
    from crescendai.evaluate.ridge import (
        AUDIO_MIDI_PROXIES_RIDGE,
        AUDIO_RIDGE,
        MIDI_RIDGE,
        ridge_baselines,
    )

    rng = np.random.default_rng(0)
    (tmp_path / "midi").mkdir()
    prox = np.random.default_rng(1).normal(size=(16, 4))  # the labels' own signal
    oof_items, test_items = _feature_dir(tmp_path / "a", prox, tmp_path / "midi")
    _feature_dir(tmp_path / "b", rng.normal(size=(16, 4)), tmp_path / "midi")
    a = ridge_baselines(tmp_path / "a", oof_items, test_items)
    b = ridge_baselines(tmp_path / "b", oof_items, test_items)
    assert set(a) == {AUDIO_RIDGE, MIDI_RIDGE, AUDIO_MIDI_PROXIES_RIDGE}
    np.testing.assert_array_equal(a[AUDIO_RIDGE][0], b[AUDIO_RIDGE][0])
    assert not np.allclose(a[AUDIO_MIDI_PROXIES_RIDGE][0], b[AUDIO_MIDI_PROXIES_RIDGE][0])
    _feature_dir(tmp_path / "c", prox)
    assert set(ridge_baselines(tmp_path / "c", oof_items, test_items)) == {AUDIO_RIDGE}


def test_peer_metrics_alone_on_the_cache_folds(tmp_path):
    from crescendai.evaluate.ridge import peer_metrics

    _feature_dir(tmp_path / "c", np.zeros((16, 4)))
    m = peer_metrics(tmp_path / "c", n_boot=20)
    assert set(m) == {"audio_ridge_cv", "audio_ridge_test"}
    assert m["audio_ridge_cv"]["n_segments"] == 12 and m["audio_ridge_test"]["n_segments"] == 4


def test_fold_models_are_the_ones_behind_the_predictions_and_fold_into_one_linear():
    from crescendai.core.ridge import fold_models, linear_weights

    rng = np.random.default_rng(3)
    X, Y = rng.normal(size=(40, 6)) * [1, 10, 0.1, 5, 1, 2] + 3, rng.normal(size=(40, 19))
    folds, is_test = np.repeat(np.arange(4), 10), np.arange(40) >= 32
    oof, test = ridge_cv_predict(X, Y, folds, is_test)
    models = fold_models(X, Y, folds, is_test)
    assert sorted(models) == [-1, 0, 1, 2, 3]
    for k in range(4):
        held = (folds == k) & ~is_test
        np.testing.assert_allclose(models[k].predict(X[held]), oof[held])
    W, b = linear_weights(models[-1])
    np.testing.assert_allclose(X[is_test] @ W.T + b, test[is_test], rtol=1e-4, atol=1e-4)
