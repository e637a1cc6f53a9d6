"""Two-process ``torch.distributed`` (gloo) runs for the tests: what ``torchrun`` would set up."""

from __future__ import annotations

import faulthandler
import os
import socket
from collections.abc import Callable
from pathlib import Path

import torch


def join_group(rank: int, world: int, port: int) -> None:
    """In a spawned rank: torchrun's environment, one thread, native aborts traced."""
    faulthandler.enable()
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)


def spawn_two_ranks(worker: Callable[[int, int, int, str], None], out: str | Path) -> None:
    """Run ``worker(rank, 2, port, out)`` on two spawned processes joined through a free local port;
    a rank that fails fails the caller."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    torch.multiprocessing.spawn(worker, args=(2, port, str(out)), nprocs=2, join=True)
