"""PercePiano (MIT): segment MIDI + label JSON → manifest records of the rendered audio.

Upstream layout (``corpora.percepiano`` = a checkout of the PercePiano repository)::

    <root>/virtuoso/data/all_2rounds/<name>.mid                    1 202 segment performances
    <root>/labels/label_2round_mean_reg_19_with0_rm_highstd0.json  name → 19 labels + pianist index
    <root>/labels/label_2round_std_reg_19_with0_rm_highstd0.json   name → 19 rater stds + index

The render stage turns every MIDI into ``data/audio/percepiano/<name>.flac``; a record's ``path`` is that
audio file, ``extra.midi_path`` the source MIDI. ``<name>`` = ``<work>_<N>bars_<PLAYER>_<SEGMENT>``
(:mod:`crescendai.core.labelfile`): performer = player, piece = work, performance = work + player (all
segments of one player's take of one work), ``Score``/``Score2`` players are flagged deadpan.
``extra.span_bars`` = [start, end) bars a segment covers in its work (:func:`align_segment_spans`):
upstream numbers 16-bar segments on their own (``16bars_7`` holds the notes of ``8bars_12`` and
``8bars_13`` of the same take), so the spans of the longer segments are found from the notes.
Segments of one take that cover other bars are different audio and may sit in different folds of a
passage split; overlapping ones may not. ``extra.repeats_bars`` lists the bars of earlier occurrences
of the same music a segment holds (:func:`find_repeats`: D960 mv3's da capo repeats whole 8-bar
segments, byte-identical in the deadpan renditions), so a passage split keeps repeats together. MIDI files
without a label entry are left out and listed (reason "no label"). Names are matched after stripping
stray whitespace (upstream has `` Schubert_D935_no.3_4bars_2_1.mid`` with a leading space).

The synthetic corpus is written in this same layout (plus ``meta.jsonl``), so
:func:`read_percepiano_layout` serves both.
"""

from __future__ import annotations

import logging
import os
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from crescendai.core.files import sha1_file
from crescendai.core.labelfile import (
    MEAN_FILE,
    STD_FILE,
    LabelFileError,
    SegmentName,
    parse_name,
    read_labels,
    split_entry,
)
from crescendai.core.midi import MidiError, Performance, read_midi
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
from crescendai.data.manifest import ManifestRecord

log = logging.getLogger(__name__)

LICENSE = "MIT"
MIDI_SUBDIR = Path("virtuoso/data/all_2rounds")
LABEL_SUBDIR = Path("labels")
LAYOUT = (f"{MIDI_SUBDIR}/<work>_<N>bars_<PLAYER>_<SEGMENT>.mid and {LABEL_SUBDIR}/{MEAN_FILE} "
          "(PercePiano's repository layout)")


def find_audio(audio_dir: Path, stem: str, render_index: dict[str, dict], midi: Path) -> Path | None:
    """The rendered audio of ``midi`` in ``audio_dir`` (by name, stripped name or render.jsonl)."""
    for cand in (stem, stem.strip()):
        for ext in (".flac", ".wav"):
            p = audio_dir / f"{cand}{ext}"
            if p.is_file():
                return p
    for name, r in render_index.items():
        if Path(str(r.get("midi_path", ""))).name == midi.name:
            p = audio_dir / f"{name}.flac"
            if p.is_file():
                return p
    return None


def lead_offset(perf: Performance, lead_sec: float, corpus: str) -> float:
    """Seconds the render stage moved ``perf`` (first note → ``lead_sec``).

    Raises:
        CorpusError: the performance has no notes (the message names its file).
    """
    if not perf.notes:
        raise CorpusError(f"corpora.{corpus}: {perf.source} has no notes; add it to corpora.exclude")
    return round(lead_sec - min(n.onset_sec for n in perf.notes), 6)


def midi_offset(midi: Path, lead_sec: float, corpus: str) -> float:
    """:func:`lead_offset` of a MIDI file."""
    return lead_offset(_read(midi, corpus), lead_sec, corpus)


def _read(midi: Path, corpus: str) -> Performance:
    """``read_midi`` with the corpus named in the error."""
    try:
        return read_midi(midi)
    except MidiError as err:
        raise CorpusError(f"corpora.{corpus}: {err}; add the file to corpora.exclude") from None


def read_stds(path: Path, corpus: str) -> dict[str, list[float]]:
    """The rater-std file: name → 19 stds (upstream has 19 values per entry; a 20th index is ignored).
    Empty when the file is absent (it is optional)."""
    import json

    if not path.is_file():
        return {}
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise CorpusError(f"corpora.{corpus}: {path} is not valid JSON ({err})") from None
    out = {}
    for k, v in raw.items():
        if not isinstance(v, list) or len(v) < 19 or not all(isinstance(x, int | float) for x in v[:19]):
            raise CorpusError(f"corpora.{corpus}: {path}: entry {k!r} must hold 19 numbers")
        out[k.strip()] = [float(x) for x in v[:19]]
    return out


def _contains(longer: Sequence[int], shorter: Sequence[int]) -> bool:
    """``shorter`` occurs in ``longer`` as a contiguous run of pitches."""
    return ("," + ",".join(map(str, shorter)) + ",") in ("," + ",".join(map(str, longer)) + ",")


def _same_music(a: Sequence[int], b: Sequence[int], min_shared: float = 0.8) -> bool:
    """One pitch sequence lies inside the other, or they share a common opening of at least
    ``min_shared`` of the shorter one (a repeat with another ending or a re-voiced last chord)."""
    short, long_ = (a, b) if len(a) <= len(b) else (b, a)
    if _contains(long_, short):
        return True
    k = 0
    while k < len(short) and short[k] == long_[k]:
        k += 1
    return k >= min_shared * len(short)


def _by_work(segments: Mapping[str, tuple[SegmentName, Sequence[int]]]) -> dict[str, tuple[int, list[str]]]:
    """work → (its shortest segment length in bars, the names of its segments)."""
    names: dict[str, list[str]] = defaultdict(list)
    for name, (seg, _) in segments.items():
        names[seg.work].append(name)
    return {w: (min(segments[n][0].bars for n in ns), ns) for w, ns in names.items()}


def find_repeats(
    segments: Mapping[str, tuple[SegmentName, Sequence[int]]], probe: int = 12
) -> dict[tuple[str, int], int]:
    """Repeated music among a work's shortest segments (da capo, repeat signs).

    Two shortest segments j < k of one work are the same music when, in any take, one's pitch
    sequence (at least ``probe`` notes) lies inside the other's or both open with the same 80 % of
    the shorter one (:func:`_same_music`). Returns (work, k) → j with j the
    first occurrence (chains resolved), for every repeated k.
    """
    out: dict[tuple[str, int], int] = {}
    for work, (unit, names) in _by_work(segments).items():
        takes: dict[str, dict[int, Sequence[int]]] = defaultdict(dict)
        for n in names:
            seg, pitches = segments[n]
            if seg.bars == unit and len(pitches) >= probe:
                takes[seg.player][seg.segment] = pitches
        parent: dict[int, int] = {}

        def find(x: int, parent: dict[int, int] = parent) -> int:
            while parent.get(x, x) != x:
                x = parent[x]
            return x

        for take in takes.values():
            idx = sorted(take)
            for a, j in enumerate(idx):
                for k in idx[a + 1:]:
                    if _same_music(take[j], take[k]):
                        rj, rk = find(j), find(k)
                        if rj != rk:
                            parent[max(rj, rk)] = min(rj, rk)
        for k in parent:
            if find(k) != k:
                out[(work, k)] = find(k)
    return out


def align_segment_spans(
    segments: Mapping[str, tuple[SegmentName, Sequence[int]]], probe: int = 12
) -> dict[str, tuple[int, int]]:
    """The bars [start, end) each segment covers inside its work.

    Args:
        segments: name → (parsed name, the segment's MIDI pitches in onset order).
        probe: how many leading pitches of a short segment must occur, in order and contiguously,
            in a longer segment's pitch sequence for the short one to count as contained.

    Returns:
        name → (start, end) in bars. A work's shortest segments cover
        [(SEGMENT − 1)·N, SEGMENT·N). A longer segment covers the run of shortest segments of the same
        take it contains; the span most takes agree on for that (work, N, SEGMENT) is given to every
        take. Segments whose span cannot be found (no contained short segment in any take) are left
        out: their span is unknown.
    """
    out: dict[str, tuple[int, int]] = {}
    for unit, names in _by_work(segments).values():
        short = {(segments[n][0].player, segments[n][0].segment): n for n in names if segments[n][0].bars == unit}
        for n in names:
            seg = segments[n][0]
            if seg.bars == unit:
                out[n] = ((seg.segment - 1) * unit, seg.segment * unit)
        votes: dict[tuple[int, int], Counter] = defaultdict(Counter)
        for n in names:
            seg, pitches = segments[n]
            if seg.bars == unit:
                continue
            inside = [k for (player, k), sn in short.items() if player == seg.player
                      and len(segments[sn][1]) >= probe and _contains(pitches, segments[sn][1][:probe])]
            if inside:
                votes[(seg.bars, seg.segment)][((min(inside) - 1) * unit, max(inside) * unit)] += 1
        for n in names:
            seg = segments[n][0]
            if seg.bars != unit and votes[(seg.bars, seg.segment)]:
                out[n] = votes[(seg.bars, seg.segment)].most_common(1)[0][0]
    return out


def segment_spans(
    segments: Mapping[str, tuple[SegmentName, Performance]], corpus: str
) -> tuple[dict[str, tuple[int, int]], dict[str, list[list[int]]]]:
    """Spans and repeats of PercePiano segments (name → parsed name and performance).

    Returns:
        (name → bars [start, end) from :func:`align_segment_spans`, name → the bars of earlier
        occurrences of the same music inside it, from :func:`find_repeats`).
    """
    pitches = {name: (seg, [n.pitch for n in sorted(perf.notes, key=lambda n: (round(n.onset_sec, 3), n.pitch))])
               for name, (seg, perf) in segments.items()}
    spans = align_segment_spans(pitches)
    repeats = find_repeats(pitches)
    units = {w: unit for w, (unit, _) in _by_work(pitches).items()}
    same_music: dict[str, list[list[int]]] = {}
    for name, (seg, _) in pitches.items():
        if name not in spans:
            continue
        u = units[seg.work]
        start, end = spans[name]
        first = [repeats.get((seg.work, k)) for k in range(start // u + 1, end // u + 1)]
        same_music[name] = [[(j - 1) * u, j * u] for j in first if j is not None]
    missing = sorted(set(pitches) - set(spans))
    if missing:
        log.warning("%s: %d segment(s) with no span found (treated as overlapping every segment of their "
                    "take): %s", corpus, len(missing), ", ".join(missing[:5]) + (" …" if len(missing) > 5 else ""))
    return spans, same_music


RENDER_LEAD_SEC: float = 0.2
"""The render stage starts external MIDI at its first note minus this lead
(``crescendai.synth.render.trim_performance_start``)."""


def read_percepiano_layout(
    root: str | os.PathLike[str],
    audio_dir: str | os.PathLike[str],
    *,
    corpus: str,
    license: str,
    exclude: Iterable[str] = (),
    meta: dict[str, dict[str, Any]] | None = None,
    require_labels: bool = True,
    render_lead_sec: float | None = None,
) -> ReadResult:
    """Read a PercePiano-layout folder whose MIDI has been rendered to ``audio_dir``.

    Args:
        root: the folder holding ``virtuoso/data/all_2rounds`` and ``labels``.
        audio_dir: the render stage's output for this corpus (``data/audio/<corpus>``).
        corpus: the corpus name recorded as ``source``.
        license: the licence recorded on every item.
        exclude: names/paths to leave out (``corpora.exclude``).
        meta: optional name → meta.jsonl record (synthetic corpus): performer/piece/segment ids,
            bar_times, beat_times, local labels, piano … go to the record and its ``extra``.
        require_labels: leave out (and list) MIDI files without a label entry.
        render_lead_sec: when the render stage shifted each MIDI so its first note starts at this time
            (external corpora), ``extra.midi_offset_sec`` records the shift (audio time = MIDI time +
            offset) so MIDI-derived proxies stay aligned.

    Raises:
        CorpusError: the layout is not there, a label file is malformed, or a MIDI has no rendered
            audio (the message names the file and says to run the render stage).
    """
    root = require_dir(root, corpus, LAYOUT)
    midi_dir = require_dir(root / MIDI_SUBDIR, corpus, LAYOUT)
    mean_file = require_file(root / LABEL_SUBDIR / MEAN_FILE, corpus, LAYOUT)
    try:
        labels = {k.strip(): v for k, v in read_labels(mean_file).items()}
        stds = read_stds(root / LABEL_SUBDIR / STD_FILE, corpus)
    except LabelFileError as err:
        raise CorpusError(f"corpora.{corpus}: {err}") from None
    midis = sorted(midi_dir.glob("*.mid"))
    if not midis:
        raise CorpusError(f"corpora.{corpus}: no .mid files in {midi_dir}; expected {LAYOUT}")
    audio_dir = Path(audio_dir)
    if not audio_dir.is_dir():
        raise CorpusError(
            f"corpora.{corpus}: rendered audio folder {audio_dir} not found; run the render stage "
            f"(`dvc repro render`) with this corpus enabled"
        )
    render_index = load_render_index(audio_dir)
    out = ReadResult()
    segments: dict[str, tuple[SegmentName, Performance]] = {}  # every kept MIDI, read once
    for midi in midis:
        name = midi.stem.strip()
        if is_excluded(midi, root, exclude) or name in set(exclude):
            out.exclude(rel(midi), "listed in corpora.exclude")
            continue
        try:
            seg = parse_name(name)
        except LabelFileError as err:
            raise CorpusError(f"corpora.{corpus}: {midi}: {err}; rename it or add it to corpora.exclude") from None
        if name not in labels and require_labels:
            out.exclude(rel(midi), "no label entry in " + MEAN_FILE)
            continue
        segments[name] = (seg, _read(midi, corpus))
    spans, same_music = segment_spans(segments, corpus)
    for midi in midis:
        stem = midi.stem
        name = stem.strip()
        if name not in segments:
            continue
        seg, perf = segments[name]
        entry = labels.get(name)
        audio = find_audio(audio_dir, stem, render_index, midi)
        if audio is None:
            raise CorpusError(
                f"corpora.{corpus}: no rendered audio for {midi} in {audio_dir} (expected {name}.flac); "
                "run the render stage, or add the name to corpora.exclude"
            )
        if is_excluded(audio, audio_dir, exclude):
            out.exclude(rel(audio), "listed in corpora.exclude")
            continue
        duration, sr = audio_facts(audio, corpus)
        m = (meta or {}).get(name, {})
        r_info = render_index.get(audio.stem, {})
        vals, pianist = split_entry(entry) if entry is not None else (None, None)
        extra: dict[str, Any] = {"midi_path": rel(midi), "bars": seg.bars, "deadpan": seg.is_deadpan}
        if name in spans:
            extra["span_bars"] = list(spans[name])
        if same_music.get(name):
            extra["repeats_bars"] = same_music[name]
        if render_lead_sec is not None:
            extra["midi_offset_sec"] = lead_offset(perf, render_lead_sec, corpus)
        if pianist is not None:
            extra["pianist_index"] = pianist
        if name in stds:
            extra["label_std"] = stds[name][:19]
        for k in ("piano", "channel"):
            if k in r_info:
                extra[k] = r_info[k]
        for k in ("piano", "key", "meter", "tempo_bpm", "bar_times", "beat_times", "local_hop_sec",
                  "local_labels", "controls", "span_sec", "midi_offset_sec"):
            if k in m:
                extra[k] = m[k]
        performer = str(m.get("performer_id", seg.player))
        piece = str(m.get("piece_id", seg.work))
        out.records.append(ManifestRecord(
            path=rel(audio), sha1=sha1_file(audio), duration_sec=float(duration), sample_rate=sr,
            performer_id=performer, piece_id=piece,
            segment_id=str(m.get("segment_id", f"{seg.bars}bars_{seg.segment}")),
            # deadpan Score/Score2 renditions of one passage are one "performance" (of the score):
            # PercePiano has byte-identical ones, which must not straddle folds
            performance_id=f"{corpus}:{piece}:{'Score' if seg.is_deadpan else performer}",
            split="train", source=corpus, license=license,
            notes="deadpan score rendition" if seg.is_deadpan else "",
            label_ref=name if entry is not None else None, labels=vals, extra=extra,
        ))
    log.info("%s: %d records, %d excluded", corpus, len(out.records), len(out.excluded))
    return out


def read_percepiano(
    root: str | os.PathLike[str], audio_dir: str | os.PathLike[str], *, exclude: Iterable[str] = ()
) -> ReadResult:
    """PercePiano upstream checkout + its rendered audio → records (licence MIT)."""
    return read_percepiano_layout(root, audio_dir, corpus="percepiano", license=LICENSE, exclude=exclude,
                                  render_lead_sec=RENDER_LEAD_SEC)
