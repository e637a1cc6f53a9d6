"""Stage ``calibrate``: isotonic maps per dimension fitted on the out-of-fold segment predictions of
the tutor's variant (``calibrate.variant``; ``auto`` = the higher CV median r, never the test set),
before/after metrics on the test set, and the tutor bundle (docs/finetune-eval.md) with the description
of the training windows for the tutor's domain check (fitted on data/features/labelled, measured on its
test windows and on data/features/ood).

Reads ``calibrate`` from params.yaml; writes models/tutor/ (model.pt, config.json, calibration.json,
domain.npz and, for a linear head, the ONNX runtime the CLI runs without torch: scoring.onnx,
saliency.onnx), metrics/calibration.json and plots/calibration.csv, calibration.png.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from crescendai.core.config import load_params, seed_everything
from crescendai.core.errors import run_stage
from crescendai.core.files import write_json
from crescendai.evaluate.calibration import calibrate_tutor


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--models", default="models")
    ap.add_argument("--out", default="models/tutor")
    ap.add_argument("--plots", default="plots")
    ap.add_argument("--metrics", default="metrics")
    ap.add_argument("--features", default="data/features", help="window caches: labelled/ (fit), ood/ (checked)")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params(args.params)
    seed_everything(params.seed)
    features = Path(args.features)
    metrics = calibrate_tutor(args.models, args.out, args.plots, params.calibrate.variant, params.calibrate.n_bins,
                              features / "labelled", {"ood": features / "ood"})
    write_json(Path(args.metrics) / "calibration.json", metrics)
    test = metrics["test"]
    logging.info("%s (CV median r %s), test: MSE %.4f → %.4f, ECE %.4f → %.4f", metrics["variant"],
                 metrics.get("cv_median_r", "not compared"), test["mse_before"], test["mse_after"],
                 test["ece_before"], test["ece_after"])
    logging.info("domain check: %s", metrics["domain"]["checks"])


if __name__ == "__main__":
    sys.exit(run_stage(main, "calibrate"))
