"""Multi-GPU / multi-machine training under ``torchrun`` (PyTorch distributed; no launcher of our own).

``torchrun --nproc_per_node N -m neural_render.train ...`` sets RANK / WORLD_SIZE / LOCAL_RANK; we join
the process group (nccl on CUDA, gloo on CPU), start every replica from rank 0's weights, and average
gradients with one all-reduce per model after each backward. We do this instead of wrapping in
``DistributedDataParallel`` because the recurrent generator runs T forwards per backward and the
discriminators take part in two backwards per step (their own and the generator's), which clash with
DDP's one-forward-one-backward reducer; an explicit all-reduce is exactly data-parallel SGD and keeps
the replicas bit-identical (tested with two gloo processes).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device: str) -> DistInfo:
    """Join the torchrun process group if WORLD_SIZE > 1; a plain run gets DistInfo() and no group."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    backend = "nccl" if device.startswith("cuda") else "gloo"
    if device.startswith("cuda"):
        torch.cuda.set_device(local)
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return DistInfo(rank, world, local)


def broadcast_module(module: torch.nn.Module | None) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if module is None or not (dist.is_available() and dist.is_initialized()):
        return
    for tensor in list(module.parameters()) + list(module.buffers()):
        dist.broadcast(tensor.data, src=0)


def average_gradients(module: torch.nn.Module | None) -> None:
    """Mean of every parameter gradient over ranks, in one flattened all-reduce (one bucket)."""
    if module is None or not (dist.is_available() and dist.is_initialized()):
        return
    params = [p for p in module.parameters() if p.requires_grad]
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
    flat = torch.cat([p.grad.reshape(-1) for p in params])
    dist.all_reduce(flat)
    flat /= dist.get_world_size()
    offset = 0
    for p in params:
        n = p.numel()
        p.grad.copy_(flat[offset : offset + n].view_as(p))
        offset += n


def any_rank(flag: bool, device: str) -> bool:
    """True on every rank when any rank raised the flag (Ctrl+C, time limit): all stop together."""
    if not (dist.is_available() and dist.is_initialized()):
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
