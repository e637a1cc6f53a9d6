"""Where training runs: the device, mixed precision, and the ranks of a ``torchrun`` group.

    env = setup_distributed("auto")          # torchrun → DDP (nccl on GPU, gloo on CPU); else one process
    with autocast(env.device, amp="auto"):   # bf16/fp16 on CUDA; CPU bf16 only with amp="on"
        ...
    zg, rg = gather_across_ranks(z, rec)     # every rank's rows, gradients flowing back to their rank
    everything = gather_objects(mine, env)   # every rank's list, in rank order
    cleanup_distributed()
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as dist
import torch.nn.functional as F


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` → ``cuda`` when a GPU is visible, else ``cpu``; ``cuda`` without a GPU is an error."""
    if name not in ("auto", "cpu", "cuda") and not name.startswith("cuda:"):
        raise ValueError(f"device must be auto, cpu or cuda, got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device={name} but no CUDA device is visible; use auto or cpu")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def amp_dtype(device: torch.device, amp: str = "auto") -> torch.dtype | None:
    """The autocast dtype: CUDA → bf16 (fp16 on GPUs without bf16) unless ``amp="off"``;
    CPU → bf16 only with ``amp="on"`` (fast on CPUs with AVX512-BF16/AMX, slow elsewhere)."""
    if amp == "off":
        return None
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.bfloat16 if amp == "on" else None


def autocast(device: torch.device, amp: str = "auto") -> contextlib.AbstractContextManager:
    """Mixed-precision context for ``device`` (see :func:`amp_dtype`); a no-op when disabled."""
    dt = amp_dtype(device, amp)
    if dt is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dt)


@dataclass(frozen=True)
class DistEnv:
    """Process placement: ``rank`` of ``world`` processes, on ``device``."""

    rank: int = 0
    world: int = 1
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world > 1


def setup_distributed(device: str = "auto") -> DistEnv:
    """Single process, or DDP when launched by ``torchrun`` (``WORLD_SIZE`` > 1 in the environment).

    Backend: nccl when the device is CUDA (one GPU per ``LOCAL_RANK``), gloo on CPU.
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    dev = resolve_device(device)
    if world <= 1:
        return DistEnv(0, 1, dev)
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if dev.type == "cuda":
        torch.cuda.set_device(local)
        dev = torch.device("cuda", local)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo")
    return DistEnv(rank, world, dev)


def cleanup_distributed() -> None:
    """Leave the process group; a barrier first, so no rank tears it down while another is still in a
    collective (gloo aborts the process: "terminate called without an active exception")."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def gather_objects(mine: list, env: DistEnv) -> list:
    """Every rank's list, concatenated in rank order (``all_gather_object``); ``mine`` alone on one
    process."""
    if not env.distributed:
        return mine
    parts: list[list] = [[] for _ in range(env.world)]
    dist.all_gather_object(parts, mine)
    return [x for part in parts for x in part]


def broadcast_from_main(value: Any, env: DistEnv) -> Any:
    """Rank 0's ``value`` on every rank (``broadcast_object_list``); ``value`` itself on one process."""
    if not env.distributed:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def any_rank(flag: bool, env: DistEnv) -> bool:
    """True on every rank when ``flag`` is True on at least one."""
    if not env.distributed:
        return flag
    t = torch.tensor([float(flag)], device=env.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


class _GatherRows(torch.autograd.Function):
    """Every rank's rows of ``z`` concatenated in rank order (forward: ``all_gather`` of rows padded to
    the largest shard, then trimmed). Backward: the incoming gradient summed over ranks
    (``all_reduce``), this rank's rows returned — a reduce-scatter written with the one collective
    every backend has. ``ctx`` keeps only ints: no process-group handle outlives
    ``destroy_process_group`` in the autograd graph."""

    @staticmethod
    def forward(ctx, z: torch.Tensor, sizes: tuple[int, ...], rank: int) -> torch.Tensor:  # type: ignore[override]
        zp = F.pad(z, (0, 0, 0, max(sizes) - z.shape[0])).contiguous()
        parts = [torch.empty_like(zp) for _ in sizes]
        dist.all_gather(parts, zp)
        ctx.sizes, ctx.rank = sizes, rank
        return torch.cat([t[:k] for t, k in zip(parts, sizes, strict=True)])

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:  # type: ignore[override]
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        start = sum(ctx.sizes[: ctx.rank])
        return grad[start : start + ctx.sizes[ctx.rank]], None, None


def gather_across_ranks(z: torch.Tensor, rec: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Every rank's projections and recording ids, concatenated in rank order; identity when
    ``torch.distributed`` is not initialised or has one process.

    ``z`` (N_r, D) may differ in N_r across ranks. Gradients flow back to each rank's own rows, summed
    over ranks: with every rank computing the same loss on the gathered batch and DDP averaging, the
    update equals the single-process gradient of that loss, and each rank's items meet every other
    rank's recordings as negatives. ``rec`` must hold global recording ids so same-recording crops on
    different ranks are still masked.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return z, rec
    n = torch.tensor([z.shape[0]], device=z.device)
    sizes = [torch.zeros_like(n) for _ in range(dist.get_world_size())]
    dist.all_gather(sizes, n)
    sizes_i = tuple(int(x.item()) for x in sizes)
    rp = F.pad(rec, (0, max(sizes_i) - rec.shape[0]), value=-1)
    rs = [torch.empty_like(rp) for _ in sizes_i]
    dist.all_gather(rs, rp)
    return (_GatherRows.apply(z, sizes_i, dist.get_rank()),
            torch.cat([t[:k] for t, k in zip(rs, sizes_i, strict=True)]))
