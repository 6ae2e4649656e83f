"""The training loop around ``Trainer``: data, progress bar, logs, sample strips, checkpoints, resume,
clean stops on Ctrl+C / SIGTERM / --time-limit, and the throughput report (frames/s)."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import torch

from carla_bridge.core.files import folder_write_problem
from carla_bridge.core.labels import colorize
from carla_bridge.core.png import write_png
from neural_render.checkpoint import RUN_WEIGHTS_FILE
from neural_render.train.config import TrainConfig
from neural_render.train.data import build_loader
from neural_render.train.ddp import DistInfo, any_rank, cleanup, gather, init_distributed
from neural_render.train.rollout import Rollout, to_uint8
from neural_render.train.run_folder import (RUN_EVIDENCE, clear_previous_run, describe_changes, record_resume_changes,
                                            refuse_previous_run, resume_changes, trim_log)
from neural_render.train.state import has_state, load_state, save_state
from neural_render.train.trainer import Trainer


class _Progress:
    """tqdm when installed (GPU machines may have torch and numpy only), else a line every few steps."""

    def __init__(self, total: int, initial: int, enabled: bool) -> None:
        self.bar = None
        self.enabled = enabled
        if enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)
            except ImportError:
                pass

    def update(self, step: int, text: str) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(text, refresh=False)  # drawn by the update: the last one is the final line
            self.bar.update(1)
        elif self.enabled and step % 10 == 0:
            print(f"[train] step {step} {text}", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None  # closed once: the end of a run and its clean-up both close it


def _tensorboard(out: Path, enabled: bool):
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard not installed: logs go to log.jsonl only
        return None
    return SummaryWriter(str(out / "tb"))


@torch.no_grad()
def sample_strip(trainer: Trainer, batch, path: Path, frames: int = 4) -> Path:
    """PNG rows per frame: labels | EMA output | target, for the first clip of the batch."""
    labels = batch["labels"][:1, :frames].to(trainer.device)
    flow = batch["flow"][:1, :frames].to(trainer.device)
    has_flow = batch["has_flow"][:1, :frames].to(trainer.device)
    weather = batch["weather"][:1, :frames].to(trainer.device)
    rollout = Rollout(trainer.G_ema, history=True)
    rows = []
    for t in range(labels.shape[1]):
        out = rollout.step(labels[:, t], flow[:, t], has_flow[:, t], cut=t == 0, weather=weather[:, t])
        image = to_uint8(out.image)[0].permute(1, 2, 0).cpu().numpy()
        target = batch["rgb"][0, t].permute(1, 2, 0).numpy()
        rows.append(np.concatenate([colorize(batch["labels"][0, t].numpy()), image, target], 1))
    return write_png(path, np.concatenate(rows, 0))


def _log(log_file, writer, step: int, fps: float | None, logs: dict) -> None:
    """One log.jsonl line (and the tensorboard scalars) for a step."""
    # 5 significant digits, not 5 decimals: a decayed learning rate is far below 1e-5.
    record = {"step": step, "frames_per_s": fps, **{k: float(f"{v:.5g}") for k, v in logs.items()}}
    log_file.write(json.dumps(record) + "\n")
    log_file.flush()
    if writer is not None:
        for k, v in record.items():
            if v is not None:
                writer.add_scalar(f"train/{k}", v, step)


def _where(out: Path, step: int, steps: int, res: tuple[int, int]) -> str:
    """Where the weights are and the next command, at the run's own resolution (evaluate's default,
    256x128, is four times the pixels of a tiny run); a stopped run has to say it is unfinished."""
    text = (f"weights (step {step}): {out / RUN_WEIGHTS_FILE}; evaluate: python -m neural_render.evaluate "
            f"--model {out} --res {res[0]}x{res[1]}")
    if step < steps:
        text += f"; stopped before --steps {steps}: add --resume to the same command to continue"
    return text


class _Stop:
    """The SIGINT / SIGTERM handler of a training run. The first signal asks to finish the step, save and
    exit, and says so at once; the second exits at once (130 for Ctrl+C) without saving, saying what is
    lost; a third is the signal's default action. Each one is said: a user who presses Ctrl+C must
    know whether the run is being saved or lost."""

    def __init__(self, out: Path, saved: int | None, speak: bool) -> None:
        self.out, self.saved, self.speak = out, saved, speak  # saved: the step on disk (None: none yet)
        self.requested = False

    def __call__(self, signum: int, _frame) -> None:
        name = "Ctrl+C" if signum == signal.SIGINT else "SIGTERM"
        if not self.requested:
            self.requested = True
            kept = f"last saved: step {self.saved}" if self.saved is not None else "nothing saved yet"
            self._say(f"{name}: stopping after this step and saving the run; {name} again stops at once "
                      f"WITHOUT saving ({kept})")
            return
        signal.signal(signum, signal.SIG_DFL)  # a third one is not caught: nothing left to say
        if self.saved is not None:
            self._say(f"{name} again: stopped WITHOUT saving; the steps after step {self.saved} are lost "
                      f"({self.out} keeps step {self.saved}: add --resume to the same command to continue)")
        else:
            self._say(f"{name} again: stopped WITHOUT saving; no checkpoint had been written (its log stays in "
                      f"{self.out}: start over there with --overwrite)")
        raise SystemExit(128 + signum)  # unwinds: the data workers and the process group shut down

    def _say(self, text: str) -> None:
        if self.speak:
            print(f"\n[train] {text}", file=sys.stderr, flush=True)


def _remove_partial_saves(out: Path) -> None:
    """The temporaries of a save this process did not finish (a second Ctrl+C during it): the files
    they were to replace are still whole."""
    for name in RUN_EVIDENCE:
        (out / f"{name}.tmp{os.getpid()}").unlink(missing_ok=True)


class TrainSetupError(ValueError):
    """A problem found before the first step (size, data path, output folder, checkpoint to resume):
    nothing has been trained yet, so the command line reports it in one line."""


def _agree(dist: DistInfo, error: Exception | None) -> None:
    """After one part of the set-up, every rank learns whether any rank failed it, and then all raise
    the same TrainSetupError or none does. A problem met by one rank alone (rank 0 cannot write --out;
    one machine lacks the --data-path or the --vgg-weights file) would otherwise end that rank only,
    and the others would fail in their next collective with a traceback each, or wait in it (NCCL)
    until torchrun killed them. An unexpected exception is raised again on the rank that met it, with its traceback."""
    expected = isinstance(error, (ValueError, FileNotFoundError))
    text = None if error is None else str(error) if expected else f"{type(error).__name__}: {error}"
    failed = [(rank, t) for rank, t in enumerate(gather(text)) if t is not None]
    if error is not None and not expected:
        raise error
    if failed:
        if len({t for _, t in failed}) == 1 and (len(failed) == dist.world_size or failed[0][0] == 0):
            raise TrainSetupError(failed[0][1])  # the same on every rank, or rank 0's own: said as it is
        raise TrainSetupError("; ".join(f"rank {rank}: {t}" for rank, t in failed))


def _same_run_on_every_rank(trainer: Trainer, out: Path, dist: DistInfo) -> None:
    """TrainSetupError when the ranks did not load the same run: a resume whose --out is a folder of
    one machine (the others find no checkpoint there and would start at step 0 with fresh Adam state,
    their replicas drifting apart without a word)."""
    digest = None
    if trainer.step:  # loaded weights; at step 0 (no checkpoint yet) sync_replicas makes them rank 0's
        blake = hashlib.blake2b(digest_size=16)
        for value in trainer.G.state_dict().values():
            blake.update(value.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
        digest = blake.hexdigest()
    seen = gather((trainer.step, digest))
    if len(set(seen)) > 1:
        steps = ", ".join(f"rank {rank} step {step}" for rank, (step, _) in enumerate(seen))
        raise TrainSetupError(f"--resume: the ranks did not load the same run from {out} ({steps}, or other "
                              f"weights): every process needs the same --out, a folder all machines share")


def _prepare(cfg: TrainConfig, out: Path, resume: bool, overwrite: bool, dist: DistInfo):
    """The trainer (resumed when asked and possible), the data loader (None when the run is already
    complete) and config.json in ``out``; every setup failure as a TrainSetupError, on every rank (see
    ``_agree``). An earlier run in ``out`` is refused unless resumed, or deleted with ``overwrite`` once
    every other check passed on every rank."""
    trainer = loader = error = None
    try:
        refuse_previous_run(out, resume, overwrite)  # every rank, before anything is written
        trainer = Trainer(cfg, dist)  # checks the size against the preset
        if resume and has_state(out):
            load_state(trainer, out)
            if dist.is_main:
                print(f"[train] resumed from {out} at step {trainer.step}", flush=True)
        elif resume and dist.is_main:
            print(f"[train] --resume: no checkpoint in {out} yet; starting from step 0", flush=True)
        # Finds the data now (a --data-path without sessions or Cityscapes frames fails here).
        loader = build_loader(cfg, trainer.step, dist.rank, dist.world_size) if trainer.step < cfg.steps else None
        problem = folder_write_problem(out) if dist.is_main else None  # by writing: os.access says yes to root on /sys
        if problem:
            raise ValueError(f"--out {out}: {problem}; pass another folder")
    except Exception as exc:  # noqa: BLE001 - every rank must hear of it (_agree); unexpected ones re-raised
        error = exc
    _agree(dist, error)
    if dist.enabled:
        if resume:
            _same_run_on_every_rank(trainer, out, dist)
        trainer.sync_replicas()
    error = None
    if dist.is_main:
        try:
            removed = clear_previous_run(out) if overwrite else []
            dropped, unreadable = trim_log(out, trainer.step) if resume else (0, 0)
            if unreadable:
                print(f"[train] warning: --resume dropped {unreadable} unreadable line{'s' * (unreadable > 1)} of "
                      f"{out / 'log.jsonl'} (half-written when the run was killed or its disk was full)",
                      file=sys.stderr, flush=True)
            if dropped:
                print(f"[train] --resume: dropped {dropped} log.jsonl records after step {trainer.step} "
                      f"(steps after the last checkpoint, trained again now)", flush=True)
            changes = resume_changes(trainer.resumed_from, cfg, dist.world_size) if trainer.resumed_from else None
            if changes:
                record_resume_changes(out, trainer.step, changes)
                print(f"[train] --resume: continuing step {trainer.step} with {describe_changes(changes)} "
                      f"(recorded in log.jsonl)", flush=True)
            if removed:
                print(f"[train] --overwrite: removed the earlier run's {len(removed)} files from {out}", flush=True)
            cfg.save(out / "config.json")
        except OSError as exc:
            error = ValueError(f"--out {out}: cannot be written ({exc.strerror or exc}); pass another folder")
        except Exception as exc:  # noqa: BLE001 - raised past _agree, it left the other ranks in its gather
            error = exc  # (e.g. a print of --out that stdout's encoding cannot take): re-raised there
    _agree(dist, error)
    return trainer, loader


def train(cfg: TrainConfig, out_dir: str | Path, resume: bool = False, show_progress: bool = True,
          threads: int | None = None, overwrite: bool = False) -> Trainer:
    """Train for cfg.steps steps (total, counting resumed ones); returns the trainer. A folder that
    already holds a run needs ``resume`` (continue it) or ``overwrite`` (delete it and start over)."""
    out = Path(out_dir)
    dist = init_distributed(cfg.device)
    torch.manual_seed(cfg.seed)
    if threads is not None:
        torch.set_num_threads(threads)
    elif cfg.device == "cpu" and cfg.workers > 0:
        # Leave the data workers their cores: an oversubscribed OpenMP pool spin-waits and runs ~10x
        # slower (measured on the 2-core box: 0.6 vs 5 frames/s).
        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        torch.set_num_threads(max(1, cores // max(dist.world_size, 1) - cfg.workers))
    try:
        trainer, loader = _prepare(cfg, out, resume, overwrite, dist)
    except BaseException:
        cleanup()
        raise
    stop = _Stop(out, trainer.step if has_state(out) else None, dist.is_main)
    deadline = time.monotonic() + cfg.time_limit_min * 60 if cfg.time_limit_min else None
    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    writer = _tensorboard(out, dist.is_main)
    progress = _Progress(cfg.steps, trainer.step, show_progress and dist.is_main)
    log_file = (out / "log.jsonl").open("a") if dist.is_main else None
    frames_done, t_start, fps = 0, None, None
    try:
        if loader is not None:
            loader = iter(loader)  # data workers start here, inside the clean-up below
        while trainer.step < cfg.steps:
            batch = next(loader)
            frames = trainer.throughput_frames(batch)
            logs = trainer.train_step(batch)
            if t_start is None:  # time from the end of the first step: excludes start-up and warm-up
                t_start = time.perf_counter()
            else:
                frames_done += frames
            # None until a step was timed: a 0.0 would read as a measured stall in log.jsonl.
            fps = round(frames_done / max(time.perf_counter() - t_start, 1e-9), 3) if frames_done else None
            step = trainer.step
            progress.update(step, f"loss {logs['loss_g']:.3f}" + (f" {fps:.2f} frames/s" if fps is not None else ""))
            timed_out = deadline is not None and time.monotonic() > deadline
            stopping = any_rank(stop.requested or timed_out, cfg.device)
            # The step a run stops at is logged too: between two log intervals its last losses were lost.
            if dist.is_main and (step % cfg.log_every == 0 or step == cfg.steps or stopping):
                _log(log_file, writer, step, fps, logs)
            if dist.is_main and cfg.sample_every and step % cfg.sample_every == 0:
                sample_strip(trainer, batch, out / "samples" / f"step_{step:07d}.png")
            if stopping:
                if dist.is_main:
                    why = "--time-limit" if timed_out and not stop.requested else "signal"
                    print(f"\n[train] stopping at step {step} ({why}); saving", flush=True)
                break
            if dist.is_main and cfg.ckpt_every and step % cfg.ckpt_every == 0:
                save_state(trainer, out)
                stop.saved = step
        if dist.is_main and (trainer.step != stop.saved or not has_state(out)):
            save_state(trainer, out)
            stop.saved = trainer.step
        progress.close()  # before the summary: an open bar's last line ran into it, and closing redrew it below
        if dist.is_main:
            summary = {"step": trainer.step, "frames_per_s": fps, "frames_timed": frames_done, "out": str(out)}
            if frames_done:
                print(f"[train] throughput {fps} frames/s over {frames_done} frames "
                      f"({cfg.preset} preset, {cfg.res[0]}x{cfg.res[1]}, batch {cfg.batch} x {dist.world_size} ranks)")
            else:  # --steps 0, a resume already at --steps, or a stop within the untimed warm-up steps
                print(f"[train] no throughput: no step was timed (at step {trainer.step})")
            print(f"[train] {_where(out, trainer.step, cfg.steps, cfg.res)}", flush=True)
            print(json.dumps(summary), flush=True)
    except BaseException:  # a crash, or a second Ctrl+C: its log and samples stay (they say what happened)
        if dist.is_main:
            _remove_partial_saves(out)
        raise
    finally:
        progress.close()
        if log_file is not None:
            log_file.close()
        if writer is not None:
            writer.close()
        cleanup()
        for s, handler in old.items():  # last: a Ctrl+C while the process group closes is still ours
            signal.signal(s, handler)
    return trainer
