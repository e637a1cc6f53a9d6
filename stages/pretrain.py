"""pretrain: self-supervised backbone on data/features/ssl → models/pretrain/, metrics, loss plot.

    python stages/pretrain.py                 # dvc repro pretrain
    python stages/pretrain.py --resume        # force resuming from runs/pretrain/last.pt
    torchrun --nproc_per_node 2 stages/pretrain.py   # DDP (gloo on CPU, nccl on GPU)

An interrupted run resumes by itself: checkpoints live in runs/pretrain/ (outside DVC's outputs,
which DVC deletes before a rerun) under a fingerprint of the params and the SSL index; the next
`dvc repro` with the same fingerprint continues from the last checkpoint.

Outputs: models/pretrain/backbone.pt (+ config.json, log.csv),
metrics/pretrain.json, plots/pretrain_loss.csv (step, train_loss, val_loss). The metric includes a
frozen-embedding probe on data/features/labelled (non-test rows): ridge R² and kNN piano-class
accuracy, for the pretrained and a randomly initialised backbone.
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import numpy as np
import torch

from crescendai.core.config import load_params, seed_everything
from crescendai.core.files import atomic_write, sha1_file, write_json
from crescendai.learn.augment import augment
from crescendai.learn.loop import (
    LoopConfig,
    RecordingBatchSampler,
    WindowDataset,
    cleanup_distributed,
    cosine_schedule,
    fingerprint,
    finish_run_dir,
    fit,
    pad_mask_from_fraction,
    prepare_shared_run_dir,
    setup_distributed,
    split_groups,
)
from crescendai.learn.probe import embed, probe
from crescendai.learn.ssl import SSLConfig, SSLModel
from crescendai.model import build_backbone, save_model

log = logging.getLogger("pretrain")


def run_probe(backbone, labelled: Path, p, device) -> dict:
    from crescendai.data.window_cache import load_feature_set

    if not (labelled / "windows.npy").is_file():
        return {}
    fs = load_feature_set(labelled)
    rows = fs.rows("train", labelled=True, include_augmented=False)
    if len(rows) == 0:
        return {}
    ix = fs.index.iloc[rows]
    groups = ix["fold"].fillna(-1).astype(int).to_numpy() if ix["fold"].notna().any() else ix["performer_id"].to_numpy()
    x, pad = fs.batch(rows), pad_mask_from_fraction(ix["pad_fraction"].to_numpy())
    out = {}
    for name, bb in (("", backbone), ("_random_init", build_backbone(p.model).to(device))):
        r = probe(embed(bb, x, pad, device=device), ix["item"].to_numpy(), groups, fs.labels(rows),
                  ix["timbre_class"].to_numpy(), alpha=p.pretrain.probe_alpha, k=p.pretrain.probe_k)
        out[f"probe_r2{name}"] = round(r.r2, 4)
        if r.timbre_acc is not None:
            out[f"probe_timbre_acc{name}"] = round(r.timbre_acc, 4)
        out["probe_segments"] = r.n_segments
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", default="data/features")
    ap.add_argument("--out", default="models/pretrain")
    ap.add_argument("--metrics", default="metrics/pretrain.json")
    ap.add_argument("--plot", default="plots/pretrain_loss.csv")
    ap.add_argument("--resume", action="store_true",
                    help="resume from runs/pretrain/last.pt even if params changed (default: only when unchanged)")
    ap.add_argument("--run-dir", default="runs/pretrain", help="checkpoints of this run (git-ignored)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    p = load_params()
    pp = p.pretrain
    env = setup_distributed(pp.device)
    seed_everything(p.seed + env.rank)
    torch.manual_seed(p.seed)  # identical initial weights on every rank
    out = Path(args.out)
    t0 = time.perf_counter()

    backbone = build_backbone(p.model).to(env.device)
    ssl = SSLModel(backbone, pp.objective, SSLConfig(proj_dim=pp.proj_dim, temperature=pp.temperature,
                                                     mask_ratio=pp.mask_ratio, ema_base=pp.ema_base)).to(env.device)
    metrics: dict = {"objective": pp.objective, "n_params_backbone": backbone.n_params(), "device": str(env.device),
                     "world_size": env.world}
    rows: list[dict] = []
    if pp.objective != "none" and pp.max_steps > 0 and pp.epochs > 0:
        ds = WindowDataset(Path(args.features) / "ssl")
        tr, va = split_groups(ds.groups, pp.val_fraction, p.seed)
        global_bs = pp.batch_size
        sampler = RecordingBatchSampler(ds.groups[tr], global_bs, pp.crops_per_recording, seed=p.seed)
        steps = min(pp.max_steps, pp.epochs * len(sampler))
        opt = torch.optim.AdamW([q for q in ssl.parameters() if q.requires_grad], lr=pp.lr,
                                weight_decay=pp.weight_decay)
        sched = cosine_schedule(opt, min(pp.warmup_steps, steps // 4), steps)

        def step_fn(net, pos, g):
            b = ds.batch(tr[pos], env.device)
            return net(augment(b["x"], g, pad_mask=b["pad_mask"]), b["group"], b["pad_mask"])

        val_fn = None
        if len(va):
            n_val_rec = len(np.unique(ds.groups[va]))
            vs = RecordingBatchSampler(ds.groups[va], min(global_bs, pp.crops_per_recording * n_val_rec),
                                       pp.crops_per_recording, seed=p.seed + 1)
            val_batches = [b for e in range(4) for b in vs.epoch_batches(e)][:4]

            def val_fn(model):
                g = torch.Generator().manual_seed(p.seed)  # the same views at every evaluation
                torch_state = torch.get_rng_state()
                losses = []
                for pos in val_batches:
                    b = ds.batch(va[pos], env.device)
                    losses.append(float(model(augment(b["x"], g, pad_mask=b["pad_mask"]), b["group"], b["pad_mask"])))
                torch.set_rng_state(torch_state)  # evaluation leaves the training RNG untouched
                return float(np.mean(losses))

        run_dir = Path(args.run_dir)
        fp = fingerprint(p.seed, p.model, p.pretrain, env.world, sha1_file(Path(args.features) / "ssl" / "index.csv"))
        resume = prepare_shared_run_dir(run_dir, fp, env, force_resume=args.resume)
        cfg = LoopConfig(max_steps=steps, time_budget_sec=pp.time_budget_sec, eval_every=pp.eval_every,
                         patience=pp.patience, amp=pp.amp)
        st = fit(ssl, opt, sampler, step_fn, cfg=cfg, device=env.device, val_fn=val_fn, scheduler=sched,
                 generator=torch.Generator().manual_seed(p.seed + 1000 * env.rank), checkpoint_path=run_dir / "last.pt",
                 resume=resume, log_path=out / "log.csv",
                 after_step=lambda s: ssl.after_step(s, steps), env=env)
        ssl.load_state_dict(st.best_state)
        rows = st.rows
        metrics.update(steps=st.step, planned_steps=steps, best_step=st.best_step,
                       best_val_loss=round(st.best_val, 6) if np.isfinite(st.best_val) else None,
                       final_train_loss=rows[-1]["train_loss"] if rows else None, stop_reason=st.stop_reason,
                       train_windows=int(len(tr)), val_windows=int(len(va)),
                       train_seconds=round(st.elapsed_sec, 1),
                       windows_per_sec=round(st.step * global_bs / max(st.elapsed_sec, 1e-9), 1))
    if env.is_main:
        metrics.update(run_probe(backbone, Path(args.features) / "labelled", p, env.device))
        metrics["seconds"] = round(time.perf_counter() - t0, 1)
        save_model(backbone, out / "backbone.pt", extra={"objective": pp.objective, "metrics": metrics})
        write_json(args.metrics, metrics)
        with atomic_write(args.plot) as f:
            f.write("step,train_loss,val_loss\n")
            for r in rows:
                f.write(f"{r['step']},{r['train_loss']},{r['val_loss']}\n")
        finish_run_dir(args.run_dir)
        log.info("pretrain done: %s", metrics)
    cleanup_distributed()


if __name__ == "__main__":
    main()
