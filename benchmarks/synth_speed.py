"""Synthesiser speed: × real time on one core for a typical texture (target ≥ 100×).

Renders a 30 s melody-over-Alberti-bass performance with pedal (the default corpus's texture) on one
piano model, twice: ``cold`` includes filling the note cache, ``warm`` reuses it (the render stage
processes many items per model). Also times the full chain (piano + room channel). Prints
``name, value, peer/limit, ratio`` lines.

``uv run python benchmarks/synth_speed.py``
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from crescendai.synth.channels import apply_channel, sample_room  # noqa: E402
from crescendai.synth.material import make_piece  # noqa: E402
from crescendai.synth.mixer import render_performance  # noqa: E402
from crescendai.synth.notes import note_layers  # noqa: E402
from crescendai.synth.performance import Controls, perform  # noqa: E402
from crescendai.synth.pianos import piano_model  # noqa: E402

TARGET = 100.0


def main() -> None:
    piece = make_piece(np.random.default_rng(0), "Bench", "G", "major", "melody", "4/4", 16, 120.0)
    perf = perform(piece, Controls(pedal_amount=0.7), np.random.default_rng(1)).performance
    model = piano_model(0)
    note_layers.cache_clear()
    t0 = time.perf_counter()
    y = render_performance(perf, model)
    cold = time.perf_counter() - t0
    t0 = time.perf_counter()
    y = render_performance(perf, model)
    warm = time.perf_counter() - t0
    ch = sample_room(np.random.default_rng(2), 0.2, 1.2, -60.0)
    t0 = time.perf_counter()
    apply_channel(render_performance(perf, model), ch, 22050, 3)
    full = time.perf_counter() - t0
    dur = len(y) / 22050
    print(f"# {dur:.1f} s of audio, {len(perf.notes)} notes, 1 core")
    for name, sec in (("synth_x_realtime_cold_cache", cold), ("synth_x_realtime_warm_cache", warm),
                      ("synth_plus_room_x_realtime_warm", full)):
        x = dur / sec
        print(f"{name}, {x:.1f}, {TARGET:.0f}, {x / TARGET:.2f}")


if __name__ == "__main__":
    main()
