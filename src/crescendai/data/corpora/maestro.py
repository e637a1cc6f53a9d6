"""MAESTRO v3 (CC BY-NC-SA 4.0): ``maestro-v3.0.0.csv`` + WAV audio → records of its *train* split.

Layout: ``<root>/maestro-v3.0.0.csv`` with columns ``canonical_composer, canonical_title, split, year,
midi_filename, audio_filename, duration``; audio paths are relative to the root (44.1–48 kHz stereo
WAV). Only ``split == "train"`` rows are read (MAESTRO's own validation/test stay unseen, and ASAP
items cut from them are caught by dedup). MAESTRO names no performer: ``performer_id`` is empty and
each recording is its own performance.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path

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
from crescendai.data.manifest import ManifestRecord

LICENSE = "CC BY-NC-SA 4.0"
CSV_NAME = "maestro-v3.0.0.csv"
COLUMNS = ("canonical_composer", "canonical_title", "split", "year", "midi_filename", "audio_filename",
           "duration")


def read_csv_rows(path: Path, corpus: str, columns: Iterable[str]) -> list[dict[str, str]]:
    """A CSV as dicts; raises naming the file and the missing columns."""
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        missing = [c for c in columns if c not in (reader.fieldnames or [])]
        if missing:
            raise CorpusError(f"corpora.{corpus}: {path} lacks column(s) {missing}; "
                              f"found {reader.fieldnames}")
        return list(reader)


def read_maestro(
    root: str | os.PathLike[str], *, exclude: Iterable[str] = (), splits: tuple[str, ...] = ("train",)
) -> ReadResult:
    """MAESTRO v3 checkout → records (licence CC BY-NC-SA 4.0)."""
    root = require_dir(root, "maestro", f"{CSV_NAME} and the year folders of WAV files")
    rows = read_csv_rows(require_file(root / CSV_NAME, "maestro", f"{CSV_NAME} at the root"), "maestro",
                         COLUMNS)
    out = ReadResult()
    for row in rows:
        if row["split"] not in splits:
            continue
        audio = root / row["audio_filename"]
        if is_excluded(audio, root, exclude):
            out.exclude(rel(audio), "listed in corpora.exclude")
            continue
        duration, sr = audio_facts(audio, "maestro")
        piece = f"{row['canonical_composer']}: {row['canonical_title']}"
        out.records.append(ManifestRecord(
            path=rel(audio), sha1=sha1_file(audio), duration_sec=duration, sample_rate=sr,
            performer_id="", piece_id=piece, segment_id="", performance_id=f"maestro:{Path(row['audio_filename']).stem}",
            split="train", source="maestro", license=LICENSE, notes=f"MAESTRO {row['split']} {row['year']}",
            extra={"midi_path": rel(root / row["midi_filename"]), "year": row["year"],
                   "maestro_split": row["split"]},
        ))
    return out
