"""The model interface of the analysis: a :class:`Scorer` turns contract windows into raw scores.

The :class:`Scorer` protocol is the only thing the analysis needs from a model, so tests drive it
with a tiny random model or a hand-written stand-in, and the CLI with the trained bundle:
:class:`OnnxScorer` over the bundle's ONNX graphs and its linear head (``crescendai.model.export``:
no torch is imported: ``benchmarks/analyze_speed.py --torch``), or :class:`TorchScorer` over
``crescendai.model`` (a bundle without the graphs, a GPU, a head that is not linear). :class:`TorchScorer` runs the backbone once per
window, without autograd (inference mode); MC dropout samples only the small head on those
features, so uncertainty costs ``mc_samples`` head passes (one batched call), not backbone passes.
Its dropout draws come from the scorer's own generator (``seed``), not from torch's global RNG, so
an analysis is reproducible without seeding torch globally or asking for deterministic kernels
(CPU inference is deterministic as it is; training keeps ``seed_everything``).

Saliency is gradient × input on the dB window, pooled to a :data:`SAL_T` × :data:`SAL_F` grid
(8 frames × 8 mel bands per cell).

Both scorers give the same scores, features and saliency to float32 rounding (the export checks its
graphs against torch); their MC-dropout spreads are draws of the same distribution from different
generators.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from crescendai.core import dims
from crescendai.core.audio import DB_FLOOR, N_MELS, WINDOW_FRAMES

SAL_T: int = 16
"""Saliency grid rows (time): 8 frames ≈ 0.19 s each."""
SAL_F: int = 16
"""Saliency grid columns (mel bands): 8 mel bands each, low → high frequency."""


@dataclass(frozen=True)
class ScoreBatch:
    """Scores of a batch of windows (raw, i.e. before calibration).

    Attributes:
        mean: float32 [B, 19], deterministic (dropout off) prediction on the label scale [1/7, 1].
        std: float32 [B, 19], MC-dropout standard deviation (>= 0) of the head's prediction.
        embedding: float32 [B, D], the backbone's features the head read (the domain check measures
            them against the training windows), or None for a scorer without a backbone.
        heard: float32 [B, rows, K] in [0, 1], the performance teacher's row head on the same pass
            (``sigmoid`` of its logits, ``crescendai.data.teacher`` layout: what was played where),
            or None when the bundle has no such head.
        features: float32 [B, 30], the hand-crafted window features a fused head read
            (``crescendai.evaluate.audio_features``; the domain check reuses them), or None.
    """

    mean: np.ndarray
    std: np.ndarray
    embedding: np.ndarray | None = None
    heard: np.ndarray | None = None
    features: np.ndarray | None = None


class Scorer(Protocol):
    """Anything that scores contract windows: ``db`` float32 [B, 128, 128] in [-80, 0] dB,
    ``pad_mask`` optional bool [B, 128] (True = padded frame)."""

    def score(self, db: np.ndarray, *, mc_samples: int, pad_mask: np.ndarray | None = None
              ) -> ScoreBatch: ...

    def saliency(self, db: np.ndarray, weights: np.ndarray, *, pad_mask: np.ndarray | None = None
                 ) -> np.ndarray:
        """float32 [B, 16, 16] (time cell, mel cell): |gradient × input| of ``Σ_d weights[b, d] ·
        score[b, d]``, each window normalised to sum 1 (all zeros if the gradient is zero)."""
        ...


def pool_saliency(gx: np.ndarray) -> np.ndarray:
    """|grad × input| [B, 128, 128] → [B, 16, 16] cell sums, each window normalised to sum 1."""
    B = gx.shape[0]
    a = np.abs(gx).reshape(B, SAL_T, WINDOW_FRAMES // SAL_T, SAL_F, N_MELS // SAL_F).sum(axis=(2, 4))
    s = a.sum(axis=(1, 2), keepdims=True)
    return np.where(s > 0, a / np.maximum(s, 1e-12), 0.0).astype(np.float32)


def head_features(window_features, db: np.ndarray, pad_mask: np.ndarray | None) -> np.ndarray | None:
    """float32 [B, F] window features of a fused head (``window_features``: db [B,128,128], pad
    fraction [B] → [B, F]) for the windows ``db`` with frame pad mask ``pad_mask`` [B, 128] (None =
    nothing padded), or None when the head reads none."""
    if window_features is None:
        return None
    pad = np.zeros(len(db)) if pad_mask is None else np.asarray(pad_mask, bool).mean(axis=1)
    return np.asarray(window_features(db, pad), np.float32)


class TorchScorer:
    """A :class:`Scorer` over a torch ``backbone`` (db [B,128,128] → features [B,D]) and a
    ``head`` (features → raw scores [B,19]). With ``window_features`` (db [B,128,128], pad fraction
    [B] → float32 [B,F]) the head reads ``[features ⊕ window_features]`` [B, D+F] (the fusion
    variant); the saliency then follows the backbone's part (the window features are constants to it).

    :meth:`score` runs the backbone once per window in eval + inference mode (its features are
    returned as :attr:`ScoreBatch.embedding`); MC dropout then runs the head ``mc_samples`` times
    (one batched call) on those features with only its dropout layers in train mode. A head
    without dropout layers gets feature dropout with probability ``fallback_dropout`` (so the
    uncertainty is never silently zero). The dropout masks are drawn from a generator seeded with
    ``seed``: the same windows scored in the same order give the same spread, whatever else uses
    torch's global RNG (which is left as it was).

    The backbone runs on at most ``max_batch`` windows at a time, whatever the caller passes: its
    activations set the analysis's peak memory (+25 MB from 16 to 32 windows at dim 256) while the
    time per window does not change from 8 to 64 windows on two cores.
    """

    def __init__(
        self,
        backbone,
        head,
        *,
        fallback_dropout: float = 0.1,
        device: str = "cpu",
        seed: int = 0,
        max_batch: int = 16,
        teacher_head=None,
        window_features=None,
    ) -> None:
        import torch

        self.window_features = window_features
        self.teacher_head = None if teacher_head is None else teacher_head.to(device).eval()
        self.backbone = backbone.to(device).eval()
        self.head = head.to(device).eval()
        self.device = device
        self.fallback_dropout = fallback_dropout
        self.max_batch = max(1, int(max_batch))
        self._dropouts = [m for m in self.head.modules() if isinstance(m, torch.nn.Dropout)]
        self._gen = torch.Generator(device=device).manual_seed(seed)
        try:
            self._takes_mask = len(inspect.signature(self.backbone.forward).parameters) >= 2
        except (TypeError, ValueError):  # pragma: no cover
            self._takes_mask = False

    def _features(self, x, pad_mask, heard: bool = True):
        """(features (B, D), heard (B, rows, K) or None) of one backbone pass; ``heard`` False skips
        the row head (the saliency's backward pass does not need it)."""
        import torch

        mask = None
        if pad_mask is not None and self._takes_mask and bool(np.any(pad_mask)):
            mask = torch.as_tensor(np.asarray(pad_mask, bool), device=self.device)
        if heard and self.teacher_head is not None:  # one pass: tokens → pooled features and the row head
            tokens = self.backbone.tokens(x, mask)
            return self.backbone.pool(tokens, mask), torch.sigmoid(self.teacher_head.from_tokens(tokens))
        return (self.backbone(x) if mask is None else self.backbone(x, mask)), None  # (B, D)

    def score(self, db: np.ndarray, *, mc_samples: int, pad_mask: np.ndarray | None = None
              ) -> ScoreBatch:
        import torch

        db = np.asarray(db, np.float32)
        with torch.inference_mode():
            parts, heard = [], []
            for lo in range(0, db.shape[0], self.max_batch):  # the one backbone pass, in pieces
                sl = slice(lo, lo + self.max_batch)
                x = torch.as_tensor(db[sl], device=self.device)
                f, h = self._features(x, None if pad_mask is None else pad_mask[sl])
                parts.append(f)
                heard.append(h)
            feats = torch.cat(parts) if len(parts) > 1 else parts[0]  # (B, D)
            wf = head_features(self.window_features, db, pad_mask)  # (B, F) or None
            inputs = self._head_inputs(feats, wf)  # (B, D) or (B, D+F)
            mean = self.head(inputs).float().cpu().numpy()  # (B, 19)
            std = self._mc_std(inputs, mc_samples, n_dropped=feats.shape[1])
            rows = None if heard[0] is None else torch.cat(heard).float().cpu().numpy()
        return ScoreBatch(mean=mean.astype(np.float32), std=std, embedding=feats.float().cpu().numpy(),
                          heard=rows, features=wf)

    @staticmethod
    def _head_inputs(feats, wf: np.ndarray | None):
        """The head's input: the backbone's features (B, D), ⊕ the window features (B, F) if any."""
        import torch

        return feats if wf is None else torch.cat([feats, torch.from_numpy(wf).to(feats)], dim=1)

    def saliency(self, db: np.ndarray, weights: np.ndarray, *, pad_mask: np.ndarray | None = None
                 ) -> np.ndarray:
        import torch

        db = np.asarray(db, np.float32)
        x = torch.as_tensor(db, device=self.device).requires_grad_(True)
        feats = self._features(x, pad_mask, heard=False)[0]  # (B, D)
        out = self.head(self._head_inputs(feats, head_features(self.window_features, db, pad_mask)))  # (B, 19)
        w = torch.as_tensor(np.asarray(weights, np.float32), device=self.device)
        (grad,) = torch.autograd.grad((out * w).sum(), x)
        return pool_saliency((grad * (x.detach() - DB_FLOOR)).cpu().numpy())  # (B, 16, 16)

    def _mc_std(self, feats, mc_samples: int, n_dropped: int | None = None) -> np.ndarray:
        """float32 [B, 19] std over ``mc_samples`` dropout draws of the head (zeros when <= 1). The
        fallback feature dropout reaches only the first ``n_dropped`` input columns (all when None):
        the backbone's features, not the hand-crafted window features of a fused head, which are
        measurements (in dB and mel bins), not the network's activations — dropping them measured
        spreads of ±2 rating points that were no uncertainty of the model."""
        import torch

        if mc_samples <= 1:
            return np.zeros((feats.shape[0], dims.N_DIMS), np.float32)
        with torch.no_grad():
            # (S·B, D): all samples in one head pass
            rep = feats.repeat(mc_samples, 1)
            if self._dropouts:
                # nn.Dropout draws from the global RNG: fork it (restored on exit), seeded from ours
                cuda = rep.device.type == "cuda"
                seed = int(torch.randint(0, 2**62, (1,), generator=self._gen, device=self._gen.device))
                with torch.random.fork_rng(devices=[rep.device] if cuda else []):
                    if cuda:
                        with torch.cuda.device(rep.device):
                            torch.cuda.manual_seed(seed)  # rep's device's generator
                    else:
                        torch.default_generator.manual_seed(seed)
                    for m in self._dropouts:
                        m.train()
                    try:
                        samples = self.head(rep)
                    finally:
                        for m in self._dropouts:
                            m.eval()
            else:
                p = self.fallback_dropout
                d = rep.shape[1] if n_dropped is None else n_dropped
                keep = (torch.rand((rep.shape[0], d), generator=self._gen, device=rep.device) >= p).float()
                scale = torch.cat([keep / (1 - p), rep.new_ones(rep.shape[0], rep.shape[1] - d)], dim=1)
                samples = self.head(rep * scale)
            samples = samples.view(mc_samples, feats.shape[0], -1)  # (S, B, 19)
            return samples.std(dim=0).float().cpu().numpy().astype(np.float32)


class OnnxScorer:
    """A :class:`Scorer` over the bundle's two ONNX graphs (``crescendai.model.export``: the
    backbone's embedding and row head, and its saliency) and a head that is linear in
    ``[embedding ⊕ window features]``: scores [B, 19] = ``inputs @ weight.T + bias``, in NumPy.
    Saliency is the saliency graph's gradient × input along ``weights @ weight[:, :D]``: a linear
    head's gradient reaches the window through the embedding only.

    Args:
        scoring, saliency: paths of the graphs (``scoring.onnx``, ``saliency.onnx``).
        weight: float32 [19, D + F]; bias: float32 [19]; the first D inputs are the embedding.
        window_features: with F > 0, the function db [B,128,128], pad fraction [B] → float32 [B, F]
            whose output the head reads after the embedding (the fusion variant).
        dropout: MC-dropout probability on the embedding's D inputs (the features are measurements,
            never dropped; :meth:`TorchScorer._mc_std`), drawn from a NumPy generator seeded with ``seed``.
        max_batch: windows per graph call (as :class:`TorchScorer`).
        threads: onnxruntime's intra-op threads (0: its default, one per physical core); its threads
            sleep when idle instead of spinning (as the CLI's ``OMP_WAIT_POLICY=PASSIVE``).
    """

    def __init__(self, scoring, saliency, weight: np.ndarray, bias: np.ndarray, *,
                 window_features=None, dropout: float = 0.1, seed: int = 0, max_batch: int = 16,
                 threads: int = 0) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = int(threads)
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._scoring = ort.InferenceSession(str(scoring), opts, providers=["CPUExecutionProvider"])
        self._saliency = ort.InferenceSession(str(saliency), opts, providers=["CPUExecutionProvider"])
        self.weight = np.asarray(weight, np.float32)
        self.bias = np.asarray(bias, np.float32)
        self.window_features = window_features
        self.dropout = float(dropout)
        self.max_batch = max(1, int(max_batch))
        self._rng = np.random.default_rng(seed)
        self._outputs = [o.name for o in self._scoring.get_outputs()]
        self.embedding_dim = int(self._scoring.get_outputs()[0].shape[1])

    def score(self, db: np.ndarray, *, mc_samples: int, pad_mask: np.ndarray | None = None
              ) -> ScoreBatch:
        db = np.asarray(db, np.float32)
        mask = np.zeros(db.shape[:2], bool) if pad_mask is None else np.asarray(pad_mask, bool)
        parts = [self._scoring.run(None, {"db": db[lo : lo + self.max_batch],
                                          "pad_mask": mask[lo : lo + self.max_batch]})
                 for lo in range(0, db.shape[0], self.max_batch)]
        emb = np.concatenate([p[0] for p in parts])  # (B, D)
        heard = np.concatenate([p[1] for p in parts]) if "heard" in self._outputs else None
        wf = head_features(self.window_features, db, pad_mask)  # (B, F) or None
        inputs = emb if wf is None else np.hstack([emb, wf])  # (B, D[+F])
        mean = inputs @ self.weight.T + self.bias  # (B, 19)
        return ScoreBatch(mean=mean.astype(np.float32), std=self._mc_std(inputs, mc_samples, emb.shape[1]),
                          embedding=emb, heard=heard, features=wf)

    def _mc_std(self, inputs: np.ndarray, mc_samples: int, n_dropped: int) -> np.ndarray:
        """float32 [B, 19] std (ddof 1, as torch's) over ``mc_samples`` dropout draws on the first
        ``n_dropped`` inputs (zeros when ``mc_samples`` <= 1)."""
        if mc_samples <= 1 or self.dropout <= 0.0:
            return np.zeros((inputs.shape[0], self.bias.shape[0]), np.float32)
        p = self.dropout
        keep = self._rng.random((mc_samples, inputs.shape[0], n_dropped)) >= p  # (S, B, D)
        rep = np.broadcast_to(inputs, (mc_samples, *inputs.shape)).copy()  # (S, B, D+F)
        rep[..., :n_dropped] *= keep / (1.0 - p)
        samples = rep @ self.weight.T + self.bias  # (S, B, 19)
        return samples.std(axis=0, ddof=1).astype(np.float32)

    def saliency(self, db: np.ndarray, weights: np.ndarray, *, pad_mask: np.ndarray | None = None
                 ) -> np.ndarray:
        db = np.asarray(db, np.float32)
        mask = np.zeros(db.shape[:2], bool) if pad_mask is None else np.asarray(pad_mask, bool)
        direction = np.asarray(weights, np.float32) @ self.weight[:, : self.embedding_dim]  # (B, D)
        (gx,) = self._saliency.run(None, {"db": db, "pad_mask": mask, "direction": direction})
        return pool_saliency(gx)  # (B, 16, 16)
