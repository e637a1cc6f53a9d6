"""Benchmark: what a longer window hop would buy and cost in `crescendai analyze` (a trade-off the
tutor does not make by default: ``tutor.hop_sec`` stays 1.0 s).

On the 10-minute fixture of ``analyze_speed.py`` (the same procedurally rendered piece), the analysis
alone (``analysis.analyze_file``, warm: the bundle loaded and one untimed call first) at hop 1.0 s and
at ``--hop`` (default 2.0 s), side by side: wall seconds (best of ``--repeats``), windows scored, and
how far the per-bar scores move — per-dimension Pearson r between the two runs' bar scores (median
over dimensions whose scores vary), mean and largest absolute difference (label scale, a rating
point = 1/7 ≈ 0.14), share of bar × dimension cells that move by more than 0.02, and whether the
feedback lines differ.

    uv run python benchmarks/hop_tradeoff.py [--model models/tutor] [--hop 2.0] [--repeats 2]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from analyze_speed import make_fixture  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="models/tutor")
    ap.add_argument("--hop", type=float, default=2.0, help="the longer hop, seconds")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    import torch

    from crescendai.core.config import TutorParams
    from crescendai.tutor.analysis import analyze_file
    from crescendai.tutor.bundle import load_bundle

    torch.set_num_threads(2)
    bundle = load_bundle(args.model)
    with tempfile.TemporaryDirectory() as tmp:
        audio = make_fixture(Path(tmp), 10)[0]
        analyze_file(audio, bundle, params=TutorParams())  # warm-up
        runs = {}
        for hop in (1.0, args.hop):
            best = np.inf
            for _ in range(args.repeats):
                t = time.perf_counter()
                a = analyze_file(audio, bundle, params=TutorParams(hop_sec=hop))
                best = min(best, time.perf_counter() - t)
            runs[hop] = (best, a)
    (t1, a1), (t2, a2) = runs[1.0], runs[args.hop]
    if list(a1.units.labels) != list(a2.units.labels):
        raise SystemExit("the two runs found different bars; per-bar scores cannot be compared")
    s1, s2 = a1.unit_scores, a2.unit_scores
    ok = np.isfinite(s1).all(1) & np.isfinite(s2).all(1)
    s1, s2 = s1[ok], s2[ok]
    varying = (s1.std(0) > 1e-3) & (s2.std(0) > 1e-3)
    r = [np.corrcoef(s1[:, d], s2[:, d])[0, 1] for d in np.flatnonzero(varying)]
    diff = np.abs(s1 - s2)
    print(f"{'hop s':<8}{'windows':>9}{'analysis s':>12}")
    print(f"{1.0:<8g}{len(a1.series):>9}{t1:>12.2f}")
    print(f"{args.hop:<8g}{len(a2.series):>9}{t2:>12.2f}")
    print(f"# {ok.sum()} bars; per-bar scores, hop {args.hop:g} vs 1: median r {np.median(r):.3f} over "
          f"{len(r)} varying dimensions (min {np.min(r):.3f}); mean |Δ| {diff.mean():.4f}, max {diff.max():.3f}; "
          f"cells moving > 0.02: {(diff > 0.02).mean():.1%}")
    same = [(ln.first, ln.last, ln.dims) for ln in a1.lines] == [(ln.first, ln.last, ln.dims) for ln in a2.lines]
    print(f"# feedback lines: {len(a1.lines)} at hop 1, {len(a2.lines)} at hop {args.hop:g}; same: {same}")
    print("name, value, limit, ratio")
    print(f"analysis_10min_hop{args.hop:g}_sec, {t2:.2f}, {t1:.2f}, {t2 / t1:.3f}")


if __name__ == "__main__":
    main()
