"""Are the synthetic labels learnable from audio? Simple features + ridge, held-out performers.

Features are computed from the *contract* windows (``crescendai.core.audio``: mel dB with ref = max per
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

from crescendai.core.audio import load_audio, windows_from_waveform
from crescendai.core.dims import KEYS
from crescendai.core.files import read_jsonl
from crescendai.synth.labels import DIRECT

SR = 22050


def _window_features(db: np.ndarray) -> np.ndarray:
    """Level-invariant features of one contract window ``db`` [128 time, 128 mel] (dB re max)."""
    p = 10 ** (db / 10)
    spec = 10 * np.log10(p.mean(0) + 1e-10)  # [128] long-term spectrum of the window
    spec = spec - spec.max()
    peak = int(np.argmax(spec[4:])) + 4
    above = np.arange(peak, 128)
    slope = np.polyfit(above, spec[peak:], 1)[0] if len(above) > 4 else 0.0  # tilt above the peak
    frame = 10 * np.log10(p.mean(1) + 1e-10)  # [128] frame energy
    hi = 10 * np.log10(p[:, 80:].mean(1) + 1e-10)
    mid = 10 * np.log10(p[:, 30:60].mean(1) + 1e-10)
    flux = np.maximum(np.diff(db, axis=0), 0).mean(1)  # [127]
    thr = np.percentile(flux, 80)
    on = [t for t in range(1, 122) if flux[t - 1] >= thr and flux[t - 1] >= flux[max(0, t - 2):t + 1].max()]
    if on:
        on_a = np.asarray(on)
        attack_hi = float(np.mean(hi[on_a] - hi[on_a + 4]))  # how fast the top band decays after onsets
        attack_mid = float(np.mean(mid[on_a] - mid[on_a + 4]))
        on_spread = float(np.std(frame[on_a]))
    else:
        attack_hi = attack_mid = on_spread = 0.0
    runmax = np.array([frame[max(0, t - 8):t + 1].max() for t in range(128)])
    drop = frame - runmax
    dens = (db > db.max(1, keepdims=True) - 30).mean(1)
    low = p[:, :90]  # fundamentals and low partials: which register carries the loud frames?
    cen = (low * np.arange(90)).sum(1) / (low.sum(1) + 1e-12)
    cc = float(np.corrcoef(frame, cen)[0, 1]) if frame.std() > 1e-6 and cen.std() > 1e-6 else 0.0
    lin = db[:, :90] + 80.0
    reg_shift = float((low.sum(0) @ np.arange(90)) / (low.sum() + 1e-12)
                      - (lin.sum(0) @ np.arange(90)) / (lin.sum() + 1e-12))
    return np.array([cc, reg_shift,
        slope, spec[96:].mean(), spec[64:96].mean(), spec[8:30].mean() - spec[35:60].mean(),
        attack_hi, attack_mid, attack_hi - attack_mid, on_spread,
        (drop < -15).mean(), (drop < -25).mean(), np.median(drop), dens.mean(), dens.std(),
        np.polyfit(np.arange(128), frame, 1)[0],
    ])


def features(y: np.ndarray) -> np.ndarray:
    """1-D feature vector of one recording (level-invariant: every window is dB re its own max)."""
    w = windows_from_waveform(y, hop_sec=1.0)
    db = w.db[~w.pad_mask.all(axis=1)].astype(np.float64)  # [N, 128 time, 128 mel]
    bands = db.reshape(len(db), 128, 16, 8).mean(axis=(1, 3))  # [N, 16]
    frame = db.mean(axis=2)  # [N, 128] frame energy (dB re window max)
    hi = db[:, :, 80:].mean(axis=2) - db[:, :, :40].mean(axis=2)  # [N, 128] hi-lo contrast
    mel_idx = np.arange(128)
    p = 10 ** (db / 10)
    centroid = (p * mel_idx).sum(2) / (p.sum(2) + 1e-9)
    flux = np.maximum(np.diff(db, axis=1), 0).mean(axis=2)  # [N, 127]
    wf = np.stack([_window_features(d) for d in db])  # [N, 16]
    onset_env = librosa.onset.onset_strength(y=y, sr=SR)
    onsets = librosa.onset.onset_detect(onset_envelope=onset_env, sr=SR, units="time")
    ioi = np.diff(onsets) if len(onsets) > 2 else np.array([0.5, 0.5])
    dur = len(y) / SR
    reg = np.std(np.diff(np.log(ioi + 1e-3))) if len(ioi) > 2 else 0.0
    lr = np.log2((ioi[1:] + 1e-3) / (ioi[:-1] + 1e-3)) if len(ioi) > 2 else np.zeros(1)
    near = lr[np.abs(lr) < 0.6]  # consecutive intervals notated alike: their ratio spread is jitter
    jit = float(np.std(near)) if len(near) > 2 else 0.0
    f = [
        *bands.mean(0), *bands.std(0),
        frame.std(1).mean(), (np.percentile(frame, 90, 1) - np.percentile(frame, 10, 1)).mean(),
        hi.mean(), hi.std(1).mean(), centroid.mean(), centroid.std(1).mean(),
        flux.mean(), np.percentile(flux, 95, 1).mean(), (frame < -45).mean(),
        len(onsets) / dur, np.median(ioi), reg, onset_env.std() / (onset_env.mean() + 1e-9),
        *wf.mean(0), *wf.std(0), jit, np.mean(np.abs(near)) if len(near) else 0.0,
    ]
    return np.asarray(f, dtype=np.float64)


def main(argv: list[str] | None = None) -> int:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--meta", default="data/generated/labelled/meta.jsonl", help="labelled meta.jsonl")
    ap.add_argument("--audio", default="data/audio/synthetic", help="folder of <name>.flac")
    a = ap.parse_args(argv)
    gen, audio = Path(a.meta), Path(a.audio)
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
