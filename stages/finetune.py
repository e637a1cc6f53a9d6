"""finetune_ssl / finetune_scratch (crescendai.learn.finetune): performer-level CV + final model.

Reads data/features/labelled (and models/pretrain with --init ssl); writes models/finetune_<init>/
(model, predictions, summary; with finetune.mode probe also embeddings.npz, the segment embeddings,
and with --init ssl the pretrained row head teacher_head.pt, which still fits the frozen backbone)
and plots/finetune_<init>_loss.csv; an interrupted run continues from runs/finetune_<init>/.

    python stages/finetune.py --init ssl                          # one device
    torchrun --nproc_per_node 4 stages/finetune.py --init ssl     # CV folds spread over 4 ranks
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

import numpy as np

from crescendai.core.config import load_params
from crescendai.core.errors import run_stage
from crescendai.core.files import atomic_write, copy_atomic, read_json, write_json
from crescendai.learn.checkpoints import finish_run_dir
from crescendai.learn.distributed import setup_distributed
from crescendai.learn.finetune import finetune, segment_pooling
from crescendai.model import TEACHER_HEAD_FILE, save_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--init", choices=("ssl", "scratch"), required=True)
    ap.add_argument("--features", default="data/features/labelled")
    ap.add_argument("--pretrain", default="models/pretrain")
    ap.add_argument("--resume", action="store_true", help="continue runs/finetune_<init>/ even if params changed")
    args = ap.parse_args()
    params = load_params()
    env = setup_distributed(params.finetune.device)
    rank = f"[rank {env.rank}] " if env.distributed else ""
    logging.basicConfig(level=logging.INFO, format=f"%(levelname)s {rank}%(name)s: %(message)s")
    run_dir, out = Path(f"runs/finetune_{args.init}"), Path(f"models/finetune_{args.init}")
    res = finetune(params, args.init, args.features, env, run_dir=run_dir, pretrain_dir=args.pretrain,
                   force_resume=args.resume)
    if res is None:  # not rank 0
        return
    cfg = params.finetune
    extra = {"variant": args.init, "pooling": segment_pooling(cfg), "trim": cfg.trim,
             "finetune": dataclasses.asdict(cfg), "summary": res.summary}
    head = carry_teacher_head(Path(args.pretrain), out, args.init == "ssl" and cfg.mode == "probe")
    if head is not None:
        extra["teacher_head"] = head
    save_model(res.model, out / "model.pt", extra=extra)
    with atomic_write(out / "predictions.csv") as f:
        res.predictions.to_csv(f, index=False, float_format="%.6g")
    write_json(out / "summary.json", res.summary)
    if res.embeddings is not None:
        with atomic_write(out / "embeddings.npz", "wb") as f:
            np.savez(f, embeddings=res.embeddings[0], items=res.embeddings[1])
    with atomic_write(f"plots/finetune_{args.init}_loss.csv") as f:
        res.history.rename_axis("step").reset_index().to_csv(f, index=False, float_format="%.6g")
    finish_run_dir(run_dir)
    logging.info("finetune_%s done: %s", args.init, res.summary)


def carry_teacher_head(pretrain_dir: Path, out: Path, frozen: bool) -> dict | None:
    """Copy the pretrained row head (``teacher_head.pt``) beside the model when the model's backbone
    is the pretrained one, frozen (``--init ssl`` with ``finetune.mode: probe``): the head still reads
    the same tokens. Returns its config entry, or None (and removes a stale copy)."""
    entry = read_json(pretrain_dir / "config.json").get("teacher_head") if frozen else None
    target = out / TEACHER_HEAD_FILE
    if not entry:
        target.unlink(missing_ok=True)
        return None
    copy_atomic(pretrain_dir / entry["weights"], target)
    return {**entry, "weights": TEACHER_HEAD_FILE}


if __name__ == "__main__":
    sys.exit(run_stage(main, "finetune"))
