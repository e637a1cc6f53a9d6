"""Stage dedup: fingerprint every manifest item, persist duplicate/overlap pairs, enforce leakage rules.

Writes data/dedup/pairs.jsonl, data/dedup/report.md, metrics/dedup.json; exits 1 listing the
offending pairs when a rule is broken (crescendai.data.dedup.check_leakage).
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing as mp
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

from crescendai.core.config import load_params, seed_everything
from crescendai.core.files import atomic_write, write_json
from crescendai.data.dedup import (
    find_leakage,
    find_pairs,
    items_from_records,
    span_overlap_pairs,
    write_pairs,
)
from crescendai.data.fingerprint import fingerprint, fingerprint_file
from crescendai.data.manifest import read_manifests, record_span


def _fp(path: str):
    try:
        return fingerprint_file(path)
    except Exception as err:  # noqa: BLE001 - reported with the file named
        return RuntimeError(f"{path}: {err}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--manifests", default="data/manifests")
    ap.add_argument("--out", default="data/dedup")
    ap.add_argument("--metrics", default="metrics/dedup.json")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params(args.params)
    seed_everything(params.seed)
    records = read_manifests(sorted(Path(args.manifests).glob("*.jsonl")))
    paths = [r.path for r in records]
    t0 = time.perf_counter()
    fingerprint(np.sin(np.arange(22050, dtype=np.float32) * 0.3))  # warm librosa once; forked workers inherit
    with mp.get_context("fork").Pool(params.dedup.workers) as pool:
        fps = list(tqdm(pool.imap(_fp, paths, chunksize=4), total=len(paths), desc="fingerprint"))
    bad = [f for f in fps if isinstance(f, Exception)]
    if bad:
        print("dedup stage failed: unreadable items:\n" + "\n".join(map(str, bad)), file=sys.stderr)
        return 1
    t_fp = time.perf_counter() - t0
    pairs = find_pairs(paths, fps, [r.sha1 for r in records], match_threshold=params.dedup.match_threshold,
                       min_overlap_sec=params.dedup.min_overlap_sec)
    pairs += span_overlap_pairs([(r.path, r.performance, record_span(r)) for r in records])
    t_all = time.perf_counter() - t0
    out = Path(args.out)
    write_pairs(out / "pairs.jsonl", pairs)
    violations = find_leakage(items_from_records(records), pairs)
    kinds = Counter(p.kind for p in pairs)
    split_of = {r.path: (r.split if r.fold is None else f"fold {r.fold}") for r in records}
    lines = ["# Dedup report", "", f"{len(records)} items, {len(pairs)} pairs "
             f"({', '.join(f'{k}: {v}' for k, v in sorted(kinds.items())) or 'none'}) "
             "(timings in metrics/dedup.json: this file stays identical when the pairs are).", "",
             f"Leakage violations: {len(violations)}", ""]
    for v in violations:
        lines += [f"- **{v.rule}**"] + [f"  - {x}" for x in v.links]
    lines += ["", "| a | b | kind | offset s | score | a split | b split |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {p.a} | {p.b} | {p.kind} | {p.offset_sec:.2f} | {p.score:.3f} | {split_of.get(p.a)} | "
              f"{split_of.get(p.b)} |" for p in pairs]
    with atomic_write(out / "report.md") as f:
        f.write("\n".join(lines) + "\n")
    write_json(args.metrics, {"items": len(records), "pairs": len(pairs),
                              **{f"pairs_{k}": kinds.get(k, 0) for k in ("exact", "contained", "rerender", "overlap")},
                              "violations": len(violations), "fingerprint_seconds": round(t_fp, 2),
                              "seconds": round(t_all, 2)})
    if violations:
        from crescendai.data.dedup import LeakageError

        print(f"dedup stage failed: {LeakageError(violations)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
