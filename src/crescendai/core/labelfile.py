"""PercePiano's label files and segment names, read and written in the upstream format.

Label file (``labels/label_2round_mean_reg_19_with0_rm_highstd0.json``): a JSON object
``name → [20 floats]`` — the 19 dimensions in :mod:`crescendai.core.dims` order (each in [1/7, 1]), then
the pianist index as the 20th value. The std file has the same shape (19 rater stds, then the index).

Segment name: ``<work>_<N>bars_<PLAYER>_<SEGMENT>``, e.g. ``Schubert_D960_mv3_8bars_3_15`` → work
``Schubert_D960_mv3``, 8 bars, player ``"3"``, segment 15. Players ``Score``/``Score2`` are deadpan
renditions of the score (:attr:`SegmentName.is_deadpan`).
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from crescendai.core.dims import N_DIMS
from crescendai.core.errors import CrescendAIError

MEAN_FILE: str = "label_2round_mean_reg_19_with0_rm_highstd0.json"
STD_FILE: str = "label_2round_std_reg_19_with0_rm_highstd0.json"

_NAME_RE = re.compile(r"^(?P<work>.+)_(?P<bars>\d+)bars_(?P<player>[^_]+)_(?P<segment>\d+)$")


class LabelFileError(CrescendAIError):
    """A label file or segment name is malformed; the message names the file/name and the problem."""


@dataclass(frozen=True)
class SegmentName:
    """The parts of a PercePiano segment name."""

    work: str
    bars: int
    player: str
    segment: int

    @property
    def is_deadpan(self) -> bool:
        """True for the ``Score``/``Score2`` deadpan renditions."""
        return self.player.lower().startswith("score")

    def __str__(self) -> str:
        return format_name(self.work, self.bars, self.player, self.segment)


def parse_name(name: str) -> SegmentName:
    """Split ``<work>_<N>bars_<PLAYER>_<SEGMENT>`` (a ``.mid`` suffix or folder is ignored).

    Raises:
        LabelFileError: the name does not follow the pattern.
    """
    stem = Path(name).name
    if stem.endswith(".mid"):
        stem = stem[:-4]
    m = _NAME_RE.match(stem)
    if not m:
        raise LabelFileError(
            f"{name!r} is not a PercePiano segment name <work>_<N>bars_<PLAYER>_<SEGMENT> "
            "(e.g. Schubert_D960_mv3_8bars_3_15)"
        )
    return SegmentName(m["work"], int(m["bars"]), m["player"], int(m["segment"]))


def format_name(work: str, bars: int, player: str | int, segment: int) -> str:
    """Build a segment name; ``work`` may contain underscores, ``player`` may not."""
    player = str(player)
    if "_" in player or not player:
        raise LabelFileError(f"player {player!r} must be non-empty and contain no underscore")
    return f"{work}_{int(bars)}bars_{player}_{int(segment)}"


def read_labels(path: str | os.PathLike[str]) -> dict[str, list[float]]:
    """Read a label file: name → 20 floats (19 values, then the pianist index).

    Raises:
        LabelFileError: not JSON, not an object, or an entry without 20 numbers.
    """
    p = Path(path)
    try:
        raw = json.loads(p.read_text())
    except FileNotFoundError:
        raise LabelFileError(f"{p}: label file not found") from None
    except json.JSONDecodeError as err:
        raise LabelFileError(f"{p}: not valid JSON ({err})") from None
    if not isinstance(raw, dict):
        raise LabelFileError(f"{p}: expected a JSON object name → [20 floats]")
    out: dict[str, list[float]] = {}
    for name, values in raw.items():
        if not isinstance(values, list) or len(values) != N_DIMS + 1:
            raise LabelFileError(f"{p}: entry {name!r} must be a list of {N_DIMS + 1} numbers")
        try:
            out[name] = [float(v) for v in values]
        except (TypeError, ValueError):
            raise LabelFileError(f"{p}: entry {name!r} has a non-numeric value") from None
    return out


def write_labels(
    path: str | os.PathLike[str],
    labels: Mapping[str, Sequence[float]],
    pianist_index: Mapping[str, int],
) -> None:
    """Atomically write ``name → 19 values + [pianist index]`` in PercePiano's format.

    Raises:
        LabelFileError: a name has not 19 values or no pianist index.
    """
    from crescendai.core.files import write_json

    obj: dict[str, list[float]] = {}
    for name, values in labels.items():
        values = [float(v) for v in values]
        if len(values) != N_DIMS:
            raise LabelFileError(f"{path}: {name!r} has {len(values)} values, expected {N_DIMS}")
        if name not in pianist_index:
            raise LabelFileError(f"{path}: no pianist index for {name!r}")
        obj[name] = values + [float(pianist_index[name])]
    write_json(path, obj)


def split_entry(values: Sequence[float]) -> tuple[list[float], int]:
    """A 20-float entry → (19 dimension values, pianist index)."""
    return [float(v) for v in values[:N_DIMS]], int(round(values[N_DIMS]))
