"""Stage ``eval@{ssl,scratch,fusion}``: CV (out-of-fold) and test metrics of one fitted variant, and the
ridge peers on the same folds (docs/finetune-eval.md).

Reads ``seed`` and ``eval`` from params.yaml; writes metrics/eval_<variant>.json and
plots/eval_<variant>_per_dim.csv, _scatter.csv, _scatter.png.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from crescendai.core.config import VARIANTS, load_params, seed_everything
from crescendai.core.errors import run_stage
from crescendai.core.files import write_json
from crescendai.evaluate.metrics import evaluate_variant
from crescendai.evaluate.variants import variant_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--variant", choices=VARIANTS, required=True)
    ap.add_argument("--models", default="models")
    ap.add_argument("--features", default="data/features/labelled")
    ap.add_argument("--plots", default="plots")
    ap.add_argument("--metrics", default="metrics")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params(args.params)
    seed_everything(params.seed)
    metrics = evaluate_variant(variant_dir(args.models, args.variant) / "predictions.csv", args.features,
                               args.variant, args.plots, params.eval.n_bootstrap, params.eval.ci, params.seed,
                               params.eval.ridge)
    write_json(Path(args.metrics) / f"eval_{args.variant}.json", metrics)
    logging.info("%s: cv median r %s, test median r %s", args.variant, metrics["cv"]["median_r"],
                 metrics.get("test", {}).get("median_r"))


if __name__ == "__main__":
    sys.exit(run_stage(main, "eval"))
