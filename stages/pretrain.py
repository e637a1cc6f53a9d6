"""pretrain (crescendai.learn.pretrain): self-supervised backbone → models/pretrain/, metrics, loss plot.

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
from crescendai.learn.checkpoints import finish_run_dir
from crescendai.learn.distributed import setup_distributed
from crescendai.learn.pretrain import pretrain
from crescendai.model import save_model


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
    save_model(res.backbone, out / "backbone.pt", extra={"objective": params.pretrain.objective, "metrics": res.metrics})
    write_json(args.metrics, res.metrics)
    with atomic_write(args.plot) as f:
        f.write(res.loss_curve_csv())
    finish_run_dir(args.run_dir)
    logging.info("pretrain done: %s", res.metrics)


if __name__ == "__main__":
    sys.exit(run_stage(main, "pretrain"))
