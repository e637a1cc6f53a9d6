"""eval@{ssl,scratch}: CV (out-of-fold) and test metrics of one fine-tuned variant, and the ridge
peer baseline on the same folds. Writes metrics/eval_<variant>.json and plots/eval_<variant>_*.csv/png.
"""

from __future__ import annotations

import argparse
import logging

from crescendai.core.config import load_params, seed_everything
from crescendai.core.files import write_json
from crescendai.evaluate.metrics import evaluate_variant


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--variant", choices=("ssl", "scratch"), required=True)
    ap.add_argument("--features", default="data/features/labelled")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params()
    seed_everything(params.seed)
    metrics = evaluate_variant(
        f"models/finetune_{args.variant}/predictions.csv", args.features, args.variant,
        plots_dir="plots", n_boot=params.eval.n_bootstrap, ci=params.eval.ci, seed=params.seed,
        ridge=params.eval.ridge)
    write_json(f"metrics/eval_{args.variant}.json", metrics)
    logging.info("eval %s: cv median r %s, test median r %s", args.variant,
                 metrics["cv"]["median_r"], metrics.get("test", {}).get("median_r"))


if __name__ == "__main__":
    main()
