"""finetune_ssl / finetune_scratch: the shared supervised recipe, performer-level CV + final model.

Reads data/features/labelled (and models/pretrain with --init ssl); writes models/finetune_<init>/
(model.pt, config.json, predictions.csv, summary.json) and plots/finetune_<init>_loss.csv.
An interrupted stage resumes by itself: per-run checkpoints live in runs/finetune_<init>/ under a
fingerprint of the params and inputs, and the next `dvc repro` with the same fingerprint continues.

    python stages/finetune.py --init ssl                          # one device
    torchrun --nproc_per_node 4 stages/finetune.py --init ssl     # CV folds spread over 4 ranks
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from crescendai.core.config import load_params, seed_everything
from crescendai.core.files import atomic_write, sha1_file, write_json
from crescendai.learn.finetune import (
    FinetuneConfig,
    cross_validate,
    load_labelled,
    model_factory,
    run_finetune,
)
from crescendai.learn.loop import (
    cleanup_distributed,
    fingerprint,
    finish_run_dir,
    prepare_shared_run_dir,
    setup_distributed,
)
from crescendai.model import save_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--init", choices=("ssl", "scratch"), required=True)
    ap.add_argument("--features", default="data/features/labelled")
    ap.add_argument("--pretrain", default="models/pretrain")
    ap.add_argument("--resume", action="store_true",
                    help="resume runs/finetune_<init>/ even if params changed (default: only when unchanged)")
    args = ap.parse_args()
    params = load_params()
    cfg = FinetuneConfig.from_params(params.finetune)
    env = setup_distributed(cfg.device)
    rank = f"[rank {env.rank}] " if env.distributed else ""
    logging.basicConfig(level=logging.INFO, format=f"%(levelname)s {rank}%(name)s: %(message)s")
    seed_everything(params.seed)
    data = load_labelled(args.features)
    make = model_factory(params.model, cfg, data.n_timbre_classes, args.init,
                         args.pretrain if args.init == "ssl" else None)
    run_dir = Path(f"runs/finetune_{args.init}")
    inputs = [sha1_file(Path(args.features) / "index.csv")]
    if args.init == "ssl":
        inputs.append(sha1_file(Path(args.pretrain) / "backbone.pt"))
    fp = fingerprint(params.seed, params.model, params.finetune, args.init, inputs)
    resume = prepare_shared_run_dir(run_dir, fp, env, force_resume=args.resume)
    cv = None
    if env.distributed:  # the CV rounds fold-parallel; rank 0 then trains the final model alone
        cv = cross_validate(make, data, cfg, params.seed, checkpoint_dir=run_dir, resume=resume, env=env)
        cleanup_distributed()
        if not env.is_main:
            return
    res = run_finetune(make, data, cfg, seed=params.seed, device=env.device, checkpoint_dir=run_dir,
                       resume=resume, cv=cv)

    out = Path(f"models/finetune_{args.init}")
    out.mkdir(parents=True, exist_ok=True)
    save_model(res.model, out / "model.pt", extra={
        "variant": args.init, "pooling": cfg.pooling, "trim": cfg.trim,
        "finetune": cfg.__dict__, "summary": res.summary})
    with atomic_write(out / "predictions.csv") as f:
        res.predictions.to_csv(f, index=False, float_format="%.6g")
    write_json(out / "summary.json", res.summary)
    hist = res.history.copy()
    hist.insert(0, "step", range(len(hist)))
    with atomic_write(f"plots/finetune_{args.init}_loss.csv") as f:
        hist.to_csv(f, index=False, float_format="%.6g")
    finish_run_dir(run_dir)
    logging.info("finetune_%s done: %s", args.init, res.summary)


if __name__ == "__main__":
    main()
