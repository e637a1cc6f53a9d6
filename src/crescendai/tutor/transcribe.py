"""The notes of a recording: automatic piano transcription with a model that ships in its package.

Two transcribers, both offline (their weights are inside their wheels; nothing is downloaded):

=================  ==========================================================================  ==========
``basic-pitch``    Spotify's Basic Pitch (ICASSP 2022), its bundled ``nmp.onnx`` run through     default
                   onnxruntime on the CPU. TensorFlow, which the package declares for Python
                   >= 3.11, is never installed: ``pyproject.toml`` overrides it away
                   (``[tool.uv] override-dependencies``) and only ``basic_pitch.note_creation``
                   (NumPy / SciPy decoding of the model's activations) is imported.
``transkun``       Transkun 2.0 (Yan & Duan 2024; semi-CRF over note intervals, a 56-MB          optional
                   checkpoint in its wheel), run with torch; slow on a CPU, meant for a GPU or
                   when asked. Installed with ``uv sync --extra transkun``.
=================  ==========================================================================  ==========

Their accuracy and speed on our renders of real performance MIDI are measured by
``benchmarks/transcription.py`` (onset F1 with ``mir_eval.transcription``) and quoted in the README.

>>> notes = transcribe(y, 22050, "basic-pitch")   # doctest: +SKIP
>>> notes.onset_sec[:3], notes.pitch[:3]          # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import NamedTuple

import numpy as np

from crescendai.core.errors import CrescendAIError

PIANO_LOW, PIANO_HIGH = 21, 108
"""MIDI pitches of the piano's lowest (A0) and highest (C8) keys."""



class TranscriberError(CrescendAIError):
    """A transcriber is unknown or not installed here; the message names it and says how to get it."""


@dataclass(frozen=True)
class Notes:
    """Notes in one time base, sorted by onset.

    Attributes:
        onset_sec, offset_sec: float [N], seconds (offset > onset).
        pitch: int [N], MIDI pitch 21–108.
        velocity: float [N] in [0, 1] (MIDI velocity / 127, or the transcriber's amplitude).
        confidence: float [N] in [0, 1], the transcriber's own confidence in the note (1 for a score).
    """

    onset_sec: np.ndarray
    offset_sec: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray
    confidence: np.ndarray
    evidence: Notes | None = None
    """Notes decoded at permissive thresholds from the same activations (Basic Pitch only): evidence
    that a note was played, used to withhold a "missing" claim, never to claim an extra note."""

    def __len__(self) -> int:
        return int(self.onset_sec.shape[0])

    @property
    def intervals(self) -> np.ndarray:
        """[N, 2] (onset, offset) seconds, as ``mir_eval.transcription`` takes them."""
        return np.stack([self.onset_sec, self.offset_sec], axis=1)

    @classmethod
    def from_rows(cls, rows: np.ndarray | list, confidence: np.ndarray | None = None) -> Notes:
        """From rows (onset s, offset s, pitch, velocity in [0, 1]); keeps piano pitches, sorts."""
        a = np.asarray(rows, float).reshape(-1, 4)
        conf = np.ones(len(a)) if confidence is None else np.asarray(confidence, float)
        keep = (a[:, 2] >= PIANO_LOW) & (a[:, 2] <= PIANO_HIGH) & (a[:, 1] > a[:, 0])
        a, conf = a[keep], conf[keep]
        order = np.lexsort((a[:, 2], a[:, 0]))
        a, conf = a[order], conf[order]
        return cls(a[:, 0].copy(), a[:, 1].copy(), a[:, 2].astype(int), np.clip(a[:, 3], 0, 1),
                   np.clip(conf, 0, 1))

    @classmethod
    def from_midi_rows(cls, rows: np.ndarray) -> Notes:
        """From rows (onset s, offset s, pitch, MIDI velocity 1–127), e.g. ``Score.notes``."""
        a = np.asarray(rows, float).reshape(-1, 4)
        return cls.from_rows(np.c_[a[:, :3], a[:, 3] / 127.0])

    @property
    def hz(self) -> np.ndarray:
        """[N] pitches in Hz (``mir_eval.util.midi_to_hz``), as ``mir_eval.transcription`` takes them."""
        from mir_eval.util import midi_to_hz

        return midi_to_hz(self.pitch.astype(float))


AUTO: str = "auto"
"""Transcriber choice that picks by machine (:func:`resolve`)."""


def resolve(name: str, device: str = "cpu") -> str:
    """The transcriber to run for ``name``: itself, or for ``"auto"`` transkun on a GPU where it is
    installed (about real time on 2 CPU cores, far faster on a GPU) and basic-pitch otherwise."""
    if name != AUTO:
        return check_name(name)
    return "transkun" if device.startswith("cuda") and available("transkun") else "basic-pitch"


def available(name: str) -> bool:
    """Whether transcriber ``name`` can run on this machine (its package is installed)."""
    return all(importlib.util.find_spec(m) is not None for m in _BACKENDS[check_name(name)].modules)


def check_name(name: str) -> str:
    """``name`` if it is one of :data:`TRANSCRIBERS`, else a :class:`TranscriberError` listing them."""
    if name not in TRANSCRIBERS:
        raise TranscriberError(f"unknown transcriber {name!r}; choose one of {', '.join(TRANSCRIBERS)}")
    return name


def require(name: str) -> str:
    """``name`` if that transcriber can run here, else a :class:`TranscriberError` that names it and
    says how to install it (or lists the known ones)."""
    if not available(check_name(name)):
        raise TranscriberError(f"transcriber {name!r} is not installed on this machine; "
                               f"{_BACKENDS[name].install}")
    return name


def transcribe(y: np.ndarray, sr: int, name: str = "basic-pitch", *, device: str = "cpu") -> Notes:
    """The notes of mono audio ``y`` (float32 [n] at ``sr`` Hz), by transcriber ``name``.

    Raises:
        TranscriberError: unknown transcriber, or its package is not installed here (the message
            says how to install it).
    """
    return _BACKENDS[require(name)].run(y, sr, device)


# ------------------------------------------------------------------------------------------
# Basic Pitch through onnxruntime
# ------------------------------------------------------------------------------------------

BP_OVERLAP_FRAMES: int = 30
"""Output frames shared by consecutive 2-s windows (Basic Pitch's own inference setting)."""


@contextlib.contextmanager
def _quiet_imports():
    """basic_pitch's ``__init__`` logs a warning for every backend it does not find (TensorFlow,
    CoreML, TFLite); only the ONNX one is used here, so those warnings are not the user's concern."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


@lru_cache(maxsize=1)
def _basic_pitch_session():
    """The onnxruntime session of Basic Pitch's bundled model (loaded once per process)."""
    from importlib.resources import files

    import onnxruntime as ort

    model = files("basic_pitch") / "saved_models" / "icassp_2022" / "nmp.onnx"
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(model), sess_options=opts, providers=["CPUExecutionProvider"])


def basic_pitch_activations(y: np.ndarray, sr: int) -> dict[str, np.ndarray]:
    """Basic Pitch's frame activations of ``y``: ``note`` and ``onset`` [F, 88] in [0, 1] at
    22 050 / 256 frames per second (``contour`` [F, 264]), windowed and unwrapped as its own
    ``basic_pitch.inference.run_inference`` does (2-s windows, 30 frames of overlap)."""
    with _quiet_imports():
        from basic_pitch import constants as C
    y = _resample(np.asarray(y, np.float32), sr, C.AUDIO_SAMPLE_RATE)
    overlap = BP_OVERLAP_FRAMES * C.FFT_HOP
    hop = C.AUDIO_N_SAMPLES - overlap
    padded = np.concatenate([np.zeros(overlap // 2, np.float32), y])
    n_win = max(1, int(np.ceil(padded.size / hop)))
    padded = np.concatenate([padded, np.zeros(n_win * hop + C.AUDIO_N_SAMPLES - padded.size, np.float32)])
    session = _basic_pitch_session()
    names = {"note": "StatefulPartitionedCall:1", "onset": "StatefulPartitionedCall:2",
             "contour": "StatefulPartitionedCall:0"}
    out: dict[str, list[np.ndarray]] = {k: [] for k in names}
    for start in range(0, n_win, 16):  # 16 windows (32 s) per run: bounded memory
        batch = np.stack([padded[i * hop: i * hop + C.AUDIO_N_SAMPLES]
                          for i in range(start, min(n_win, start + 16))])[..., None]
        res = session.run(list(names.values()), {"serving_default_input_2:0": batch})
        for k, v in zip(names, res, strict=True):
            out[k].append(v)
    n_frames = int(np.floor(y.size * (C.ANNOTATIONS_FPS / C.AUDIO_SAMPLE_RATE)))
    half = BP_OVERLAP_FRAMES // 2
    unwrapped = {}
    for k, v in out.items():
        a = np.concatenate(v)[:, half:-half]  # (windows, frames, bins) without the shared frames
        unwrapped[k] = a.reshape(-1, a.shape[-1])[:n_frames]
    return unwrapped


EVIDENCE_THRESHOLDS: tuple[float, float] = (0.2, 0.1)
"""(onset, frame) thresholds of the permissive decoding whose notes are :attr:`Notes.evidence`."""


def basic_pitch_notes(y: np.ndarray, sr: int, *, onset_threshold: float = 0.5,
                      frame_threshold: float = 0.3, min_note_ms: float = 127.7) -> Notes:
    """Basic Pitch's notes of ``y`` with its default decoding thresholds (those of its CLI), and as
    ``evidence`` the notes decoded at :data:`EVIDENCE_THRESHOLDS` from the same activations.

    ``confidence`` and ``velocity`` are the note's mean frame activation (Basic Pitch's amplitude).
    """
    act = basic_pitch_activations(y, sr)
    notes = _decode(act, onset_threshold, frame_threshold, min_note_ms)
    weak = _decode(act, *EVIDENCE_THRESHOLDS, min_note_ms / 2)
    return Notes(notes.onset_sec, notes.offset_sec, notes.pitch, notes.velocity, notes.confidence,
                 evidence=weak)


def _decode(act: dict[str, np.ndarray], onset_threshold: float, frame_threshold: float,
            min_note_ms: float) -> Notes:
    """Basic Pitch's note decoding (``output_to_notes_polyphonic``) of its activations."""
    with _quiet_imports():
        from basic_pitch import constants as C
        from basic_pitch.note_creation import model_frames_to_time, output_to_notes_polyphonic
    if act["note"].shape[0] == 0:
        return Notes.from_rows(np.zeros((0, 4)))
    min_len = int(np.round(min_note_ms / 1000 * (C.AUDIO_SAMPLE_RATE / C.FFT_HOP)))
    events = output_to_notes_polyphonic(
        act["note"], act["onset"], onset_thresh=onset_threshold, frame_thresh=frame_threshold,
        infer_onsets=True, min_note_len=min_len, max_freq=None, min_freq=None, melodia_trick=True,
    )
    times = model_frames_to_time(act["note"].shape[0] + 1)
    rows = [(times[s], times[min(e, len(times) - 1)], p, a) for s, e, p, a in events]
    amp = np.array([r[3] for r in rows], float)
    return Notes.from_rows(np.asarray(rows, float).reshape(-1, 4), confidence=amp)


# ------------------------------------------------------------------------------------------
# Transkun
# ------------------------------------------------------------------------------------------


@lru_cache(maxsize=2)
def _transkun_model(device: str):
    """Transkun 2.0 with its packaged checkpoint, in eval mode on ``device``."""
    from importlib.resources import files

    import moduleconf
    import torch

    root = files("transkun") / "pretrained"
    conf_manager = moduleconf.parseFromFile(str(root / "2.0.conf"))
    model_cls = conf_manager["Model"].module.TransKun
    model = model_cls(conf=conf_manager["Model"].config).to(device)
    ckpt = torch.load(str(root / "2.0.pt"), map_location=device, weights_only=False)
    model.load_state_dict(ckpt.get("best_state_dict", ckpt.get("state_dict")), strict=False)
    return model.eval()


def transkun_notes(y: np.ndarray, sr: int, *, device: str = "cpu") -> Notes:
    """Transkun's notes of ``y`` (its default segment size and hop); pedal events are dropped.
    ``confidence`` is 1 (the semi-CRF decodes a single best set of intervals)."""
    import torch

    model = _transkun_model(device)
    x = _resample(np.asarray(y, np.float32), sr, int(model.fs))
    with torch.inference_mode():
        est = model.transcribe(torch.from_numpy(x[:, None]).to(device), discardSecondHalf=False)
    rows = [(n.start, n.end, n.pitch, n.velocity / 127.0) for n in est if n.pitch > 0]
    return Notes.from_rows(np.asarray(rows, float).reshape(-1, 4))


def _resample(y: np.ndarray, sr: int, target: int) -> np.ndarray:
    if sr == target:
        return y
    import soxr

    return soxr.resample(y, sr, target, quality="HQ").astype(np.float32)


class _Backend(NamedTuple):
    modules: tuple[str, ...]
    """Importable modules the transcriber needs."""
    install: str
    """How to get it, for the error message."""
    run: Callable[[np.ndarray, int, str], Notes]
    """(samples, sample rate, torch device) → notes."""


_BACKENDS: dict[str, _Backend] = {
    "basic-pitch": _Backend(("basic_pitch", "onnxruntime"),
                            "it is a dependency of crescendai: reinstall the project (`uv sync`)",
                            lambda y, sr, device: basic_pitch_notes(y, sr)),
    "transkun": _Backend(("transkun",),
                         "install it with `uv sync --extra transkun` (or pip install 'crescendai[transkun]')",
                         lambda y, sr, device: transkun_notes(y, sr, device=device)),
}
TRANSCRIBERS: tuple[str, ...] = tuple(_BACKENDS)
"""The transcribers' names, as ``--transcriber`` takes them."""
