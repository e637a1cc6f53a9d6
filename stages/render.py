"""Stage ``render``: every symbolic corpus → ``data/audio/<corpus>/<name>.flac`` + ``render.jsonl``.

Corpora: ``synthetic`` (data/generated/labelled), ``synthetic_ssl``, ``synthetic_phone`` (phone
channel), and, when their roots are set in params.yaml, ``percepiano`` and ``asap`` (see
``crescendai.synth.jobs``). Every file is a pure function of (seed, name, MIDI), so the output does
not depend on ``render.workers``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
from pathlib import Path

from crescendai.core.config import load_params, seed_everything
from crescendai.core.errors import run_stage
from crescendai.synth.jobs import build_jobs, render_corpora


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--generated", default="data/generated")
    ap.add_argument("--out", default="data/audio")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s render: %(message)s")
    params = load_params()
    seed_everything(params.seed)
    corpora = build_jobs(params, Path(args.generated), Path(args.out))  # validates roots before deleting
    if Path(args.out).exists():
        shutil.rmtree(args.out)
    render_corpora(params, corpora, Path(args.out))


if __name__ == "__main__":
    sys.exit(run_stage(main, "render"))
