"""Contract throughput on a 10-minute recording: librosa reference vs. the batched torch path.

Prints ``name, value, peer, ratio`` lines (see benchmarks/run_all.py). Run:

    uv run python benchmarks/audio_speed.py [--minutes 10] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from crescendai.core import audio


def _signal(minutes: float, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    n = int(minutes * 60 * audio.SAMPLE_RATE)
    t = np.arange(n, dtype=np.float32) / audio.SAMPLE_RATE
    f = 110.0 * 2 ** (rng.integers(0, 36, size=n // audio.SAMPLE_RATE + 1) / 12)
    y = 0.3 * np.sin(2 * np.pi * f[(t).astype(int)] * t) * np.exp(-(t % 0.5) * 5)
    return (y + 0.003 * rng.standard_normal(n)).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    y = _signal(args.minutes)

    t0 = time.perf_counter()
    ref = audio.windows_from_waveform(y, hop_sec=1.0)
    t_ref = time.perf_counter() - t0

    audio.windows_from_waveforms_torch([y[: audio.SAMPLE_RATE * 5]], device=args.device)  # warm-up
    t0 = time.perf_counter()
    (fast,) = audio.windows_from_waveforms_torch([y], hop_sec=1.0, device=args.device)
    t_fast = time.perf_counter() - t0

    err = float(np.abs(fast.db - ref.db).mean())
    n = len(ref)
    print(f"contract windows/s (librosa reference, {args.minutes:g} min), {n / t_ref:.0f}, -, -")
    print(
        f"contract windows/s (torch batched, {args.device}), {n / t_fast:.0f}, "
        f"librosa reference {n / t_ref:.0f}, {t_ref / t_fast:.2f}x"
    )
    print(f"torch vs reference mean |dB error|, {err:.5f}, limit 0.05, -")


if __name__ == "__main__":
    main()
