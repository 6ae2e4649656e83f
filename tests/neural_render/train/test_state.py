"""The resumable training state (neural_render/train/state.py): a save interrupted between its file
renames, and a resume whose command line disagrees with the run it continues."""

import json
import shutil

import pytest
import torch

from neural_render.train.config import resolve
from neural_render.train.loop import train
from neural_render.train.state import STATE_JSON, load_state
from neural_render.train.trainer import Trainer


def _cfg(steps: int, **kw):
    cfg = resolve("tiny", "fast", steps=steps, sample_every=0, ckpt_every=0, log_every=1, **kw)
    cfg.warmup_max = 2
    return cfg


def test_a_kill_between_the_renames_never_pairs_new_weights_with_an_old_step(tmp_path):
    train(_cfg(1), tmp_path, show_progress=False)
    shutil.copy(tmp_path / STATE_JSON, tmp_path / "old.json")
    done = train(_cfg(2), tmp_path, resume=True, show_progress=False)
    # As if killed after the tensors file was renamed and before the JSON was: the JSON says step 1.
    shutil.copy(tmp_path / "old.json", tmp_path / STATE_JSON)
    trainer = Trainer(_cfg(2))
    assert load_state(trainer, tmp_path) == 2
    assert all(torch.equal(v, done.G.state_dict()[k]) for k, v in trainer.G.state_dict().items())


@pytest.mark.parametrize("extra, said", [(["--res", "96x48"], "--res 64x32 -> 96x48"),
                                         (["--batch", "2"], "--batch 1 -> 2"),
                                         (["--seq-len", "4"], "--seq-len 3 -> 4"),
                                         (["--loss-weight", "warp=10", "--loss-weight", "mask=2.5"],
                                          "--loss-weight mask=10 warp=3 -> mask=2.5 warp=10")])
def test_resume_with_another_size_batch_clip_length_or_loss_weight_is_said_and_recorded(tmp_path, capsys, extra, said):
    # Deliberate (vid2vid grows clips and resolution; a GPU takes a bigger batch), so allowed; but said,
    # and recorded in config.json, so that it still says how the weights were trained.
    from neural_render.train.__main__ import main

    base = ["--preset", "tiny", "--steps", "1", "--out", str(tmp_path), "--no-progress", "--sample-every", "0"]
    assert main(base) == 0
    capsys.readouterr()
    assert main([*base, "--steps", "2", "--resume", *extra]) == 0
    assert said in capsys.readouterr().out
    records = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    (resume,) = [r for r in records if r.get("event") == "resume"]
    assert resume["step"] == 1 and resume["changed"]


def test_resume_with_another_recipe_is_refused_before_any_step(tmp_path, capsys):
    from neural_render.train.__main__ import main

    base = ["--preset", "tiny", "--steps", "1", "--out", str(tmp_path), "--no-progress", "--sample-every", "0"]
    assert main(base) == 0
    config = (tmp_path / "config.json").read_text()
    capsys.readouterr()
    assert main([*base, "--steps", "2", "--resume", "--recipe", "vid2vid"]) == 2
    err = capsys.readouterr().err.strip()
    assert "--recipe fast" in err and "\n" not in err
    assert (tmp_path / "config.json").read_text() == config  # still says how the weights were trained


def test_resume_may_change_length_workers_and_learning_rate(tmp_path):
    train(_cfg(1), tmp_path, show_progress=False)
    assert train(_cfg(2, lr_g=1e-4, workers=0, time_limit_min=5.0), tmp_path, resume=True, show_progress=False).step == 2


def test_steps_logged_after_the_last_checkpoint_are_not_logged_twice_by_a_resume(tmp_path):
    train(_cfg(2), tmp_path, show_progress=False)
    with (tmp_path / "log.jsonl").open("a") as log:  # as if killed at step 4, after logging 3 and 4
        log.write('{"step": 3, "loss_g": 1.0}\n{"step": 4, "loss_g": 1.0}\n')
    train(_cfg(4), tmp_path, resume=True, show_progress=False)
    logged = [json.loads(line)["step"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert logged == [1, 2, 3, 4]


def test_the_summary_names_the_weights_the_evaluate_command_and_an_unfinished_run(tmp_path, capsys):
    cfg = _cfg(50, time_limit_min=1e-9)  # stops after the first step
    train(cfg, tmp_path, show_progress=False)
    out = capsys.readouterr().out
    assert str(tmp_path / "generator.safetensors") in out and f"neural_render.evaluate --model {tmp_path}" in out
    assert "stopped before --steps 50" in out and "--resume" in out


def test_the_step_a_run_stops_at_is_logged_between_log_intervals(tmp_path):
    cfg = _cfg(50, time_limit_min=1e-9)  # stops after the first step
    cfg.log_every = 10
    train(cfg, tmp_path, show_progress=False)
    (record,) = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert record["step"] == 1 and "loss_g" in record  # the step it stopped at, between log intervals
