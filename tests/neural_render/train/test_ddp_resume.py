"""The multi-process (torchrun) path of training, on the CPU with gloo and two processes: a run stopped
by a signal on one rank and resumed equals an uninterrupted one, only rank 0 writes, a resume with
another number of processes is said; and the failures every rank must agree on: a set-up problem met
by one rank (one line from rank 0, not tracebacks from the others nor a wait in their next collective),
ranks that load different runs (a --out that is not shared), a non-finite loss on one rank, SIGTERM to
a trainer's process group (its data workers survive it), Ctrl+C during start-up (not a traceback per
rank), with errors printed by rank 0 alone."""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

WORLD = 2


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _join_rank(rank: int, port: int) -> None:
    """The torchrun environment of ``rank``; a new port per run (each train() makes its own group)."""
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                      MASTER_PORT=str(port))


def _cfg(steps: int, **kw):
    from neural_render.train.config import resolve

    cfg = resolve("tiny", "vid2vid", steps=steps, sample_every=1, ckpt_every=0, log_every=1, **kw)
    cfg.warmup_max = 2
    return cfg


def _run_ranks(fn, *args, timeout: float = 120.0) -> None:
    """``fn(rank, *args)`` in WORLD spawned processes; fails (instead of hanging the suite) when they
    have not all finished within ``timeout`` seconds, as ranks waiting in a collective would."""
    ctx = mp.start_processes(fn, args=args, nprocs=WORLD, join=False, start_method="spawn")
    deadline = time.monotonic() + timeout
    while not ctx.join(timeout=max(0.1, deadline - time.monotonic())):
        if time.monotonic() > deadline:
            for p in ctx.processes:
                if p.is_alive():
                    p.kill()
            pytest.fail(f"the ranks did not finish within {timeout} s (waiting in a collective?)")


def _state(trainer) -> dict[str, torch.Tensor]:
    out = {f"G.{k}": v.detach().clone().contiguous() for k, v in trainer.G.state_dict().items()}
    out.update({f"G_ema.{k}": v.detach().clone().contiguous() for k, v in trainer.G_ema.state_dict().items()})
    out.update({f"D_img.{k}": v.detach().clone().contiguous() for k, v in trainer.D_img.state_dict().items()})
    return out


# -- resume, signals, who writes -----------------------------------------------------------------------
def _resume_worker(rank: int, ports: list[int], root: str) -> None:
    torch.set_num_threads(1)
    from safetensors.torch import save_file

    from neural_render.train.loop import train
    from neural_render.train.trainer import Trainer

    root_path = Path(root)
    writes: list[str] = []
    if rank != 0:
        runs = str(root_path / "run")

        def audit(event: str, args: tuple) -> None:  # every file this rank opens for writing, renames, makes
            if event == "open" and str(args[0]).startswith(runs) and isinstance(args[1], str) and set(args[1]) & set("wax+"):
                writes.append(f"open {args[0]} {args[1]}")
            elif event in ("os.rename", "os.replace", "os.mkdir", "os.remove") and str(args[0]).startswith(runs):
                writes.append(f"{event} {args[0]}")

        sys.addaudithook(audit)

    # 1. Uninterrupted, 3 steps.
    _join_rank(rank, ports[0])
    full = _state(train(_cfg(3), root_path / "run_full", show_progress=False))
    # 2. SIGTERM reaches rank 1 alone during step 1: every rank stops after that step, rank 0 saves it.
    real = Trainer.train_step

    def step_and_signal(self, batch):
        logs = real(self, batch)
        if self.step == 1 and rank == 1:
            os.kill(os.getpid(), signal.SIGTERM)
        return logs

    Trainer.train_step = step_and_signal
    _join_rank(rank, ports[1])
    stopped = train(_cfg(3), root_path / "run_stopped", show_progress=False).step
    Trainer.train_step = real
    # 3. --resume to step 3.
    _join_rank(rank, ports[2])
    resumed = _state(train(_cfg(3), root_path / "run_stopped", resume=True, show_progress=False))
    save_file(full, str(root_path / f"full{rank}.safetensors"))
    save_file(resumed, str(root_path / f"resumed{rank}.safetensors"))
    (root_path / f"rank{rank}.json").write_text(json.dumps({"stopped": stopped, "writes": writes}))


@pytest.mark.slow
def test_a_run_stopped_by_a_signal_on_one_rank_and_resumed_equals_an_uninterrupted_run(tmp_path, capsys):
    from safetensors.torch import load_file

    from neural_render.train.loop import train
    from neural_render.train.state import read_state_info

    _run_ranks(_resume_worker, [_free_port() for _ in range(3)], str(tmp_path))
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD)]
    assert [r["stopped"] for r in ranks] == [1, 1]  # every rank stopped at the step rank 1 was signalled in
    full, resumed = load_file(tmp_path / "full0.safetensors"), load_file(tmp_path / "resumed0.safetensors")
    for name in ("full", "resumed"):  # the replicas agree
        other = load_file(tmp_path / f"{name}1.safetensors")
        assert all(torch.equal(v, other[k]) for k, v in load_file(tmp_path / f"{name}0.safetensors").items())
    differ = [k for k in full if not torch.equal(full[k], resumed[k])]
    assert not differ, f"the resumed run differs from the uninterrupted one at {differ[:3]}"
    assert ranks[1]["writes"] == []  # only rank 0 writes the run folder
    logged = [json.loads(line)["step"] for line in (tmp_path / "run_stopped" / "log.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 3]
    assert sorted(p.name for p in (tmp_path / "run_stopped" / "samples").iterdir()) == [
        "step_0000001.png", "step_0000002.png", "step_0000003.png"]
    assert read_state_info(tmp_path / "run_stopped")["world_size"] == WORLD
    # One process continues the two-process run: allowed (as another --batch is), and said and recorded.
    capsys.readouterr()
    assert train(_cfg(4), tmp_path / "run_stopped", resume=True, show_progress=False).step == 4
    assert "with torchrun processes 2 -> 1 (recorded in log.jsonl)" in capsys.readouterr().out
    records = [json.loads(line) for line in (tmp_path / "run_stopped" / "log.jsonl").read_text().splitlines()]
    (change,) = [r for r in records if r.get("event") == "resume"]
    assert change["step"] == 3 and change["changed"] == {"world_size": ["2", "1"]}


# -- failures on one rank ------------------------------------------------------------------------------
def _failure_worker(rank: int, ports: list[int], root: str) -> None:
    torch.set_num_threads(1)
    from neural_render.train.__main__ import main
    from neural_render.train.loop import TrainSetupError, train
    from neural_render.train.trainer import Trainer

    root_path, result = Path(root), {}
    # 1. Only rank 1's machine lacks the --data-path: both ranks stop before a step, rank 0 says it once.
    _join_rank(rank, ports[0])
    data = ["--data", "replay", "--data-path", str(root_path / "no-sessions")] if rank == 1 else []
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        result["main_rc"] = main(["--preset", "tiny", "--steps", "2", "--out", str(root_path / "run_data"),
                                  "--no-progress", *data])
    result["main_err"] = err.getvalue()
    # 2. A resume whose --out holds the run on rank 0's machine only (rank 1 sees an empty folder).
    _join_rank(rank, ports[1])
    train(_cfg(1), root_path / "run_shared", show_progress=False)
    _join_rank(rank, ports[2])
    try:
        train(_cfg(2), root_path / ("run_shared" if rank == 0 else f"run_local{rank}"), resume=True, show_progress=False)
        result["resume"] = "trained"
    except TrainSetupError as exc:
        result["resume"] = str(exc)
    # 3. The loss of rank 1 alone is not finite at its first step.
    if rank == 1:
        real = Trainer._generator_loss

        def nan_loss(self, *args):
            loss, parts = real(self, *args)
            return loss * float("nan"), parts

        Trainer._generator_loss = nan_loss
    _join_rank(rank, ports[3])
    try:
        train(_cfg(2), root_path / "run_nan", show_progress=False)
        result["nan"] = "trained"
    except FloatingPointError as exc:
        result["nan"] = str(exc)
    (root_path / f"rank{rank}.json").write_text(json.dumps(result))


@pytest.mark.slow
def test_a_problem_on_one_rank_stops_every_rank_with_one_line(tmp_path):
    _run_ranks(_failure_worker, [_free_port() for _ in range(4)], str(tmp_path))
    r0, r1 = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(WORLD))
    # Rank 0 stops too, rather than train on into its first all-reduce and die there with a gloo traceback.
    assert r0["main_rc"] == r1["main_rc"] == 2
    assert r0["main_err"].startswith("error: rank 1: --data-path") and r0["main_err"].count("\n") == 1
    assert r1["main_err"] == ""  # one line in all, from rank 0
    assert not (tmp_path / "run_data" / "log.jsonl").exists()  # nothing was trained
    # Ranks that load different runs (rank 1 at step 0 with fresh weights beside rank 0's step 1) stop,
    # rather than train replicas that drift apart.
    for r in (r0, r1):
        assert r["resume"].startswith("--resume: the ranks did not load the same run") and "rank 1 step 0" in r["resume"]
    # A non-finite loss on rank 1 stops both ranks with the same message, before the gradient all-reduce.
    assert r0["nan"] == r1["nan"] == "step 0: loss is not finite on rank 1; lower --lr or use --amp off"


def test_any_failure_of_rank_0_s_writes_is_agreed_so_no_rank_waits(tmp_path, monkeypatch):
    """Rank 0 alone writes the run folder after the first agreement; an error there other than OSError
    (a print of --out stdout's encoding cannot take, say) went past the second _agree, and the other
    ranks waited in its gather until torchrun killed them."""
    import neural_render.train.loop as loop
    from neural_render.train.ddp import DistInfo

    gathered = []

    def gather(text):  # rank 0's view of a two-rank all_gather_object; rank 1 met no problem
        gathered.append(text)
        return [text, None]

    def cannot_save(path):
        raise RuntimeError("boom")

    monkeypatch.setattr(loop, "gather", gather)
    cfg = _cfg(1)
    monkeypatch.setattr(cfg, "save", cannot_save)
    with pytest.raises(RuntimeError, match="boom"):  # rank 0 keeps its traceback
        loop._prepare(cfg, tmp_path / "run", False, False, DistInfo(rank=0, world_size=2))
    assert gathered == [None, "RuntimeError: boom"]  # the other ranks heard of it and stop


# -- SIGTERM to the process group, Ctrl+C during start-up, quiet ranks ----------------------------------
def test_data_workers_outlive_a_sigterm_to_the_process_group(tmp_path):
    # torchrun forwards SIGTERM (and Ctrl+C) to each trainer's whole process group, as `kill -- -PGID`
    # and batch schedulers do: data workers in that group would be killed, and every rank would end in
    # "DataLoader worker is killed by signal: Terminated" instead of finishing its step and saving.
    from neural_render.train.data import build_loader

    cfg = _cfg(1, workers=1)
    batches = iter(build_loader(cfg, 0))
    first = next(batches)
    (worker,) = batches._workers
    # Out of the trainer's process group, so a signal sent to that group does not reach it; SIGTERM to
    # the worker itself still would (the DataLoader's terminate() of a worker that does not stop).
    assert os.getpgid(worker.pid) not in (os.getpgid(0), os.getpgid(os.getppid()))
    second = next(batches)
    assert not torch.equal(first["labels"], second["labels"])
    del batches  # shuts the worker down in order


def test_ctrl_c_during_start_up_is_one_line_from_rank_0_only(tmp_path, monkeypatch, capsys):
    import neural_render.train.loop as loop
    from neural_render.train.__main__ import main

    def interrupted(_device):
        raise KeyboardInterrupt

    def rc(argv: list[str]) -> int:
        try:
            return main(argv)
        except KeyboardInterrupt:
            pytest.fail("Ctrl+C during start-up escaped main() as a KeyboardInterrupt traceback")

    monkeypatch.setattr(loop, "init_distributed", interrupted)
    argv = ["--preset", "tiny", "--steps", "1", "--out", str(tmp_path), "--no-progress"]
    assert rc(argv) == 130
    captured = capsys.readouterr()
    assert captured.err.strip() == "[train] Ctrl+C during start-up: stopped before training (nothing was saved)"
    monkeypatch.setenv("RANK", "1")
    assert rc(argv) == 130
    assert capsys.readouterr().err == ""


def test_the_package_imports_without_torch_so_start_up_can_take_ctrl_c():
    # `python -m neural_render.train` imports the package before its __main__ can catch Ctrl+C; torch
    # loaded there would print a KeyboardInterrupt traceback per rank.
    code = ("import sys, neural_render.train; print('torch' in sys.modules); "
            "import neural_render.train.config; print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]  # the package alone loads no torch; its modules do


@pytest.mark.parametrize("extra", [["--batch", "0"], ["--batch", "x"]])  # a set-up check, an argparse one
def test_ranks_other_than_0_say_nothing_about_a_bad_command_line(tmp_path, monkeypatch, capsys, extra):
    # Every rank meets the same bad command line: N copies of the error (or of the usage text) said no more.
    from neural_render.train.__main__ import main

    def rc(argv: list[str]) -> int:
        try:
            return main(argv)
        except SystemExit as exc:  # argparse
            return exc.code

    argv = ["--preset", "tiny", "--out", str(tmp_path), *extra]
    monkeypatch.setenv("RANK", "1")
    assert rc(argv) == 2
    assert capsys.readouterr().err == ""
    monkeypatch.setenv("RANK", "0")
    assert rc(argv) == 2
    assert "--batch" in capsys.readouterr().err


def test_only_rank_0_says_which_sessions_it_skips(tmp_path, capsys):
    # Every rank checks the sessions: each printed the same "skipping session" lines.
    import numpy as np

    from carla_bridge.core.frames import Control, SceneFrame
    from carla_bridge.session import SessionRecorder
    from neural_render.train.augment import AugmentConfig
    from neural_render.train.data_replay import ReplayClips

    for name, rgb in (("no_rgb", False), ("with_rgb", True)):
        with SessionRecorder(tmp_path / name, {"source": "test"}, size=(32, 16), record_rgb=rgb, video=False) as rec:
            for i in range(3):
                frame = SceneFrame(index=i, time_s=0.05 * i, labels=np.zeros((16, 32), np.uint8),
                                   rgb=np.zeros((16, 32, 3), np.uint8), cut=i == 0)
                rec.add(frame, Control(), None, {})
    said = {}
    for rank in (0, 1):
        ReplayClips(tmp_path, 32, 16, 2, 0, AugmentConfig(), rank=rank, world_size=2)
        said[rank] = capsys.readouterr().out
    assert "skipping session" in said[0] and "has no rgb" in said[0]
    assert said[1] == ""
