"""Stage ``generate``: the embedded synthetic corpus → ``data/generated/`` (docs/PIPELINE.md).

Reads ``seed`` and ``generate`` from params.yaml; writes the labelled set in PercePiano's layout, the
SSL set and the phone set, each with ``meta.jsonl``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

from crescendai.core.config import load_params, seed_everything
from crescendai.core.errors import run_stage
from crescendai.synth.corpus import LABELLED, PHONE, SSL, generate_corpus, write_corpus


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="data/generated")
    out = Path(ap.parse_args().out)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s generate: %(message)s")
    params = load_params()
    seed_everything(params.seed)
    if out.exists():
        shutil.rmtree(out)
    for kind in (LABELLED, SSL, PHONE):
        items = generate_corpus(params.seed, params.generate, kind)
        write_corpus(out / kind, items)
        logging.info("%s: %d items, %.0f s of music", kind, len(items), sum(it.meta["duration_sec"] for it in items))


if __name__ == "__main__":
    sys.exit(run_stage(main, "generate"))
