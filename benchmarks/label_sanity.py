"""Are the synthetic labels learnable from audio? Simple features + ridge, held-out performers.

Features are computed from the *contract* windows (``crescendai.audio``: mel dB with ref = max per
3 s window), so absolute level is gone exactly as for the model: band-energy profile and spectral
centroid (brightness, touch, loudness through timbre), frame-energy contrast and onset strength
(dynamics, articulation, pedal), onset rate and inter-onset regularity (pace, timing). Ridge
regression (sklearn, standardised features) with leave-one-performer-out folds; prints Pearson r per
dimension as ``name, value, peer/limit, ratio`` lines (peer = the limit set by rater noise ≈ 1).

Run after ``dvc repro render``:  ``uv run python benchmarks/label_sanity.py``
"""

from __future__ import annotations

import sys
from pathlib import Path

import librosa
import numpy as np
from sklearn.linear_model import RidgeCV
from sklearn.model_selection import LeaveOneGroupOut
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from crescendai.audio import load_audio, windows_from_waveform
from crescendai.dims import KEYS
from crescendai.io_utils import read_jsonl
from crescendai.synth.labels import DIRECT

SR = 22050


def features(y: np.ndarray) -> np.ndarray:
    """1-D feature vector of one recording (level-invariant)."""
    w = windows_from_waveform(y, hop_sec=1.0)
    db = w.db[~w.pad_mask.all(axis=1)]  # [N, 128 time, 128 mel]
    bands = db.reshape(len(db), 128, 16, 8).mean(axis=(1, 3))  # [N, 16]
    frame = db.mean(axis=2)  # [N, 128] frame energy (dB re window max)
    hi = db[:, :, 80:].mean(axis=2) - db[:, :, :40].mean(axis=2)  # [N, 128] hi-lo contrast
    mel_idx = np.arange(128)
    p = 10 ** (db / 10)
    centroid = (p * mel_idx).sum(2) / (p.sum(2) + 1e-9)
    flux = np.maximum(np.diff(db, axis=1), 0).mean(axis=2)  # [N, 127]
    onset_env = librosa.onset.onset_strength(y=y, sr=SR)
    onsets = librosa.onset.onset_detect(onset_envelope=onset_env, sr=SR, units="time")
    ioi = np.diff(onsets) if len(onsets) > 2 else np.array([0.5, 0.5])
    dur = len(y) / SR
    reg = np.std(np.diff(np.log(ioi + 1e-3))) if len(ioi) > 2 else 0.0
    f = [
        *bands.mean(0), *bands.std(0),
        frame.std(1).mean(), (np.percentile(frame, 90, 1) - np.percentile(frame, 10, 1)).mean(),
        hi.mean(), hi.std(1).mean(), centroid.mean(), centroid.std(1).mean(),
        flux.mean(), np.percentile(flux, 95, 1).mean(), (frame < -45).mean(),
        len(onsets) / dur, np.median(ioi), reg, onset_env.std() / (onset_env.mean() + 1e-9),
    ]
    return np.asarray(f, dtype=np.float64)


def main() -> int:
    gen = Path("data/generated/labelled/meta.jsonl")
    audio = Path("data/audio/synthetic")
    if not gen.is_file() or not audio.is_dir():
        print("run `uv run dvc repro render` first", file=sys.stderr)
        return 2
    meta = read_jsonl(gen)
    X = np.stack([features(load_audio(audio / f"{m['name']}.flac")) for m in meta])
    Y = np.array([m["labels"] for m in meta])
    groups = np.array([m["performer_id"] for m in meta])
    pred = np.zeros_like(Y)
    for tr, te in LeaveOneGroupOut().split(X, Y, groups):
        model = make_pipeline(StandardScaler(), RidgeCV(alphas=np.logspace(-2, 3, 12)))
        model.fit(X[tr], Y[tr])
        pred[te] = model.predict(X[te])
    rs = [float(np.corrcoef(pred[:, j], Y[:, j])[0, 1]) for j in range(19)]
    print(f"# {len(meta)} segments, {len(set(groups))} performers, leave-one-performer-out, "
          f"{X.shape[1]} features")
    for j, key in enumerate(KEYS):
        kind = "direct" if j in DIRECT else "modelled"
        print(f"pearson_r_{key} ({kind}), {rs[j]:.3f}, 1.0, {rs[j]:.3f}")
    d = np.mean([rs[j] for j in DIRECT])
    print(f"pearson_r_mean_direct, {d:.3f}, 1.0, {d:.3f}")
    print(f"pearson_r_mean_all, {np.mean(rs):.3f}, 1.0, {np.mean(rs):.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
