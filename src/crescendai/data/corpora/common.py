"""Shared helpers for corpus readers: root checks, audio facts, explicit exclusions.

Every reader turns an upstream layout into :class:`~crescendai.data.manifest.ManifestRecord` s with
``split="train"`` and ``fold=None``; :func:`crescendai.data.splits.assign_splits` sets the role.
A file that cannot be read fails with :class:`CorpusError` naming it, unless it is listed in
``corpora.exclude`` (matched against the file's path relative to the corpus root, its file name or its
stem); every exclusion is returned in :attr:`ReadResult.excluded` and summarised in the log
(:meth:`ReadResult.log_exclusions`), never silent.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from crescendai.core.errors import CrescendAIError
from crescendai.data.manifest import ManifestRecord

log = logging.getLogger(__name__)

AUDIO_EXTENSIONS: tuple[str, ...] = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aiff", ".aif")


class CorpusError(CrescendAIError):
    """A corpus root or one of its files is missing or malformed; the message says what was expected
    where and what to do."""


@dataclass
class ReadResult:
    """What a reader returns: the records and every item left out, with the reason."""

    records: list[ManifestRecord] = field(default_factory=list)
    excluded: list[dict[str, str]] = field(default_factory=list)

    def exclude(self, item: str, reason: str) -> None:
        log.debug("excluded %s: %s", item, reason)
        self.excluded.append({"item": item, "reason": reason})

    def log_exclusions(self, corpus: str, where: str) -> None:
        """One warning per reason: how many items, the first three, and where the full list is."""
        by_reason: dict[str, list[str]] = {}
        for e in self.excluded:
            by_reason.setdefault(e["reason"], []).append(e["item"])
        for reason, items in by_reason.items():
            log.warning("%s: %d item(s) excluded (%s): %s%s; full list in %s", corpus, len(items), reason,
                        ", ".join(items[:3]), " …" if len(items) > 3 else "", where)


def require_dir(root: str | os.PathLike[str], corpus: str, expected: str) -> Path:
    """Return ``root`` as a Path, or raise naming the corpus and the expected layout."""
    p = Path(root)
    if not p.is_dir():
        raise CorpusError(
            f"corpora.{corpus}: root {p} does not exist or is not a folder; expected {expected}. "
            f"Set corpora.{corpus} in params.yaml to the corpus checkout, or null to disable it."
        )
    return p


def require_file(path: Path, corpus: str, expected: str) -> Path:
    if not path.is_file():
        raise CorpusError(f"corpora.{corpus}: {path} not found; expected {expected}")
    return path


def is_excluded(path: Path, root: Path, exclude: Iterable[str]) -> bool:
    """True when ``path`` is named by an entry of ``exclude`` (relative path, file name or stem)."""
    ex = set(exclude)
    if not ex:
        return False
    try:
        rel = path.relative_to(root).as_posix()
    except ValueError:
        rel = path.as_posix()
    return bool({rel, path.as_posix(), path.name, path.stem} & ex)


def audio_facts(path: Path, corpus: str) -> tuple[float, int]:
    """(duration_sec, native sample_rate) from the file header.

    Raises:
        CorpusError: unreadable, empty or corrupt file (names the file and the exclusion param).
    """
    import soundfile as sf

    if not path.is_file():
        raise CorpusError(f"corpora.{corpus}: audio file {path} not found")
    try:
        info = sf.info(str(path))
    except Exception as err:
        raise CorpusError(
            f"corpora.{corpus}: {path} cannot be read as audio ({err}); re-export it or add it to "
            "corpora.exclude"
        ) from None
    if info.frames <= 0 or info.samplerate <= 0:
        raise CorpusError(f"corpora.{corpus}: {path} is empty (0 samples); add it to corpora.exclude")
    return info.frames / info.samplerate, int(info.samplerate)


def rel(path: Path) -> str:
    """``path`` relative to the working directory when inside it (manifests stay portable), else absolute."""
    p = Path(os.path.abspath(path))
    try:
        return p.relative_to(Path.cwd()).as_posix()
    except ValueError:
        return p.as_posix()


def load_render_index(audio_dir: Path) -> dict[str, dict]:
    """``render.jsonl`` of a rendered corpus: name → record (empty when the file is absent)."""
    from crescendai.core.files import read_jsonl

    f = audio_dir / "render.jsonl"
    if not f.is_file():
        return {}
    return {str(r["name"]): r for r in read_jsonl(f)}
