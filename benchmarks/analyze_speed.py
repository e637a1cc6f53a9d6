"""Benchmark: time and peak memory of `crescendai analyze` on long recordings, 2 CPU threads.

Measures, each in a fresh child process (so peak RSS is the analysis's own, imports included):

- ``analyze_10min_sec``         10-minute recording, no score (beat-tracked bars), MC dropout on
- ``analyze_10min_score_sec``   the same with its MIDI score (DTW alignment)
- ``analyze_10min_peak_mb``     peak RSS of the no-score run
- ``analyze_60min_peak_mb``     peak RSS for a 60-minute recording (the long-file memory check)
- ``analyze_60min_sec``         its analysis time

Times are the analysis itself (``analysis.analyze_file`` + report building, warm imports: the model is
loaded and one short file analysed first); ``analyze_10min_cli_cold_sec`` is the whole CLI command
(Python start, imports, model load, plots and HTML) for comparison. Limits: ≤ 10 s and ≤ 1024 MB.
The recording is a procedurally rendered piano piece (additive synthesis, 3/4 at 100 bpm), tiled
to length and written to a temporary FLAC block by block.

Prints ``name, value, limit, ratio`` lines (ratio = value / limit; ≤ 1 meets the target).

    uv run python benchmarks/analyze_speed.py [--model models/tutor] [--no-long]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SR = 22050
THREADS = 2


def _notes(n_bars: int, beats: int = 3, bpm: float = 100.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    beat = 60.0 / bpm
    scale = np.array([60, 62, 64, 65, 67, 69, 71, 72, 74, 76])
    notes, k = [], 0
    for bar in range(n_bars):
        root = [48, 53, 55, 50][bar % 4]
        for b in range(beats):
            t = (bar * beats + b) * beat
            k = int(np.clip(k + rng.integers(-2, 3), 0, len(scale) - 1))
            notes.append([t, t + 0.9 * beat, scale[k], 80])
            if b == 0:
                notes += [[t, t + beats * beat * 0.95, root, 70], [t, t + beats * beat * 0.95, root + 7, 60]]
    return np.array(notes, float)


def _render(notes: np.ndarray, dur: float) -> np.ndarray:
    y = np.zeros(int(dur * SR), np.float32)
    for on, off, p, v in notes:
        n = int((off - on + 0.2) * SR)
        t = np.arange(n) / SR
        f0 = 440.0 * 2 ** ((p - 69) / 12)
        env = np.exp(-t * (1.5 + f0 / 400)) * np.minimum(1, t / 0.004) * np.clip((off - on + 0.2 - t) / 0.2, 0, 1)
        tone = sum(np.sin(2 * np.pi * f0 * k * t) / k ** 1.5 for k in range(1, 7))
        i0 = int(on * SR)
        y[i0: i0 + n] += ((v / 127) * 0.15 * env * tone)[: len(y) - i0].astype(np.float32)
    return y


def make_fixture(folder: Path, minutes: float) -> tuple[Path, Path]:
    """A FLAC of ``minutes`` (a 108-s rendered piece tiled, written block by block) and its MIDI score."""
    import mido
    import soundfile as sf

    bars_per_tile, bar_sec = 60, 1.8
    tile_sec = bars_per_tile * bar_sec
    notes = _notes(bars_per_tile)
    tile = _render(notes, tile_sec)
    n_tiles = int(np.ceil(minutes * 60 / tile_sec))
    total = int(minutes * 60 * SR)
    audio = folder / f"take_{minutes:g}min.flac"
    with sf.SoundFile(str(audio), "w", SR, 1, format="FLAC", subtype="PCM_16") as f:
        written = 0
        for _ in range(n_tiles):
            chunk = tile[: total - written]
            f.write(np.clip(chunk * 0.9, -1, 1))
            written += chunk.size
    # the score: the tile's notes repeated, 3/4 at 100 bpm
    tpb = 480
    mf = mido.MidiFile(ticks_per_beat=tpb)
    tr = mido.MidiTrack()
    mf.tracks.append(tr)
    tr.append(mido.MetaMessage("time_signature", numerator=3, denominator=4, time=0))
    tr.append(mido.MetaMessage("set_tempo", tempo=600_000, time=0))
    ev = []
    for k in range(n_tiles):
        for on, off, p, v in notes:
            if on + k * tile_sec < minutes * 60:
                ev += [(on + k * tile_sec, 1, int(p), int(v)), (off + k * tile_sec, 0, int(p), 0)]
    ev.sort()
    last = 0
    for t, kind, p, v in ev:
        tick = int(round(t / 0.6 * tpb))
        tr.append(mido.Message("note_on" if kind else "note_off", note=p, velocity=v, time=tick - last))
        last = tick
    score = folder / f"score_{minutes:g}min.mid"
    mf.save(str(score))
    return audio, score


def _bundle(model: str | None):
    """The tutor bundle, or a default-size random model (params.yaml `model` section) when absent."""
    import torch

    from crescendai.tutor.bundle import Bundle, IdentityCalibration, load_bundle, split_model
    from crescendai.tutor.scorer import TorchScorer

    if model and Path(model, "model.pt").is_file():
        return load_bundle(model), f"bundle {model}"
    from crescendai.core.config import load_params
    from crescendai.model import HeadsConfig, build_model

    torch.manual_seed(0)
    m = build_model(load_params().model, HeadsConfig()).eval()
    backbone, head, _ = split_model(m)
    return Bundle(TorchScorer(backbone, head), IdentityCalibration(), "random"), \
        "random default-size model (models/tutor absent)"


def child(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(THREADS)
    from crescendai.core.config import load_params
    from crescendai.tutor.analysis import analyze_file
    from crescendai.tutor.report import build_report

    params = load_params().tutor
    bundle, desc = _bundle(args.model)
    if args.warm:
        analyze_file(args.warm, bundle, score_path=args.warm_score, params=params)
    t = time.perf_counter()
    a = analyze_file(args.audio, bundle, score_path=args.score, params=params)
    build_report(a)
    sec = time.perf_counter() - t
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"sec": sec, "rss_mb": rss_mb, "model": desc, "windows": len(a.series),
                      "timings": a.timings, "bars": len(a.units)}))


def _run_child(audio: Path, score: Path | None, model: str | None, warm: Path | None,
               warm_score: Path | None) -> dict:
    cmd = [sys.executable, __file__, "--child", str(audio)]
    if score:
        cmd += ["--score", str(score)]
    if model:
        cmd += ["--model", model]
    if warm:
        cmd += ["--warm", str(warm)] + (["--warm-score", str(warm_score)] if warm_score else [])
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(f"benchmark child failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", metavar="AUDIO", help=argparse.SUPPRESS)
    ap.add_argument("--score", help=argparse.SUPPRESS)
    ap.add_argument("--warm", help=argparse.SUPPRESS)
    ap.add_argument("--warm-score", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="models/tutor", help="tutor bundle (random default-size model if absent)")
    ap.add_argument("--no-long", action="store_true", help="skip the 60-minute memory check")
    args = ap.parse_args()
    if args.child:
        args.audio = args.child
        child(args)
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        warm_audio, warm_score = make_fixture(d, 0.5)
        a10, s10 = make_fixture(d, 10)
        r = _run_child(a10, None, args.model, warm_audio, None)
        print(f"# model: {r['model']}; 10 min: {r['windows']} windows, {r['bars']} bars; "
              f"stages {json.dumps({k: round(v, 2) for k, v in r['timings'].items()})}", file=sys.stderr)
        rows += [("analyze_10min_sec", r["sec"], 10.0), ("analyze_10min_peak_mb", r["rss_mb"], 1024.0)]
        r = _run_child(a10, s10, args.model, warm_audio, warm_score)
        rows.append(("analyze_10min_score_sec", r["sec"], 10.0))
        t = time.perf_counter()
        cmd = [sys.executable, "-m", "crescendai.cli", "analyze", str(a10), "--out", str(d / "cli"),
               "--no-progress", "--model", args.model if Path(args.model, "model.pt").is_file() else "-"]
        if Path(args.model, "model.pt").is_file():
            env = dict(os.environ, OMP_NUM_THREADS=str(THREADS), MKL_NUM_THREADS=str(THREADS))
            out = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if out.returncode == 0:
                rows.append(("analyze_10min_cli_cold_sec", time.perf_counter() - t, 10.0))
        if not args.no_long:
            a60, _ = make_fixture(d, 60)
            r = _run_child(a60, None, args.model, warm_audio, None)
            rows += [("analyze_60min_sec", r["sec"], 60.0), ("analyze_60min_peak_mb", r["rss_mb"], 1024.0)]
    print("name, value, limit, ratio")
    for name, value, limit in rows:
        print(f"{name}, {value:.2f}, {limit:g}, {value / limit:.3f}")


if __name__ == "__main__":
    main()
