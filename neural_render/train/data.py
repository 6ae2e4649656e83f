"""Build the training DataLoader for a config: which source, which sample indices, how many workers.

Map-style sources (procedural, Cityscapes) are indexed by a global sample number: step s on rank r
uses samples s * B * world + r * B + j (j < B). The sampler starts at the resumed step, so a resumed
run consumes exactly the clips an uninterrupted run would have. Workers are CPU processes (torch
DataLoader), so a GPU machine needs only torch, numpy and the project to train.
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
from collections.abc import Iterator

from torch.utils.data import DataLoader, Sampler

from neural_render.train.config import TrainConfig
from neural_render.train.data_cityscapes import CityscapesClips
from neural_render.train.data_procedural import ProceduralClips
from neural_render.train.data_replay import ReplayClips


class StepSampler(Sampler[int]):
    """Infinite, ordered sample indices of one rank starting at ``start_step``."""

    def __init__(self, start_step: int, batch: int, rank: int = 0, world_size: int = 1) -> None:
        self.start_step, self.batch, self.rank, self.world_size = start_step, batch, rank, world_size

    def __iter__(self) -> Iterator[int]:
        step = self.start_step
        while True:
            base = (step * self.world_size + self.rank) * self.batch
            yield from range(base, base + self.batch)
            step += 1


def build_dataset(cfg: TrainConfig, rank: int = 0, world_size: int = 1, start_step: int = 0):
    width, height = cfg.res
    per_step = cfg.batch * world_size
    if cfg.data == "procedural":
        return ProceduralClips(width, height, cfg.seed, cfg.schedule, per_step, cfg.augment, cfg.warmup_max,
                               cfg.weather)
    if cfg.data == "cityscapes":
        schedule = cfg.schedule
        return CityscapesClips(cfg.data_path, width, height, lambda i: schedule.length(i // per_step),
                               cfg.seed, cfg.augment)
    return ReplayClips(cfg.data_path, width, height, cfg.schedule.max_len, cfg.seed, cfg.augment, rank, world_size,
                       start_step, cfg.batch)


def _worker_init(_worker_id: int) -> None:
    # Ctrl+C at the terminal and torchrun's forwarded SIGINT/SIGTERM (`kill -- -PGID`, batch schedulers
    # alike) go to the trainer's whole process group. They would kill the workers mid-batch, and every
    # rank would end in "DataLoader worker is killed by signal" tracebacks without saving. So each
    # worker leaves that group: the trainer finishes its step, saves and shuts the workers down in order. SIGTERM
    # itself stays deadly to a worker, so the DataLoader's last resort (terminate() on a worker that
    # does not stop) still works; a worker whose trainer is gone exits by the DataLoader's watchdog.
    if hasattr(os, "setpgrp"):
        os.setpgrp()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Windows: no process groups; Ctrl+C reaches every process
    atexit.register(_exit_without_native_teardown)


def _exit_without_native_teardown() -> None:
    """A worker's last step: leave before the native libraries' exit-time destructors run.

    A spawned worker ends with a full interpreter shutdown. On the 16-core H200 machine one run's
    workers aborted there ("terminate called without an active exception": C++ threads destroyed while
    still joinable), and the trainer, closing its DataLoader after the run had saved, printed "DataLoader
    worker is killed by signal: Aborted". Which library's threads it was is not known (a spawned process
    that rendered and exited did not abort alone); two runs with this hook closed cleanly.

    What the hook skips: atexit handlers registered before it (it runs first, the last registered)
    and the interpreter's own finalization. The worker's results are already with the trainer or no
    longer wanted (torch cancels the queue's join at shutdown), logging is flushed here, and under
    coverage (which saves its data at exit) the worker exits normally. Status 0 always: a worker's
    failures reach the trainer through its queue (torch's ExceptionWrapper), not its exit status."""
    if "coverage" in sys.modules:
        return
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):  # None, closed or broken: nothing to keep
            pass
    os._exit(0)


def build_loader(cfg: TrainConfig, start_step: int, rank: int = 0, world_size: int = 1) -> DataLoader:
    dataset = build_dataset(cfg, rank, world_size, start_step)
    extra = dict(num_workers=cfg.workers, pin_memory=cfg.device.startswith("cuda"))
    if cfg.workers > 0:
        # spawn, not fork: the parent has already run torch's OpenMP pool, and a forked child that then
        # renders with numba's threading layer can crash (GNU OpenMP is not fork-safe).
        extra.update(persistent_workers=True, prefetch_factor=4, worker_init_fn=_worker_init,
                     multiprocessing_context="spawn")
    if cfg.data == "replay":  # iterable: sequential reading, the dataset shards itself
        return DataLoader(dataset, batch_size=cfg.batch, **extra)
    sampler = StepSampler(start_step, cfg.batch, rank, world_size)
    return DataLoader(dataset, batch_size=cfg.batch, sampler=sampler, **extra)
