"""calibrate: isotonic maps per dimension fitted on the out-of-fold (validation) segment
predictions of the tutor's variant (``calibrate.variant``; ``auto`` picks the variant with the higher
CV median r, never looking at the test set); before/after metrics on the test set; the tutor bundle.

Writes models/tutor/ (model.pt, config.json, calibration.json), metrics/calibration.json,
plots/calibration.csv and plots/calibration.png.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from crescendai.core.config import load_params, seed_everything
from crescendai.core.files import read_json, write_json
from crescendai.evaluate.calibration import fit_from_predictions, plot_reliability
from crescendai.evaluate.metrics import best_variant, write_csv


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params()
    seed_everything(params.seed)
    variant, cv = params.calibrate.variant, {}
    if variant == "auto":
        variant, cv = best_variant({v: f"models/finetune_{v}/predictions.csv" for v in ("ssl", "scratch")})
        logging.info("calibrate.variant auto: CV median r %s → %s", {k: round(x, 4) for k, x in cv.items()}, variant)
    src = Path(f"models/finetune_{variant}")
    cal, metrics, rows = fit_from_predictions(src / "predictions.csv", params.calibrate.n_bins)
    metrics = {"variant": variant, **({"cv_median_r": {k: round(x, 6) for k, x in cv.items()}} if cv else {}),
               **metrics}

    out = Path("models/tutor")
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / ".model.pt.tmp"
    shutil.copyfile(src / "model.pt", tmp)
    tmp.replace(out / "model.pt")
    config = read_json(src / "config.json")
    config.update({"calibration": "calibration.json", "source": str(src), "variant": variant})
    write_json(out / "config.json", config)
    cal.save(out / "calibration.json")
    write_json("metrics/calibration.json", metrics)
    write_csv("plots/calibration.csv", rows)
    plot_reliability("plots/calibration.png", rows)
    logging.info("calibration (%s, test): MSE %.4f → %.4f, ECE %.4f → %.4f", variant,
                 metrics["test"]["mse_before"], metrics["test"]["mse_after"],
                 metrics["test"]["ece_before"], metrics["test"]["ece_after"])


if __name__ == "__main__":
    main()
