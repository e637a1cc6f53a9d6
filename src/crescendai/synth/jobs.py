"""Render jobs per corpus: the generated synthetic sets, and PercePiano and ASAP performance MIDI
(upstream layouts), and rendering them all (the ``render`` stage).

- **PercePiano**: ``<root>/virtuoso/data/all_2rounds/<name>.mid`` (1 202 segment performances); the
  item name is the file stem (``Schubert_D960_mv3_8bars_3_15``).
- **ASAP**: ``<root>/metadata.csv`` (columns ``composer, title, folder, xml_score, midi_score,
  midi_performance, …``); each distinct ``midi_performance`` path (relative to the root) is one item,
  named by :func:`asap_render_name` (``Bach/Fugue/bwv_846/Shi05M.mid`` → ``Bach__Fugue__bwv_846__Shi05M``).

External MIDI is normalised before rendering (:func:`crescendai.synth.render.prepare_external`): the first note moves to
0.2 s, the performance is cropped to ``max_duration_sec`` from its start (0 = whole), and long silent
tails are cut — notes held and pedal events more than :data:`MAX_TAIL_SEC` after the last onset (many
PercePiano files hold the final chord and pedal for 10–25 s). ``max_items`` picks a deterministic
subset (by ``crc32(seed:name)``), so a quick experiment renders a fixed sample of ASAP.
"""

from __future__ import annotations

import csv
import logging
import zlib
from pathlib import Path

from crescendai.core.config import ConfigError, Params
from crescendai.core.files import read_jsonl, write_jsonl
from crescendai.synth.corpus import piano_for
from crescendai.synth.render import (
    MAX_TAIL_SEC,
    RenderJob,
    crop_performance,
    prepare_external,
    render_jobs,
)

log = logging.getLogger(__name__)

PERCEPIANO_MIDI_DIR: str = "virtuoso/data/all_2rounds"


def require_root(key: str, value: str | None) -> Path | None:
    """The root of corpus ``key`` from ``corpora.<key>`` (None when unset).

    Raises:
        ConfigError: the path does not exist (the message names ``corpora.<key>``).
    """
    if value is None:
        return None
    p = Path(value).expanduser()
    if not p.exists():
        raise ConfigError(f"corpora.{key}: root {p} does not exist (fix the path in params.yaml or set it to null)")
    return p


def asap_render_name(midi_performance: str) -> str:
    """Render name of an ASAP ``midi_performance`` path: no ``.mid``, ``/`` → ``__``, space → ``_``."""
    p = midi_performance[:-4] if midi_performance.endswith(".mid") else midi_performance
    return p.replace("/", "__").replace(" ", "_")


def select_items(names: list[str], seed: int, max_items: int) -> list[str]:
    """``max_items`` of ``names`` chosen by ``crc32(f"{seed}:{name}")`` (0 = all), in input order."""
    if max_items <= 0 or max_items >= len(names):
        return list(names)
    keep = set(sorted(names, key=lambda n: (zlib.crc32(f"{seed}:{n}".encode()), n))[:max_items])
    return [n for n in names if n in keep]


def percepiano_jobs(root: Path, out_dir: Path, seed: int, n_pianos: int, max_duration_sec: float = 0.0,
                    max_items: int = 0) -> list[RenderJob]:
    """One job per ``<root>/virtuoso/data/all_2rounds/*.mid`` (sorted; ``max_items`` > 0 keeps a
    deterministic subset). Raises :class:`ConfigError` naming ``corpora.percepiano`` when none exist."""
    mids = {m.stem: m for m in sorted((root / PERCEPIANO_MIDI_DIR).glob("*.mid"))}
    if not mids:
        raise ConfigError(f"corpora.percepiano: no {PERCEPIANO_MIDI_DIR}/*.mid under {root} "
                          "(point it at a PercePiano checkout)")
    names = select_items(list(mids), seed, max_items)
    return [RenderJob(str(mids[n]), str(out_dir / f"{n}.flac"), n, piano_for(seed, n, n_pianos), "room", 0.5,
                      True, max_duration_sec) for n in names]


def asap_jobs(root: Path, out_dir: Path, seed: int, n_pianos: int, max_duration_sec: float = 0.0,
              max_items: int = 0) -> list[RenderJob]:
    """One job per distinct ``midi_performance`` of ``<root>/metadata.csv`` (sorted by path;
    ``max_items`` > 0 keeps a deterministic subset).

    Raises:
        ConfigError: ``metadata.csv`` is missing or has no ``midi_performance`` column (names
            ``corpora.asap``).
    """
    meta = root / "metadata.csv"
    if not meta.is_file():
        raise ConfigError(f"corpora.asap: {meta} not found (the ASAP root holds metadata.csv)")
    with open(meta, newline="") as f:
        reader = csv.DictReader(f)
        if "midi_performance" not in (reader.fieldnames or []):
            raise ConfigError(f"corpora.asap: {meta} has no midi_performance column")
        rel = sorted({row["midi_performance"] for row in reader if row.get("midi_performance")})
    by_name = {asap_render_name(x): root / x for x in rel}
    names = select_items(list(by_name), seed, max_items)
    return [RenderJob(str(by_name[n]), str(out_dir / f"{n}.flac"), n, piano_for(seed, n, n_pianos), "room", 0.5,
                      True, max_duration_sec) for n in names]


__all__ = ["MAX_TAIL_SEC", "asap_jobs", "asap_render_name", "crop_performance", "percepiano_jobs",
           "prepare_external", "require_root", "select_items"]


def _synthetic_jobs(meta_dir: Path, out_dir: Path) -> list[RenderJob]:
    jobs = []
    mid_dir = meta_dir / "virtuoso" / "data" / "all_2rounds" if (meta_dir / "virtuoso").is_dir() else meta_dir
    for m in read_jsonl(meta_dir / "meta.jsonl"):
        jobs.append(RenderJob(str(mid_dir / f"{m['name']}.mid"), str(out_dir / f"{m['name']}.flac"),
                              m["name"], int(m["piano"]), m["channel"], float(m["controls"]["touch"]), False))
    return jobs


def build_jobs(params: Params, gen: Path = Path("data/generated"), out: Path = Path("data/audio"), synthetic: bool = True) -> dict[str, list[RenderJob]]:
    """Corpus name → render jobs: the synthetic sets under ``gen`` (when ``synthetic``), and
    ``percepiano`` / ``asap`` when ``corpora.<key>`` is set (a missing root raises ``ConfigError``
    naming the key; ``render.max_items_asap`` and ``render.max_duration_sec`` limit the unlabelled ASAP
    set; labelled PercePiano segments are rendered whole, silent tails cut)."""
    r = params.render
    corpora: dict[str, list[RenderJob]] = {}
    if synthetic:
        for corpus, sub in (("synthetic", "labelled"), ("synthetic_ssl", "ssl"), ("synthetic_phone", "phone")):
            corpora[corpus] = _synthetic_jobs(gen / sub, out / corpus)
    pp = require_root("percepiano", params.corpora.percepiano)
    if pp is not None:
        # never cropped: PercePiano's labels describe the whole segment
        corpora["percepiano"] = percepiano_jobs(pp, out / "percepiano", params.seed, r.n_pianos)
    asap = require_root("asap", params.corpora.asap)
    if asap is not None:
        corpora["asap"] = asap_jobs(asap, out / "asap", params.seed, r.n_pianos, r.max_duration_sec,
                                    r.max_items_asap)
    return corpora


def render_corpora(params: Params, corpora: dict[str, list[RenderJob]], out: Path = Path("data/audio")) -> dict[str, list[dict]]:
    """Render every corpus and write ``<out>/<corpus>/render.jsonl``; returns the records."""
    r = params.render
    done = {}
    for corpus, jobs in corpora.items():
        records = render_jobs(jobs, params.seed, r, r.workers, desc=corpus)
        write_jsonl(out / corpus / "render.jsonl", records)
        log.info("%s: %d files, %.0f s of audio", corpus, len(records),
                     sum(x["duration_sec"] for x in records))
        done[corpus] = records
    return done
