"""Small rendered fixtures for the tutor tests: a MIDI score with bar lines and its audio.

Audio is rendered with a tiny additive piano (decaying harmonics), so the tests do not depend on
``crescendai.synth``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SR = 22050


def piece(n_bars: int = 8, beats: int = 3, bpm: float = 100.0, seed: int = 0,
          timing_jitter: float = 0.0, fault_bars: tuple[int, int] | None = None,
          fault_jitter: float = 0.12) -> np.ndarray:
    """Notes (onset s, offset s, pitch, velocity) [n, 4]: a melody on beats + a bass on downbeats.

    ``fault_bars = (a, b)`` (1-based inclusive) adds ``fault_jitter`` s of random onset error there.
    """
    rng = np.random.default_rng(seed)  # the music
    jrng = np.random.default_rng(seed + 1000)  # the performance's timing errors
    beat = 60.0 / bpm
    scale = np.array([60, 62, 64, 65, 67, 69, 71, 72])
    notes = []
    pitch_idx = 0
    for bar in range(n_bars):
        root = [48, 53, 55, 50][bar % 4]
        for b in range(beats):
            t = (bar * beats + b) * beat
            jit = timing_jitter
            if fault_bars and fault_bars[0] <= bar + 1 <= fault_bars[1]:
                jit = fault_jitter
            t_on = max(0.0, t + jrng.normal(0, jit)) if jit else t
            pitch_idx = int(np.clip(pitch_idx + rng.integers(-2, 3), 0, len(scale) - 1))
            notes.append([t_on, t_on + 0.9 * beat, scale[pitch_idx], 80])
            if b == 0:
                notes.append([t, t + beats * beat * 0.95, root, 70])
                notes.append([t, t + beats * beat * 0.95, root + 7, 60])
    return np.array(sorted(notes), float)


def write_score(path: Path, notes: np.ndarray, beats: int = 3, bpm: float = 100.0) -> Path:
    """A type-0 MIDI score with a time signature ``beats``/4 and tempo ``bpm``."""
    import mido

    tpb = 480
    mf = mido.MidiFile(ticks_per_beat=tpb)
    tr = mido.MidiTrack()
    mf.tracks.append(tr)
    tr.append(mido.MetaMessage("time_signature", numerator=beats, denominator=4, time=0))
    tr.append(mido.MetaMessage("set_tempo", tempo=int(60e6 / bpm), time=0))
    ev = []
    for on, off, p, v in notes:
        ev.append((on, 1, int(p), int(v)))
        ev.append((off, 0, int(p), 0))
    ev.sort()
    last = 0
    for t, kind, p, v in ev:
        tick = int(round(t * bpm / 60 * tpb))
        tr.append(mido.Message("note_on" if kind else "note_off", note=p, velocity=v, time=tick - last))
        last = tick
    mf.save(str(path))
    return path


def render(notes: np.ndarray, sr: int = SR, tail: float = 1.0, pedal: tuple[float, float] | None = None
           ) -> np.ndarray:
    """Additive piano: 6 decaying harmonics per note. ``pedal = (t0, t1)`` holds every note
    sounding in that span until ``t1`` (a blurred-pedal fault)."""
    dur = float(notes[:, 1].max()) + tail
    y = np.zeros(int(dur * sr) + 1, np.float32)
    for on, off, p, v in notes:
        end = off
        if pedal and pedal[0] <= on < pedal[1]:
            end = max(off, pedal[1])
        n = int((end - on + 0.15) * sr)
        t = np.arange(n) / sr
        f0 = 440.0 * 2 ** ((p - 69) / 12)
        env = np.exp(-t * (1.5 + f0 / 400)) * np.minimum(1, t / 0.004)
        rel = np.clip(1 - (t - (end - on)) / 0.15, 0, 1)
        tone = sum(np.sin(2 * np.pi * f0 * k * t) / k ** 1.5 for k in range(1, 7) if f0 * k < sr / 2)
        i0 = int(on * sr)
        seg = (v / 127) * 0.2 * env * rel * tone
        y[i0 : i0 + n] += seg[: len(y) - i0].astype(np.float32)
    return y / max(1e-6, float(np.abs(y).max())) * 0.8


def write_audio(path: Path, y: np.ndarray, sr: int = SR) -> Path:
    import soundfile as sf

    sf.write(str(path), y, sr)
    return path


def tiny_model(seed: int = 0):
    """A randomly initialised ``crescendai.model.Model`` (dim 32, depth 1): fast, meaningless scores."""
    import torch

    from crescendai.core.config import ModelParams
    from crescendai.model import HeadsConfig, build_model

    torch.manual_seed(seed)
    return build_model(ModelParams(dim=32, depth=1, heads=2), HeadsConfig(dropout=0.2)).eval()


def save_tiny_bundle(folder: Path, seed: int = 0, calibration: bool = True) -> Path:
    """A tutor bundle folder (model.pt + config.json [+ calibration.json]) with a tiny random model."""
    from crescendai.evaluate.calibration import Calibrator
    from crescendai.model import save_model

    folder.mkdir(parents=True, exist_ok=True)
    save_model(tiny_model(seed), folder / "model.pt")
    if calibration:
        Calibrator.identity().save(folder / "calibration.json")
    return folder


def write_window_cache(folder: Path, waveforms: list[np.ndarray], folds: list[int | None]) -> Path:
    """A labelled window cache (``windows.npy``, ``index.csv``, ``meta.json``) of ``waveforms``
    (22 050 Hz), as the preprocess stage writes it: recording ``i`` is in CV fold ``folds[i]``, or
    in the test split when that is None; every window has labels (all 0.5)."""
    import pandas as pd

    from crescendai.core import columns
    from crescendai.core.audio import windows_from_waveform

    folder.mkdir(parents=True, exist_ok=True)
    dbs, rows = [], []
    for i, (y, fold) in enumerate(zip(waveforms, folds, strict=True)):
        w = windows_from_waveform(np.asarray(y, np.float32))
        dbs.append(w.db.astype(np.float16))
        for k in range(len(w)):
            rows.append({"item": f"r{i:02d}", "item_idx": i, "window": k, "start_sec": w.start_sec[k],
                         "pad_fraction": float(w.pad_fraction[k]), "split": "test" if fold is None else "train",
                         "fold": fold, "performer_id": str(i), "augmented": False, "source": "synthetic",
                         **{c: 0.5 for c in columns.LABELS}})
    np.save(folder / "windows.npy", np.concatenate(dbs))
    frame = pd.DataFrame(rows)
    frame["fold"] = frame["fold"].astype("Int64")
    frame.to_csv(folder / "index.csv", index=False)
    (folder / "meta.json").write_text('{"hop_sec": 1.0}')
    return folder


def domain_renders(n: int = 12, seed: int = 100) -> list[np.ndarray]:
    """``n`` additive-piano renders of different 8-bar pieces, tempi and metres (the "training
    recordings" of a domain description)."""
    out = []
    for i in range(n):
        beats, bpm = (3, 4, 2)[i % 3], 80.0 + 8 * (i % 5)
        out.append(render(piece(8, beats, bpm, seed=seed + i, timing_jitter=0.01)))
    return out


def save_onnx_bundle(folder: Path, seed: int = 0) -> Path:
    """A tutor bundle as the calibrate stage writes it for a linear head: a tiny random model whose
    regression head is one Linear (the ridge probe's shape), its ONNX runtime
    (``crescendai.evaluate.calibration.export_runtime``) and an identity calibration."""
    import torch

    from crescendai.core.config import ModelParams
    from crescendai.core.files import read_json, write_json
    from crescendai.evaluate.calibration import Calibrator, export_runtime
    from crescendai.model import HeadsConfig, build_model, save_model

    torch.manual_seed(seed)
    model = build_model(ModelParams(dim=32, depth=1, heads=2),
                        HeadsConfig(hidden=0, bounded=False, norm=False, dropout=0.2)).eval()
    with torch.no_grad():  # scores near the middle rating, as a fitted probe's (the head is unbounded)
        model.heads["regression"].net[-1].weight.mul_(0.05)
        model.heads["regression"].net[-1].bias.fill_(4 / 7)
    folder.mkdir(parents=True, exist_ok=True)
    save_model(model, folder / "model.pt")
    Calibrator.identity().save(folder / "calibration.json")
    config = read_json(folder / "config.json")
    config["onnx"] = export_runtime(model, config, folder, folder)
    write_json(folder / "config.json", config)
    return folder
