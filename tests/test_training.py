"""Training machinery: sampler guard, dataset over the cache, resume equivalence, early stopping, DDP."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd
import pytest
import torch

from crescendai.core import columns
from crescendai.core.config import ModelParams, PretrainParams
from crescendai.learn.augment import augment
from crescendai.learn.batches import (
    RecordingBatchSampler,
    WindowDataset,
    pad_mask_from_fraction,
    split_groups,
    standardise_playing,
)
from crescendai.learn.checkpoints import load_checkpoint
from crescendai.learn.distributed import (
    DistEnv,
    cleanup_distributed,
    resolve_device,
    setup_distributed,
)
from crescendai.learn.loop import LoopConfig, cosine_schedule, fit
from crescendai.learn.ssl import SSLModel
from crescendai.model import Backbone
from ranks import join_group, spawn_two_ranks

TINY = ModelParams(dim=16, depth=1, heads=2, dropout=0.1, drop_path=0.1)


class MemData:
    """In-memory stand-in for WindowDataset: 6 recordings × 4 windows."""

    def __init__(self) -> None:
        g = torch.Generator().manual_seed(0)
        self.x = -80 * torch.rand(24, 128, 128, generator=g)
        self.groups = np.repeat(np.arange(6), 4)

    def batch(self, rows, device="cpu"):
        r = torch.as_tensor(np.asarray(rows))
        return {"x": self.x[r], "pad_mask": torch.zeros(len(r), 128, dtype=torch.bool), "group": torch.as_tensor(self.groups[rows])}


def make_run(objective: str = "infonce", seed: int = 0):
    torch.manual_seed(seed)
    data = MemData()
    model = SSLModel(Backbone(TINY), PretrainParams(objective=objective, proj_dim=8))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    sched = cosine_schedule(opt, 2, 8)
    sampler = RecordingBatchSampler(data.groups, batch_size=8, crops=2, seed=seed)

    def step(net, rows, g):
        b = data.batch(rows)
        return net(augment(b["x"], g), b["group"])

    def val(m):
        b = data.batch(np.arange(8))
        return float(m(b["x"], b["group"]).detach())

    return model, opt, sched, sampler, step, val


def test_sampler_never_repeats_a_recording_beyond_its_crops():
    groups = np.repeat(np.arange(10), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    s = RecordingBatchSampler(groups, batch_size=8, crops=2, seed=3)
    for b in s.epoch_batches(0) + s.epoch_batches(1):
        g = groups[b]
        assert len(b) == 8
        assert (np.bincount(g) <= 2).all()
        assert (g[0::2] == g[1::2]).all()  # crops of a recording are adjacent
        big = [k for k in set(g) if (groups == k).sum() >= 2]
        for k in big:  # distinct windows when the recording has enough
            assert len(set(b[g == k])) == 2
    assert [x.tolist() for x in s.epoch_batches(5)] == [x.tolist() for x in s.epoch_batches(5)]
    one = RecordingBatchSampler(groups, batch_size=4, crops=1, seed=0)
    assert all(len(set(groups[b])) == 4 for b in one.epoch_batches(0))


def test_split_groups_holds_out_whole_recordings():
    g = np.repeat(np.arange(10), 3)
    tr, va = split_groups(g, 0.2, 0)
    assert set(g[tr]).isdisjoint(g[va]) and len(set(g[va])) == 2


def test_pad_mask_from_fraction():
    m = pad_mask_from_fraction(np.array([0.0, 0.25]))
    assert m.shape == (2, 128) and not m[0].any() and m[1].sum() == 32 and m[1, -1]


def test_window_dataset_reads_the_cache(tmp_path):
    n = 5
    np.save(tmp_path / "windows.npy", (-80 * np.random.default_rng(0).random((n, 128, 128))).astype(np.float16))
    idx = pd.DataFrame({"item": ["a.flac"] * 3 + ["b.flac"] * 2, "item_idx": [0, 0, 0, 1, 1], "window": [0, 1, 2, 0, 1],
                        "start_sec": [0, 1, 2, 0, 1.0], "pad_fraction": [0, 0, 0.5, 0, 0], "split": "ssl", "fold": "",
                        "performer_id": "p", "piece_id": "q", "performance_id": "r", "source": "s", "augmented": False,
                        "timbre_class": -1})
    for c in [*(f"y_{i}" for i in range(19)), *(f"l_{i}" for i in range(19))]:
        idx[c] = ""
    for c in ("p_onset_density", "p_tempo_stability", "p_loudness_dynamics", "p_pedal"):
        idx[c] = 0.0
    idx.to_csv(tmp_path / "index.csv", index=False)
    ds = WindowDataset(tmp_path)
    assert len(ds) == 5 and ds.groups.tolist() == [0, 0, 0, 1, 1]
    item = ds.batch(np.array([2]))
    assert item["x"].shape == (1, 128, 128) and item["x"].dtype == torch.float32 and item["pad_mask"].sum() == 64
    b = ds.batch(np.array([4, 0]))
    assert b["x"].shape == (2, 128, 128) and b["group"].tolist() == [1, 0]
    assert ds.playing is None and "playing" not in b  # a cache without the statistics of the playing

    # with them: standardised over the set, NaN (no MIDI: item b) kept, in the batch
    rng = np.random.default_rng(1)
    for c in columns.PLAYING:
        idx[c] = [*rng.normal(3.0, 2.0, 3), "", ""]
    idx.to_csv(tmp_path / "index.csv", index=False)
    ds = WindowDataset(tmp_path)
    b = ds.batch(np.array([4, 0, 1]))
    assert b["playing"].shape == (3, len(columns.PLAYING)) and b["playing"].dtype == torch.float32
    assert torch.isnan(b["playing"][0]).all() and torch.isfinite(b["playing"][1:]).all()
    np.testing.assert_allclose(np.nanmean(ds.playing, axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(np.nanstd(ds.playing, axis=0), 1.0, atol=1e-5)


def test_standardise_playing_clips_and_keeps_undefined_columns():
    m = np.c_[np.r_[np.zeros(99), 1000.0], np.full(100, np.nan)]
    z = standardise_playing(m, clip=5.0)
    assert z[-1, 0] == 5.0 and np.isnan(z[:, 1]).all() and z.dtype == np.float32


def test_resume_reaches_the_same_result(tmp_path):
    cfg = LoopConfig(max_steps=8, eval_every=2, progress=False)
    model, opt, sched, sampler, step, val = make_run()
    ref = fit(model, opt, sampler, step, cfg=cfg, device=torch.device("cpu"), val_fn=val, scheduler=sched,
              generator=torch.Generator().manual_seed(1), checkpoint_path=tmp_path / "a.pt")
    ref_params = {k: v.clone() for k, v in model.state_dict().items()}

    model, opt, sched, sampler, step, val = make_run()
    calls = {"n": 0}

    def crashing(net, rows, g):
        calls["n"] += 1
        if calls["n"] == 6:  # dies during step 6, after the checkpoint at step 4
            raise KeyboardInterrupt
        return step(net, rows, g)

    with pytest.raises(KeyboardInterrupt):
        fit(model, opt, sampler, crashing, cfg=cfg, device=torch.device("cpu"), val_fn=val, scheduler=sched,
            generator=torch.Generator().manual_seed(1), checkpoint_path=tmp_path / "b.pt", log_path=tmp_path / "b.csv")
    assert load_checkpoint(tmp_path / "b.pt")["loop"]["step"] == 4
    model, opt, sched, sampler, step, val = make_run(seed=0)
    torch.manual_seed(123)  # a fresh process has other RNG states: the checkpoint restores them
    res = fit(model, opt, sampler, step, cfg=cfg, device=torch.device("cpu"), val_fn=val, scheduler=sched,
              generator=torch.Generator().manual_seed(99), checkpoint_path=tmp_path / "b.pt", resume=True,
              log_path=tmp_path / "b.csv")
    assert res.step == 8
    for k, v in model.state_dict().items():
        assert torch.equal(v, ref_params[k]), k
    assert [r["val_loss"] for r in res.rows] == [r["val_loss"] for r in ref.rows]
    log = pd.read_csv(tmp_path / "b.csv")
    assert list(log.columns) == ["step", "train_loss", "val_loss", "lr"] and log["step"].tolist() == [2, 4, 6, 8]


def test_early_stopping_and_budget():
    model, opt, sched, sampler, step, _ = make_run()
    vals = iter([1.0, 0.5, 0.6, 0.7, 0.8, 0.9])
    st = fit(model, opt, sampler, step, cfg=LoopConfig(max_steps=50, eval_every=1, patience=2, progress=False),
             device=torch.device("cpu"), val_fn=lambda m: next(vals))
    assert st.step == 4 and st.best_step == 2 and "early stop" in st.stop_reason
    st = fit(model, opt, sampler, step, cfg=LoopConfig(max_steps=50, eval_every=100, time_budget_sec=1e-6,
                                                       progress=False), device=torch.device("cpu"))
    assert st.step == 1 and "budget" in st.stop_reason


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert setup_distributed("cpu") == DistEnv(0, 1, torch.device("cpu"))


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    join_group(rank, world, port)
    env = setup_distributed("cpu")
    model, opt, sched, sampler, step, val = make_run("byol")
    torch.manual_seed(rank)  # different local RNG: DDP must still keep replicas identical
    fit(model, opt, sampler, step, cfg=LoopConfig(max_steps=3, eval_every=3, progress=False),
        device=env.device, val_fn=val, generator=torch.Generator().manual_seed(10 + rank), env=env,
        checkpoint_path=os.path.join(out, "ddp.pt"), after_step=lambda s: model.after_step(s, 3))
    torch.save(model.state_dict(), os.path.join(out, f"rank{rank}.pt"))
    cleanup_distributed()


@pytest.mark.slow
def test_ddp_gloo_two_processes(tmp_path):
    spawn_two_ranks(_ddp_worker, tmp_path)
    a = torch.load(tmp_path / "rank0.pt", weights_only=True)
    b = torch.load(tmp_path / "rank1.pt", weights_only=True)
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ck = load_checkpoint(tmp_path / "ddp.pt")
    assert ck["loop"]["step"] == 3 and len(ck["rng"]) == 2


def test_run_dir_resumes_only_the_same_run(tmp_path):
    from crescendai.learn.checkpoints import finish_run_dir, prepare_run_dir, run_hash

    d = tmp_path / "runs" / "pretrain"
    h = run_hash({"lr": 1e-3}, "abc")
    assert prepare_run_dir(d, h) is False  # fresh
    (d / "last.pt").write_bytes(b"checkpoint")
    assert prepare_run_dir(d, h) is True  # interrupted, same params and data: resume
    assert prepare_run_dir(d, run_hash({"lr": 2e-3}, "abc"), force_resume=True) is True  # --resume
    assert prepare_run_dir(d, run_hash({"lr": 3e-3}, "abc")) is False  # params changed
    assert not (d / "last.pt").exists()  # stale checkpoint cleared, never silently reused
    (d / "last.pt").write_bytes(b"checkpoint")
    finish_run_dir(d)  # the stage wrote its outputs: a later rerun starts fresh
    assert prepare_run_dir(d, run_hash({"lr": 3e-3}, "abc")) is False


def _gather_worker(rank: int, world: int, port: int, out: str) -> None:
    from crescendai.learn.distributed import gather_across_ranks
    from crescendai.learn.objectives import infonce

    join_group(rank, world, port)
    setup_distributed("cpu")
    g = torch.Generator().manual_seed(0)
    z_all = torch.randn(10, 8, generator=g)
    rec_all = torch.tensor([0, 0, 1, 1, 2, 2, 0, 3, 3, 4])  # recording 0 has crops on both ranks
    rows = [slice(0, 6), slice(6, 10)][rank]  # unequal shards
    z = z_all[rows].clone().requires_grad_(True)
    zg, rg = gather_across_ranks(z, rec_all[rows])
    loss = infonce(zg, rg, 0.1)
    loss.backward()
    torch.save({"loss": loss.detach(), "grad": z.grad, "rec": rg}, os.path.join(out, f"g{rank}.pt"))
    cleanup_distributed()


@pytest.mark.slow
def test_infonce_negatives_are_gathered_across_ranks(tmp_path):
    """Two gloo ranks with unequal shards: every rank's loss is the loss of the whole batch, and the
    summed gradient of each rank's rows is the single-process gradient (world × for the all_gather
    sum, ÷ world by DDP averaging)."""
    from crescendai.learn.objectives import infonce

    spawn_two_ranks(_gather_worker, tmp_path)
    g = torch.Generator().manual_seed(0)
    z_all = torch.randn(10, 8, generator=g).requires_grad_(True)
    rec_all = torch.tensor([0, 0, 1, 1, 2, 2, 0, 3, 3, 4])
    ref = infonce(z_all, rec_all, 0.1)
    ref.backward()
    r0, r1 = (torch.load(tmp_path / f"g{k}.pt", weights_only=True) for k in (0, 1))
    assert torch.equal(r0["rec"], rec_all) and torch.equal(r1["rec"], rec_all)
    assert torch.allclose(r0["loss"], ref.detach()) and torch.allclose(r1["loss"], ref.detach())
    grad = torch.cat([r0["grad"], r1["grad"]]) / 2  # DDP averages over the 2 ranks
    assert torch.allclose(grad, z_all.grad, atol=1e-6)


def test_teacher_quality_reports_the_statistics_of_the_playing(tmp_path, tone_fn):
    """Held-out quality of the performance teacher: per-cell measures and the r of each statistic of
    the playing (the stats head's outputs after the window means)."""
    import soundfile as sf

    from crescendai.core.files import sha1_file
    from crescendai.core.midi import Note, PedalEvent, Performance, write_midi
    from crescendai.core.midi_features import FEATURE_NAMES
    from crescendai.data.manifest import ManifestRecord
    from crescendai.data.window_cache import build_feature_set
    from crescendai.learn.pretrain import teacher_quality

    rng = np.random.default_rng(0)
    records = []
    for k in range(2):
        wav, mid = tmp_path / f"{k}.wav", tmp_path / f"{k}.mid"
        sf.write(wav, tone_fn(12.0, freq=220.0 * (k + 1)), 22050)
        on = np.sort(rng.uniform(0, 11.5, 60))
        write_midi(mid, Performance([Note(t, t + 0.3, int(rng.integers(30, 90)), int(rng.integers(20, 120)))
                                     for t in on], [PedalEvent(1.0, 127), PedalEvent(5.0, 0)]))
        records.append(ManifestRecord(path=str(wav), sha1=sha1_file(wav), duration_sec=12.0, sample_rate=22050,
                                      performer_id="1", piece_id=str(k), segment_id="0", split="ssl", fold=None,
                                      source="t", license="MIT", labels=None, extra={"midi_path": str(mid)}))
    build_feature_set(records, tmp_path / "ssl", hop_sec=1.0, workers=1, progress=False)
    ds = WindowDataset(tmp_path / "ssl")
    torch.manual_seed(0)
    assert "teacher_playing_r" not in teacher_quality(
        SSLModel(Backbone(TINY), PretrainParams(objective="performance")), ds, np.arange(len(ds)), torch.device("cpu"))
    ssl = SSLModel(Backbone(TINY), PretrainParams(objective="performance", playing_weight=1.0))
    q = teacher_quality(ssl, ds, np.arange(len(ds)), torch.device("cpu"))
    assert set(q["teacher_playing_r"]) == set(FEATURE_NAMES)
    rs = np.array(list(q["teacher_playing_r"].values()), dtype=float)
    assert np.isfinite(rs).sum() >= len(FEATURE_NAMES) - 2 and (np.abs(rs[np.isfinite(rs)]) <= 1).all()
    assert q["teacher_playing_median_r"] == pytest.approx(np.nanmedian(rs), abs=1e-4)
    assert 0 <= q["teacher_onset_f1"] <= 1 and q["teacher_cells"] > 0
