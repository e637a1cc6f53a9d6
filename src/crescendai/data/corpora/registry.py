"""Corpus name → reader, and which corpora are enabled by ``params.yaml``.

Synthetic corpora (``synthetic``, ``synthetic_ssl``, ``synthetic_phone``) are always available (the
generate and render stages make them); a real corpus is enabled by setting ``corpora.<name>`` to its
root. The roles come from ``data.supervised`` / ``data.ssl`` / ``data.ood``.
"""

from __future__ import annotations

from pathlib import Path

from crescendai.data.corpora.common import CorpusError, ReadResult
from crescendai.data.corpora.synthetic import SYNTHETIC_CORPORA, read_synthetic

REAL_CORPORA: tuple[str, ...] = ("percepiano", "maestro", "asap", "musicnet", "maps", "ccmusic", "phonepilot")
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
    audio_dir = Path(audio_root) / name
    if name == "percepiano":
        from crescendai.data.corpora.percepiano import read_percepiano

        return read_percepiano(root, audio_dir, exclude=exclude)
    if name == "asap":
        from crescendai.data.corpora.asap import read_asap

        return read_asap(root, audio_dir, exclude=exclude)
    if name == "maestro":
        from crescendai.data.corpora.maestro import read_maestro

        return read_maestro(root, exclude=exclude)
    if name == "musicnet":
        from crescendai.data.corpora.musicnet import read_musicnet

        return read_musicnet(root, exclude=exclude)
    if name == "maps":
        from crescendai.data.corpora.maps import read_maps

        return read_maps(root, exclude=exclude)
    if name == "ccmusic":
        from crescendai.data.corpora.ccmusic import read_ccmusic

        return read_ccmusic(root, exclude=exclude)
    from crescendai.data.corpora.phonepilot import read_phonepilot

    return read_phonepilot(root, exclude=exclude)
