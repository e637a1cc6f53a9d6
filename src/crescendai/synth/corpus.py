"""The embedded corpora as pure functions of a seed: labelled segments, SSL pieces, phone set.

- **labelled**: ``n_pieces`` pieces of ``bars_per_segment`` bars, each played once by each of
  ``n_performers`` performers (players ``1..n``) → segment labels and local labels.
- **ssl**: ``n_ssl_pieces`` different, longer pieces (≈ ``ssl_duration_sec``), each played by one of
  a separate pool of performers (players ``101…``); no piece or performer shared with the labelled set.
- **phone**: ``n_phone`` segments of yet other pieces and performers (players ``201…``), labelled,
  meant to be rendered through the phone channel (out-of-distribution evaluation).

Names follow PercePiano: ``<work>_<N>bars_<PLAYER>_<SEGMENT>`` with works
``Synth_<key>_<mode>_<texture>_<NN>``, ``SynthSSL_…``, ``SynthPhone_…``. The piano model of each
item is ``crc32(f"{seed}:{name}") % 7`` (deterministic from seed + name).
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from crescendai.core.config import GenerateParams
from crescendai.core.labelfile import MEAN_FILE, STD_FILE, format_name, write_labels
from crescendai.core.midi import Performance, write_midi
from crescendai.synth.labels import DIRECT, add_rater_noise, local_labels, segment_labels
from crescendai.synth.material import KEY_NAMES, METERS, MODES, TEXTURES, make_piece
from crescendai.synth.mixer import TAIL_SEC
from crescendai.synth.performance import Performer, perform, sample_controls, sample_performer
from crescendai.synth.pianos import N_BUILTIN, piano_model

LABELLED, SSL, PHONE = "labelled", "ssl", "phone"
_TAG = {LABELLED: 1, SSL: 2, PHONE: 3}
_PREFIX = {LABELLED: "Synth", SSL: "SynthSSL", PHONE: "SynthPhone"}
_PLAYER0 = {LABELLED: 1, SSL: 101, PHONE: 201}


@dataclass(frozen=True)
class CorpusItem:
    """One generated performance: its events, its ``meta.jsonl`` record and (if labelled) labels."""

    set: str
    name: str
    performance: Performance
    meta: dict[str, Any]
    labels: np.ndarray | None


def piano_for(seed: int, name: str, n_pianos: int = N_BUILTIN) -> int:
    """The piano model index of item ``name`` (deterministic from seed and name)."""
    return zlib.crc32(f"{seed}:{name}".encode()) % n_pianos


def _pieces(seed: int, kind: str, n: int, n_bars_fn) -> list:
    out = []
    for i in range(n):
        rng = np.random.default_rng([seed, _TAG[kind], 0, i])
        key = KEY_NAMES[int(rng.integers(12))]
        mode = MODES[int(rng.integers(2))]
        texture = TEXTURES[(i + int(rng.integers(4))) % 4 if kind != LABELLED else i % 4]
        meter = list(METERS)[int(rng.integers(4))]
        bar_q = METERS[meter][0] * 4.0 / METERS[meter][1]
        bar_sec = float(rng.uniform(1.6, 2.5))
        tempo = 60.0 * bar_q / bar_sec
        work = f"{_PREFIX[kind]}_{key}_{mode}_{texture}_{i + 1:02d}"
        out.append(make_piece(rng, work, key, mode, texture, meter, n_bars_fn(bar_sec), tempo))
    return out


def _performers(seed: int, kind: str, n: int) -> list[Performer]:
    return [sample_performer(np.random.default_rng([seed, _TAG[kind], 1, j]), str(_PLAYER0[kind] + j))
            for j in range(n)]


def _item(seed: int, kind: str, piece, performer: Performer, segment: int, spec: GenerateParams,
          pianist_index: int) -> CorpusItem:
    name = format_name(piece.work, piece.n_bars, performer.performer_id, segment)
    rng = np.random.default_rng([seed, _TAG[kind], 2, zlib.crc32(name.encode())])
    controls = sample_controls(rng, performer)
    r = perform(piece, controls, rng)
    piano = piano_for(seed, name)
    model = piano_model(piano)
    duration = float(r.performance.end_sec + TAIL_SEC)
    labels = local = None
    if kind != SSL:
        labels = add_rater_noise(segment_labels(r, controls, piece, model), rng, spec.rater_noise)
        local = add_rater_noise(local_labels(r, controls, piece, model, spec.local_hop_sec, duration), rng,
                                spec.rater_noise)
    meta = {
        "name": name,
        "performer_id": performer.performer_id,
        "piece_id": piece.work,
        "segment_id": segment,
        "piano": piano,
        "key": piece.key,
        "mode": piece.mode,
        "texture": piece.texture,
        "meter": piece.meter,
        "tempo_bpm": round(r.tempo_bpm, 3),
        "duration_sec": round(duration, 4),
        "bar_times": np.round(r.bar_times, 4).tolist(),
        "beat_times": np.round(r.beat_times, 4).tolist(),
        "harmony_times": np.round(r.harmony_times, 4).tolist(),
        "local_hop_sec": spec.local_hop_sec,
        "local_labels": None if local is None else np.round(local, 5).tolist(),
        "labels": None if labels is None else np.round(labels, 5).tolist(),
        "pianist_index": pianist_index,
        "channel": "phone" if kind == PHONE else "room",
        "set": kind,
        "controls": controls.to_dict(),
    }
    return CorpusItem(kind, name, r.performance, meta, labels)


def generate_corpus(seed: int, spec: GenerateParams, kind: str) -> list[CorpusItem]:
    """All items of one set (``"labelled"``, ``"ssl"`` or ``"phone"``), in a fixed order."""
    if kind == LABELLED:
        pieces = _pieces(seed, kind, spec.n_pieces, lambda _: spec.bars_per_segment)
        players = _performers(seed, kind, spec.n_performers)
        return [_item(seed, kind, p, pl, 1, spec, j) for p in pieces for j, pl in enumerate(players)]
    if kind == SSL:
        pieces = _pieces(seed, kind, spec.n_ssl_pieces,
                         lambda bar_sec: max(4, int(round(spec.ssl_duration_sec / bar_sec / 4)) * 4))
        players = _performers(seed, kind, spec.n_ssl_performers)
        return [_item(seed, kind, p, players[i % len(players)], 1, spec, i % len(players))
                for i, p in enumerate(pieces)]
    if kind == PHONE:
        n_players = min(4, max(1, spec.n_phone))
        n_pieces = int(np.ceil(spec.n_phone / n_players))
        pieces = _pieces(seed, kind, n_pieces, lambda _: spec.bars_per_segment)
        players = _performers(seed, kind, n_players)
        items = [_item(seed, kind, p, pl, 1, spec, j) for p in pieces for j, pl in enumerate(players)]
        return items[: spec.n_phone]
    raise ValueError(f"unknown corpus kind {kind!r}; expected one of {LABELLED}, {SSL}, {PHONE}")


def write_corpus(root: str | Path, items: list[CorpusItem], label_std: float = 0.06) -> None:
    """Write a set in PercePiano's layout (see docs/PIPELINE.md).

    ``labelled``: ``root/virtuoso/data/all_2rounds/<name>.mid``, ``root/labels/<mean and std files>``,
    ``root/meta.jsonl``; other sets: ``root/<name>.mid`` and ``root/meta.jsonl``.
    """
    from crescendai.core.files import write_jsonl

    root = Path(root)
    labelled = bool(items) and items[0].set == LABELLED
    mid_dir = root / "virtuoso" / "data" / "all_2rounds" if labelled else root
    mid_dir.mkdir(parents=True, exist_ok=True)
    for it in items:
        write_midi(mid_dir / f"{it.name}.mid", it.performance)
    if labelled:
        means = {it.name: it.labels for it in items}
        idx = {it.name: it.meta["pianist_index"] for it in items}
        write_labels(root / "labels" / MEAN_FILE, means, idx)
        write_labels(root / "labels" / STD_FILE, {n: [label_std] * 19 for n in means}, idx)
    write_jsonl(root / "meta.jsonl", [it.meta for it in items])


__all__ = ["CorpusItem", "DIRECT", "generate_corpus", "piano_for", "write_corpus"]
