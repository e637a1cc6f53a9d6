"""What lets an interrupted stage continue: atomic checkpoints, every RNG's state, run folders.

A stage keeps its checkpoints in ``runs/<stage>/`` (outside DVC's outputs, which DVC deletes before it
reruns a stage) beside a ``RUN_HASH`` file: the hash of everything the run depends on (params, input
digests, world size). When ``dvc repro`` reruns an interrupted stage with the same hash, training
continues from the last checkpoint and reaches the result of an uninterrupted run; any change clears
the folder.

    resume = prepare_shared_run_dir("runs/pretrain", run_hash(seed, params.pretrain, digest), env)
    ...   # fit(..., checkpoint_path="runs/pretrain/last.pt", resume=resume)
    finish_run_dir("runs/pretrain")              # outputs written: a later rerun starts fresh
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch

from crescendai.learn.distributed import DistEnv, broadcast_from_main

log = logging.getLogger(__name__)

RUN_HASH_FILE = "RUN_HASH"


def rng_state(generator: torch.Generator | None = None) -> dict[str, Any]:
    """Every RNG as tensors/ints (loadable with ``weights_only=True``)."""
    np_state = np.random.get_state()  # noqa: NPY002 - the global RNG is what we must restore
    st: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        st["cuda"] = torch.cuda.get_rng_state_all()
    if generator is not None:
        st["generator"] = generator.get_state()
    return st


def set_rng_state(st: dict[str, Any], generator: torch.Generator | None = None) -> None:
    """Inverse of :func:`rng_state`."""
    v, internal, gauss = st["python"]
    random.setstate((v, tuple(internal), gauss))
    n = st["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))  # noqa: NPY002
    torch.set_rng_state(st["torch"])
    if "cuda" in st and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(st["cuda"])
    if generator is not None and "generator" in st:
        generator.set_state(st["generator"])


def load_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint (written atomically by ``crescendai.model.save_state_dict``; ``weights_only=True``)."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"{p}: no checkpoint to resume from; run without --resume first")
    return torch.load(p, map_location=map_location, weights_only=True)


def run_hash(*parts: Any) -> str:
    """sha1 of ``parts`` as canonical JSON (params dataclasses, file digests): what a run depends on."""
    return hashlib.sha1(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def prepare_run_dir(run_dir: str | os.PathLike[str], hash_: str, force_resume: bool = False) -> bool:
    """Make ``run_dir`` hold checkpoints of exactly the run ``hash_``; True when they can be resumed.

    ``force_resume`` keeps the checkpoints of another hash (and takes them over for ``hash_``).
    """
    d = Path(run_dir)
    marker = d / RUN_HASH_FILE
    same = marker.is_file() and marker.read_text().strip() == hash_
    if same or (force_resume and d.is_dir()):
        resumable = any(d.glob("*.pt"))
        if resumable:
            log.info("resuming interrupted run from %s", d)
        marker.write_text(hash_ + "\n")
        return resumable
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    marker.write_text(hash_ + "\n")
    return False


def prepare_shared_run_dir(run_dir: str | os.PathLike[str], hash_: str, env: DistEnv,
                           force_resume: bool = False) -> bool:
    """:func:`prepare_run_dir` for a group of ranks sharing ``run_dir``: rank 0 prepares it, every rank
    waits for that and returns rank 0's answer (True with ``force_resume``)."""
    resume = prepare_run_dir(run_dir, hash_, force_resume) if env.is_main else False
    return bool(broadcast_from_main(resume, env)) or force_resume


def finish_run_dir(run_dir: str | os.PathLike[str]) -> None:
    """Remove a run's checkpoints once the stage has written its outputs: a later rerun of the stage
    (DVC reruns it when any dependency changes) must start fresh, not "resume" a finished run."""
    shutil.rmtree(run_dir, ignore_errors=True)
