"""Multi-GPU / multi-machine training under ``torchrun`` (PyTorch distributed; no launcher of our own).

``torchrun --nproc_per_node N -m neural_render.train ...`` sets RANK / WORLD_SIZE / LOCAL_RANK; we join
the process group (nccl on CUDA, gloo on CPU), start every replica from rank 0's weights, and average
gradients with one all-reduce per model after each backward. We do this instead of wrapping in
``DistributedDataParallel`` because the recurrent generator runs T forwards per backward and the
discriminators take part in two backwards per step (their own and the generator's), which clash with
DDP's one-forward-one-backward reducer; an explicit all-reduce is exactly data-parallel SGD and keeps
the replicas bit-identical (tested with two gloo processes).

Only rank 0 writes the run folder and speaks. Set-up problems are agreed between ranks before the first
step (loop._agree: all stop with rank 0's one line, none waits in a collective), a resume checks that
every rank loaded the same step and weights, a non-finite loss stops every rank at the same step
(``ranks_with``), and a Ctrl+C / SIGTERM / --time-limit on any rank stops all after the same step
(``any_rank``), rank 0 saving it. torchrun forwards Ctrl+C and SIGTERM to each rank's process group
(the data workers have left it, data._worker_init, and are shut down in order), kills ranks still
running 30 s later, and prints a traceback of its own (SignalException, or ChildFailedError for a rank's
non-zero exit).
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


def ranks_with(flag: bool, device: str) -> list[int]:
    """The ranks that raised ``flag``, on every rank (one small all-reduce): a non-finite loss on one
    rank must stop every rank at the same step, not leave the others in the gradient all-reduce."""
    if not (dist.is_available() and dist.is_initialized()):
        return [0] if flag else []
    t = torch.zeros(dist.get_world_size(), device=device)
    t[dist.get_rank()] = 1.0 if flag else 0.0
    dist.all_reduce(t)
    return [rank for rank, value in enumerate(t.tolist()) if value > 0]


def gather(obj):
    """[rank 0's obj, rank 1's, ...] on every rank ([obj] without a process group): how the ranks learn
    what the others found during set-up (a problem one rank met must stop them all, not leave the others
    waiting in the next collective)."""
    if not (dist.is_available() and dist.is_initialized()):
        return [obj]
    objects = [None] * dist.get_world_size()
    dist.all_gather_object(objects, obj)
    return objects


def cleanup() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
