"""CCMusic pianos (CC BY-NC-ND 4.0, auxiliary only): piano brand/model classes.

Layout read here: the dataset's audio export, one folder per class, ``<root>/<class>/*.{wav,flac,mp3}``,
class names among :data:`CLASSES` (the 8 upstream labels). The class index goes to ``extra.piano``
and ``extra.piano_class`` (a timbre-class target); the licence forbids derivatives being distributed,
so the items are for auxiliary (SSL/timbre) use only and never redistributed.
"""

from __future__ import annotations

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

LICENSE = "CC BY-NC-ND 4.0 (auxiliary only)"
CLASSES: tuple[str, ...] = ("PearlRiver", "YoungChang", "Steinway-T", "Hsinghai", "Kawai", "Steinway",
                            "Kawai-G", "Yamaha")


def read_ccmusic(root: str | os.PathLike[str], *, exclude: Iterable[str] = ()) -> ReadResult:
    """CCMusic pianos audio export → records with the piano class."""
    root = require_dir(root, "ccmusic", f"one folder per piano class ({', '.join(CLASSES)}) of audio files")
    dirs = [d for d in sorted(root.iterdir()) if d.is_dir()]
    unknown = [d.name for d in dirs if d.name not in CLASSES]
    if not dirs or unknown:
        raise CorpusError(f"corpora.ccmusic: {root} must hold class folders named {list(CLASSES)}; "
                          f"found {[d.name for d in dirs]}")
    out = ReadResult()
    for d in dirs:
        cls = CLASSES.index(d.name)
        for f in sorted(p for p in d.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS):
            if is_excluded(f, root, exclude):
                out.exclude(rel(f), "listed in corpora.exclude")
                continue
            duration, sr = audio_facts(f, "ccmusic")
            out.records.append(ManifestRecord(
                path=rel(f), sha1=sha1_file(f), duration_sec=duration, sample_rate=sr,
                performer_id="", piece_id="", segment_id="", performance_id=f"ccmusic:{d.name}/{f.stem}",
                split="train", source="ccmusic", license=LICENSE, notes="auxiliary only (NC/ND licence)",
                extra={"piano": cls, "piano_class": d.name},
            ))
    return out
