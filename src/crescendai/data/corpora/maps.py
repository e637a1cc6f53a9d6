"""MAPS (research licence, non-commercial): ``<instrument>/{ISOL,RAND,UCHO,MUS}/*.wav`` with ``.mid``/``.txt``.

``ENSTDkAm``/``ENSTDkCl`` are a real Disklavier (``extra.real_piano``), the other instruments are
software pianos. ``MUS`` pieces (``MAPS_MUS-<piece>_<instrument>.wav``) repeat across instruments from
one MIDI: they share ``performance_id = maps:MUS:<piece>`` so splits keep them together and dedup
reports them as re-renders. ``performer_id`` is the instrument; ``extra.piano`` its name.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

from crescendai.core.files import sha1_file
from crescendai.data.corpora.common import (
    CorpusError,
    ReadResult,
    audio_facts,
    is_excluded,
    rel,
    require_dir,
)
from crescendai.data.manifest import ManifestRecord

LICENSE = "MAPS licence (research, non-commercial)"
SUBSETS = ("ISOL", "RAND", "UCHO", "MUS")
REAL = ("ENSTDkAm", "ENSTDkCl")


def read_maps(root: str | os.PathLike[str], *, exclude: Iterable[str] = ()) -> ReadResult:
    """MAPS root → records (every WAV of every instrument and subset)."""
    root = require_dir(root, "maps", "<instrument>/{ISOL,RAND,UCHO,MUS}/*.wav")
    out = ReadResult()
    instruments = sorted(p for p in root.iterdir() if p.is_dir() and any((p / s).is_dir() for s in SUBSETS))
    if not instruments:
        raise CorpusError(f"corpora.maps: no <instrument>/{{{','.join(SUBSETS)}}} folders under {root}")
    for inst in instruments:
        for subset in SUBSETS:
            for wav in sorted((inst / subset).rglob("*.wav")) if (inst / subset).is_dir() else []:
                if is_excluded(wav, root, exclude):
                    out.exclude(rel(wav), "listed in corpora.exclude")
                    continue
                duration, sr = audio_facts(wav, "maps")
                stem = wav.stem
                core = stem[len("MAPS_"):] if stem.startswith("MAPS_") else stem
                if core.endswith("_" + inst.name):
                    core = core[: -len(inst.name) - 1]
                piece = core.split("-", 1)[1] if subset == "MUS" and "-" in core else core
                perf = f"maps:MUS:{piece}" if subset == "MUS" else f"maps:{inst.name}:{stem}"
                extra = {"piano": inst.name, "real_piano": inst.name in REAL, "subset": subset}
                if wav.with_suffix(".mid").is_file():
                    extra["midi_path"] = rel(wav.with_suffix(".mid"))
                out.records.append(ManifestRecord(
                    path=rel(wav), sha1=sha1_file(wav), duration_sec=duration, sample_rate=sr,
                    performer_id=inst.name, piece_id=piece, segment_id="", performance_id=perf,
                    split="train", source="maps", license=LICENSE, notes=f"MAPS {subset}", extra=extra,
                ))
    return out
