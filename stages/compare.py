"""compare: does SSL help? Paired bootstrap of the median-r gain (ssl − scratch) on the same
segments, per-dimension deltas. Writes metrics/ssl_vs_scratch.json and plots/per_dim_r.csv/png.
"""

from __future__ import annotations

import logging

from crescendai.core.config import load_params, seed_everything
from crescendai.core.files import write_json
from crescendai.evaluate.metrics import compare_variants


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params()
    seed_everything(params.seed)
    out = compare_variants(
        "models/finetune_ssl/predictions.csv", "models/finetune_scratch/predictions.csv",
        eval_paths={"ssl": "metrics/eval_ssl.json", "scratch": "metrics/eval_scratch.json"},
        plots_dir="plots", n_boot=params.eval.n_bootstrap, ci=params.eval.ci, seed=params.seed)
    write_json("metrics/ssl_vs_scratch.json", out)
    cv = out["cv"]
    logging.info("SSL gain (cv median r): %+.3f [%.3f, %.3f] (performer CI [%.3f, %.3f])",
                 cv["gain"], *cv["ci_segment"], *cv["ci_performer"])


if __name__ == "__main__":
    main()
