"""Windows per second: the cache builder (one decode and one STFT per file, then slicing; parallel) vs.
a naive per-window librosa loop (``librosa.load`` of each window's stretch, then mel + dB per window)
on the same files.

Prints ``name, value, peer, ratio`` lines, and the agreement of the two (dB, interior frames: the
naive loop's centred STFT zero-pads at each window edge, so the 2 edge frames differ by design).

    uv run python benchmarks/preprocess_speed.py [--files 'data/audio/synthetic_ssl/*.flac'] [--workers 2]
"""

from __future__ import annotations

import argparse
import glob
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from crescendai.core.audio import (
    DB_FLOOR,
    HOP_LENGTH,
    N_FFT,
    N_MELS,
    SAMPLE_RATE,
    WINDOW_FRAMES,
    hop_frames,
)
from crescendai.core.files import sha1_file
from crescendai.data.manifest import ManifestRecord
from crescendai.data.window_cache import build_feature_set, load_feature_set


def naive_windows(path: str, hop_sec: float) -> np.ndarray:
    """The naive loop: for each window, ``librosa.load`` that stretch of the file (decode + resample
    to 22 050 Hz mono), then its own mel spectrogram and dB."""
    import librosa

    duration = librosa.get_duration(path=path)
    h = hop_frames(hop_sec) * HOP_LENGTH
    span = (WINDOW_FRAMES - 1) * HOP_LENGTH
    out = []
    for s in range(0, max(1, int(duration * SAMPLE_RATE) - span + h), h):
        if s / SAMPLE_RATE >= duration:
            break
        seg, _ = librosa.load(path, sr=SAMPLE_RATE, mono=True, offset=s / SAMPLE_RATE,
                              duration=span / SAMPLE_RATE)
        if seg.size < span:
            seg = np.pad(seg, (0, span - seg.size))
        S = librosa.feature.melspectrogram(y=seg, sr=SAMPLE_RATE, n_fft=N_FFT, hop_length=HOP_LENGTH,
                                           n_mels=N_MELS, pad_mode="constant")
        db = np.clip(librosa.power_to_db(S, ref=np.max, top_db=None), DB_FLOOR, 0.0).T  # (128, 128)
        out.append(db[:WINDOW_FRAMES])
    return np.stack(out)


def _demo_files(folder: Path, n: int = 6, sec: float = 30.0) -> list[str]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(n):
        t = np.arange(int(sec * SAMPLE_RATE)) / SAMPLE_RATE
        f = 110 * 2 ** (rng.integers(0, 36, size=int(sec * 4)) / 12)
        y = 0.3 * np.sin(2 * np.pi * np.repeat(f, t.size // f.size + 1)[: t.size] * t) * np.exp(-(t % 0.25) * 8)
        p = folder / f"demo{i}.flac"
        sf.write(p, y.astype(np.float32), SAMPLE_RATE)
        paths.append(str(p))
    return paths


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--files", default="data/audio/synthetic_ssl/*.flac")
    ap.add_argument("--max-files", type=int, default=12)
    ap.add_argument("--naive-files", type=int, default=3, help="files timed with the naive loop")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--hop", type=float, default=1.0)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_pre_"))
    files = sorted(glob.glob(args.files))[: args.max_files] or _demo_files(tmp)
    recs = []
    for i, f in enumerate(files):
        info = sf.info(f)
        recs.append(ManifestRecord(path=f, sha1=sha1_file(f), duration_sec=info.frames / info.samplerate,
                                   sample_rate=info.samplerate, performer_id="", piece_id="", segment_id=str(i),
                                   split="ssl", source="bench", license="-"))
    naive_windows(files[0], 30.0)  # warm librosa up for both contenders (the builder warms itself)
    t0 = time.perf_counter()
    stats = build_feature_set(recs, tmp / "set", hop_sec=args.hop, workers=args.workers, progress=False)
    fast = stats.n_windows / (time.perf_counter() - t0)
    fs = load_feature_set(tmp / "set")
    n_naive, t_naive, diffs = 0, 0.0, []
    for i, f in enumerate(files[: args.naive_files]):
        t1 = time.perf_counter()
        w = naive_windows(f, args.hop)
        t_naive += time.perf_counter() - t1
        n_naive += len(w)
        rows = np.flatnonzero(fs.index["item_idx"].to_numpy() == i)
        cached = fs.batch(rows)
        m = min(len(w), len(cached)) - 1  # the last (padded) window is treated differently by design
        diffs.append(np.abs(cached[:m, 2:-2] - w[:m, 2:-2]))
    naive = n_naive / t_naive
    d = np.concatenate([x.ravel() for x in diffs])
    print("name, value, peer, ratio")
    print(f"preprocess_windows_per_sec, {fast:.1f}, {naive:.1f}, {fast / naive:.1f}")
    print(f"# {len(files)} files, {stats.n_windows} windows, workers={args.workers}; naive on "
          f"{args.naive_files} files ({n_naive} windows); interior-frame |cache - naive| dB: mean "
          f"{d.mean():.3f}, p99 {np.percentile(d, 99):.3f}, max {d.max():.3f}")


if __name__ == "__main__":
    main()
