"""Stage manifest: every corpus with a role → data/manifests/<corpus>.jsonl (+ summary, exclusions).

Roles come from params `data` (supervised / ssl / ood), roots from `corpora`, splits from `split`.
Fails naming the corpus/file when a root or file is missing or malformed.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections import Counter
from pathlib import Path

from crescendai.core.config import load_params, seed_everything
from crescendai.core.files import write_json
from crescendai.data.corpora.common import CorpusError
from crescendai.data.corpora.registry import REAL_CORPORA, read_corpus, roles
from crescendai.data.manifest import write_manifest
from crescendai.data.splits import SplitError, assign_splits


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--out", default="data/manifests")
    ap.add_argument("--generated", default="data/generated")
    ap.add_argument("--audio", default="data/audio")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    params = load_params(args.params)
    seed_everything(params.seed)
    out = Path(args.out)
    try:
        role_of = roles(params.data)
        for c in REAL_CORPORA:
            if getattr(params.corpora, c) is not None and c not in role_of:
                logging.warning("corpora.%s is set but the corpus has no role in `data`; not read", c)
        summary: dict = {"corpora": {}, "excluded": []}
        for corpus, role in role_of.items():
            res = read_corpus(corpus, params.corpora, generated_root=args.generated, audio_root=args.audio)
            if not res.records:
                raise CorpusError(f"{corpus}: no items read; check the corpus root and corpora.exclude")
            s = params.split
            recs = assign_splits(res.records, role, n_folds=s.n_folds, test_fraction=s.test_fraction,
                                 group_by=s.group_by, seed=params.seed)
            write_manifest(out / f"{corpus}.jsonl", recs)
            counts = Counter(r.split if r.fold is None else f"{r.split}/fold{r.fold}" for r in recs)
            summary["corpora"][corpus] = {
                "role": role, "items": len(recs), "hours": round(sum(r.duration_sec for r in recs) / 3600, 3),
                "labelled": sum(r.labels is not None for r in recs),
                "performers": len({r.performer_id for r in recs}), "pieces": len({r.piece_id for r in recs}),
                "deadpan": sum(bool(r.extra.get("deadpan")) for r in recs),
                "splits": dict(sorted(counts.items())), "excluded": len(res.excluded),
                "license": sorted({r.license for r in recs}),
            }
            summary["excluded"] += [{"corpus": corpus, **e} for e in res.excluded]
            res.log_exclusions(corpus, str(out / "summary.json"))
            logging.info("%s (%s): %s", corpus, role, summary["corpora"][corpus])
        write_json(out / "summary.json", summary)
    except (CorpusError, SplitError) as err:
        print(f"manifest stage failed: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
