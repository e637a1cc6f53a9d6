"""Stage ``render``: every symbolic corpus → ``data/audio/<corpus>/<name>.flac`` + ``render.jsonl``.

Corpora: ``synthetic`` (data/generated/labelled), ``synthetic_ssl``, ``synthetic_phone`` (phone
channel), and, when their roots are set in params.yaml, ``percepiano``
(``<root>/virtuoso/data/all_2rounds/*.mid``) and ``asap`` (``<root>/metadata.csv``, column
``midi_performance``; ``render.max_items_asap`` > 0 renders a seed-chosen subset). External MIDI is
normalised (first note at 0.2 s, silent tails cut; ASAP also cropped to ``render.max_duration_sec``
when > 0 — PercePiano segments never, their labels describe the whole segment).
Rendering is parallel over ``render.workers`` processes; every file is a pure function of (seed, name,
MIDI), so the output does not depend on the worker count.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from crescendai.core.config import Params, load_params, seed_everything  # noqa: E402
from crescendai.core.files import read_jsonl, write_jsonl  # noqa: E402
from crescendai.synth.external import asap_jobs, percepiano_jobs, require_root  # noqa: E402
from crescendai.synth.render import RenderJob, RenderSettings, render_jobs  # noqa: E402

GEN = Path("data/generated")
OUT = Path("data/audio")


def _synthetic_jobs(meta_dir: Path, out_dir: Path) -> list[RenderJob]:
    jobs = []
    mid_dir = meta_dir / "virtuoso" / "data" / "all_2rounds" if (meta_dir / "virtuoso").is_dir() else meta_dir
    for m in read_jsonl(meta_dir / "meta.jsonl"):
        jobs.append(RenderJob(str(mid_dir / f"{m['name']}.mid"), str(out_dir / f"{m['name']}.flac"),
                              m["name"], int(m["piano"]), m["channel"], float(m["controls"]["touch"]), False))
    return jobs


def build_jobs(params: Params, gen: Path = GEN, out: Path = OUT, synthetic: bool = True) -> dict[str, list[RenderJob]]:
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


def render_corpora(params: Params, corpora: dict[str, list[RenderJob]], out: Path = OUT) -> dict[str, list[dict]]:
    """Render every corpus and write ``<out>/<corpus>/render.jsonl``; returns the records."""
    r = params.render
    settings = RenderSettings(r.sample_rate, r.n_pianos, r.rt60_min, r.rt60_max, r.noise_db, r.trim_silence_db)
    done = {}
    for corpus, jobs in corpora.items():
        records = render_jobs(jobs, params.seed, settings, r.workers, desc=corpus)
        write_jsonl(out / corpus / "render.jsonl", records)
        logging.info("%s: %d files, %.0f s of audio", corpus, len(records),
                     sum(x["duration_sec"] for x in records))
        done[corpus] = records
    return done


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s render: %(message)s")
    params = load_params()
    seed_everything(params.seed)
    corpora = build_jobs(params)  # validates the roots before anything is deleted
    if OUT.exists():
        shutil.rmtree(OUT)
    render_corpora(params, corpora)


if __name__ == "__main__":
    main()
