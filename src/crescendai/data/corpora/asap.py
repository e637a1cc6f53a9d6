"""ASAP (CC BY-NC-SA 4.0): performance MIDI (rendered by the render stage) with beat/downbeat annotations.

Layout: ``<root>/metadata.csv`` with columns ``composer, title, folder, xml_score, midi_score,
midi_performance, performance_annotations, midi_score_annotations, maestro_midi_performance,
maestro_audio_performance, start, end, audio_performance``; paths relative to the root. Annotation
files are tab-separated ``start<TAB>end<TAB>label`` with label ``b`` (beat) or ``db`` (downbeat),
optionally followed by ``,<time signature>,<key>`` (``db,4/4,0``).

The render stage writes ``data/audio/asap/<name>.flac`` with ``<name>`` = the performance MIDI path
without ``.mid`` and with ``/`` replaced by ``__`` (:func:`asap_name`); ``render.jsonl`` is consulted
first. Beats and downbeats go to ``extra.beat_times`` / ``extra.bar_times`` on the audio's time axis (the
render stage moves the first note to 0.2 s; ``extra.midi_offset_sec`` is that shift); ``extra.maestro_audio_performance`` records where the audio sits in MAESTRO (dedup catches it).
The performer is the MIDI file's stem (``Shi05M``).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from crescendai.core.files import sha1_file
from crescendai.data.corpora.common import (
    CorpusError,
    ReadResult,
    audio_facts,
    is_excluded,
    load_render_index,
    rel,
    require_dir,
    require_file,
)
from crescendai.data.corpora.maestro import read_csv_rows
from crescendai.data.corpora.percepiano import RENDER_LEAD_SEC, midi_offset
from crescendai.data.manifest import ManifestRecord

LICENSE = "CC BY-NC-SA 4.0"
COLUMNS = ("composer", "title", "folder", "midi_performance", "performance_annotations",
           "maestro_audio_performance")


def asap_name(midi_performance: str) -> str:
    """Render name of an ASAP performance MIDI path (``Bach/Fugue/bwv_846/Shi05M.mid`` →
    ``Bach__Fugue__bwv_846__Shi05M``; spaces → ``_``), as the render stage names it."""
    p = midi_performance[:-4] if midi_performance.endswith(".mid") else midi_performance
    return p.replace("/", "__").replace(" ", "_")


def read_annotations(path: Path) -> tuple[list[float], list[float], list[str]]:
    """(beat_times, downbeat_times, time_signatures at downbeats) from an ASAP annotation file.

    Raises:
        CorpusError: a line is not ``start<TAB>end<TAB>label`` with a ``b``/``db`` label.
    """
    beats, downbeats, sigs = [], [], []
    for i, line in enumerate(path.read_text().splitlines()):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 3:
            raise CorpusError(f"asap: {path}:{i + 1}: expected start<TAB>end<TAB>label, got {line!r}")
        try:
            t = float(parts[0])
        except ValueError:
            raise CorpusError(f"asap: {path}:{i + 1}: start {parts[0]!r} is not a number") from None
        fields = parts[2].split(",")
        kind = fields[0].strip()
        if kind not in ("b", "db", "bR"):
            raise CorpusError(f"asap: {path}:{i + 1}: label {parts[2]!r} is not b/db[,sig,key]")
        beats.append(t)
        if kind == "db":
            downbeats.append(t)
            sigs.append(fields[1] if len(fields) > 1 else "")
    return beats, downbeats, sigs


def read_asap(
    root: str | os.PathLike[str], audio_dir: str | os.PathLike[str] = "data/audio/asap", *,
    exclude: Iterable[str] = (),
) -> ReadResult:
    """ASAP checkout + rendered audio → records with beats and downbeats."""
    root = require_dir(root, "asap", "metadata.csv and the composer folders")
    rows = read_csv_rows(require_file(root / "metadata.csv", "asap", "metadata.csv at the root"), "asap",
                         COLUMNS)
    audio_dir = require_dir(audio_dir, "asap", "rendered audio (run `dvc repro render` with corpora.asap set)")
    index = load_render_index(audio_dir)
    by_midi = {str(r.get("midi_path", "")): n for n, r in index.items()}
    out = ReadResult()
    for row in rows:
        midi = root / row["midi_performance"]
        name = next((n for m, n in by_midi.items() if m.endswith(row["midi_performance"])),
                    asap_name(row["midi_performance"]))
        audio = audio_dir / f"{name}.flac"
        if is_excluded(midi, root, exclude) or is_excluded(audio, audio_dir, exclude):
            out.exclude(rel(midi), "listed in corpora.exclude")
            continue
        if index and name not in index:
            # the render stage rendered a seeded subset (render.max_items_asap): list, don't fail
            out.exclude(rel(midi), "not rendered (outside the render.max_items_asap subset)")
            continue
        if not audio.is_file():
            raise CorpusError(f"asap: no rendered audio {audio} for {midi}; run the render stage or add it "
                              "to corpora.exclude")
        duration, sr = audio_facts(audio, "asap")

        shift = midi_offset(midi, RENDER_LEAD_SEC, "asap")
        extra = {"midi_path": rel(midi), "midi_offset_sec": shift,
                 "maestro_audio_performance": row.get("maestro_audio_performance", "")}
        if row.get("performance_annotations"):
            ann = root / row["performance_annotations"]
            if not ann.is_file():
                raise CorpusError(f"asap: annotation file {ann} listed in metadata.csv not found")
            beats, downbeats, sigs = read_annotations(ann)
            # keep annotations inside the rendered audio (render.max_duration_sec crops long takes)
            keep = [i for i, t in enumerate(downbeats) if t + shift < duration]
            extra.update(beat_times=[round(t + shift, 6) for t in beats if t + shift < duration],
                         bar_times=[round(downbeats[i] + shift, 6) for i in keep],
                         time_signatures=[sigs[i] for i in keep])
        performer = Path(row["midi_performance"]).stem
        out.records.append(ManifestRecord(
            path=rel(audio), sha1=sha1_file(audio), duration_sec=duration, sample_rate=sr,
            performer_id=performer, piece_id=f"{row['composer']}: {row['title']}", segment_id="",
            performance_id=f"asap:{row['midi_performance']}", split="train", source="asap", license=LICENSE,
            extra=extra,
        ))
    return out
