"""The trained tutor bundle (``models/tutor/``): a scorer over the model and its calibration.

A bundle folder holds ``model.pt`` (+ ``config.json``), written by ``crescendai.model.save_model``,
``calibration.json``, written by ``crescendai.evaluate.calibration.Calibrator.save``, and
``domain.npz``, the description of the training windows for the domain check
(``crescendai.evaluate.domain.DomainModel.save``; a bundle without it is analysed unchecked).
:func:`load_bundle` turns it into a :class:`Bundle`; every way the folder can be unusable is a
:class:`ModelError` naming the file and the fix.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np

from crescendai.core.errors import CrescendAIError
from crescendai.evaluate.domain import DomainModel
from crescendai.tutor.scorer import Scorer, TorchScorer

log = logging.getLogger(__name__)


class ModelError(CrescendAIError):
    """The model bundle is missing or unusable; the message names the folder and the fix."""


class Calibration(Protocol):
    """Per-dimension monotone map from raw to calibrated scores (both [N, 19]), with the model's
    validation record when the calibrate stage measured it: ``error`` [19] (out-of-fold RMSE, label
    scale) and ``r`` [19] (out-of-fold Pearson r), else None."""

    error: np.ndarray | None
    r: np.ndarray | None

    def transform(self, scores: np.ndarray) -> np.ndarray: ...


class IdentityCalibration:
    """No calibration (a bundle without ``calibration.json``, and tests); no validation record."""

    error: np.ndarray | None = None
    r: np.ndarray | None = None

    def transform(self, scores: np.ndarray) -> np.ndarray:
        return np.asarray(scores, dtype=np.float32)


@dataclass
class Bundle:
    """A loaded tutor bundle: the scorer, its calibration, the folder it came from (``path``),
    ``info`` (``dropout``: the head's dropout probability, ``n_params``: parameter count) and
    ``domain``, the training description of the domain check (None: no check)."""

    scorer: Scorer
    calibration: Calibration
    path: str
    info: dict = field(default_factory=dict)
    domain: DomainModel | None = None
    trained_on: list[str] = field(default_factory=list)
    """The corpora its 19 scores were learned from (``config.json``'s ``trained_on``; [] = not recorded)."""
    heard_quality: dict = field(default_factory=dict)
    """The teacher row head's measured quality on held-out recordings ({} without a head)."""


def load_bundle(path: str | os.PathLike[str], *, device: str = "cpu", seed: int = 0) -> Bundle:
    """Load a bundle folder (``model.pt``, ``config.json``, ``calibration.json``, ``domain.npz``,
    ``teacher_head.pt``: the row head that tells what was played where, and ``fusion_head.npz``: the
    head over the embedding ⊕ the window features of the fusion variant, when the bundle has them)
    onto ``device``; ``seed`` seeds the scorer's MC-dropout draws
    (:class:`~crescendai.tutor.scorer.TorchScorer`).

    A missing ``calibration.json`` gives :class:`IdentityCalibration` (logged as a warning); a
    missing ``domain.npz`` gives no domain check (the report says so).

    Raises:
        ModelError: the folder or ``model.pt`` is missing; ``model.pt`` cannot be loaded or is not a
            model with a score head; ``calibration.json`` or ``domain.npz`` cannot be read, or
            ``domain.npz`` was fitted for a model of another width.
    """
    from crescendai.core.files import read_json
    from crescendai.model import load_model, load_teacher_head

    p = Path(path)
    model_file = p / "model.pt"
    if not model_file.is_file():
        raise ModelError(
            f"{p}: no trained model here (model.pt missing); run `uv run dvc repro` first "
            "or pass --model DIR pointing at a tutor bundle"
        )
    try:
        model = load_model(p, map_location=device)
    except CrescendAIError as err:  # damaged, or from another version; a bug keeps its traceback
        raise ModelError(f"{model_file}: cannot load the model ({err}); re-run `uv run dvc repro` to "
                         "rebuild it") from None
    try:
        backbone, head, info = split_model(model)
    except ModelError as err:
        raise ModelError(f"{model_file}: {err}; pass --model DIR pointing at a tutor bundle "
                         "(models/tutor)") from None
    calibration: Calibration = IdentityCalibration()
    cal_path = p / "calibration.json"
    if cal_path.is_file():
        calibration = load_calibration(cal_path)
    else:
        log.warning("%s missing: scores are uncalibrated", cal_path)
    domain = None
    if (p / "domain.npz").is_file():
        domain = load_domain(p / "domain.npz", getattr(backbone, "dim", None))
    else:
        log.info("%s missing: no domain check", p / "domain.npz")
    config = read_json(p / "config.json") if (p / "config.json").is_file() else {}
    entry = config.get("teacher_head") or None
    teacher = load_teacher_head(p, entry, map_location=device) if entry else None
    window_features = None
    if config.get("fusion_head"):  # the fusion variant: its head reads the embedding ⊕ window features
        head, window_features = fused_scoring(p, config["fusion_head"], getattr(backbone, "dim", None))
    scorer = TorchScorer(backbone, head, device=device, seed=seed,
                         fallback_dropout=float(info.get("dropout", 0.1) or 0.1), teacher_head=teacher,
                         window_features=window_features)
    return Bundle(scorer=scorer, calibration=calibration, path=str(p), info=info, domain=domain,
                  trained_on=[str(c) for c in config.get("trained_on", [])],
                  heard_quality=dict(entry.get("quality", {})) if entry else {})


def fused_scoring(folder: Path, entry: dict, embedding_dim: int | None):
    """(head, window-feature function) of a fusion bundle: a torch ``Linear`` over
    ``[embedding ⊕ window features]`` from ``fusion_head.npz``, and
    :func:`crescendai.evaluate.audio_features.window_features`.

    Raises:
        ModelError: the file is missing, unreadable or fitted for another model (names it and the fix).
    """
    import torch

    from crescendai.evaluate.audio_features import window_features
    from crescendai.evaluate.fusion import load_fused_head

    try:
        fused = load_fused_head(folder, entry, embedding_dim)
    except ValueError as err:
        raise ModelError(str(err)) from None
    head = torch.nn.Linear(fused.weight.shape[1], fused.weight.shape[0])
    with torch.no_grad():
        head.weight.copy_(torch.from_numpy(fused.weight))
        head.bias.copy_(torch.from_numpy(fused.bias))
    return head.eval(), window_features


def load_domain(path: Path, embedding_dim: int | None = None) -> DomainModel:
    """The training description stored at ``path`` (``domain.npz``); ``embedding_dim`` the
    model's embedding width, checked when given.

    Raises:
        ModelError: not a domain file, or fitted for another model (names the file and the fix).
    """
    try:
        dm = DomainModel.load(path)
    except ValueError as err:
        raise ModelError(str(err)) from None
    if embedding_dim is not None and dm.embedding_dim not in (None, int(embedding_dim)):
        raise ModelError(f"{path}: describes embeddings of width {dm.embedding_dim} but the model's are "
                         f"{embedding_dim} wide; re-run `dvc repro calibrate`")
    return dm


def load_calibration(path: Path) -> Calibration:
    """The calibrator stored at ``path`` (``calibration.json``).

    Raises:
        ModelError: the file is not a calibration file (names it and says to re-run the stage).
    """
    from crescendai.evaluate.calibration import Calibrator

    try:
        return Calibrator.load(path)
    except ValueError as err:
        raise ModelError(str(err)) from None


def _corn_score_head(corn):
    """A torch module wrapping a CORN head: embeddings [B, D] → expected labels [B, 19], like the
    regression head."""
    import torch

    from crescendai.model import corn_to_score

    class CornScores(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.corn = corn

        def forward(self, emb):
            return corn_to_score(self.corn(emb))  # (B, 19)

    return CornScores()


def split_model(m):
    """(backbone, 19-score head, info) of a ``crescendai.model.Model``: the regression head, or the
    CORN head turned into expected labels when there is no regression head; ``info`` as in
    :class:`Bundle`.

    Raises:
        ModelError: ``m`` has no backbone and heads, or no head that gives scores.
    """
    heads = getattr(m, "heads", None)
    backbone = getattr(m, "backbone", None)
    if backbone is None or heads is None:
        raise ModelError("the model has no .backbone / .heads; it is not a crescendai.model.Model")
    if "regression" in heads:
        head = heads["regression"]
    elif "corn" in heads:
        head = _corn_score_head(heads["corn"])
    else:
        raise ModelError("the model has neither a regression nor a CORN head; cannot score windows")
    info = {"dropout": float(getattr(getattr(m, "heads_cfg", None), "dropout", 0.1)),
            "n_params": int(sum(q.numel() for q in m.parameters()))}
    return backbone, head, info
