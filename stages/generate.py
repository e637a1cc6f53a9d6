"""Stage ``generate``: the embedded synthetic corpus → ``data/generated/`` (docs/PIPELINE.md).

Reads ``seed`` and ``generate`` from params.yaml; writes the labelled set in PercePiano's layout, the
SSL set and the phone set, each with ``meta.jsonl``.
"""

from __future__ import annotations

import logging
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from crescendai.core.config import load_params, seed_everything  # noqa: E402
from crescendai.synth.corpus import LABELLED, PHONE, SSL, CorpusSpec, generate_corpus, write_corpus  # noqa: E402

OUT = Path("data/generated")


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s generate: %(message)s")
    params = load_params()
    seed_everything(params.seed)
    g = params.generate
    spec = CorpusSpec(g.n_performers, g.n_pieces, g.bars_per_segment, g.n_ssl_pieces, g.ssl_duration_sec,
                      g.n_ssl_performers, g.n_phone, g.rater_noise, g.local_hop_sec)
    if OUT.exists():
        shutil.rmtree(OUT)
    for kind in (LABELLED, SSL, PHONE):
        items = generate_corpus(params.seed, spec, kind)
        write_corpus(OUT / kind, items)
        dur = sum(it.meta["duration_sec"] for it in items)
        logging.info("%s: %d items, %.0f s of music", kind, len(items), dur)


if __name__ == "__main__":
    main()
