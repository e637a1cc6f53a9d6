"""Stage ``render``: every symbolic corpus → ``data/audio/<corpus>/<name>.flac`` + ``render.jsonl``.

Corpora: ``synthetic`` (data/generated/labelled), ``synthetic_ssl``, ``synthetic_phone`` (phone
channel), and, when their roots are set in params.yaml, ``percepiano``
(``<root>/virtuoso/data/all_2rounds/*.mid``) and ``asap`` (``<root>/metadata.csv``, column
``midi_performance``). Rendering is parallel over ``render.workers`` processes; every file is a pure
function of (seed, name, MIDI), so the output does not depend on the worker count.
"""

from __future__ import annotations

import csv
import logging
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from crescendai.config import ConfigError, load_params, seed_everything  # noqa: E402
from crescendai.io_utils import read_jsonl, write_jsonl  # noqa: E402
from crescendai.synth.corpus import piano_for  # noqa: E402
from crescendai.synth.render import RenderJob, RenderSettings, render_jobs  # noqa: E402

GEN = Path("data/generated")
OUT = Path("data/audio")


def _synthetic_jobs(meta_dir: Path, corpus: str) -> list[RenderJob]:
    jobs = []
    mid_dir = meta_dir / "virtuoso" / "data" / "all_2rounds" if (meta_dir / "virtuoso").is_dir() else meta_dir
    for m in read_jsonl(meta_dir / "meta.jsonl"):
        jobs.append(RenderJob(str(mid_dir / f"{m['name']}.mid"), str(OUT / corpus / f"{m['name']}.flac"),
                              m["name"], int(m["piano"]), m["channel"], float(m["controls"]["touch"]), False))
    return jobs


def _root(key: str, value: str | None) -> Path | None:
    if value is None:
        return None
    p = Path(value).expanduser()
    if not p.exists():
        raise ConfigError(f"corpora.{key}: root {p} does not exist (fix the path or set it to null)")
    return p


def _external_jobs(corpus: str, mids: list[tuple[str, Path]], seed: int, n_pianos: int) -> list[RenderJob]:
    return [RenderJob(str(mid), str(OUT / corpus / f"{name}.flac"), name, piano_for(seed, name, n_pianos),
                      "room", 0.5, True) for name, mid in mids]


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s render: %(message)s")
    params = load_params()
    seed_everything(params.seed)
    r = params.render
    settings = RenderSettings(r.sample_rate, r.n_pianos, r.rt60_min, r.rt60_max, r.noise_db, r.trim_silence_db)
    corpora: dict[str, list[RenderJob]] = {
        "synthetic": _synthetic_jobs(GEN / "labelled", "synthetic"),
        "synthetic_ssl": _synthetic_jobs(GEN / "ssl", "synthetic_ssl"),
        "synthetic_phone": _synthetic_jobs(GEN / "phone", "synthetic_phone"),
    }
    pp = _root("percepiano", params.corpora.percepiano)
    if pp is not None:
        mids = sorted((pp / "virtuoso" / "data" / "all_2rounds").glob("*.mid"))
        if not mids:
            raise ConfigError(f"corpora.percepiano: no virtuoso/data/all_2rounds/*.mid under {pp}")
        corpora["percepiano"] = _external_jobs("percepiano", [(m.stem, m) for m in mids], params.seed,
                                               r.n_pianos)
    asap = _root("asap", params.corpora.asap)
    if asap is not None:
        meta = asap / "metadata.csv"
        if not meta.is_file():
            raise ConfigError(f"corpora.asap: {meta} not found (the ASAP root holds metadata.csv)")
        with open(meta, newline="") as f:
            rel = sorted({row["midi_performance"] for row in csv.DictReader(f) if row.get("midi_performance")})
        mids = [(x[:-4].replace("/", "__").replace(" ", "_"), asap / x) for x in rel]
        corpora["asap"] = _external_jobs("asap", mids, params.seed, r.n_pianos)
    if OUT.exists():
        shutil.rmtree(OUT)
    for corpus, jobs in corpora.items():
        records = render_jobs(jobs, params.seed, settings, r.workers, desc=corpus)
        write_jsonl(OUT / corpus / "render.jsonl", records)
        logging.info("%s: %d files, %.0f s of audio", corpus, len(records),
                     sum(x["duration_sec"] for x in records))


if __name__ == "__main__":
    main()
