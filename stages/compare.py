"""Stage ``compare``: does SSL help? Paired bootstrap of the median-r gain (ssl − scratch) on the same
segments, per-dimension deltas, each variant (fusion too) vs the ridge peers (docs/finetune-eval.md).

Reads ``seed`` and ``eval`` from params.yaml; writes metrics/ssl_vs_scratch.json and
plots/per_dim_r.csv, per_dim_r.png.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from crescendai.core.config import VARIANTS, load_params, seed_everything
from crescendai.core.errors import run_stage
from crescendai.core.files import write_json
from crescendai.evaluate.metrics import compare_variants
from crescendai.evaluate.variants import variant_dir


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--models", default="models")
    ap.add_argument("--plots", default="plots")
    ap.add_argument("--metrics", default="metrics")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params(args.params)
    seed_everything(params.seed)
    models, metrics = Path(args.models), Path(args.metrics)
    out = compare_variants(variant_dir(models, "ssl") / "predictions.csv", variant_dir(models, "scratch") / "predictions.csv",
                           {v: metrics / f"eval_{v}.json" for v in VARIANTS}, args.plots,
                           params.eval.n_bootstrap, params.eval.ci, params.seed)
    write_json(metrics / "ssl_vs_scratch.json", out)
    cv = out["cv"]
    logging.info("SSL gain (cv median r): %+.3f [%.3f, %.3f] (performer CI [%.3f, %.3f])",
                 cv["gain"], *cv["ci_segment"], *cv["ci_performer"])


if __name__ == "__main__":
    sys.exit(run_stage(main, "compare"))
