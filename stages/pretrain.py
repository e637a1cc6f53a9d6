"""pretrain (crescendai.learn.pretrain): self-supervised backbone → models/pretrain/ (backbone.pt, and with
the performance objective its row head teacher_head.pt), metrics, loss plot.

    python stages/pretrain.py                        # dvc repro pretrain; continues runs/pretrain/ by itself
    python stages/pretrain.py --resume               # continue runs/pretrain/ even if params changed
    torchrun --nproc_per_node 2 stages/pretrain.py   # DDP (gloo on CPU, nccl on GPU)
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from crescendai.core.config import load_params
from crescendai.core.errors import run_stage
from crescendai.core.files import atomic_write, write_json
from crescendai.data.teacher import TEACHER_FIELDS
from crescendai.learn.checkpoints import finish_run_dir
from crescendai.learn.distributed import setup_distributed
from crescendai.learn.pretrain import pretrain
from crescendai.model import TEACHER_HEAD_FILE, save_model, save_teacher_head


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", default="data/features")
    ap.add_argument("--out", default="models/pretrain")
    ap.add_argument("--metrics", default="metrics/pretrain.json")
    ap.add_argument("--plot", default="plots/pretrain_loss.csv")
    ap.add_argument("--resume", action="store_true", help="continue --run-dir even if params changed")
    ap.add_argument("--run-dir", default="runs/pretrain", help="checkpoints of this run (git-ignored)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    params = load_params()
    out = Path(args.out)
    res = pretrain(params, args.features, setup_distributed(params.pretrain.device), run_dir=args.run_dir,
                   log_path=out / "log.csv", force_resume=args.resume)
    if res is None:  # not rank 0
        return
    extra: dict[str, object] = {"objective": params.pretrain.objective, "metrics": res.metrics}
    if res.teacher_head is not None:  # the performance teacher's row head: kept for the tutor
        extra["teacher_head"] = save_teacher_head(
            res.teacher_head, out, list(TEACHER_FIELDS),
            {k: v for k, v in res.metrics.items() if k.startswith("teacher_")})
    else:
        (out / TEACHER_HEAD_FILE).unlink(missing_ok=True)
    save_model(res.backbone, out / "backbone.pt", extra=extra)
    write_json(args.metrics, res.metrics)
    with atomic_write(args.plot) as f:
        f.write(res.loss_curve_csv())
    finish_run_dir(args.run_dir)
    logging.info("pretrain done: %s", res.metrics)


if __name__ == "__main__":
    sys.exit(run_stage(main, "pretrain"))
