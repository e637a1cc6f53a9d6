"""MusicNet (CC BY 4.0): solo-piano recordings only.

Layout: ``<root>/musicnet_metadata.csv`` with columns ``id, composer, composition, movement, ensemble,
source, transcriber, catalog_name, seconds``; audio ``<root>/{train_data,test_data}/<id>.wav``
(44.1 kHz). Rows with ``ensemble != "Solo Piano"`` are skipped (not an exclusion: a filter by design).
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
    require_file,
)
from crescendai.data.corpora.maestro import read_csv_rows
from crescendai.data.manifest import ManifestRecord

LICENSE = "CC BY 4.0"
CSV_NAME = "musicnet_metadata.csv"
COLUMNS = ("id", "composer", "composition", "movement", "ensemble", "source", "transcriber",
           "catalog_name", "seconds")
AUDIO_DIRS = ("train_data", "test_data")


def read_musicnet(root: str | os.PathLike[str], *, exclude: Iterable[str] = ()) -> ReadResult:
    """MusicNet checkout → solo-piano records."""
    root = require_dir(root, "musicnet", f"{CSV_NAME} and {'/'.join(AUDIO_DIRS)}/<id>.wav")
    rows = read_csv_rows(require_file(root / CSV_NAME, "musicnet", f"{CSV_NAME} at the root"), "musicnet",
                         COLUMNS)
    out = ReadResult()
    for row in rows:
        if row["ensemble"].strip() != "Solo Piano":
            continue
        cands = [root / d / f"{row['id']}.wav" for d in AUDIO_DIRS]
        audio = next((p for p in cands if p.is_file()), None)
        if audio is None:
            if any(is_excluded(p, root, exclude) for p in cands):
                out.exclude(rel(cands[0]), "listed in corpora.exclude")
                continue
            raise CorpusError(f"corpora.musicnet: audio for id {row['id']} not found; expected one of "
                              f"{[str(p) for p in cands]}")
        if is_excluded(audio, root, exclude):
            out.exclude(rel(audio), "listed in corpora.exclude")
            continue
        duration, sr = audio_facts(audio, "musicnet")
        out.records.append(ManifestRecord(
            path=rel(audio), sha1=sha1_file(audio), duration_sec=duration, sample_rate=sr,
            performer_id="", piece_id=f"{row['composer']}: {row['composition']} {row['movement']}".strip(),
            segment_id="", performance_id=f"musicnet:{row['id']}", split="train", source="musicnet",
            license=LICENSE, notes=f"recording source: {row['source']}",
            extra={"musicnet_id": row["id"], "catalog_name": row["catalog_name"]},
        ))
    return out
