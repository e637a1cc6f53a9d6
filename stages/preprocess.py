"""Stage preprocess: manifests → data/features/{labelled,ssl,ood} (memmap windows + index.csv), after
the leakage check; plus the similarity probe (metrics/similarity.json, plots/similarity.png)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from crescendai.core.config import load_params, seed_everything
from crescendai.core.files import write_json
from crescendai.data.corpora.registry import roles
from crescendai.data.dedup import LeakageError, check_leakage, items_from_records, read_pairs
from crescendai.data.manifest import read_manifest
from crescendai.data.similarity import plot, probe
from crescendai.data.window_cache import FeatureError, build_feature_set


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--manifests", default="data/manifests")
    ap.add_argument("--pairs", default="data/dedup/pairs.jsonl")
    ap.add_argument("--out", default="data/features")
    ap.add_argument("--metrics", default="metrics/similarity.json")
    ap.add_argument("--plot", default="plots/similarity.png")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params(args.params)
    seed_everything(params.seed)
    pp = params.preprocess
    role_of = roles(params.data)
    by_corpus = {c: read_manifest(Path(args.manifests) / f"{c}.jsonl") for c in role_of}
    all_records = [r for recs in by_corpus.values() for r in recs]
    try:
        check_leakage(items_from_records(all_records), read_pairs(args.pairs))
    except LeakageError as err:
        print(f"preprocess stage failed: {err}", file=sys.stderr)
        return 1
    sets = {"labelled": "supervised", "ssl": "ssl", "ood": "ood"}
    try:
        for set_name, role in sets.items():
            recs = [r for c, rr in by_corpus.items() if role_of[c] == role for r in rr]
            stats = build_feature_set(recs, Path(args.out) / set_name, hop_sec=pp.hop_sec, workers=pp.workers,
                                      dtype=pp.dtype, min_duration_sec=pp.min_duration_sec)
            logging.info("%s: %s", set_name, stats)
    except FeatureError as err:
        print(f"preprocess stage failed: {err}", file=sys.stderr)
        return 1
    groups = {c: [r.path for r in rr] for c, rr in by_corpus.items() if role_of[c] in ("ssl", "ood")}
    ood = [c for c in groups if role_of[c] == "ood"]
    metrics, rows = probe(groups, ood, max_items=pp.probe_items, seed=params.seed)
    write_json(args.metrics, metrics)
    plot(rows, args.plot)
    return 0


if __name__ == "__main__":
    sys.exit(main())
