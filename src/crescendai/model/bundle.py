"""Backbone + heads as one module, built from params, saved and loaded as state dict + config JSON.

Files: ``<dir>/<name>.pt`` holds a plain state dict (loads with ``torch.load(weights_only=True)``) and
``<dir>/config.json`` holds ``{"kind": "backbone" | "model", "backbone": {...}, "heads": {...}, ...}``
plus any extra metadata the caller passes (kept verbatim). Both are written atomically.
"""

from __future__ import annotations

import os
import pickle
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn as nn

from crescendai.core.config import ModelParams, section_from_dict
from crescendai.core.errors import CrescendAIError
from crescendai.core.files import atomic_write, read_json, write_json
from crescendai.model.backbone import Backbone
from crescendai.model.heads import (
    N_DIMS,
    CornHead,
    LocalHead,
    RegressionHead,
    RowTeacherHead,
    TimbreHead,
    corn_to_score,
    init_to_prior,
)


class ModelFileError(CrescendAIError):
    """A saved model folder lacks config.json or its weights, or names an unknown kind; the message
    names the file and the stage that writes it."""


@dataclass(frozen=True)
class HeadsConfig:
    """Which heads a :class:`Model` carries.

    Attributes:
        regression: the 19-D segment-score head (``out["scores"]``).
        corn: the CORN ordinal head (``out["corn_logits"]``, ``out["corn_scores"]``).
        n_timbre_classes: piano-model / brand classes; 0 = no timbre head (``out["timbre_logits"]``).
        local: the local window head (``out["local"]`` (B, 19), ``out["local_rows"]`` (B, nt, 19)).
        hidden: hidden width of the regression head MLP (0 = linear).
        dropout: dropout before the head projections.
        bounded: the regression head squashes to [1/7, 1] (False: a plain linear output).
        norm: the regression head starts with a LayerNorm (False: raw embedding, e.g. a ridge probe).
    """

    regression: bool = True
    corn: bool = False
    n_timbre_classes: int = 0
    local: bool = False
    hidden: int = 0
    dropout: float = 0.1
    bounded: bool = True
    norm: bool = True


def build_backbone(params: ModelParams) -> Backbone:
    """A freshly initialised :class:`Backbone` from the ``model`` params section."""
    return Backbone(params)


class Model(nn.Module):
    """Backbone + heads. ``forward(x, pad_mask=None) -> dict[str, Tensor]``.

    Keys (present when the head exists): ``embedding`` (B, C), ``scores`` (B, 19), ``corn_logits``
    (B, 19, 6), ``corn_scores`` (B, 19), ``timbre_logits`` (B, n_classes), ``local`` (B, 19),
    ``local_rows`` (B, nt, 19). Input ``x`` (B, 128, 128) contract dB in [-80, 0]; ``pad_mask``
    optional (B, 128) bool.
    """

    def __init__(self, backbone: Backbone | ModelParams, heads: HeadsConfig | None = None) -> None:
        super().__init__()
        self.backbone = backbone if isinstance(backbone, Backbone) else Backbone(backbone)
        self.heads_cfg = h = heads or HeadsConfig()
        C = self.backbone.dim
        self.heads = nn.ModuleDict()
        if h.regression:
            self.heads["regression"] = RegressionHead(C, N_DIMS, h.hidden, h.dropout, h.bounded, h.norm)
        if h.corn:
            self.heads["corn"] = CornHead(C, N_DIMS, dropout=h.dropout)
        if h.n_timbre_classes:
            self.heads["timbre"] = TimbreHead(C, h.n_timbre_classes, h.dropout)
        if h.local:
            self.heads["local"] = LocalHead(C, self.backbone.cfg.grid, N_DIMS, dropout=h.dropout)

    def init_output_prior(self, prior: torch.Tensor) -> None:
        """Start the bounded 19-D heads (regression, local) at ``prior`` [19], the training-label
        mean: see :func:`crescendai.model.heads.init_to_prior`."""
        for key, head in self.heads.items():
            if key in ("regression", "local") and head.bounded:
                init_to_prior(head.net, prior)

    @property
    def cfg(self) -> ModelParams:
        return self.backbone.cfg

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        tokens = self.backbone.tokens(x, pad_mask)  # (B, 1+N, C)
        emb = self.backbone.pool(tokens, pad_mask)  # (B, C)
        out = {"embedding": emb}
        if "regression" in self.heads:
            out["scores"] = self.heads["regression"](emb)  # (B, 19)
        if "corn" in self.heads:
            out["corn_logits"] = self.heads["corn"](emb)  # (B, 19, K-1)
            out["corn_scores"] = corn_to_score(out["corn_logits"])  # (B, 19)
        if "timbre" in self.heads:
            out["timbre_logits"] = self.heads["timbre"](emb)  # (B, n_classes)
        if "local" in self.heads:
            rows = None
            if pad_mask is not None:
                nt = self.cfg.grid[0]
                rows = pad_mask.reshape(pad_mask.shape[0], nt, -1).all(-1)  # (B, nt)
            out["local_rows"], out["local"] = self.heads["local"](tokens, rows)
        return out


def build_model(params: ModelParams, heads: HeadsConfig | None = None) -> Model:
    """A :class:`Model` with a fresh backbone from ``ModelParams`` and the given heads."""
    return Model(build_backbone(params), heads)


# ------------------------------------------------------------------------------------------
# save / load
# ------------------------------------------------------------------------------------------


def save_state_dict(state: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """``torch.save`` to a temp file beside ``path``, then ``os.replace`` (atomic)."""
    with atomic_write(path, "wb") as f:
        torch.save(state, f)


def save_model(
    module: Backbone | Model,
    path: str | os.PathLike[str],
    *,
    config_path: str | os.PathLike[str] | None = None,
    extra: dict[str, Any] | None = None,
) -> None:
    """Write ``module``'s state dict to ``path`` and its config to ``config_path``
    (default ``<path's folder>/config.json``); ``extra`` is merged into the JSON (e.g. metrics, params).
    """
    p = Path(path)
    module = getattr(module, "module", module)  # unwrap DDP
    if isinstance(module, Model):
        cfg: dict[str, Any] = {"kind": "model", "backbone": asdict(module.cfg),
                               "heads": asdict(module.heads_cfg), "weights": p.name}
    elif isinstance(module, Backbone):
        cfg = {"kind": "backbone", "backbone": asdict(module.cfg), "weights": p.name}
    else:
        raise TypeError(f"save_model expects a Backbone or Model, got {type(module).__name__}")
    cfg.update(extra or {})
    save_state_dict({k: v.detach().cpu() for k, v in module.state_dict().items()}, p)
    write_json(config_path or p.with_name("config.json"), cfg)


def _resolve(path: str | os.PathLike[str]) -> tuple[Path, dict[str, Any]]:
    p = Path(path)
    if p.is_dir():
        cfg_path = p / "config.json"
        if not cfg_path.is_file():
            raise ModelFileError(f"{cfg_path}: missing; a saved model folder holds config.json and the .pt file")
        cfg = read_json(cfg_path)
        p = p / cfg.get("weights", "model.pt")
    else:
        cfg_path = p.with_name("config.json")
        if not cfg_path.is_file():
            raise ModelFileError(f"{cfg_path}: missing beside {p}; save with crescendai.model.save_model")
        cfg = read_json(cfg_path)
    if not p.is_file():
        raise ModelFileError(f"{p}: weights file not found (run the stage that writes it, e.g. dvc repro)")
    if cfg.get("kind") not in ("backbone", "model"):
        raise ModelFileError(f"{cfg_path}: 'kind' must be 'backbone' or 'model', got {cfg.get('kind')!r}")
    return p, cfg


def load_model(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Backbone | Model:
    """Load what :func:`save_model` wrote (a ``.pt`` path or its folder); returns it in eval mode."""
    p, cfg = _resolve(path)
    cfg_path = p.with_name("config.json")
    backbone = Backbone(section_from_dict(ModelParams, cfg["backbone"], f"{cfg_path}: backbone"))
    if cfg["kind"] == "backbone":
        module: Backbone | Model = backbone
    else:
        try:
            heads = HeadsConfig(**cfg["heads"])
        except (KeyError, TypeError) as err:
            raise ModelFileError(f"{cfg_path}: 'heads' is missing or has unknown keys ({err}); "
                                 "re-run the stage that wrote it (`uv run dvc repro`)") from None
        module = Model(backbone, heads)
    try:  # a damaged file, or weights that do not fit the config beside them
        module.load_state_dict(torch.load(p, map_location=map_location, weights_only=True))
    except (RuntimeError, OSError, EOFError, pickle.UnpicklingError) as err:
        raise ModelFileError(f"{p}: cannot load the weights ({type(err).__name__}: {err}); "
                             "re-run the stage that wrote it (`uv run dvc repro`)") from None
    return module.eval()


def load_backbone(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> Backbone:
    """The backbone of a saved backbone or model (e.g. ``models/pretrain``) for fine-tuning."""
    m = load_model(path, map_location)
    return m.backbone if isinstance(m, Model) else m


TEACHER_HEAD_FILE: str = "teacher_head.pt"
"""The performance teacher's row head beside a backbone or model (``config.json``'s ``teacher_head``)."""


def save_teacher_head(head: RowTeacherHead, folder: str | os.PathLike[str], fields: list[str],
                      quality: dict[str, Any] | None = None) -> dict[str, Any]:
    """Write ``head``'s state dict to ``<folder>/teacher_head.pt`` (atomically) and return the entry
    that ``config.json`` keeps under ``teacher_head``: weights file, sizes, the output ``fields`` in
    order and the head's measured ``quality`` on held-out recordings."""
    lin = head[1]
    save_state_dict({k: v.detach().cpu() for k, v in head.state_dict().items()}, Path(folder) / TEACHER_HEAD_FILE)
    return {"weights": TEACHER_HEAD_FILE, "dim": lin.in_features // head.n_freq, "n_freq": head.n_freq,
            "fields": list(fields), "quality": dict(quality or {})}


def load_teacher_head(folder: str | os.PathLike[str], entry: dict[str, Any],
                      map_location: str | torch.device = "cpu") -> RowTeacherHead:
    """The row head that :func:`save_teacher_head` wrote into ``folder`` (described by ``entry``), in
    eval mode.

    Raises:
        ModelFileError: the file is missing or does not fit the entry (names the file and the fix).
    """
    p = Path(folder) / entry.get("weights", TEACHER_HEAD_FILE)
    try:
        head = RowTeacherHead(int(entry["dim"]), int(entry["n_freq"]), len(entry["fields"]))
        head.load_state_dict(torch.load(p, map_location=map_location, weights_only=True))
    except (KeyError, TypeError, ValueError, RuntimeError, OSError, EOFError, pickle.UnpicklingError) as err:
        raise ModelFileError(f"{p}: cannot load the teacher head ({type(err).__name__}: {err}); re-run "
                             "`uv run dvc repro`") from None
    return head.eval()
