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
    ``info`` (``dropout``: the head's dropout probability, ``n_params``: parameter count,
    ``embedding_dim``: the backbone's width, ``runtime``: ``onnxruntime`` or ``torch``) and
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
    ``teacher_head.pt``: the row head that tells what was played where, ``fusion_head.npz``: the
    head over the embedding ⊕ the window features of the fusion variant, and the ONNX runtime:
    ``scoring.onnx``, ``saliency.onnx``, ``linear_head.npz``, when the bundle has them) onto
    ``device``; ``seed`` seeds the scorer's MC-dropout draws.

    On the CPU a bundle with an ONNX runtime (``config.json``'s ``onnx``, written by the calibrate
    stage when the head is linear) is scored by :class:`~crescendai.tutor.scorer.OnnxScorer`, and
    torch is never imported; otherwise (another device, an older bundle, a head that is not linear)
    by :class:`~crescendai.tutor.scorer.TorchScorer` over ``model.pt``.

    A missing ``calibration.json`` gives :class:`IdentityCalibration` (logged as a warning); a
    missing ``domain.npz`` gives no domain check (the report says so).

    Raises:
        ModelError: the folder or ``model.pt`` is missing; ``model.pt`` or a graph or head file cannot
            be loaded, or is not a model with a score head; ``calibration.json`` or ``domain.npz``
            cannot be read, or ``domain.npz`` was fitted for a model of another width.
    """
    from crescendai.core.files import read_json

    p = Path(path)
    model_file = p / "model.pt"
    if not model_file.is_file():
        raise ModelError(
            f"{p}: no trained model here (model.pt missing); run `uv run dvc repro` first "
            "or pass --model DIR pointing at a tutor bundle"
        )
    config = read_json(p / "config.json") if (p / "config.json").is_file() else {}
    if config.get("onnx") and device == "cpu":
        scorer, info = _onnx_scorer(p, config, seed)
    else:
        scorer, info = _torch_scorer(p, config, device, seed)
    calibration: Calibration = IdentityCalibration()
    cal_path = p / "calibration.json"
    if cal_path.is_file():
        calibration = load_calibration(cal_path)
    else:
        log.warning("%s missing: scores are uncalibrated", cal_path)
    domain = None
    if (p / "domain.npz").is_file():
        domain = load_domain(p / "domain.npz", info.get("embedding_dim"))
    else:
        log.info("%s missing: no domain check", p / "domain.npz")
    entry = config.get("teacher_head") or None
    return Bundle(scorer=scorer, calibration=calibration, path=str(p), info=info, domain=domain,
                  trained_on=[str(c) for c in config.get("trained_on", [])],
                  heard_quality=dict(entry.get("quality", {})) if entry else {})


def _onnx_scorer(folder: Path, config: dict, seed: int) -> tuple[Scorer, dict]:
    """(OnnxScorer, info) of a bundle with an ONNX runtime (``config["onnx"]``).

    Raises:
        ModelError: a graph or the head file is missing, unreadable or fitted for another model.
    """
    from crescendai.evaluate.audio_features import window_features
    from crescendai.evaluate.fusion import load_fused_head
    from crescendai.tutor.scorer import OnnxScorer

    entry = config["onnx"]
    fix = "re-run `uv run dvc repro calibrate`"
    try:
        dim = int(entry["embedding_dim"])
        head = load_fused_head(folder, entry["head"], dim)
        files = [folder / str(entry["scoring"]), folder / str(entry["saliency"])]
    except ValueError as err:
        raise ModelError(str(err)) from None
    except (KeyError, TypeError) as err:
        raise ModelError(f"{folder / 'config.json'}: its onnx entry lacks {err}; {fix}") from None
    for f in files:
        if not f.is_file():
            raise ModelError(f"{f}: missing from the bundle; {fix}")
    dropout = float(entry.get("dropout", 0.1))
    try:
        scorer = OnnxScorer(*files, head.weight, head.bias, seed=seed,
                            window_features=window_features if head.features else None,
                            dropout=dropout,
                            threads=int(os.environ.get("OMP_NUM_THREADS", "0") or 0))
    except Exception as err:  # onnxruntime's own types (Fail, InvalidProtobuf, …) for a damaged graph
        if not type(err).__module__.startswith("onnxruntime"):
            raise  # a bug keeps its traceback
        raise ModelError(f"{files[0]}: onnxruntime cannot load it ({type(err).__name__}: {err}); {fix}") from None
    if scorer.embedding_dim != dim:
        raise ModelError(f"{files[0]}: embeddings of width {scorer.embedding_dim}, the head expects {dim}; {fix}")
    return scorer, {"dropout": dropout, "n_params": int(entry.get("n_params", 0)),
                    "embedding_dim": dim, "runtime": "onnxruntime"}


def _torch_scorer(folder: Path, config: dict, device: str, seed: int) -> tuple[Scorer, dict]:
    """(TorchScorer, info) over ``model.pt`` (and the row and fused heads the config names).

    Raises:
        ModelError: ``model.pt`` or a head cannot be loaded, or the model has no score head.
    """
    from crescendai.model import load_model, load_teacher_head

    model_file = folder / "model.pt"
    try:
        model = load_model(folder, map_location=device)
    except CrescendAIError as err:  # damaged, or from another version; a bug keeps its traceback
        raise ModelError(f"{model_file}: cannot load the model ({err}); re-run `uv run dvc repro` to "
                         "rebuild it") from None
    try:
        backbone, head, info = split_model(model)
    except ModelError as err:
        raise ModelError(f"{model_file}: {err}; pass --model DIR pointing at a tutor bundle "
                         "(models/tutor)") from None
    dim = getattr(backbone, "dim", None)
    entry = config.get("teacher_head") or None
    teacher = load_teacher_head(folder, entry, map_location=device) if entry else None
    window_features = None
    if config.get("fusion_head"):  # the fusion variant: its head reads the embedding ⊕ window features
        head, window_features = fused_scoring(folder, config["fusion_head"], dim)
    scorer = TorchScorer(backbone, head, device=device, seed=seed,
                         fallback_dropout=float(info.get("dropout", 0.1) or 0.1), teacher_head=teacher,
                         window_features=window_features)
    return scorer, {**info, "embedding_dim": dim, "runtime": "torch"}


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
