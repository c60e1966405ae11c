"""Data-parallel training across processes started by `torchrun`: who this process is, and the
few collective operations the trainer needs.

Every rank runs the same sampler and takes its rows of each global batch (`rank_slice`), so the
sequences a run sees do not depend on the number of processes, and a run can resume with a
different number. Gradients are averaged by DistributedDataParallel; rank 0 alone writes
metrics, checkpoints and samples. The backend is gloo on CPU and NCCL on CUDA.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from budgetlm.errors import UserError


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job (rank 0 of 1 when not launched by torchrun)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> Distributed:
    """Join the process group torchrun set up through WORLD_SIZE/RANK/MASTER_ADDR (once per
    process); a single process when WORLD_SIZE is unset or 1."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), world_size, int(os.environ.get("LOCAL_RANK", "0")))


def broadcast(value: Any, d: Distributed) -> Any:
    """Rank 0's `value` on every rank (any picklable object; decisions such as the planned
    number of steps must agree everywhere, or the ranks would wait on each other forever)."""
    if not d.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def mean_across(tensor: torch.Tensor, d: Distributed) -> torch.Tensor:
    """The element-wise mean of `tensor` over all ranks."""
    if not d.enabled:
        return tensor
    out = tensor.clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / d.world_size


def barrier(d: Distributed) -> None:
    """Wait until every rank gets here."""
    if d.enabled:
        dist.barrier()


def rank_slice(batch: np.ndarray, rank: int, world_size: int) -> np.ndarray:
    """This data-parallel rank's rows of a global batch (rows rank, rank + world, ...): the
    sequences a run sees do not depend on how many processes share them."""
    if batch.shape[0] % world_size:
        raise UserError(
            f"train.batch_size {batch.shape[0]} is not divisible by the {world_size} processes; "
            "choose a batch size that is a multiple of the number of processes"
        )
    return batch[rank::world_size]
