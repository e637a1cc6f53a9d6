"""Fine-tuning recipe on a tiny fake feature set: CV protocol, pooling, losses, predictions table."""

import os

import numpy as np
import pandas as pd
import pytest
import torch

from crescendai.core import columns
from crescendai.core.config import FinetuneParams, ModelParams
from crescendai.learn import finetune as ft
from ranks import join_group, spawn_two_ranks

TINY = ModelParams(patch=32, dim=32, depth=1, heads=2, dropout=0.0, drop_path=0.0, pooling="mean")


def fake_set(n_perf=5, n_piece=3, n_win=3, seed=0):
    """Windows whose loudness encodes dimension 8 (timbre_loudness); the last performer is the test
    set, the others one fold each."""
    rng = np.random.default_rng(seed)
    rows, wins = [], []
    for p in range(n_perf):
        for q in range(n_piece):
            y = rng.uniform(0.2, 0.9, 19)
            item = f"perf{p}_piece{q}"
            for w in range(n_win):
                wins.append(np.full((128, 128), -80 + 70 * y[8], np.float32) + rng.normal(0, 1, (128, 128)))
                rows.append({"item": item, "window": w, "start_sec": float(w), "pad_fraction": 0.0,
                             "split": "test" if p == n_perf - 1 else "train",
                             "fold": None if p == n_perf - 1 else p,
                             "performer_id": str(p), "piece_id": str(q), "passage_id": f"t:{q}:0", "timbre_class": p % 2,
                             **{f"y_{d}": y[d] for d in range(19)},
                             **{f"l_{d}": y[d] for d in range(19)},
                             "p_onset_density": rng.normal(), "p_tempo_stability": rng.normal(),
                             "p_loudness_dynamics": rng.normal(), "p_pedal": rng.normal()})
    return ft.build_set(np.stack(wins).astype(np.float16), pd.DataFrame(rows))


def test_cv_plan_never_selects_on_scored_fold():
    plan = ft.cv_plan([0, 1, 2, 3, 0, 1])
    assert [r.fold for r in plan] == [0, 1, 2, 3]
    for r in plan:
        assert r.select != r.fold and r.fold not in r.train and r.select not in r.train
        assert len(r.train) == 2
    assert all(r.select is None and len(r.train) == 3 for r in ft.cv_plan([0, 1, 2, 3], "none"))
    with pytest.raises(ValueError, match="n_folds"):
        ft.cv_plan([0, 1], "fold")


def test_pooling():
    v = np.array([[0.0], [1.0], [100.0]])
    assert ft.pool(v, "median")[0] == 1.0
    assert ft.pool(v, "mean")[0] == pytest.approx(101 / 3)
    assert ft.pool(np.arange(10.0)[:, None], "trimmed_mean", 0.2)[0] == pytest.approx(4.5)
    with pytest.raises(ValueError):
        ft.pool(v, "max")


def test_batches_are_whole_consecutive_runs():
    data = fake_set()
    cfg = FinetuneParams(batch_size=7, max_windows_per_segment=2)
    batches = ft.iterate_batches(data, np.arange(len(data.segments)), cfg, np.random.default_rng(0))
    assert all(len(b) <= 7 for b in batches)
    assert sum(len(b) for b in batches) == 2 * len(data.segments)
    b = ft.make_batch(data, batches[0], torch.device("cpu"))
    seq, m = ft._runs(torch.arange(len(batches[0]), dtype=torch.float32)[:, None], b["run"])
    assert m.sum() == len(batches[0]) and seq.shape[1] == 2


def test_loss_backward_all_terms():
    data = fake_set()
    cfg = FinetuneParams(corn_weight=0.2, timbre_weight=0.2, local_weight=0.5, smooth_weight=0.1,
                         proxy_weight=0.1)
    make = ft.model_factory(TINY, cfg, data.n_timbre_classes)
    model = make()
    b = ft.make_batch(data, np.arange(12), torch.device("cpu"))
    loss, parts = ft.supervised_loss(model(b["x"], b["pad_mask"]), b, cfg)
    loss.backward()
    assert set(parts) == {"base", "corn", "timbre", "local", "smooth", "proxy"} and torch.isfinite(loss)


def test_run_finetune_protocol_and_predictions(tmp_path):
    torch.manual_seed(0)
    data = fake_set(n_perf=4, n_win=2)
    cfg = FinetuneParams(epochs=2, batch_size=16, lr=3e-3, patience=2, device="cpu", selection="fold")
    res = ft.run_finetune(ft.model_factory(TINY, cfg, 2), data, cfg, seed=0)
    p = res.predictions
    seg = p[p.level == "segment"]
    oof, test = seg[seg.set == "oof"], seg[seg.set == "test"]
    assert set(oof.item) == set(data.segments.item[~data.is_test])  # every dev segment once, out of fold
    assert oof.item.is_unique and set(test.item) == set(data.segments.item[data.is_test])
    assert (oof.fold == oof.performer_id.astype(int)).all()  # each predicted by the model of its fold
    win = p[p.level == "window"]
    assert len(win) == len(data.index) and np.isfinite(win[list(columns.LOCAL_PREDICTIONS)].to_numpy()).all()
    assert np.isfinite(seg[list(columns.PREDICTIONS)].to_numpy()).all()
    assert res.summary["final_epochs"] >= 1 and len(res.summary["selected_epochs"]) == 3
    assert {"run", "epoch", "train_loss"} <= set(res.history.columns)


def _fold_parallel_setup():
    data = fake_set(n_perf=4, n_win=2)  # 3 dev folds → 3 CV rounds, 2 on rank 0 and 1 on rank 1
    cfg = FinetuneParams(epochs=2, batch_size=16, lr=3e-3, patience=2, device="cpu", selection="fold")
    return data, cfg, ft.model_factory(TINY, cfg, 2)


def _fold_parallel_worker(rank: int, world: int, port: int, out: str) -> None:
    from crescendai.learn.checkpoints import prepare_shared_run_dir
    from crescendai.learn.distributed import cleanup_distributed, setup_distributed

    join_group(rank, world, port)
    env = setup_distributed("cpu")
    run_dir = os.path.join(out, "run")
    resume = prepare_shared_run_dir(run_dir, "fp", env)  # rank 0 creates it, rank 1 waits for it
    assert os.path.isfile(os.path.join(run_dir, "RUN_HASH")) and resume is False
    data, cfg, make = _fold_parallel_setup()
    cv = ft.cross_validate(make, data, cfg, seed=0, env=env, checkpoint_dir=run_dir)
    resume = prepare_shared_run_dir(run_dir, "fp", env)  # same run, checkpoints there: both resume
    cleanup_distributed()
    pd.to_pickle((cv, resume), os.path.join(out, f"cv{rank}.pkl"))


@pytest.mark.slow
def test_cross_validation_fold_parallel_equals_one_process(tmp_path):
    """Two gloo ranks share the CV rounds; both return every round, equal to the one-process run
    (each round is seeded by its index, not by the rank that trains it)."""
    spawn_two_ranks(_fold_parallel_worker, tmp_path)
    torch.set_num_threads(1)  # the ranks ran on one thread each: same float reductions
    data, cfg, make = _fold_parallel_setup()
    one = ft.cross_validate(make, data, cfg, seed=0)
    for rank in (0, 1):
        cv, resume = pd.read_pickle(tmp_path / f"cv{rank}.pkl")
        assert resume is True
        assert cv.folds == one.folds == [0, 1, 2] and cv.best_epochs == one.best_epochs
        for a, b in zip(cv.frames, one.frames, strict=True):
            pd.testing.assert_frame_equal(a, b, check_exact=False, atol=1e-6)
        assert [r["run"] for r in cv.history] == [r["run"] for r in one.history]
    assert {p.name for p in (tmp_path / "run").glob("fold*.pt")} == {"fold0.pt", "fold1.pt", "fold2.pt"}


@pytest.mark.slow
def test_stage_drivers_on_fake_predictions(tmp_path):
    """predictions.csv → evaluate_variant (with ridge on the same folds) → compare → calibration."""
    from crescendai.evaluate.calibration import Calibrator, fit_from_predictions
    from crescendai.evaluate.metrics import compare_variants, evaluate_variant

    data = fake_set(n_perf=4, n_win=2)
    feat = tmp_path / "features"
    feat.mkdir()
    np.save(feat / "windows.npy", np.asarray(data.windows))
    data.index.drop(columns=["row"]).assign(item_idx=lambda d: d["item"].astype("category").cat.codes
                                            ).to_csv(feat / "index.csv", index=False)
    cfg = FinetuneParams(epochs=1, batch_size=32, device="cpu", local_weight=0.0, selection="fold")
    paths = {}
    for v in ("ssl", "scratch"):
        res = ft.run_finetune(ft.model_factory(TINY, cfg, 0), ft.load_labelled(feat), cfg, seed=len(v))
        paths[v] = tmp_path / f"{v}.csv"
        res.predictions.to_csv(paths[v], index=False)
        m = evaluate_variant(paths[v], feat, v, tmp_path / "plots", n_boot=20)
        assert {"cv", "test", "audio_ridge_cv", "windows"} <= set(m) and m["cv"]["n_segments"] == 9
    out = compare_variants(paths["ssl"], paths["scratch"], None, tmp_path / "plots", n_boot=20)
    assert out["cv"]["n_segments"] == 9 and len(out["cv"]["delta_r"]) == 19
    assert (tmp_path / "plots" / "per_dim_r.csv").is_file()
    cal, metrics, rows = fit_from_predictions(paths["ssl"], 5)
    assert isinstance(cal, Calibrator) and metrics["test"]["set"] == "test" and rows


def test_probe_head_protocol_and_the_shipped_linear_head(tmp_path):
    from crescendai.core.stats import median_r
    from crescendai.model import build_backbone, load_model, save_model

    data = fake_set(n_perf=5, n_piece=4)
    torch.manual_seed(0)
    res = ft.run_probe_head(build_backbone(TINY), data, torch.device("cpu"))
    seg = res.predictions[res.predictions["level"] == "segment"]
    oof, test = seg[seg["set"] == "oof"], seg[seg["set"] == "test"]
    assert sorted(oof["item"]) == sorted(data.segments["item"][~data.is_test])
    assert sorted(test["item"]) == sorted(data.segments["item"][data.is_test])
    assert set(oof["fold"]) == {0, 1, 2, 3} and (test["fold"] == -1).all()
    # the loudness of a window encodes dimension 8: the frozen random backbone + ridge hears it out of fold
    y, p = oof[list(columns.LABELS)].to_numpy(float), oof[list(columns.PREDICTIONS)].to_numpy(float)
    assert np.corrcoef(y[:, 8], p[:, 8])[0, 1] > 0.5
    assert np.isfinite(median_r(y, p))
    # the linear head commutes with the mean: the mean of a segment's window scores is its score
    win = res.predictions[(res.predictions["level"] == "window") & (res.predictions["set"] == "test")]
    means = win.groupby("item")[list(columns.PREDICTIONS)].mean().loc[test["item"]]
    np.testing.assert_allclose(means.to_numpy(), test[list(columns.PREDICTIONS)].to_numpy(), atol=1e-4)
    # the shipped model (scaler folded into one Linear) scores windows as the final ridge does, saved and loaded
    save_model(res.model, tmp_path / "model.pt")
    shipped = load_model(tmp_path / "model.pt")
    pos = np.concatenate([data.rows[s] for s in np.flatnonzero(data.is_test)])
    with torch.no_grad():
        scores = shipped(ft._window_tensor(data, pos, torch.device("cpu")))["scores"].numpy()
    np.testing.assert_allclose(scores, win.sort_values(["item", "start_sec"])[list(columns.PREDICTIONS)].to_numpy(),
                               atol=1e-3)
    Z, items = res.embeddings
    assert Z.shape == (len(data.segments), 32) and list(items) == list(data.segments["item"])
    assert res.summary["mode"] == "probe" and len(res.summary["alphas"]) == 5
