"""PhonePilot: any folder of phone/laptop recordings — evaluation only (split "ood", never validation).

Layout: ``<root>/**/*.{wav,flac,ogg,mp3,m4a}``; an optional ``<root>/metadata.csv`` with columns
``file`` (path relative to the root), ``performer_id``, ``piece_id`` and optionally ``device``, ``notes``
fills the ids. The licence is that of the recordings' owners (``"private recordings"``).
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable

from crescendai.core.files import sha1_file
from crescendai.data.corpora.common import (
    AUDIO_EXTENSIONS,
    CorpusError,
    ReadResult,
    audio_facts,
    is_excluded,
    rel,
    require_dir,
)
from crescendai.data.manifest import ManifestRecord

LICENSE = "private recordings (evaluation only)"


def read_phonepilot(root: str | os.PathLike[str], *, exclude: Iterable[str] = ()) -> ReadResult:
    """A folder of recordings → ``ood`` records."""
    root = require_dir(root, "phonepilot", "a folder of audio recordings (wav/flac/ogg/mp3/m4a)")
    meta: dict[str, dict[str, str]] = {}
    if (root / "metadata.csv").is_file():
        with open(root / "metadata.csv", newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if "file" not in (reader.fieldnames or []):
                raise CorpusError(f"corpora.phonepilot: {root / 'metadata.csv'} needs a 'file' column")
            meta = {r["file"]: r for r in reader}
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)
    if not files:
        raise CorpusError(f"corpora.phonepilot: no audio files under {root}")
    out = ReadResult()
    for f in files:
        if is_excluded(f, root, exclude):
            out.exclude(rel(f), "listed in corpora.exclude")
            continue
        duration, sr = audio_facts(f, "phonepilot")
        m = meta.get(f.relative_to(root).as_posix(), {})
        out.records.append(ManifestRecord(
            path=rel(f), sha1=sha1_file(f), duration_sec=duration, sample_rate=sr,
            performer_id=m.get("performer_id", ""), piece_id=m.get("piece_id", ""), segment_id="",
            performance_id=f"phonepilot:{f.relative_to(root).as_posix()}", split="ood", source="phonepilot",
            license=LICENSE, notes=m.get("notes", ""), extra={"device": m["device"]} if m.get("device") else {},
        ))
    return out
