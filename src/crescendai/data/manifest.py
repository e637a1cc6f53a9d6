"""The manifest schema (one record per audio item) and its validated JSONL I/O.

A manifest is ``data/manifests/<corpus>.jsonl``: one :class:`ManifestRecord` per line. Every record is
validated when it is built, written and read, so a malformed manifest fails at the line that is wrong.

Fields (docs/PIPELINE.md):

==============  =========================================================================================
path            the audio file (repository-relative or absolute); unique within and across manifests
sha1            hex SHA-1 of the audio file's bytes (exact-duplicate check)
duration_sec    > 0, seconds of audio
sample_rate     native sample rate of the file in Hz
performer_id    who played it ("3", "Score", "synth_p05"); "" when unknown
piece_id        what was played (work / composition id); "" when unknown
segment_id      which passage of the piece ("15", "0"), "" for whole recordings
performance_id  one performance of one piece by one performer; segments cut from it share this id
split           "train" | "val" | "test" | "ssl" | "ood"
fold            int 0..K-1 for supervised train items (the fold is the item's validation fold), else None
license         the corpus licence ("MIT", "CC BY-NC-SA 4.0", ...)
source          the corpus name ("synthetic", "percepiano", "maestro", ...)
notes           free text ("deadpan score rendition", ...)
label_ref       the key in the label file, or None
labels          19 floats in [1/7, 1] (crescendai.core.dims order), or None
augmented       True for an augmented copy (never enters validation or test)
extra           corpus-specific: bar_times, beat_times, local_labels, local_hop_sec, piano, midi_path,
                span_sec ([start, end] seconds inside the performance), span_bars ([start, end) in bars
                inside the work: PercePiano ``8bars_3`` → [16, 24]; longer segments from their notes),
                repeats_bars (bars of earlier occurrences of the same music), ...
==============  =========================================================================================
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from crescendai.core.dims import LABEL_MAX, LABEL_MIN, N_DIMS
from crescendai.core.errors import CrescendAIError
from crescendai.core.files import read_jsonl, write_jsonl

SPLITS: tuple[str, ...] = ("train", "val", "test", "ssl", "ood")
SUPERVISED_EVAL_SPLITS: tuple[str, ...] = ("val", "test")


class ManifestError(CrescendAIError):
    """A manifest record or file is malformed; the message names the file/line/field."""


@dataclass
class ManifestRecord:
    """One audio item. See the module docstring for the meaning and range of each field."""

    path: str
    sha1: str
    duration_sec: float
    sample_rate: int
    performer_id: str
    piece_id: str
    segment_id: str
    split: str
    source: str
    license: str
    performance_id: str = ""
    fold: int | None = None
    notes: str = ""
    label_ref: str | None = None
    labels: list[float] | None = None
    augmented: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.validate()

    def validate(self, where: str = "") -> None:
        """Raise :class:`ManifestError` if any field breaks the schema."""
        at = f"{where}: " if where else ""
        name = f"{at}record {self.path!r}"
        for f in ("path", "sha1", "performer_id", "piece_id", "segment_id", "split", "source",
                  "license", "performance_id", "notes"):
            if not isinstance(getattr(self, f), str):
                raise ManifestError(f"{name}: field {f!r} must be a string, got {getattr(self, f)!r}")
        if not self.path:
            raise ManifestError(f"{at}record with an empty path")
        if len(self.sha1) != 40 or any(c not in "0123456789abcdef" for c in self.sha1):
            raise ManifestError(f"{name}: sha1 must be 40 lowercase hex digits, got {self.sha1!r}")
        if not isinstance(self.duration_sec, int | float) or not math.isfinite(self.duration_sec) \
                or self.duration_sec <= 0:
            raise ManifestError(f"{name}: duration_sec must be a positive number, got {self.duration_sec!r}")
        if not isinstance(self.sample_rate, int) or isinstance(self.sample_rate, bool) or self.sample_rate <= 0:
            raise ManifestError(f"{name}: sample_rate must be a positive integer, got {self.sample_rate!r}")
        if self.split not in SPLITS:
            raise ManifestError(f"{name}: split {self.split!r} is not one of {list(SPLITS)}")
        if self.fold is not None and (not isinstance(self.fold, int) or isinstance(self.fold, bool)
                                      or self.fold < 0):
            raise ManifestError(f"{name}: fold must be a non-negative integer or null, got {self.fold!r}")
        if self.fold is not None and self.split != "train":
            raise ManifestError(f"{name}: only split 'train' items carry a fold (split {self.split!r}, "
                                f"fold {self.fold})")
        if self.labels is not None:
            if not isinstance(self.labels, list) or len(self.labels) != N_DIMS:
                raise ManifestError(f"{name}: labels must be a list of {N_DIMS} floats or null")
            for v in self.labels:
                if not isinstance(v, int | float) or not (LABEL_MIN - 1e-6 <= v <= LABEL_MAX + 1e-6):
                    raise ManifestError(f"{name}: label {v!r} outside [1/7, 1]")
        if self.label_ref is not None and not isinstance(self.label_ref, str):
            raise ManifestError(f"{name}: label_ref must be a string or null")
        if not isinstance(self.augmented, bool):
            raise ManifestError(f"{name}: augmented must be true or false")
        if self.augmented and self.split in SUPERVISED_EVAL_SPLITS:
            raise ManifestError(f"{name}: an augmented item cannot be in split {self.split!r}")
        if not isinstance(self.extra, dict):
            raise ManifestError(f"{name}: extra must be a mapping")

    @property
    def performance(self) -> str:
        """The performance id, falling back to ``source:piece:performer`` when unset."""
        return self.performance_id or f"{self.source}:{self.piece_id}:{self.performer_id}"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any], where: str = "") -> ManifestRecord:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ManifestError(f"{where}: unknown field(s) {unknown}; the schema is {sorted(names)}")
        missing = sorted(f.name for f in dataclasses.fields(cls)
                         if f.name not in d and f.default is dataclasses.MISSING
                         and f.default_factory is dataclasses.MISSING)
        if missing:
            raise ManifestError(f"{where}: missing field(s) {missing}")
        try:
            rec = cls.__new__(cls)
            for f in dataclasses.fields(cls):
                if f.name in d:
                    value = d[f.name]
                elif f.default is not dataclasses.MISSING:
                    value = f.default
                else:
                    value = f.default_factory()  # type: ignore[misc]
                setattr(rec, f.name, value)
            rec.validate(where)
        except ManifestError:
            raise
        except Exception as err:  # pragma: no cover - defensive
            raise ManifestError(f"{where}: {err}") from None
        return rec


def write_manifest(path: str | os.PathLike[str], records: Iterable[ManifestRecord]) -> int:
    """Validate and atomically write records as JSONL; return the count.

    Raises:
        ManifestError: a record is invalid or two records share a path.
    """
    seen: set[str] = set()
    rows = []
    for r in records:
        r.validate(str(path))
        if r.path in seen:
            raise ManifestError(f"{path}: duplicate path {r.path!r}")
        seen.add(r.path)
        rows.append(r.to_dict())
    return write_jsonl(path, rows)


def read_manifest(path: str | os.PathLike[str]) -> list[ManifestRecord]:
    """Read and validate a manifest JSONL.

    Raises:
        ManifestError: the file is missing or a line breaks the schema (the message names the line).
    """
    p = Path(path)
    if not p.is_file():
        raise ManifestError(f"{p}: manifest not found (run `dvc repro manifest`)")
    return [ManifestRecord.from_dict(d, f"{p}:{i + 1}") for i, d in enumerate(read_jsonl(p))]


def read_manifests(paths: Iterable[str | os.PathLike[str]]) -> list[ManifestRecord]:
    """Concatenate several manifests (paths must be unique across them)."""
    out: list[ManifestRecord] = []
    seen: dict[str, str] = {}
    for p in paths:
        for r in read_manifest(p):
            if r.path in seen:
                raise ManifestError(f"{p}: path {r.path!r} is also in {seen[r.path]}")
            seen[r.path] = str(p)
            out.append(r)
    return out


Span = tuple[float, float]


def passage_id(r: ManifestRecord) -> str:
    """The exact passage a record plays: ``source:piece:segment`` (renditions of the same bars by
    different players share it; within-passage ranking compares them), or its performance when the
    piece is unknown."""
    return f"{r.source}:{r.piece_id}:{r.segment_id}" if r.piece_id else f"perf:{r.performance}"


def record_span(r: ManifestRecord) -> Span | None:
    """The stretch of its performance a record covers: ``extra.span_sec``, else ``extra.span_bars``
    ([start, end), one unit per corpus), else None (unknown: the record may share audio with any
    other record of its performance)."""
    for key in ("span_sec", "span_bars"):
        span = r.extra.get(key)
        if span is not None and len(span) == 2:
            return float(span[0]), float(span[1])
    return None


def shared_audio_links(performances: Sequence[str], spans: Sequence[Span | None]) -> list[tuple[int, int, float]]:
    """Index pairs ``(i, j, overlap)`` (i < j) of items that may hold the same audio.

    Two items may share audio when they have the same non-empty performance id and their spans
    overlap (``overlap`` > 0, in the span's unit) or either span is unknown (``overlap`` = nan).
    Segments of one performance that cover different bars are different audio; linking these pairs
    gives the groups that must never straddle folds (splits) and that the dedup stage enforces.
    """
    by_perf: dict[str, list[int]] = {}
    for i, perf in enumerate(performances):
        if perf:
            by_perf.setdefault(perf, []).append(i)
    out: list[tuple[int, int, float]] = []
    for members in by_perf.values():
        for a_pos, i in enumerate(members):
            for j in members[a_pos + 1:]:
                si, sj = spans[i], spans[j]
                if si is None or sj is None:
                    out.append((i, j, math.nan))
                    continue
                ov = min(si[1], sj[1]) - max(si[0], sj[0])
                if ov > 0:
                    out.append((i, j, ov))
    return out
