"""Stage ``finetune_fusion`` (crescendai.evaluate.fusion): the pretrained embedding ⊕ the hand-crafted
audio window features, one ridge head on the same folds as the other variants.

Reads data/features/labelled and models/finetune_ssl (its frozen pretrained backbone and row head);
writes models/finetune_fusion/ (model.pt and teacher_head.pt as in finetune_ssl, fusion_head.npz,
config.json with the ``fusion_head`` entry, predictions.csv, summary.json).
"""

from __future__ import annotations

import argparse
import logging
import sys

from crescendai.core.config import load_params, seed_everything
from crescendai.core.errors import run_stage
from crescendai.core.files import atomic_write, copy_atomic, read_json, write_json
from crescendai.evaluate.fusion import fit_fusion, save_fused_head
from crescendai.evaluate.variants import variant_dir
from crescendai.learn.finetune import load_labelled
from crescendai.model import TEACHER_HEAD_FILE, load_model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--features", default="data/features/labelled")
    ap.add_argument("--models", default="models")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params()
    seed_everything(params.seed)
    src, out = variant_dir(args.models, "ssl"), variant_dir(args.models, "fusion")
    fit, head = fit_fusion(load_model(src).backbone, load_labelled(args.features))
    out.mkdir(parents=True, exist_ok=True)
    config = read_json(src / "config.json")
    for name in ("model.pt", *([TEACHER_HEAD_FILE] if config.get("teacher_head") else [])):
        copy_atomic(src / name, out / name)
    summary = {"mode": "probe", "inputs": f"embedding ({head.embedding_dim}) + window features "
               f"({len(head.features)})", "folds": fit.folds, "alphas": [float(a) for a in fit.history["alpha"]],
               "backbone": str(src)}
    config.update({"variant": "fusion", "pooling": "mean", "summary": summary,
                   "fusion_head": save_fused_head(head, out)})
    write_json(out / "config.json", config)
    with atomic_write(out / "predictions.csv") as f:
        fit.predictions.to_csv(f, index=False, float_format="%.6g")
    write_json(out / "summary.json", summary)
    logging.info("finetune_fusion done: %s", summary)


if __name__ == "__main__":
    sys.exit(run_stage(main, "finetune_fusion"))
