"""The frozen backbone (and its row head) as ONNX graphs, so the tutor runs on onnxruntime alone.

Importing torch made a cold 1-minute ``crescendai analyze`` on two cores 2.90 s instead of 1.78 s
and its peak 576 MB instead of 294 MB (``benchmarks/analyze_speed.py --torch``); the shipped heads are linear (the ridge probe, the fused head), so with these two graphs
the tutor needs no torch at all (``crescendai.tutor.scorer.OnnxScorer``). Both graphs take any
batch size, float32:

- :data:`SCORING_FILE`: ``db`` [B, 128, 128] contract dB in [-80, 0], ``pad_mask`` bool [B, 128]
  (True = padded frame; all False for a full window) → ``embedding`` [B, D], the backbone's pooled
  output (as ``Backbone.forward``), and, when a row head is given, ``heard`` [B, rows, K], the
  sigmoid of :meth:`~crescendai.model.heads.RowTeacherHead.from_tokens`.
- :data:`SALIENCY_FILE`: ``db``, ``pad_mask`` and ``direction`` [B, D] → ``saliency`` [B, 128, 128]
  = ∂(Σ direction · embedding)/∂db × (db − DB_FLOOR): gradient × input of any head that is linear in
  the embedding, whose ``direction`` is the head's output weights summed over the explained outputs
  (``w @ W[:, :D]``). The backward pass is traced into plain operators (``make_fx`` with the core ATen
  decompositions, attention in its math form: the fused attention's backward has no ONNX operator).

:func:`export_graphs` checks each graph against torch on a random batch (padded and unpadded
windows) before writing it, and writes atomically.
"""

from __future__ import annotations

import copy
import logging
import os
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn

from crescendai.core.audio import DB_FLOOR, N_MELS, WINDOW_FRAMES
from crescendai.core.errors import CrescendAIError
from crescendai.core.files import atomic_write

SCORING_FILE = "scoring.onnx"
SALIENCY_FILE = "saliency.onnx"
OPSET = 18
TOLERANCE = 1e-3
"""Largest |ONNX − torch| accepted by the export check, relative to the largest |torch| output."""


class ExportError(CrescendAIError):
    """A graph did not export, or its onnxruntime output differs from torch's (names the graph)."""


class _Scoring(nn.Module):
    """(db, pad_mask) → embedding (B, D)[, heard (B, rows, K)]. ``traced``: the masked path always,
    so one traced graph serves padded and full windows; else the torch tutor's path (no mask when
    nothing is padded), the reference the graph is checked against."""

    def __init__(self, backbone: nn.Module, teacher_head: nn.Module | None, traced: bool = True) -> None:
        super().__init__()
        self.backbone, self.teacher_head, self.traced = backbone, teacher_head, traced

    def forward(self, db: torch.Tensor, pad_mask: torch.Tensor):
        mask = pad_mask if self.traced or bool(pad_mask.any()) else None
        tokens = self.backbone.tokens(db, mask, always_mask=self.traced)  # (B, 1+N, C)
        emb = self.backbone.pool(tokens, mask)  # (B, C)
        if self.teacher_head is None:
            return emb
        return emb, torch.sigmoid(self.teacher_head.from_tokens(tokens))  # (B, rows, K)


class _Traced(nn.Module):
    """The traced saliency function of (db, pad_mask, direction, weights…) as a module holding the
    weights as buffers."""

    def __init__(self, graph: nn.Module, weights: list[torch.Tensor]) -> None:
        super().__init__()
        self.graph = graph
        self.n = len(weights)
        for i, w in enumerate(weights):
            self.register_buffer(f"w{i}", w.detach().clone())

    def forward(self, db: torch.Tensor, pad_mask: torch.Tensor, direction: torch.Tensor) -> torch.Tensor:
        return self.graph(db, pad_mask, direction, *(getattr(self, f"w{i}") for i in range(self.n)))


def _saliency_module(backbone: nn.Module, example: tuple[torch.Tensor, ...]) -> nn.Module:
    """(db, pad_mask, direction) → gradient × input (B, 128, 128), its backward traced into plain
    operators."""
    from torch._decomp import core_aten_decompositions
    from torch.func import functional_call
    from torch.fx.experimental.proxy_tensor import make_fx
    from torch.nn.attention import SDPBackend, sdpa_kernel

    net = _Scoring(backbone, None)
    state = {**dict(net.named_parameters()), **dict(net.named_buffers())}
    names = list(state)

    def saliency(db, pad_mask, direction, *weights):
        x = db.detach().requires_grad_(True)
        with torch.enable_grad():
            emb = functional_call(net, dict(zip(names, weights, strict=True)), (x, pad_mask))
            (grad,) = torch.autograd.grad((emb * direction).sum(), x)
        return grad * (x.detach() - DB_FLOOR)

    weights = [state[k].detach() for k in names]
    with sdpa_kernel(SDPBackend.MATH):
        graph = make_fx(saliency, decomposition_table=core_aten_decompositions(),
                        tracing_mode="symbolic")(*example, *weights)
    return _Traced(graph, weights).eval()


def _write(module: nn.Module, example: tuple[torch.Tensor, ...], names: tuple[list[str], list[str]],
           path: Path, check: list[tuple[torch.Tensor, ...]], reference) -> None:
    """Export ``module`` at ``example`` (batch free), check it against ``reference`` on each input
    tuple of ``check`` with onnxruntime, write it to ``path`` atomically."""
    import onnxruntime as ort

    batch = torch.export.Dim("batch", min=1, max=4096)
    quiet = logging.getLogger("torch.onnx._internal.exporter._registration")  # "torchvision is not installed"
    level = quiet.level
    try:
        quiet.setLevel(logging.ERROR)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*axis name: batch will not be used")
            program = torch.onnx.export(module, example, input_names=names[0], output_names=names[1],
                                        dynamic_shapes=[{0: batch} for _ in example], opset_version=OPSET,
                                        dynamo=True, verbose=False)
        data = program.model_proto.SerializeToString()
    except Exception as err:  # the exporter's many error types; the graph is named, the cause kept
        raise ExportError(f"{path.name}: the ONNX export failed ({type(err).__name__}: {err})") from err
    finally:
        quiet.setLevel(level)
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    for inputs in check:
        want = reference(*inputs)
        want = [w.numpy() for w in (want if isinstance(want, tuple) else (want,))]
        got = session.run(None, {n: t.numpy() for n, t in zip(names[0], inputs, strict=True)})
        for name, g, w in zip(names[1], got, want, strict=True):
            err = float(np.abs(g - w).max()) / max(float(np.abs(w).max()), 1e-12)
            if not err <= TOLERANCE:
                raise ExportError(f"{path.name}: onnxruntime's {name} differs from torch's by {err:.2e} "
                                  f"(relative; at most {TOLERANCE:g} accepted); keep the torch model")
    with atomic_write(path, "wb") as f:
        f.write(data)


def export_graphs(backbone: nn.Module, folder: str | os.PathLike[str],
                  teacher_head: nn.Module | None = None, seed: int = 0) -> dict[str, object]:
    """Write :data:`SCORING_FILE` and :data:`SALIENCY_FILE` of ``backbone`` (and ``teacher_head``,
    a :class:`~crescendai.model.heads.RowTeacherHead`, into the scoring graph) to ``folder``.

    ``seed`` draws the random check batch. Returns the ``config.json`` entry: ``scoring``,
    ``saliency`` (file names), ``embedding_dim``, ``heard`` (whether the scoring graph has it).

    Raises:
        ExportError: a graph failed to export, or onnxruntime's outputs differ from torch's.
    """
    backbone = copy.deepcopy(backbone).to("cpu").float().eval()  # the caller's modules stay as they are
    teacher_head = None if teacher_head is None else copy.deepcopy(teacher_head).to("cpu").float().eval()
    for p in [*backbone.parameters(), *([] if teacher_head is None else teacher_head.parameters())]:
        p.requires_grad_(False)
    g = torch.Generator().manual_seed(seed)
    db = torch.rand(3, WINDOW_FRAMES, N_MELS, generator=g) * DB_FLOOR  # (3, 128, 128) in [-80, 0]
    full = torch.zeros(3, WINDOW_FRAMES, dtype=torch.bool)
    padded = full.clone()
    padded[1, WINDOW_FRAMES // 2 :] = True  # one window half padded
    direction = torch.randn(3, backbone.dim, generator=g)
    out = Path(folder)
    scoring = _Scoring(backbone, teacher_head).eval()
    untraced = _Scoring(backbone, teacher_head, traced=False).eval()

    def reference(db, pad_mask):  # the torch path the tutor takes without ONNX
        with torch.inference_mode():
            return untraced(db, pad_mask)

    outputs = ["embedding"] + ([] if teacher_head is None else ["heard"])
    _write(scoring, (db, full), (["db", "pad_mask"], outputs), out / SCORING_FILE,
           [(db, full), (db[:1], padded[:1]), (db, padded)], reference)

    def grad_reference(db, pad_mask, direction):
        x = db.clone().requires_grad_(True)
        emb = backbone(x, pad_mask if bool(pad_mask.any()) else None)
        (grad,) = torch.autograd.grad((emb * direction).sum(), x)
        return grad * (db - DB_FLOOR)

    saliency = _saliency_module(backbone, (db, full, direction))
    _write(saliency, (db, full, direction), (["db", "pad_mask", "direction"], ["saliency"]),
           out / SALIENCY_FILE, [(db, full, direction), (db, padded, direction)], grad_reference)
    return {"scoring": SCORING_FILE, "saliency": SALIENCY_FILE, "embedding_dim": int(backbone.dim),
            "heard": teacher_head is not None}


def linear_head(model: nn.Module) -> tuple[np.ndarray, np.ndarray] | None:
    """The model's regression head as (weight float32 [19, D], bias float32 [19]) when it is one
    ``Linear`` on the embedding (no input norm, no hidden layer, unbounded: the ridge probe's head),
    else None (a head the ONNX tutor cannot run in NumPy: keep torch)."""
    from crescendai.model.heads import RegressionHead

    heads = getattr(model, "heads", None)
    head = heads["regression"] if heads is not None and "regression" in heads else None
    if not isinstance(head, RegressionHead) or head.bounded:
        return None
    layers = [m for m in head.net if not isinstance(m, (nn.Identity, nn.Dropout))]
    if len(layers) != 1 or not isinstance(layers[0], nn.Linear):
        return None
    lin = layers[0]
    return (lin.weight.detach().float().cpu().numpy().copy(),
            lin.bias.detach().float().cpu().numpy().copy())
