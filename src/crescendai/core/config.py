"""``params.yaml`` → frozen, validated dataclasses, and the one ``seed_everything``.

Every section of ``params.yaml`` is a frozen dataclass below. Validation is generic: each field may
carry ``metadata`` with ``range=(lo, hi)`` (inclusive) or ``choices=(...)``. A missing key, an
unknown key, a wrong type or an out-of-range value raises :class:`ConfigError` naming the dotted key
(``pretrain.lr``) and what is allowed. YAML is read with ruamel (DVC's own parser), so ``3e-4`` is a
float, exactly as ``dvc exp run -S pretrain.lr=3e-4`` writes it.

Each dataclass is the type its floor uses (no mirrors), and its field defaults are the one place a
default is stated: ``params.yaml`` spells every key out for DVC, and a test keeps the two equal.
Names that belong to a floor's table (SSL objectives, corpus names) are checked by that floor, which
raises :class:`ConfigError` naming the key.

Adding a parameter: add a field to the section's dataclass (with range/choices metadata) and the key
to ``params.yaml``; stages receive it through :func:`load_params`.
"""

from __future__ import annotations

import dataclasses
import os
import random
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

import numpy as np

from crescendai.core.audio import N_MELS, WINDOW_FRAMES
from crescendai.core.errors import CrescendAIError

T = TypeVar("T")


class ConfigError(CrescendAIError):
    """A parameter is missing, unknown, of the wrong type or out of range; the message names it."""


def _rng(lo: float | None, hi: float | None) -> dict[str, Any]:
    return {"range": (lo, hi)}


def _choices(*values: Any) -> dict[str, Any]:
    return {"choices": values}


# --------------------------------------------------------------------------------------------
# sections
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GenerateParams:
    """The embedded synthetic corpus (see ``crescendai.synth``)."""

    n_performers: int = field(default=20, metadata=_rng(2, 10_000))
    n_pieces: int = field(default=15, metadata=_rng(1, 10_000))
    bars_per_segment: int = field(default=4, metadata=_rng(1, 64))
    n_ssl_pieces: int = field(default=120, metadata=_rng(0, 100_000))
    ssl_duration_sec: float = field(default=30.0, metadata=_rng(3.0, 3600.0))
    n_ssl_performers: int = field(default=10, metadata=_rng(1, 10_000))
    n_phone: int = field(default=12, metadata=_rng(0, 10_000))
    rater_noise: float = field(default=0.02, metadata=_rng(0.0, 0.5))
    local_hop_sec: float = field(default=1.0, metadata=_rng(0.1, 10.0))


@dataclass(frozen=True)
class RenderParams:
    """Rendering symbolic corpora to audio through the project's synthesiser."""

    sample_rate: int = field(default=22050, metadata=_choices(22050, 44100))
    n_pianos: int = field(default=7, metadata=_rng(1, 64))
    rt60_min: float = field(default=0.2, metadata=_rng(0.0, 10.0))
    rt60_max: float = field(default=1.2, metadata=_rng(0.0, 10.0))
    noise_db: float = field(default=-60.0, metadata=_rng(-120.0, 0.0))
    trim_silence_db: float = field(default=-60.0, metadata=_rng(-120.0, 0.0))
    workers: int = field(default=2, metadata=_rng(1, 256))
    max_items_asap: int = field(default=0, metadata=_rng(0, 1_000_000))
    """ASAP performances to render, chosen deterministically from the seed (0 = all)."""
    max_duration_sec: float = field(default=0.0, metadata=_rng(0.0, 36_000.0))
    """Crop ASAP performances to this many seconds from the first note (0 = whole; labelled PercePiano
    segments are never cropped)."""


@dataclass(frozen=True)
class CorporaParams:
    """Roots of the real corpora; ``null`` disables a corpus. An enabled root must exist."""

    percepiano: str | None = None
    maestro: str | None = None
    asap: str | None = None
    musicnet: str | None = None
    maps: str | None = None
    ccmusic: str | None = None
    phonepilot: str | None = None
    exclude: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class DataParams:
    """Which corpora play which role: supervised labels, self-supervised audio, out-of-distribution."""

    supervised: str = field(default="synthetic", metadata=_choices("synthetic", "percepiano"))
    ssl: list[str] = field(default_factory=lambda: ["synthetic_ssl"])
    ood: list[str] = field(default_factory=lambda: ["synthetic_phone"])


@dataclass(frozen=True)
class DedupParams:
    """Fingerprinting and leakage rules (``crescendai.data.dedup``)."""

    match_threshold: float = field(default=0.8, metadata=_rng(0.0, 1.0))
    min_overlap_sec: float = field(default=5.0, metadata=_rng(0.0, 3600.0))
    workers: int = field(default=2, metadata=_rng(1, 256))


@dataclass(frozen=True)
class SplitParams:
    """Supervised splits: performer-level (or piece-level) K folds plus a fixed test set."""

    n_folds: int = field(default=4, metadata=_rng(2, 20))
    test_fraction: float = field(default=0.2, metadata=_rng(0.0, 0.9))
    group_by: str = field(default="performer", metadata=_choices("performer", "piece", "passage"))


@dataclass(frozen=True)
class PreprocessParams:
    """Audio → contract windows cache."""

    hop_sec: float = field(default=1.0, metadata=_rng(0.05, 30.0))
    min_duration_sec: float = field(default=1.0, metadata=_rng(0.0, 60.0))
    workers: int = field(default=2, metadata=_rng(1, 256))
    dtype: str = field(default="float16", metadata=_choices("float16", "float32"))
    probe_items: int = field(default=40, metadata=_rng(1, 100_000))


@dataclass(frozen=True)
class ModelParams:
    """The ultra-small AST backbone (``crescendai.model``); saved beside every model as ``backbone``."""

    patch: int = field(default=16, metadata=_rng(4, 128))
    dim: int = field(default=256, metadata=_rng(16, 4096))
    depth: int = field(default=3, metadata=_rng(1, 48))
    heads: int = field(default=4, metadata=_rng(1, 64))
    dropout: float = field(default=0.3, metadata=_rng(0.0, 0.9))
    drop_path: float = field(default=0.2, metadata=_rng(0.0, 0.9))
    pooling: str = field(default="mean", metadata=_choices("cls", "mean"))
    mlp_ratio: int = field(default=4, metadata=_rng(1, 16))

    @property
    def grid(self) -> tuple[int, int]:
        """(time rows, mel columns) of the patch grid over the 128 × 128 window, e.g. (8, 8)."""
        return WINDOW_FRAMES // self.patch, N_MELS // self.patch

    @property
    def n_patches(self) -> int:
        return self.grid[0] * self.grid[1]


@dataclass(frozen=True)
class PretrainParams:
    """Self-supervised pretraining of the backbone."""

    objective: str = "performance"
    """A name of ``crescendai.learn``'s objective table (checked there: the table is the one list)."""
    epochs: int = field(default=20, metadata=_rng(0, 100_000))
    batch_size: int = field(default=64, metadata=_rng(2, 65_536))
    lr: float = field(default=3e-4, metadata=_rng(0.0, 1.0))
    weight_decay: float = field(default=0.05, metadata=_rng(0.0, 10.0))
    temperature: float = field(default=0.1, metadata=_rng(1e-4, 10.0))
    device: str = field(default="auto", metadata=_choices("auto", "cpu", "cuda"))
    patience: int = field(default=5, metadata=_rng(0, 10_000))
    max_steps: int = field(default=600, metadata=_rng(0, 10_000_000))
    time_budget_sec: float = field(default=0.0, metadata=_rng(0.0, 1e7))
    warmup_steps: int = field(default=20, metadata=_rng(0, 1_000_000))
    eval_every: int = field(default=50, metadata=_rng(1, 1_000_000))
    val_fraction: float = field(default=0.1, metadata=_rng(0.0, 0.5))
    crops_per_recording: int = field(default=2, metadata=_rng(1, 16))
    proj_dim: int = field(default=128, metadata=_rng(8, 4096))
    mask_ratio: float = field(default=0.4, metadata=_rng(0.05, 0.95))
    ema_base: float = field(default=0.996, metadata=_rng(0.0, 1.0))
    amp: str = field(default="auto", metadata=_choices("auto", "on", "off"))
    probe_alpha: float = field(default=10.0, metadata=_rng(0.0, 1e6))
    probe_k: int = field(default=5, metadata=_rng(1, 1000))
    # the performance teacher's window statistics of the playing (MIDI performance features per window)
    # as extra pooled targets; 0 = off (not built: measured to lower the probe's median r, see README)
    playing_weight: float = field(default=0.0, metadata=_rng(0.0, 100.0))


@dataclass(frozen=True)
class FinetuneParams:
    """The supervised recipe shared by ``finetune_ssl`` and ``finetune_scratch``."""

    # probe: frozen backbone, a ridge head on the segment-mean window embedding (the CPU default);
    # full: end-to-end fine-tuning with the losses below (for GPUs). probe reads only mode and device.
    mode: str = field(default="probe", metadata=_choices("probe", "full"))
    epochs: int = field(default=8, metadata=_rng(1, 100_000))
    batch_size: int = field(default=64, metadata=_rng(1, 65_536))
    lr: float = field(default=1e-3, metadata=_rng(0.0, 1.0))
    weight_decay: float = field(default=0.05, metadata=_rng(0.0, 10.0))
    pooling: str = field(default="median", metadata=_choices("median", "trimmed_mean", "mean"))
    device: str = field(default="auto", metadata=_choices("auto", "cpu", "cuda"))
    patience: int = field(default=5, metadata=_rng(0, 10_000))
    trim: float = field(default=0.2, metadata=_rng(0.0, 0.45))  # trimmed_mean: fraction cut per end
    loss: str = field(default="mse", metadata=_choices("mse", "mae"))
    corr_weight: float = field(default=0.2, metadata=_rng(0.0, 100.0))  # Pearson surrogate
    corn_weight: float = field(default=0.0, metadata=_rng(0.0, 100.0))  # 0 = no CORN head
    timbre_weight: float = field(default=0.0, metadata=_rng(0.0, 100.0))  # 0 = no timbre head
    local_weight: float = field(default=0.5, metadata=_rng(0.0, 100.0))  # 0 = no local head
    smooth_weight: float = field(default=0.1, metadata=_rng(0.0, 100.0))
    proxy_weight: float = field(default=0.05, metadata=_rng(0.0, 100.0))
    backbone_lr_mult: float = field(default=1.0, metadata=_rng(0.0, 10.0))
    warmup_epochs: int = field(default=1, metadata=_rng(0, 1000))
    max_windows_per_segment: int = field(default=4, metadata=_rng(1, 10_000))
    selection: str = field(default="none", metadata=_choices("fold", "none"))
    select_metric: str = field(default="median_r", metadata=_choices("median_r", "mse"))
    time_budget_sec: float = field(default=0.0, metadata=_rng(0.0, 1e7))  # whole stage; 0 = none
    head_hidden: int = field(default=0, metadata=_rng(0, 4096))
    amp: bool = True  # bf16 autocast on CUDA


@dataclass(frozen=True)
class EvalParams:
    """Evaluation: bootstrap confidence intervals; the ridge peer baseline on the same folds."""

    n_bootstrap: int = field(default=1000, metadata=_rng(10, 1_000_000))
    ci: float = field(default=0.95, metadata=_rng(0.5, 0.999))
    ridge: bool = True


VARIANTS: tuple[str, ...] = ("ssl", "scratch", "fusion")
"""The fitted variants the tutor may ship (``models/finetune_<variant>``, ``crescendai.evaluate.variants``):
the frozen pretrained backbone + probe head, the same backbone at random init + the same head, and the
pretrained embedding ⊕ the hand-crafted audio window features. Ties under ``auto`` go to the first."""


@dataclass(frozen=True)
class CalibrateParams:
    """Isotonic calibration per dimension on validation predictions."""

    n_bins: int = field(default=10, metadata=_rng(2, 1000))
    # the tutor's model: "auto" = the variant with the highest CV (out-of-fold) median r
    variant: str = field(default="auto", metadata=_choices("auto", *VARIANTS))


@dataclass(frozen=True)
class TutorParams:
    """Analysis of one recording by ``crescendai analyze``."""

    hop_sec: float = field(default=1.0, metadata=_rng(0.1, 30.0))
    mc_samples: int = field(default=20, metadata=_rng(1, 1000))
    min_confidence: float = field(default=0.6, metadata=_rng(0.0, 1.0))
    min_duration_sec: float = field(default=3.0, metadata=_rng(0.5, 60.0))
    batch_size: int = field(default=32, metadata=_rng(1, 4096))
    trim: float = field(default=0.1, metadata=_rng(0.0, 0.45))
    rel_margin: float = field(default=0.07, metadata=_rng(0.0, 1.0))
    max_lines: int = field(default=6, metadata=_rng(1, 100))
    min_score_match: float = field(default=0.5, metadata=_rng(0.0, 1.0))
    min_reliable_r: float = field(default=0.2, metadata=_rng(-1.0, 1.0))
    """Dimensions whose out-of-fold validation r (stored with the calibration) is below this are shown
    as unreliable and give no feedback, strengths or weaknesses; -1 keeps every dimension."""


@dataclass(frozen=True)
class Params:
    """All of ``params.yaml``. ``seed`` drives Python, NumPy and torch (see :func:`seed_everything`)."""

    seed: int = field(default=20261125, metadata=_rng(0, 2**32 - 1))
    generate: GenerateParams = field(default_factory=GenerateParams)
    render: RenderParams = field(default_factory=RenderParams)
    corpora: CorporaParams = field(default_factory=CorporaParams)
    data: DataParams = field(default_factory=DataParams)
    dedup: DedupParams = field(default_factory=DedupParams)
    split: SplitParams = field(default_factory=SplitParams)
    preprocess: PreprocessParams = field(default_factory=PreprocessParams)
    model: ModelParams = field(default_factory=ModelParams)
    pretrain: PretrainParams = field(default_factory=PretrainParams)
    finetune: FinetuneParams = field(default_factory=FinetuneParams)
    eval: EvalParams = field(default_factory=EvalParams)
    calibrate: CalibrateParams = field(default_factory=CalibrateParams)
    tutor: TutorParams = field(default_factory=TutorParams)


# --------------------------------------------------------------------------------------------
# loading and validation
# --------------------------------------------------------------------------------------------


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", str(tp))


def _convert(value: Any, tp: Any, key: str) -> Any:
    """Check ``value`` against the annotation ``tp`` and return it (ints widen to float)."""
    origin = get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{key}: invalid value {value!r}")
    if origin is Literal:
        if value not in get_args(tp):
            raise ConfigError(f"{key}: {value!r} is not one of {list(get_args(tp))}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {type(value).__name__} {value!r}")
        (item_tp,) = get_args(tp) or (Any,)
        return [_convert(v, item_tp, f"{key}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping (section), got {value!r}")
        return _build(tp, value, key)
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return int(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise ConfigError(f"{key}: unsupported parameter type {_type_name(tp)}")


def _check_metadata(value: Any, meta: Any, key: str) -> None:
    if value is None:
        return
    if "choices" in meta and value not in meta["choices"]:
        raise ConfigError(f"{key}: {value!r} is not one of {list(meta['choices'])}")
    if "range" in meta:
        lo, hi = meta["range"]
        if (lo is not None and value < lo) or (hi is not None and value > hi):
            raise ConfigError(f"{key}: {value!r} is out of range [{lo}, {hi}]")


def _build(cls: type, raw: dict[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - set(fields))
    if unknown:
        where = f"{prefix}." if prefix else ""
        raise ConfigError(
            f"unknown parameter(s) {', '.join(where + u for u in unknown)}; "
            f"valid keys here: {', '.join(where + k for k in fields)}"
        )
    kwargs: dict[str, Any] = {}
    for name, f in fields.items():
        key = f"{prefix}.{name}" if prefix else name
        if name not in raw:
            raise ConfigError(f"missing parameter {key} in params.yaml (add it; see config.py)")
        value = _convert(raw[name], hints[name], key)
        _check_metadata(value, f.metadata, key)
        kwargs[name] = value
    return cls(**kwargs)


def _check_render(r: RenderParams, where: str) -> None:
    if r.rt60_min > r.rt60_max:
        raise ConfigError(f"{where}.rt60_min ({r.rt60_min}) must be <= {where}.rt60_max ({r.rt60_max})")


def _check_model(m: ModelParams, where: str) -> None:
    if m.dim % m.heads:
        raise ConfigError(f"{where}.dim ({m.dim}) must be divisible by {where}.heads ({m.heads})")
    if WINDOW_FRAMES % m.patch or N_MELS % m.patch:
        raise ConfigError(f"{where}.patch ({m.patch}) must divide the {WINDOW_FRAMES}x{N_MELS} window")


_SECTION_CHECKS: dict[type, Callable[[Any, str], None]] = {RenderParams: _check_render, ModelParams: _check_model}
"""Rules between the keys of one section, beyond each key's own range or choices."""


def section_from_dict(cls: type[T], raw: dict[str, Any], where: str) -> T:
    """Validate one section (e.g. the ``backbone`` block of a saved model's config.json) into
    ``cls``; errors name ``<where>.<key>``."""
    value = _build(cls, raw, where)
    if cls in _SECTION_CHECKS:
        _SECTION_CHECKS[cls](value, where)
    return value


def params_from_dict(raw: dict[str, Any]) -> Params:
    """Validate a plain mapping (as parsed from ``params.yaml``) into :class:`Params`."""
    if not isinstance(raw, dict):
        raise ConfigError("params.yaml must be a mapping of sections")
    params = _build(Params, raw, "")
    for f in dataclasses.fields(Params):
        section = getattr(params, f.name)
        if type(section) in _SECTION_CHECKS:
            _SECTION_CHECKS[type(section)](section, f.name)
    return params


def load_params(path: str | os.PathLike[str] = "params.yaml") -> Params:
    """Read and validate ``params.yaml``.

    Raises:
        ConfigError: the file is missing or not YAML, or any key is missing, unknown, mistyped or
            out of range. The message names the dotted key.
    """
    from ruamel.yaml import YAML, YAMLError

    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: parameter file not found (run from the repository root)")
    try:
        raw = YAML(typ="safe", pure=True).load(p.read_text())
    except YAMLError as err:
        raise ConfigError(f"{p}: not valid YAML: {err}") from None
    return params_from_dict(_plain(raw))


def _plain(obj: Any) -> Any:
    """ruamel containers → plain dict/list."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_plain(v) for v in obj]
    return obj


def params_to_dict(params: Params) -> dict[str, Any]:
    """The inverse of :func:`params_from_dict` (for tests and tiny-params fixtures)."""
    return dataclasses.asdict(params)


def seed_everything(seed: int) -> None:
    """Seed Python's ``random``, NumPy's global RNG and torch (CPU and CUDA); request
    deterministic torch kernels where they exist (warn-only, so rare ops still run)."""
    import torch

    random.seed(seed)
    np.random.seed(seed % 2**32)  # noqa: NPY002 - seeding the legacy global RNG is the point
    torch.manual_seed(seed)
    if torch.cuda.is_available():
        torch.cuda.manual_seed_all(seed)
    torch.use_deterministic_algorithms(True, warn_only=True)
