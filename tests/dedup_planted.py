"""The planted duplicate set shared by tests/test_dedup.py and benchmarks: synthetic performances with
known duplicates. Uses the project's synthesiser (crescendai.synth) for piano models and channels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from crescendai.core.midi import Note, PedalEvent, Performance

SR = 22050


def piece(rng: np.random.Generator, n_notes: int, key: int) -> list[tuple[float, int, int]]:
    """A score: (beat, pitch, velocity) — a random diatonic melody over broken chords."""
    scale = np.array([0, 2, 4, 5, 7, 9, 11])
    out = []
    beat = 0.0
    for _ in range(n_notes):
        deg = int(rng.integers(0, 14))
        pitch = 60 + key + 12 * (deg // 7) + int(scale[deg % 7])
        out.append((beat, pitch, int(rng.integers(50, 100))))
        if rng.random() < 0.4:
            out.append((beat, pitch - 12 - int(scale[int(rng.integers(0, 7))]), int(rng.integers(40, 80))))
        beat += float(rng.choice([0.5, 0.5, 1.0, 0.25]))
    return out


def perform(score, rng: np.random.Generator, tempo_bpm: float, jitter_sec: float) -> Performance:
    """An expressive performance: tempo drift + onset jitter + velocity changes."""
    spb = 60.0 / tempo_bpm
    drift = np.cumsum(rng.normal(0, 0.01, len(score)))
    notes = []
    for (beat, pitch, vel), d in zip(score, drift, strict=True):
        t = 0.2 + beat * spb * (1 + 0.1 * np.tanh(d)) + rng.normal(0, jitter_sec)
        notes.append(Note(max(0.0, t), max(0.0, t) + 0.9 * spb, pitch,
                          int(np.clip(vel + rng.normal(0, 6), 1, 127))))
    notes.sort(key=lambda n: n.onset_sec)
    pedal = [PedalEvent(0.0, 0)] + [PedalEvent(0.2 + 4 * spb * k, 127 * (k % 2)) for k in range(1, 200)]
    return Performance(notes, [p for p in pedal if p.time_sec < notes[-1].offset_sec])


def render(perf: Performance, piano: int, room_seed: int | None = None) -> np.ndarray:
    from crescendai.synth.channels import apply_channel, sample_room
    from crescendai.synth.mixer import render_performance
    from crescendai.synth.pianos import piano_model

    y = render_performance(perf, piano_model(piano), SR, touch=0.5)
    if room_seed is not None:
        y = apply_channel(y, sample_room(np.random.default_rng(room_seed), 0.3, 1.0, -60.0), SR, room_seed)
    y = 0.8 * y / (np.abs(y).max() + 1e-9)
    return y.astype(np.float32)


def build(folder: Path, seed: int = 0, long_sec: float = 180.0) -> tuple[list[Path], set[tuple[str, str]], dict]:
    """Write the planted set to ``folder``; return (files, true duplicate pairs, kinds by pair).

    Planted: an exact byte copy; a 20 s excerpt of a ``long_sec`` item at a random offset; a
    re-render of a performance with another piano model and room; a 4-bar segment contained in the
    8-bar segment of the same performance. Negatives: unrelated pieces, and the same piece played by a
    different performer (other timing) — neither may match.
    """
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    files: dict[str, np.ndarray] = {}
    # 1. long item + 20 s excerpt at a random offset
    long_score = piece(rng, int(long_sec * 132 / 60 / 0.5), key=0)
    long_perf = perform(long_score, rng, 132, 0.01)
    y_long = render(long_perf, 0, room_seed=1)[: int(long_sec * SR)]
    files["long.flac"] = y_long
    off = float(rng.uniform(10, long_sec - 30))
    files["excerpt.flac"] = y_long[int(off * SR) : int((off + 20) * SR)]
    # 2. a performance, its re-render on another piano and room, and another performer of the piece
    s2 = piece(rng, 40, key=2)
    p2 = perform(s2, rng, 100, 0.01)
    files["perf.flac"] = render(p2, 1, room_seed=2)
    files["perf_rerender.flac"] = render(p2, 4, room_seed=3)
    files["perf_other_performer.flac"] = render(perform(s2, np.random.default_rng(seed + 7), 92, 0.03), 1,
                                                room_seed=2)
    # 3. an 8-bar segment and the 4-bar segment inside it (same take)
    s3 = piece(rng, 48, key=5)
    y8 = render(perform(s3, rng, 120, 0.01), 2, room_seed=4)
    files["seg_8bars.flac"] = y8
    files["seg_4bars.flac"] = y8[int(4.2 * SR) : int(12.2 * SR)]
    # 4. unrelated pieces
    for k in range(4):
        files[f"unrelated_{k}.flac"] = render(perform(piece(rng, 36, key=k + 7), rng, 110 + 5 * k, 0.01),
                                              k % 7, room_seed=10 + k)
    paths = []
    for name, y in files.items():
        p = folder / name
        sf.write(p, y, SR, subtype="PCM_16")
        paths.append(p)
    copy = folder / "perf_copy.flac"
    copy.write_bytes((folder / "perf.flac").read_bytes())
    paths.append(copy)
    truth = {
        ("long.flac", "excerpt.flac"): "contained",
        ("perf.flac", "perf_copy.flac"): "exact",
        ("perf.flac", "perf_rerender.flac"): "rerender",
        ("perf_copy.flac", "perf_rerender.flac"): "rerender",
        ("seg_8bars.flac", "seg_4bars.flac"): "contained",
    }
    pairs = {tuple(sorted(k)) for k in truth}
    return paths, pairs, {"excerpt_offset_sec": off, "kinds": {tuple(sorted(k)): v for k, v in truth.items()}}
