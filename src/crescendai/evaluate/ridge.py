"""The ridge peer baselines: ``StandardScaler → RidgeCV`` on hand-crafted features, same folds as the
network, so its metrics sit beside the network's in ``metrics/eval_<variant>.json``.

The peers, named for what they read (the metrics key prefix, ``<peer>_cv`` / ``<peer>_test``):

- :data:`AUDIO_RIDGE` reads the waveform only: the 30 features of each contract window
  (:mod:`crescendai.evaluate.audio_features`), mean and std per segment. The honest audio bar.
- :data:`MIDI_RIDGE` reads each segment's symbolic source: 17 MIDI performance features
  (:mod:`crescendai.core.midi_features`); present only when every item was rendered from MIDI.
- :data:`AUDIO_MIDI_PROXIES_RIDGE`: the audio features plus the window cache's time-local proxies,
  which the cache computes from the MIDI whenever an item has one — so it reads the score as well
  as the audio; present only when every item was rendered from MIDI.

Every peer is fitted by :func:`crescendai.core.ridge.ridge_cv_predict` (alpha by leave-one-out on the
training rows only), the head the frozen-embedding probe uses too.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from crescendai.core import columns
from crescendai.core.ridge import ridge_cv_predict

AUDIO_RIDGE = "audio_ridge"
MIDI_RIDGE = "midi_ridge"
AUDIO_MIDI_PROXIES_RIDGE = "audio_midi_proxies_ridge"
PEERS: dict[str, str] = {
    AUDIO_RIDGE: "ridge (audio)",
    MIDI_RIDGE: "ridge (MIDI)",
    AUDIO_MIDI_PROXIES_RIDGE: "ridge (audio + MIDI proxies)",
}
"""Every ridge peer: metrics key prefix → plot label."""


def ridge_baselines(
    features_dir: str | os.PathLike[str], items_oof: Sequence[str], items_test: Sequence[str]
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The ridge peers on the same folds: :data:`AUDIO_RIDGE` and, when every item was rendered from
    MIDI, :data:`MIDI_RIDGE` and :data:`AUDIO_MIDI_PROXIES_RIDGE` → (oof predictions
    [len(items_oof), 19], test predictions [len(items_test), 19]) in the given item orders."""
    from crescendai.core.midi_features import midi_feature_matrix
    from crescendai.data.window_cache import load_feature_set
    from crescendai.evaluate.audio_features import segment_features, window_features

    fs = load_feature_set(features_dir)
    ix = fs.index
    rows = np.flatnonzero(ix["item"].isin(set(items_oof) | set(items_test)).to_numpy())
    sub = ix.iloc[rows]
    items = sub["item"].to_numpy()
    wf = window_features(fs.windows[rows], sub["pad_fraction"].to_numpy(float))
    X_audio, order = segment_features(wf, items)
    first = sub.groupby("item", sort=False).head(1).set_index("item").loc[order]  # one row per segment
    inputs = {AUDIO_RIDGE: X_audio}
    midi = first["midi_path"].fillna("") if "midi_path" in first else None
    if midi is not None and (midi != "").all():
        inputs[MIDI_RIDGE] = midi_feature_matrix(list(midi))
        proxies = [c for c in columns.PROXIES if c in sub.columns]
        if proxies:
            wp = np.concatenate([wf, np.nan_to_num(sub[proxies].to_numpy(np.float32))], axis=1)
            inputs[AUDIO_MIDI_PROXIES_RIDGE] = segment_features(wp, items)[0]
    Y = first[list(columns.LABELS)].to_numpy(float)
    folds = first["fold"].fillna(-1).astype(int).to_numpy()
    is_test = np.isin(order, list(items_test))
    pos = {it: i for i, it in enumerate(order)}
    out = {}
    for name, X in inputs.items():
        oof, test = ridge_cv_predict(X, Y, folds, is_test)
        out[name] = (oof[[pos[i] for i in items_oof]], test[[pos[i] for i in items_test]])
    return out


def peer_metrics(features_dir: str | os.PathLike[str], n_boot: int = 1000, ci: float = 0.95,
                 seed: int = 0) -> dict[str, dict[str, object]]:
    """Every ridge peer the data allows, alone (no network needed), on the window cache's own folds:
    ``{"<peer>_cv": summary, "<peer>_test": summary}`` as in ``metrics/eval_<variant>.json``
    (:func:`crescendai.evaluate.metrics.summarize`)."""
    from crescendai.data.window_cache import load_feature_set
    from crescendai.evaluate.metrics import summarize

    seg = load_feature_set(features_dir).index.groupby("item", sort=True).head(1)
    seg = seg[seg[list(columns.LABELS)].notna().all(axis=1)]
    sets = {"cv": seg[seg["split"] != "test"], "test": seg[seg["split"] == "test"]}
    peers = ridge_baselines(features_dir, list(sets["cv"]["item"]), list(sets["test"]["item"]))
    out: dict[str, dict[str, object]] = {}
    for name, preds in peers.items():
        for (key, s), pred in zip(sets.items(), preds, strict=True):
            if len(s) >= 3:
                out[f"{name}_{key}"] = summarize(s[list(columns.LABELS)].to_numpy(float), pred,
                                                 s["performer_id"].to_numpy(), s["passage_id"].to_numpy(),
                                                 n_boot, ci, seed)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m crescendai.evaluate.ridge [FEATURES]``: the ridge peers alone, as a table."""
    import argparse

    ap = argparse.ArgumentParser(description="The ridge peers alone on a labelled window cache "
                                 "(its manifest folds and test set); prints one row per peer and set.")
    ap.add_argument("features", nargs="?", default="data/features/labelled")
    ap.add_argument("--n-bootstrap", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    print("| peer | set | segments | median r | 95 % CI (performers) | mean r | mean R² | within-passage acc. |")
    print("|---|---|---|---|---|---|---|---|")
    for key, m in peer_metrics(args.features, args.n_bootstrap, seed=args.seed).items():
        name, _, set_name = key.rpartition("_")
        lo, hi = m["median_r_ci_performer"]
        print(f"| {name} | {set_name} | {m['n_segments']} | {m['median_r']:.2f} | [{lo:.2f}, {hi:.2f}] | "
              f"{m['mean_r']:.2f} | {m['mean_r2']:.2f} | {m['mean_pairwise_acc']:.2f} |")


if __name__ == "__main__":
    main()
