"""Stage manifest: every corpus with a role → data/manifests/<corpus>.jsonl (+ summary, exclusions).

Roles come from params `data` (supervised / ssl / ood), roots from `corpora`, splits from `split`.
Fails naming the corpus/file when a root or file is missing or malformed.
"""

from __future__ import annotations

import argparse
import logging
import sys

from crescendai.core.config import load_params, seed_everything
from crescendai.core.errors import run_stage
from crescendai.data.corpora.registry import write_manifests


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", default="data/manifests")
    ap.add_argument("--generated", default="data/generated")
    ap.add_argument("--audio", default="data/audio")
    args = ap.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params(args.params)
    seed_everything(params.seed)
    write_manifests(params, args.out, generated_root=args.generated, audio_root=args.audio)


if __name__ == "__main__":
    sys.exit(run_stage(main, "manifest"))
