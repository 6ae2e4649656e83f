"""`python -m neural_render.train` (neural_render.train.__main__ over loop.train): Ctrl+C said and
saved, a GAN recipe on clips shorter than its temporal window, a failed run's folder, one-line errors
for a damaged state, a half-written log line, --device cuda without CUDA and bad flags, the throughput
line, and a --resume that keeps the run's settings for the flags it is not given."""

import json
import os
import signal

import pytest
import torch

from neural_render.train.__main__ import build_parser
from neural_render.train.__main__ import main as train_main
from neural_render.train.config import resolve
from neural_render.train.data_procedural import SequenceSchedule
from neural_render.train.loop import TrainSetupError, train
from neural_render.train.run_folder import previous_run_files
from neural_render.train.state import STATE_JSON, STATE_TENSORS
from neural_render.train.trainer import Trainer


def _cfg(recipe: str = "fast", steps: int = 3, **kw):
    cfg = resolve("tiny", recipe, **{"steps": steps, "sample_every": 0, "ckpt_every": 0, "log_every": 1, **kw})
    cfg.warmup_max = 2
    return cfg


def _argv(out, *extra):
    return ["--preset", "tiny", "--out", str(out), "--no-progress", "--sample-every", "0", *extra]


def _saved_step(out) -> int:
    return json.loads((out / STATE_JSON).read_text())["step"]


def _log(out) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


def _signal_at(monkeypatch, step: int, times: int, signum=signal.SIGINT):
    """Trainer.train_step sends ``times`` signals to this process right after step ``step``: as a user
    pressing Ctrl+C while that step runs."""
    real = Trainer.train_step

    def step_and_signal(self, batch):
        logs = real(self, batch)
        if self.step == step:
            for _ in range(times):
                os.kill(os.getpid(), signum)
        return logs

    monkeypatch.setattr(Trainer, "train_step", step_and_signal)


# -- Ctrl+C -------------------------------------------------------------------------------------------
def test_the_first_ctrl_c_says_at_once_that_it_stops_and_saves(tmp_path, monkeypatch, capsys):
    _signal_at(monkeypatch, 3, times=1)
    handler = signal.getsignal(signal.SIGINT)
    trainer = train(_cfg(steps=50, ckpt_every=2), tmp_path, show_progress=False)
    err = capsys.readouterr().err
    assert ("Ctrl+C: stopping after this step and saving the run; Ctrl+C again stops at once WITHOUT saving "
            "(last saved: step 2)") in err
    assert trainer.step == 3 and _saved_step(tmp_path) == 3  # the step it was in is saved: resume is exact
    assert signal.getsignal(signal.SIGINT) is handler  # given back


def test_a_second_ctrl_c_exits_130_at_once_saying_what_is_lost(tmp_path, monkeypatch, capsys):
    _signal_at(monkeypatch, 3, times=2)
    handler = signal.getsignal(signal.SIGINT)
    with pytest.raises(SystemExit) as exit_info:
        train(_cfg(steps=50, ckpt_every=2), tmp_path, show_progress=False)
    assert exit_info.value.code == 130
    err = capsys.readouterr().err
    assert "stopped WITHOUT saving; the steps after step 2 are lost" in err and "--resume" in err
    assert _saved_step(tmp_path) == 2  # the checkpoint before is untouched
    assert not list(tmp_path.glob("*.tmp*"))
    assert signal.getsignal(signal.SIGINT) is handler


def test_a_second_ctrl_c_before_the_first_checkpoint_keeps_the_log(tmp_path, monkeypatch, capsys):
    _signal_at(monkeypatch, 1, times=2)
    with pytest.raises(SystemExit):
        train(_cfg(steps=50), tmp_path, show_progress=False)
    assert "no checkpoint had been written" in capsys.readouterr().err
    assert previous_run_files(tmp_path) == ["log.jsonl"]  # what the run logged says what happened
    assert not list(tmp_path.glob("*.tmp*"))


# -- a GAN recipe on clips shorter than the temporal discriminator's K frames --------------------------
def test_a_temporal_discriminator_alone_waits_for_clips_of_k_frames(tmp_path):
    cfg = _cfg("vid2vid", steps=3)
    cfg.weights.gan = cfg.weights.feature_matching = 0.0  # no image D: only the temporal one (K = 3)
    cfg.schedule = SequenceSchedule(2, 3, 2)  # 2-frame clips for steps 1-2, then 3
    torch.manual_seed(cfg.seed)
    initial = {k: v.clone() for k, v in Trainer(cfg).D_tmp.state_dict().items()}
    trainer = train(cfg, tmp_path, show_progress=False)
    assert ["loss_d" in record for record in _log(tmp_path)] == [False, False, True]
    assert any(not torch.equal(initial[k], v) for k, v in trainer.D_tmp.state_dict().items())


def test_the_cli_trains_a_temporal_gan_on_short_clips(tmp_path):
    out = tmp_path / "run"
    assert train_main(_argv(out, "--steps", "2", "--loss-weight", "temporal_gan=1")) == 0
    assert _saved_step(out) == 2 and all("loss_d" not in record for record in _log(out))


def test_a_run_that_fails_after_a_checkpoint_keeps_its_files(tmp_path, monkeypatch):
    real = Trainer.train_step

    def fail_at_2(self, batch):
        if self.step == 1:
            raise RuntimeError("a bug in step 2")
        return real(self, batch)

    monkeypatch.setattr(Trainer, "train_step", fail_at_2)
    with pytest.raises(RuntimeError):
        train(_cfg(steps=3, ckpt_every=1), tmp_path, show_progress=False)
    assert set(previous_run_files(tmp_path)) == {"generator.safetensors", STATE_TENSORS, STATE_JSON, "log.jsonl"}
    assert _saved_step(tmp_path) == 1 and [r["step"] for r in _log(tmp_path)] == [1]


# -- 3, 4: a damaged training state, a half-written log line --------------------------------------------
def test_resume_from_a_truncated_training_state_is_a_one_line_error(tmp_path, capsys):
    train(_cfg(steps=1), tmp_path, show_progress=False)
    state = tmp_path / STATE_TENSORS
    state.write_bytes(state.read_bytes()[: state.stat().st_size // 2])  # a full disk, a copy cut short
    with pytest.raises(TrainSetupError, match=f"{STATE_TENSORS} cannot be read .*damaged"):
        train(_cfg(steps=2), tmp_path, resume=True, show_progress=False)
    capsys.readouterr()
    assert train_main(_argv(tmp_path, "--steps", "2", "--resume")) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "damaged" in err


def test_resume_drops_a_half_written_log_line_with_a_warning(tmp_path, capsys):
    train(_cfg(steps=2), tmp_path, show_progress=False)
    with (tmp_path / "log.jsonl").open("a") as log:  # killed (or out of disk) in the middle of a write
        log.write('{"step": 3, "frames_p')
    capsys.readouterr()
    train(_cfg(steps=3), tmp_path, resume=True, show_progress=False)
    err = capsys.readouterr().err
    assert f"dropped 1 unreadable line of {tmp_path / 'log.jsonl'}" in err and err.count("\n") == 1
    assert [record["step"] for record in _log(tmp_path)] == [1, 2, 3]


# -- 5, 6, 7, 9: flags refused before any work, naming the flag --------------------------------------------
@pytest.mark.parametrize("extra, needle", [
    (["--device", "cuda"], "--device cuda: torch sees no CUDA GPU on this machine; use --device cpu"),
    (["--device", "tpu"], "argument --device: must be cpu, cuda or cuda:N"),
    (["--loss-weight", "vgg=1"], "--loss-weight vgg needs --vgg-weights FILE"),
    (["--weather", "9"], "argument --weather: must be default, all or an index 0-4"),
    (["--weather", "-1"], "argument --weather"),
    (["--workers", "-1"], "argument --workers: must be 0 or more"),
    (["--time-limit", "0"], "argument --time-limit: must be more than 0"),
    (["--time-limit", "-1"], "argument --time-limit: must be more than 0"),
    (["--sample-every", "-1"], "argument --sample-every: must be 0 or more"),
])
def test_bad_flags_are_refused_naming_the_flag(tmp_path, monkeypatch, capsys, extra, needle):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # as on a CPU-only torch
    with pytest.raises(SystemExit) as exit_info:
        train_main(_argv(tmp_path / "run", "--steps", "1", *extra))
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and needle in err and "Traceback" not in err, err
    assert not (tmp_path / "run").exists()


def test_a_resume_without_device_names_the_runs_device_it_kept(tmp_path, monkeypatch, capsys):
    import neural_render.train.__main__ as train_cli

    saved = _cfg(steps=1).to_dict() | {"device": "cuda"}  # a run trained on a GPU, resumed on a laptop
    monkeypatch.setattr(train_cli, "read_saved_config", lambda out: saved)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit) as exit_info:
        train_main(["--out", str(tmp_path), "--resume", "--steps", "2"])
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and "--device cuda (the run's, kept by --resume): torch sees no CUDA GPU" in err


def test_weather_takes_the_indices_evaluate_takes():
    assert [build_parser().parse_args(["--out", "x", "--weather", w]).weather for w in ("default", "all", "4")] \
        == ["default", "all", "4"]


def test_an_explicit_vgg_weight_of_zero_is_kept_with_vgg_weights(tmp_path):
    out = tmp_path / "run"  # weight 0: the file is never read
    assert train_main(_argv(out, "--steps", "1", "--vgg-weights", str(tmp_path / "vgg.safetensors"),
                            "--loss-weight", "vgg=0")) == 0
    assert json.loads((out / "config.json").read_text())["weights"]["vgg"] == 0


# -- nothing timed --------------------------------------------------------------------------------------
def test_frames_per_s_is_null_when_no_step_was_timed(tmp_path, capsys):
    train(_cfg(steps=2), tmp_path, show_progress=False)
    train(_cfg(steps=3), tmp_path, resume=True, show_progress=False)  # its one step is untimed
    assert _log(tmp_path)[-1]["step"] == 3 and _log(tmp_path)[-1]["frames_per_s"] is None
    capsys.readouterr()
    assert train_main(_argv(tmp_path, "--steps", "3", "--resume")) == 0  # already there: nothing to time
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["frames_per_s"] is None and summary["frames_timed"] == 0


# -- a --resume keeps the run's settings -------------------------------------------------------------
def test_resume_keeps_the_settings_of_the_run_for_flags_not_given(tmp_path, capsys):
    """Resuming a fine-tune with only --resume --steps N keeps its --lr, decay and loss weights rather
    than the preset's, as the README's fine-tune example needs."""
    fine_tune = ["--lr", "1e-4", "--lr-decay-steps", "5", "--loss-weight", "warp=10", "--time-limit", "30"]
    assert train_main(_argv(tmp_path, "--steps", "1", *fine_tune)) == 0
    capsys.readouterr()
    argv = ["--out", str(tmp_path), "--no-progress", "--resume"]  # not even --preset: the run's
    assert train_main([*argv, "--steps", "2"]) == 0
    assert "--resume: continuing" not in capsys.readouterr().out
    config = json.loads((tmp_path / "config.json").read_text())
    kept = (config["preset"], config["lr_g"], config["lr_decay_steps"], config["weights"]["warp"])
    assert kept == ("tiny", 1e-4, 5, 10)
    assert config["sample_every"] == 0 and config["time_limit_min"] is None  # a limit is one command's
    assert not [r for r in _log(tmp_path) if r.get("event") == "resume"]
    # A flag given still changes the run, said and recorded; the others stay the run's.
    assert train_main([*argv, "--steps", "3", "--lr", "2e-4"]) == 0
    assert "continuing step 2 with --lr 0.0001 -> 0.0002 (recorded" in capsys.readouterr().out
    config = json.loads((tmp_path / "config.json").read_text())
    assert (config["lr_g"], config["lr_decay_steps"], config["weights"]["warp"]) == (2e-4, 5, 10)
    (resume,) = [r for r in _log(tmp_path) if r.get("event") == "resume"]
    assert set(resume["changed"]) == {"lr_g", "lr_d"}


def test_resume_of_a_run_whose_settings_this_version_cannot_read_is_one_line(tmp_path, capsys):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from neural_render.train.state import STATE_META_KEY

    assert train_main(_argv(tmp_path, "--steps", "1")) == 0
    state = tmp_path / STATE_TENSORS
    with safe_open(str(state), framework="pt") as f:
        metadata = f.metadata()
    info = json.loads(metadata[STATE_META_KEY])
    info["config"]["weights"]["a_loss_since_removed"] = 1.0  # as a run of a later or earlier version
    save_file(load_file(str(state)), str(state), metadata={**metadata, STATE_META_KEY: json.dumps(info)})
    capsys.readouterr()
    assert train_main(["--out", str(tmp_path), "--no-progress", "--resume", "--steps", "2"]) == 2
    err = capsys.readouterr().err
    assert "saved settings do not fit this version" in err and "a_loss_since_removed" in err
    assert "Traceback" not in err


def test_a_tiny_run_shows_its_bar_once_then_an_evaluate_command_at_its_resolution(tmp_path, capsys, monkeypatch):
    import neural_render.train.loop as loop

    printed_at_close = []
    real_close = loop._Progress.close

    def close(self):  # what stdout held when the bar was closed: an open bar ran into the closing lines
        printed_at_close.append(capsys.readouterr().out)  # and was drawn again below them at its close
        real_close(self)

    monkeypatch.setattr(loop._Progress, "close", close)
    train(_cfg(steps=2), tmp_path, show_progress=True)
    out = "".join(printed_at_close) + capsys.readouterr().out
    assert "[train] throughput" not in printed_at_close[0] and "[train] throughput" in out
    assert f"evaluate --model {tmp_path} --res 64x32" in out  # evaluate's own default is 256x128
