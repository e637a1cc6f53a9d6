"""Every performance figure of the project in one table, each beside its peer or limit.

Runs each benchmark script as its own subprocess (scripts stay independent) and collects the lines
they print in the shared format ``name, value, peer, ratio`` (``peer`` is the competitor measured in
the same run, or the target limit; ``-`` when there is none; lines starting with ``#`` are notes).
A script that is missing or fails gives a "not available" / "failed" row instead of stopping the run.

    uv run python benchmarks/run_all.py                 # all benchmarks, plain table
    uv run python benchmarks/run_all.py --markdown      # the README's performance table
    uv run python benchmarks/run_all.py --quick         # skip the slow parts (60-min memory check)
    uv run python benchmarks/run_all.py --dvc-repro     # also time a full `dvc repro --force` (long)
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class Bench:
    key: str
    script: str
    what: str
    args: tuple[str, ...] = ()
    quick_args: tuple[str, ...] = ()


BENCHES: tuple[Bench, ...] = (
    Bench("synth", "synth_speed.py", "synthesiser × real time"),
    Bench("audio", "audio_speed.py", "contract: librosa reference vs torch batched path"),
    Bench("preprocess", "preprocess_speed.py", "preprocessing vs naive librosa loop"),
    Bench("backbone", "backbone_speed.py", "backbone vs transformers AST"),
    Bench("runtime", "runtime_speed.py", "tutor backbone pass: onnxruntime and int8 vs torch"),
    Bench("analyze", "analyze_speed.py", "analysis time and memory (2 cores)", ("--torch",), ("--no-long",)),
    Bench("hop", "hop_tradeoff.py", "analysis at a 2-s window hop vs 1 s (not the default)", (), ("--repeats", "1")),
)


@dataclass
class Row:
    bench: str
    name: str
    value: str
    peer: str
    ratio: str


def parse_lines(text: str) -> tuple[list[tuple[str, str, str, str]], list[str]]:
    """(rows, notes) from a script's stdout: ``name, value, peer, ratio`` lines (the name may itself
    contain commas: the last three fields are taken from the right) and ``#`` notes. The header
    line ``name, value, …`` is skipped."""
    rows, notes = [], []
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            notes.append(line.lstrip("# "))
            continue
        parts = [p.strip() for p in line.rsplit(",", 3)]
        if len(parts) != 4 or parts[0] == "name":
            continue
        rows.append((parts[0], parts[1], parts[2], parts[3]))
    return rows, notes


def run_bench(b: Bench, quick: bool, timeout: float) -> tuple[list[Row], list[str], float]:
    path = HERE / b.script
    if not path.is_file():
        return [Row(b.what, b.key, "not available", "-", f"({b.script} missing)")], [], 0.0
    cmd = [sys.executable, str(path), *b.args, *(b.quick_args if quick else ())]
    t = time.perf_counter()
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=HERE.parent)
    except subprocess.TimeoutExpired:
        return [Row(b.what, b.key, "failed", "-", f"(timeout {timeout:.0f} s)")], [], time.perf_counter() - t
    wall = time.perf_counter() - t
    rows, notes = parse_lines(out.stdout)
    _, err_notes = parse_lines(out.stderr)
    notes += err_notes
    if out.returncode or not rows:
        last = (out.stderr.strip().splitlines() or ["no output"])[-1][:100]
        rows_out = [Row(b.what, n, v, p, r) for n, v, p, r in rows]
        rows_out.append(Row(b.what, b.key, "failed" if out.returncode else "no figures", "-",
                            f"(exit {out.returncode}: {last})"))
        return rows_out, notes, wall
    return [Row(b.what, n, v, p, r) for n, v, p, r in rows], notes, wall


def time_dvc_repro(timeout: float) -> Row:
    t = time.perf_counter()
    try:
        out = subprocess.run([sys.executable, "-m", "dvc", "repro", "--force"], capture_output=True,
                             text=True, timeout=timeout, cwd=HERE.parent)
    except subprocess.TimeoutExpired:
        return Row("full default pipeline", "dvc_repro_wall_sec", "failed", "-", f"(timeout {timeout:.0f} s)")
    wall = time.perf_counter() - t
    if out.returncode:
        return Row("full default pipeline", "dvc_repro_wall_sec", "failed", "-", f"(exit {out.returncode})")
    return Row("full default pipeline", "dvc_repro_wall_sec", f"{wall:.0f}", "-", "-")


def render(rows: list[Row], markdown: bool) -> str:
    head = ("benchmark", "figure", "value", "peer / limit", "ratio")
    cells = [head] + [(r.bench, r.name, r.value, r.peer, r.ratio) for r in rows]
    if markdown:
        lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(c) + " |" for c in cells[1:]]
        return "\n".join(lines)
    widths = [max(len(c[i]) for c in cells) for i in range(len(head))]
    return "\n".join("  ".join(c[i].ljust(widths[i]) for i in range(len(head))).rstrip() for c in cells)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", choices=[b.key for b in BENCHES], help="run only these")
    ap.add_argument("--quick", action="store_true", help="pass each script's quick flags")
    ap.add_argument("--markdown", action="store_true", help="print a markdown table")
    ap.add_argument("--dvc-repro", action="store_true", help="also time `dvc repro --force` (long)")
    ap.add_argument("--timeout", type=float, default=1800.0, help="seconds per benchmark script")
    args = ap.parse_args()
    rows: list[Row] = []
    all_notes: list[str] = []
    for b in BENCHES:
        if args.only and b.key not in args.only:
            continue
        print(f"running {b.script} …", file=sys.stderr, flush=True)
        r, notes, wall = run_bench(b, args.quick, args.timeout)
        rows += r
        all_notes += [f"{b.key}: {n}" for n in notes] + [f"{b.key}: script wall time {wall:.0f} s"]
    if args.dvc_repro:
        print("running dvc repro --force …", file=sys.stderr, flush=True)
        rows.append(time_dvc_repro(args.timeout * 4))
    print(render(rows, args.markdown))
    if all_notes:
        print()
        print("\n".join(("- " if args.markdown else "# ") + n for n in all_notes))


if __name__ == "__main__":
    main()
