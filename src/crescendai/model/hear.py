"""HEAR API (Turian et al. 2022, "HEAR: Holistic Evaluation of Audio Representations") for the backbone.

    model = load_model("models/pretrain")                       # a saved backbone or model
    emb, ts = get_timestamp_embeddings(audio, model)            # audio: (n_sounds, n_samples) 22 050 Hz
    scene = get_scene_embeddings(audio, model)                  # (n_sounds, 256)

Audio goes through the preprocessing contract's batched torch path
(``crescendai.core.audio.windows_from_waveforms_torch``): 2.97 s windows every ``model.hop_sec`` seconds
(0.5 s default; short sounds give one padded window). Timestamps are window centres in milliseconds.
Silent sounds (all zeros), which the contract rejects, embed as all -80 dB windows.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.nn as nn

from crescendai.core.audio import (
    DB_FLOOR,
    SAMPLE_RATE,
    WINDOW_FRAMES,
    WINDOW_SEC,
    windows_from_waveforms_torch,
)
from crescendai.model.backbone import Backbone
from crescendai.model.bundle import Model
from crescendai.model.bundle import load_model as _load


class HearModel(nn.Module):
    """The backbone with the HEAR attributes ``sample_rate``, ``scene_embedding_size``,
    ``timestamp_embedding_size`` and a window hop ``hop_sec``."""

    sample_rate: int = SAMPLE_RATE

    def __init__(self, backbone: Backbone, hop_sec: float = 0.5) -> None:
        super().__init__()
        self.backbone = backbone.eval()
        self.hop_sec = hop_sec
        self.scene_embedding_size = self.timestamp_embedding_size = backbone.dim

    def forward(self, x: torch.Tensor, pad_mask: torch.Tensor | None = None) -> torch.Tensor:
        return self.backbone(x, pad_mask)


def load_model(model_file_path: str | os.PathLike[str] = "models/pretrain", hop_sec: float = 0.5) -> HearModel:
    """HEAR ``load_model``: a saved backbone or model folder / ``.pt`` → :class:`HearModel` (CPU, eval)."""
    m = _load(model_file_path)
    return HearModel(m.backbone if isinstance(m, Model) else m, hop_sec)


@torch.no_grad()
def get_timestamp_embeddings(audio: torch.Tensor, model: HearModel) -> tuple[torch.Tensor, torch.Tensor]:
    """HEAR ``get_timestamp_embeddings``.

    Args:
        audio: (n_sounds, n_samples) float mono at 22 050 Hz, nominally in [-1, 1].
        model: from :func:`load_model`.

    Returns:
        embeddings (n_sounds, n_timestamps, dim) float32, and timestamps (n_sounds, n_timestamps)
        float32 in milliseconds (window centres), on ``audio``'s device.
    """
    if audio.ndim != 2:
        raise ValueError(f"audio must be (n_sounds, n_samples), got shape {tuple(audio.shape)}")
    device = next(model.parameters()).device
    ys = [a.detach().float().cpu().numpy() for a in audio]
    silent = [not np.any(y) for y in ys]
    placeholder = np.full(ys[0].shape, 1e-3, np.float32)
    wins = windows_from_waveforms_torch([placeholder if s else y for y, s in zip(ys, silent, strict=True)],
                                        model.hop_sec, device=str(device))
    db = torch.from_numpy(np.stack([w.db for w in wins])).to(device)  # (S, T, 128, 128)
    pad = torch.from_numpy(np.stack([w.pad_mask for w in wins])).to(device)  # (S, T, 128)
    db[torch.as_tensor(silent, device=device)] = DB_FLOOR
    S, T = db.shape[:2]
    emb = model(db.reshape(S * T, WINDOW_FRAMES, -1), pad.reshape(S * T, -1)).reshape(S, T, -1)  # (S, T, C)
    starts = torch.from_numpy(np.stack([w.start_sec for w in wins])).float()  # (S, T)
    ts = (starts + WINDOW_SEC / 2) * 1000.0  # (S, T) ms
    return emb.float().to(audio.device), ts.to(audio.device)


@torch.no_grad()
def get_scene_embeddings(audio: torch.Tensor, model: HearModel) -> torch.Tensor:
    """HEAR ``get_scene_embeddings``: the mean over time of the timestamp embeddings, (n_sounds, dim)."""
    emb, _ = get_timestamp_embeddings(audio, model)
    return emb.mean(dim=1)
