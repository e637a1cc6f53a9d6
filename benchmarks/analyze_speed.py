"""Benchmark: `crescendai analyze` cold and warm, and its peak memory, beside the goals, on 2 cores.

For a 1-minute and a 10-minute recording, measured side by side in one run:

- **cold**: a fresh process running the whole command, ``python -m crescendai.cli analyze FILE``
  (Python start, imports, model load, analysis, plots, report files): wall seconds, CPU seconds
  and peak RSS. Goal: 1 minute ≤ 3 s.
- **warm**: the same command called a second time in one process (``crescendai.cli.main`` twice;
  the first call, on the 1-minute file, pays the imports): wall seconds; also the analysis alone
  (``analysis.analyze_file`` + ``build_report``, no plots or files). Goal: 10 minutes ≤ 2 s.
- **peak**: the cold process's peak RSS (``wait4`` of that child). Goal: ≤ 600 MB.

``--long`` adds a cold 60-minute run (the long-file memory check); ``--torch`` measures the same
bundle scored with torch beside it (a copy without its ONNX runtime: the tutor then imports torch). Every child runs on at most two
CPUs (``sched_setaffinity``) with ``OMP_NUM_THREADS=2``; the CLI's own thread settings apply
(``OMP_WAIT_POLICY=PASSIVE``, one BLAS thread for NumPy). The load average is printed with every
figure: other work on the same cores changes them several-fold.

"Cold" means a new process with warm disk and bytecode caches, as when a user runs the command a
second time: an untimed first run fills them. Children get ``PYTHONPYCACHEPREFIX`` (a cache folder
under the system temp directory) and never ``PYTHONDONTWRITEBYTECODE``, which some sandboxes set and
which would add seconds of compiling every module from source to each start (``--as-is`` keeps the
environment untouched).

The recording is a procedurally rendered piano piece (additive synthesis, 3/4 at 100 bpm), tiled to
length and written to a temporary FLAC block by block. Prints a side-by-side table, then
``name, value, limit, ratio`` lines (ratio = value / limit; ≤ 1 meets the goal) for run_all.py.

    uv run python benchmarks/analyze_speed.py [--model models/tutor] [--long] [--as-is]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SR = 22050
THREADS = 2
GOALS = {"cold_1min_sec": 3.0, "warm_10min_sec": 2.0, "peak_mb": 600.0}


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


def ensure_bundle(model: str, folder: Path) -> tuple[str, str]:
    """(bundle folder, description): ``model`` if it holds a model.pt, else a default-size random
    model (params.yaml ``model`` section) with a linear head, as the pipeline ships it (the probe's
    shape, with its ONNX runtime), saved under ``folder``."""
    import json

    config = Path(model, "config.json")
    if Path(model, "model.pt").is_file():
        onnx = config.is_file() and json.loads(config.read_text()).get("onnx")
        return model, f"bundle {model}, scored with {'onnxruntime' if onnx else 'torch'}"
    import torch

    from crescendai.core.config import load_params
    from crescendai.core.files import read_json, write_json
    from crescendai.evaluate.calibration import export_runtime
    from crescendai.model import HeadsConfig, build_model, save_model

    torch.manual_seed(0)
    out = folder / "random_bundle"
    out.mkdir(parents=True, exist_ok=True)
    net = build_model(load_params().model, HeadsConfig(bounded=False, norm=False)).eval()
    with torch.no_grad():  # scores near the middle rating, as a fitted probe's
        net.heads["regression"].net[-1].weight.mul_(0.05)
        net.heads["regression"].net[-1].bias.fill_(4 / 7)
    save_model(net, out / "model.pt")
    cfg = read_json(out / "config.json")
    cfg["onnx"] = export_runtime(net, cfg, out, out)
    write_json(out / "config.json", cfg)
    return str(out), "random default-size model with a linear head, uncalibrated (models/tutor absent)"


def without_onnx(model: str, folder: Path) -> str:
    """A copy of the bundle ``model`` in ``folder`` whose config.json has no ONNX runtime (so the
    tutor scores it with torch)."""
    import shutil

    shutil.copytree(model, folder)
    config = folder / "config.json"
    cfg = json.loads(config.read_text())
    cfg.pop("onnx", None)
    config.write_text(json.dumps(cfg))
    return str(folder)


def _cli_args(audio: Path, out: Path, model: str) -> list[str]:
    return ["analyze", str(audio), "--out", str(out), "--no-progress", "--model", model]


def warm_child(audio: str, first: str, model: str, out: str) -> None:
    """In one process: the command on ``first`` (imports), then timed on ``audio``; then the
    analysis alone. Prints one JSON line."""
    from crescendai.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        if main(_cli_args(Path(first), Path(out) / "first", model)):
            raise SystemExit("the first call failed")
        t = time.perf_counter()
        rc = main(_cli_args(Path(audio), Path(out) / "warm", model))
        command = time.perf_counter() - t
    if rc:
        raise SystemExit("the timed call failed")
    from crescendai.core.config import load_params
    from crescendai.tutor.analysis import analyze_file
    from crescendai.tutor.bundle import load_bundle
    from crescendai.tutor.report import build_report

    bundle = load_bundle(model)
    t = time.perf_counter()
    a = analyze_file(audio, bundle, params=load_params().tutor)
    build_report(a)
    analysis = time.perf_counter() - t
    print(json.dumps({"command_sec": command, "analysis_sec": analysis, "windows": len(a.series),
                      "stages": {k: round(v, 2) for k, v in a.timings.items()}}))


def _env(as_is: bool, cache: Path) -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS=str(THREADS))
    if not as_is:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(cache)
    return env


def _pin() -> None:  # in the child, before exec: at most THREADS CPUs
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, cpus[:THREADS])


def cold(audio: Path, out: Path, model: str, env: dict[str, str]) -> dict:
    """The whole command in a fresh process: wall, CPU seconds and peak RSS via wait4."""
    cmd = [sys.executable, "-m", "crescendai.cli", *_cli_args(audio, out, model)]
    load0 = os.getloadavg()[0]
    with tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err, env=env, preexec_fn=_pin,
                                cwd=Path(__file__).resolve().parents[1])
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
        if proc.returncode:
            err.seek(0)
            tail = err.read().decode(errors="replace")[-3000:]
            raise SystemExit(f"cold run failed on {audio.name}:\n{tail}")
    return {"sec": wall, "cpu_sec": ru.ru_utime + ru.ru_stime, "peak_mb": ru.ru_maxrss / 1024,
            "load": (load0, os.getloadavg()[0])}


def warm(audio: Path, first: Path, out: Path, model: str, env: dict[str, str]) -> dict:
    cmd = [sys.executable, __file__, "--warm-child", str(audio), "--first", str(first), "--model", model,
           "--out", str(out)]
    # this script imports NumPy before the CLI can set its thread settings: give them from outside
    env = {"OMP_WAIT_POLICY": "PASSIVE", "OPENBLAS_NUM_THREADS": "1", **env}
    load0 = os.getloadavg()[0]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, preexec_fn=_pin,
                         cwd=Path(__file__).resolve().parents[1])
    if res.returncode:
        raise SystemExit(f"warm run failed on {audio.name}:\n{res.stderr[-3000:]}")
    r = json.loads(res.stdout.strip().splitlines()[-1])
    r["load"] = (load0, os.getloadavg()[0])
    return r


def _mmss(sec: float) -> str:
    return f"{int(sec // 60)}:{int(round(sec % 60)):02d}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warm-child", metavar="AUDIO", help=argparse.SUPPRESS)
    ap.add_argument("--first", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    ap.add_argument("--model", default="models/tutor",
                    help="tutor bundle (a random default-size model if absent)")
    ap.add_argument("--long", action="store_true", help="add a cold 60-minute run (memory check)")
    ap.add_argument("--torch", action="store_true",
                    help="also measure the same bundle scored with torch (a copy without its ONNX runtime)")
    # the default; run_all.py --quick passes it
    ap.add_argument("--no-long", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--as-is", action="store_true",
                    help="children inherit the environment unchanged (bytecode settings included)")
    args = ap.parse_args()
    if args.warm_child:
        warm_child(args.warm_child, args.first, args.model, args.out)
        return
    cache = Path(tempfile.gettempdir()) / "crescendai-bench-pycache"
    env = _env(args.as_is, cache)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        model, desc = ensure_bundle(args.model, d)
        takes = {m: make_fixture(d, m)[0] for m in ((1, 10, 60) if args.long else (1, 10))}
        cold(takes[1], d / "primer", model, env)  # untimed: fills the bytecode and disk caches
        res = {}
        for m in (1, 10):
            res[m] = {"cold": cold(takes[m], d / f"cold{m}", model, env),
                      "warm": warm(takes[m], takes[1], d / f"warm{m}", model, env)}
        if args.long:
            res[60] = {"cold": cold(takes[60], d / "cold60", model, env)}
        peer = {}
        if args.torch:  # the same bundle without its ONNX runtime: the tutor loads torch
            twin = without_onnx(model, d / "torch_bundle")
            cold(takes[1], d / "primer_torch", twin, env)
            for m in (1, 10):
                peer[m] = {"cold": cold(takes[m], d / f"tcold{m}", twin, env),
                           "warm": warm(takes[m], takes[1], d / f"twarm{m}", twin, env)}
    cpus = len(os.sched_getaffinity(0))
    print(f"# model: {desc}; children on {min(cpus, THREADS)} of {cpus} CPUs; "
          f"{'environment as is' if args.as_is else 'bytecode cache ' + str(cache)}")
    head = ("audio", "runtime", "cold s", "goal", "cold CPU s", "peak MB", "goal", "warm s", "goal",
            "warm analysis s", "load (cold / warm)")
    rows = [head]
    runtime = "onnxruntime" if "onnxruntime" in desc else "torch"
    for m, r, rt in [*((m, r, runtime) for m, r in res.items()), *((m, r, "torch") for m, r in peer.items())]:
        c, w = r["cold"], r.get("warm")
        rows.append((
            _mmss(m * 60), rt, f"{c['sec']:.2f}", "≤ 3" if m == 1 else "", f"{c['cpu_sec']:.2f}",
            f"{c['peak_mb']:.0f}", "≤ 600", f"{w['command_sec']:.2f}" if w else "-",
            "≤ 2" if m == 10 else "", f"{w['analysis_sec']:.2f}" if w else "-",
            f"{c['load'][0]:.1f}–{c['load'][1]:.1f} / "
            + (f"{w['load'][0]:.1f}–{w['load'][1]:.1f}" if w else "-"),
        ))
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for r in rows:
        print("  ".join(v.ljust(widths[i]) for i, v in enumerate(r)).rstrip())
    w10 = res[10]["warm"]
    print(f"# warm 10 min: {w10['windows']} windows; analysis stages {json.dumps(w10['stages'])}")
    figures = [("analyze_1min_cold_sec", res[1]["cold"]["sec"], GOALS["cold_1min_sec"]),
               ("analyze_10min_warm_sec", w10["command_sec"], GOALS["warm_10min_sec"]),
               ("analyze_10min_warm_analysis_sec", w10["analysis_sec"], GOALS["warm_10min_sec"]),
               ("analyze_10min_peak_mb", res[10]["cold"]["peak_mb"], GOALS["peak_mb"]),
               ("analyze_1min_peak_mb", res[1]["cold"]["peak_mb"], GOALS["peak_mb"])]
    if 60 in res:
        figures.append(("analyze_60min_peak_mb", res[60]["cold"]["peak_mb"], GOALS["peak_mb"]))
    print("name, value, limit, ratio")
    for name, value, limit in figures:
        print(f"{name}, {value:.2f}, {limit:g}, {value / limit:.3f}")


if __name__ == "__main__":
    main()
