"""Data-parallel training with torch.distributed: gloo on CPUs, NCCL on GPUs.

``train.loop.fit`` runs unchanged in one process; started under ``torchrun`` (which sets ``RANK``,
``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``) or by ``train.processes``
(``geoseg train --nproc N``), every process trains a replica wrapped in
DistributedDataParallel on its own random tiles: gradients are averaged, so the
replicas' weights stay identical, and only rank 0 writes checkpoints, metrics, curves
and previews. These helpers are the few collective steps ``fit`` needs.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass

import torch
import torch.distributed as tdist

from geoseg.errors import InputError


@dataclass(frozen=True)
class Dist:
    """This process's place in a data-parallel run (rank, world size, local rank); inactive alone."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def active(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def from_env() -> Dist:
    """The process's place in a torchrun-style launch (one process when the variables are unset)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", str(rank)))
    except ValueError:
        raise InputError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (as torchrun sets them)") from None
    return Dist(rank, world, local)


def init(dist: Dist, device: torch.device) -> torch.device:
    """Join the process group (NCCL on CUDA, else gloo); the device this rank trains on."""
    if device.type == "cuda":
        device = torch.device("cuda", dist.local_rank % torch.cuda.device_count())
        torch.cuda.set_device(device)
    if not tdist.is_initialized():
        tdist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo",
                                 rank=dist.rank, world_size=dist.world)
    return device


def close(dist: Dist) -> None:
    """Leave the process group, if this process joined one."""
    if dist.active and tdist.is_initialized():
        tdist.destroy_process_group()


def barrier(dist: Dist) -> None:
    """Wait for every process of the run (a no-op alone)."""
    if dist.active:
        tdist.barrier()


def any_rank(flag: bool, dist: Dist, device: torch.device) -> bool:
    """True on every rank when ``flag`` is true on any: one decision to stop, taken together."""
    if not dist.active:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    tdist.all_reduce(t, op=tdist.ReduceOp.MAX)
    return bool(t.item() > 0)


def sums(values: list[float], dist: Dist, device: torch.device) -> list[float]:
    """``values`` summed over the ranks."""
    if not dist.active:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    tdist.all_reduce(t)
    return t.tolist()


def gather(obj, dist: Dist) -> list:
    """Every rank's ``obj``, in rank order (on every rank)."""
    if not dist.active:
        return [obj]
    out = [None] * dist.world
    tdist.all_gather_object(out, obj)
    return out


def checksum(model: torch.nn.Module) -> str:
    """SHA-256 of the model's weights as they are in memory. (BatchNorm's running statistics
    are rank 0's, sent to every replica at each step, then updated by its own batch: they
    are not compared.)"""
    h = hashlib.sha256()
    for name, value in sorted(model.named_parameters()):
        h.update(name.encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()
