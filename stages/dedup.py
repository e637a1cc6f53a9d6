"""Stage dedup: fingerprint every manifest item, persist duplicate/overlap pairs, enforce leakage rules.

Writes data/dedup/pairs.jsonl, data/dedup/report.md, metrics/dedup.json; fails listing the offending
pairs when a rule is broken (crescendai.data.dedup.find_leakage).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from crescendai.core.config import load_params, seed_everything
from crescendai.core.errors import run_stage
from crescendai.core.files import atomic_write, write_json
from crescendai.data.dedup import LeakageError, dedup_records, write_pairs
from crescendai.data.manifest import read_manifests


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--manifests", default="data/manifests")
    ap.add_argument("--out", default="data/dedup")
    ap.add_argument("--metrics", default="metrics/dedup.json")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params(args.params)
    seed_everything(params.seed)
    d = params.dedup
    res = dedup_records(read_manifests(sorted(Path(args.manifests).glob("*.jsonl"))), d.match_threshold,
                        d.min_overlap_sec, d.workers)
    write_pairs(Path(args.out) / "pairs.jsonl", res.pairs)
    with atomic_write(Path(args.out) / "report.md") as f:
        f.write(res.report)
    write_json(args.metrics, res.metrics)
    if res.violations:
        raise LeakageError(res.violations)


if __name__ == "__main__":
    sys.exit(run_stage(main, "dedup"))
