"""Corpus name → reader, and which corpora are enabled by ``params.yaml``.

Synthetic corpora (``synthetic``, ``synthetic_ssl``, ``synthetic_phone``) are always available (the
generate and render stages make them); a real corpus is enabled by setting ``corpora.<name>`` to its
root. The roles come from ``data.supervised`` / ``data.ssl`` / ``data.ood``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from crescendai.core.files import write_json
from crescendai.data.corpora.asap import read_asap
from crescendai.data.corpora.ccmusic import read_ccmusic
from crescendai.data.corpora.common import CorpusError, ReadResult
from crescendai.data.corpora.maestro import read_maestro
from crescendai.data.corpora.maps import read_maps
from crescendai.data.corpora.musicnet import read_musicnet
from crescendai.data.corpora.percepiano import read_percepiano
from crescendai.data.corpora.phonepilot import read_phonepilot
from crescendai.data.corpora.synthetic import SYNTHETIC_CORPORA, read_synthetic
from crescendai.data.manifest import write_manifest
from crescendai.data.splits import assign_splits

log = logging.getLogger(__name__)

Reader = Callable[[str, Path, list[str]], ReadResult]
"""(root from ``corpora.<name>``, folder of its rendered audio, ``corpora.exclude``) → records."""

READERS: dict[str, Reader] = {
    "percepiano": lambda root, audio, exclude: read_percepiano(root, audio, exclude=exclude),
    "maestro": lambda root, _audio, exclude: read_maestro(root, exclude=exclude),
    "asap": lambda root, audio, exclude: read_asap(root, audio, exclude=exclude),
    "musicnet": lambda root, _audio, exclude: read_musicnet(root, exclude=exclude),
    "maps": lambda root, _audio, exclude: read_maps(root, exclude=exclude),
    "ccmusic": lambda root, _audio, exclude: read_ccmusic(root, exclude=exclude),
    "phonepilot": lambda root, _audio, exclude: read_phonepilot(root, exclude=exclude),
}
"""The real corpora: adding one is a reader module, a line here and its ``corpora.<name>`` root."""

REAL_CORPORA: tuple[str, ...] = tuple(READERS)
ALL_CORPORA: tuple[str, ...] = (*SYNTHETIC_CORPORA, *REAL_CORPORA)


def roles(data_params) -> dict[str, str]:
    """corpus → role ("supervised", "ssl", "ood") from the ``data`` section.

    Raises:
        CorpusError: a corpus is given two roles or is unknown.
    """
    out: dict[str, str] = {data_params.supervised: "supervised"}
    for role in ("ssl", "ood"):
        for c in getattr(data_params, role):
            if c in out:
                raise CorpusError(f"data: corpus {c!r} has two roles ({out[c]} and {role}); give it one")
            out[c] = role
    unknown = [c for c in out if c not in ALL_CORPORA]
    if unknown:
        raise CorpusError(f"data: unknown corpus name(s) {unknown}; valid: {list(ALL_CORPORA)}")
    return out


def read_corpus(
    name: str,
    corpora_params,
    *,
    generated_root: str | Path = "data/generated",
    audio_root: str | Path = "data/audio",
) -> ReadResult:
    """Read corpus ``name`` with its reader (roots from the ``corpora`` section).

    Raises:
        CorpusError: the corpus is unknown, not enabled (root null) or malformed.
    """
    exclude = list(corpora_params.exclude)
    if name in SYNTHETIC_CORPORA:
        return read_synthetic(name, generated_root, audio_root, exclude=exclude)
    if name not in REAL_CORPORA:
        raise CorpusError(f"unknown corpus {name!r}; valid: {list(ALL_CORPORA)}")
    root = getattr(corpora_params, name)
    if root is None:
        raise CorpusError(f"corpus {name!r} is used in the data section but corpora.{name} is null; "
                          f"set it to the corpus root (e.g. -S corpora.{name}=/path/to/{name})")
    return READERS[name](root, Path(audio_root) / name, exclude)


def write_manifests(params, out: str | Path = "data/manifests", *, generated_root: str | Path = "data/generated",
                    audio_root: str | Path = "data/audio") -> dict:
    """Read every corpus that has a role in ``params.data``, assign splits (``params.split``) and
    write ``<out>/<corpus>.jsonl`` plus ``<out>/summary.json``; returns the summary.

    Raises:
        CorpusError: a corpus is unknown, not enabled, malformed or empty (the message names it).
        SplitError: the split parameters cannot be met.
    """
    out = Path(out)
    role_of = roles(params.data)
    for c in REAL_CORPORA:
        if getattr(params.corpora, c) is not None and c not in role_of:
            log.warning("corpora.%s is set but the corpus has no role in `data`; not read", c)
    summary: dict = {"corpora": {}, "excluded": []}
    for corpus, role in role_of.items():
        res = read_corpus(corpus, params.corpora, generated_root=generated_root, audio_root=audio_root)
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
        log.info("%s (%s): %s", corpus, role, summary["corpora"][corpus])
    write_json(out / "summary.json", summary)
    return summary
