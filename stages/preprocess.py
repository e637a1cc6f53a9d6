"""Stage preprocess: manifests → data/features/{labelled,ssl,ood} (memmap windows + index.csv), after
the leakage check; plus the similarity probe (metrics/similarity.json, plots/similarity.png)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from crescendai.core.config import load_params, seed_everything
from crescendai.core.errors import run_stage
from crescendai.core.files import write_json
from crescendai.data.corpora.registry import roles
from crescendai.data.manifest import read_manifest
from crescendai.data.similarity import plot, probe
from crescendai.data.window_cache import build_feature_sets


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    for flag, default in (("--params", "params.yaml"), ("--manifests", "data/manifests"), ("--out", "data/features"),
                          ("--pairs", "data/dedup/pairs.jsonl"), ("--metrics", "metrics/similarity.json"),
                          ("--plot", "plots/similarity.png")):
        ap.add_argument(flag, default=default)
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params(args.params)
    seed_everything(params.seed)
    role_of = roles(params.data)
    by_corpus = {c: read_manifest(Path(args.manifests) / f"{c}.jsonl") for c in role_of}
    build_feature_sets(by_corpus, role_of, args.out, params.preprocess, args.pairs)
    groups = {c: [r.path for r in rr] for c, rr in by_corpus.items() if role_of[c] in ("ssl", "ood")}
    metrics, rows = probe(groups, [c for c in groups if role_of[c] == "ood"], max_items=params.preprocess.probe_items,
                          seed=params.seed)
    write_json(args.metrics, metrics)
    plot(rows, args.plot)


if __name__ == "__main__":
    sys.exit(run_stage(main, "preprocess"))
