"""Training on the procedural world with the tiny preset: steps change the weights with finite
losses, checkpoints round-trip, and a resumed run equals an uninterrupted one."""

import json
import math
import os
import stat

import pytest
import torch
from safetensors.torch import load_file

from neural_render.checkpoint import load_generator, save_generator
from neural_render.model import build_generator
from neural_render.train.__main__ import main as train_main
from neural_render.train.config import learning_rate, resolve
from neural_render.train.loop import TrainSetupError, train
from neural_render.train.splits import EVAL_SEED_BASE, eval_seeds, train_seed


def _cfg(recipe: str = "fast", steps: int = 3, **kw):
    cfg = resolve("tiny", recipe, steps=steps, sample_every=0, ckpt_every=0, log_every=1, **kw)
    cfg.warmup_max = 2
    return cfg


@pytest.mark.parametrize("recipe", ["fast", "vid2vid"])
def test_steps_change_weights_with_finite_losses(tmp_path, recipe):
    cfg = _cfg(recipe, steps=2)
    torch.manual_seed(cfg.seed)

    initial = build_generator("tiny").state_dict()
    trainer = train(cfg, tmp_path, show_progress=False)
    after = trainer.G.state_dict()
    assert any(not torch.equal(initial[k], after[k]) for k in initial)
    logs = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    losses = [v for rec in logs for k, v in rec.items() if k != "frames_per_s"]
    assert len(logs) == 2 and all(math.isfinite(v) for v in losses)
    # The first step is not timed (start-up, warm-up): null, not a 0.0 that reads as a measured stall.
    assert logs[0]["frames_per_s"] is None and logs[1]["frames_per_s"] > 0
    if recipe == "vid2vid":
        assert "loss_d" in logs[-1] and "feature_matching" in logs[-1]
    assert {"l1", "flow", "warp", "mask"} <= set(logs[-1])


def test_resume_reproduces_uninterrupted_run(tmp_path):
    straight = train(_cfg("vid2vid", steps=3), tmp_path / "a", show_progress=False)
    train(_cfg("vid2vid", steps=2), tmp_path / "b", show_progress=False)
    resumed = train(_cfg("vid2vid", steps=3), tmp_path / "b", resume=True, show_progress=False)
    assert resumed.step == 3
    for name in ("G", "G_ema", "D_img", "D_tmp"):
        a, b = getattr(straight, name).state_dict(), getattr(resumed, name).state_dict()
        for key in a:
            assert torch.equal(a[key], b[key]), f"{name}.{key} differs after resume"
    state_a, state_b = load_file(tmp_path / "a" / "train_state.safetensors"), load_file(tmp_path / "b" / "train_state.safetensors")
    assert state_a.keys() == state_b.keys()
    assert all(torch.equal(state_a[k], state_b[k]) for k in state_a)


def test_learning_rate_holds_then_decays_linearly_to_zero():
    assert [learning_rate(1.0, s, 10, 0) for s in (0, 9, 10)] == [1.0, 1.0, 1.0]
    assert [learning_rate(1.0, s, 10, 4) for s in range(11)] == [1.0] * 7 + [0.75, 0.5, 0.25, 0.0]
    with pytest.raises(ValueError, match="--lr-decay-steps"):
        _cfg(lr_decay_steps=-1)


def test_decay_reaches_the_last_step_and_a_resume_takes_the_new_lr(tmp_path):
    decayed = train(_cfg("vid2vid", steps=3, lr_decay_steps=2), tmp_path / "a", show_progress=False)
    base = decayed.cfg.lr_g
    assert decayed.opt_g.param_groups[0]["lr"] == pytest.approx(base / 2)  # the last step ran at 1/2
    assert decayed.opt_d.param_groups[0]["lr"] == pytest.approx(decayed.cfg.lr_d / 2)
    logged = [json.loads(line)["lr_g"] for line in (tmp_path / "a" / "log.jsonl").read_text().splitlines()]
    assert logged == pytest.approx([base, base, base / 2])
    # The optimizer state saved at 2 steps holds the old rate; the resumed run must use the new --lr.
    train(_cfg(steps=2), tmp_path / "b", show_progress=False)
    resumed = train(_cfg(steps=3, lr_g=base / 10), tmp_path / "b", resume=True, show_progress=False)
    assert resumed.step == 3 and resumed.opt_g.param_groups[0]["lr"] == pytest.approx(base / 10)


def test_checkpoint_loads_as_generator_and_matches_ema(tmp_path):
    trainer = train(_cfg(steps=1), tmp_path, show_progress=False)
    model = load_generator(tmp_path / "generator.safetensors")
    ema = trainer.G_ema.state_dict()
    assert all(torch.equal(v, ema[k]) for k, v in model.state_dict().items())
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["preset"] == "tiny" and saved["res"] == [64, 32]


def test_cli_writes_samples_checkpoint_and_throughput(tmp_path, capsys):
    out = tmp_path / "run"
    code = train_main(["--preset", "tiny", "--steps", "2", "--out", str(out), "--sample-every", "2",
                       "--no-progress", "--res", "64x32"])
    assert code == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["step"] == 2 and last["frames_per_s"] >= 0
    assert (out / "samples" / "step_0000002.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "generator.safetensors").is_file() and (out / "train_state.json").is_file()


def test_cli_rejects_bad_arguments(capsys):
    assert train_main(["--preset", "tiny", "--data", "replay", "--out", "x"]) == 2
    assert "--data-path" in capsys.readouterr().err


@pytest.mark.parametrize("extra, needle", [
    (["--seq-len", "0"], "--seq-len must be at least 1"),  # 0 is an error, not "not given"
    (["--lr", "0"], "--lr must be positive"),
    (["--res", "60x32"], "size 60x32"),
    (["--data", "replay", "--data-path", "{tmp}/nowhere"], "is not a folder"),
    (["--data", "cityscapes", "--data-path", "{tmp}"], "not a Cityscapes-format"),
    (["--out", "{tmp}/file/run"], "--out"),
    (["--preset", "cpu", "--resume", "--out", "{tmp}/tiny_run"], "holds a 'tiny' run"),
    (["--out", "{tmp}/tiny_run"], "pass --resume to continue it, --overwrite to start over"),
    pytest.param(["--out", "/sys/neural-drive-run"], "--out /sys/neural-drive-run: cannot be created",
                 marks=pytest.mark.skipif(not os.path.isdir("/sys"), reason="needs Linux's /sys")),
])
def test_cli_setup_errors_are_one_line_before_any_step(tmp_path, capsys, extra, needle):
    """Setup problems are one-line errors before any step, not tracebacks (and --seq-len 0 is one)."""
    train(_cfg(steps=1), tmp_path / "tiny_run", show_progress=False)
    (tmp_path / "file").write_text("a file where --out's parent folder should be")
    capsys.readouterr()
    argv = ["--preset", "tiny", "--steps", "1", "--out", str(tmp_path / "run"), "--no-progress"]
    argv += [arg.format(tmp=tmp_path) for arg in extra]
    assert train_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err
    assert not (tmp_path / "run").exists()  # nothing written for a run that never started


def test_a_folder_that_holds_a_run_is_kept_until_resume_or_overwrite(tmp_path, capsys):
    """A new run without --resume in a folder that holds a run is refused, and nothing there is replaced
    (weights, log.jsonl, samples); with --overwrite it starts afresh, its steps not appended to the old
    run's log."""
    out = tmp_path / "run"
    cfg = _cfg(steps=2)
    cfg.sample_every = 1
    train(cfg, out, show_progress=False)
    (out / "notes.txt").write_text("the user's own file")
    (out / "train_state.safetensors.tmp4242").write_bytes(b"half a save")  # a kill during a save leaves it
    (out / ".log.jsonl.x1y2.tmp").write_bytes(b"half a log")  # ... or during a resume's log trim
    assert len(list((out / "samples").glob("*.png"))) == 2
    before = {name: (out / name).read_bytes() for name in ("generator.safetensors", "log.jsonl", "train_state.json")}
    capsys.readouterr()
    argv = ["--preset", "tiny", "--steps", "1", "--res", "64x32", "--out", str(out), "--no-progress"]
    assert train_main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: --out") and err.count("\n") == 1 and "--resume" in err and "--overwrite" in err
    assert all((out / name).read_bytes() == data for name, data in before.items())  # nothing replaced
    assert train_main([*argv, "--overwrite"]) == 0
    logs = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [record["step"] for record in logs] == [1]  # the old run's steps are gone, not mixed in
    assert json.loads((out / "train_state.json").read_text())["step"] == 1
    assert not list((out / "samples").glob("*.png")) and (out / "notes.txt").read_text() == "the user's own file"
    assert not (out / "train_state.safetensors.tmp4242").exists() and not (out / ".log.jsonl.x1y2.tmp").exists()


def test_resume_and_overwrite_exclude_each_other_and_resume_needs_a_state(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train_main(["--preset", "tiny", "--out", str(tmp_path), "--resume", "--overwrite"])
    assert exit_info.value.code == 2 and "not allowed with argument" in capsys.readouterr().err
    with pytest.raises(TrainSetupError, match="pass one of them"):
        train(_cfg(steps=1), tmp_path, resume=True, overwrite=True, show_progress=False)
    # Weights without a training state: --resume would start at step 0 and replace them.
    save_generator(build_generator("tiny"), tmp_path / "generator.safetensors")
    weights = (tmp_path / "generator.safetensors").read_bytes()
    assert train_main(["--preset", "tiny", "--steps", "1", "--out", str(tmp_path), "--resume", "--no-progress"]) == 2
    assert "no complete training state" in capsys.readouterr().err
    assert (tmp_path / "generator.safetensors").read_bytes() == weights


def test_saved_files_get_the_mode_the_umask_gives(tmp_path):
    """safetensors creates its files 0600; the weights and state get the umask's mode instead, as any
    new file does."""
    old = os.umask(0o002)
    try:
        train(_cfg(steps=1), tmp_path, show_progress=False)
    finally:
        os.umask(old)
    for name in ("generator.safetensors", "train_state.safetensors", "train_state.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o664, name


def test_resume_without_a_checkpoint_says_it_starts_fresh(tmp_path, capsys):
    trainer = train(_cfg(steps=1), tmp_path, resume=True, show_progress=False)
    assert trainer.step == 1 and "no checkpoint in" in capsys.readouterr().out


def test_training_seeds_never_touch_evaluation_seeds():
    assert all(train_seed(s, i) < EVAL_SEED_BASE for s in range(3) for i in range(2000))
    assert eval_seeds(2) == [EVAL_SEED_BASE, EVAL_SEED_BASE + 1]


def test_evaluate_cli_prints_json_last(tmp_path, capsys):
    from neural_render.evaluate import main as eval_main

    train(_cfg(steps=1), tmp_path, show_progress=False)
    strip = tmp_path / "strip.png"
    code = eval_main(["--model", str(tmp_path / "generator.safetensors"), "--res", "64x32", "--frames", "4",
                      "--seeds", "1", "--no-progress", "--strip", str(strip)])
    assert code == 0
    from PIL import Image

    # One row per snapshot (frames 1, 2 and 3 of 4: the linspace collapses duplicates), three panes per row.
    assert Image.open(strip).size == (3 * 64, 3 * 32)
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["seeds"] == [EVAL_SEED_BASE]
    for key in ("psnr", "ssim", "warp_error", "warp_error_framewise", "warp_ratio", "warp_error_engine"):
        assert math.isfinite(result[key]), key
    assert 0 < result["ssim"] <= 1 and result["warp_error_engine"] >= 0
    # 4 frames: each quarter is one frame, so the quarters average back to the drive's PSNR.
    for quarters, whole in (("psnr_by_quarter", "psnr"), ("psnr_framewise_by_quarter", "psnr_framewise")):
        assert len(result[quarters]) == 4
        assert sum(result[quarters]) / 4 == pytest.approx(result[whole], abs=2e-3)


def test_evaluate_json_is_strict_when_a_quarter_has_no_frames(tmp_path, capsys):
    """3 frames: one quarter of the drive is empty; its NaN made the last line unreadable to jq."""
    from neural_render.evaluate import main as eval_main

    model = save_generator(build_generator("tiny"), tmp_path / "tiny.safetensors")
    assert eval_main(["--model", str(model), "--res", "64x32", "--frames", "3", "--seeds", "1", "--no-progress"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1], parse_constant=_reject_constant)
    assert None in result["psnr_by_quarter"] and len(result["psnr_by_quarter"]) == 4
    assert math.isfinite(result["psnr"])


def _reject_constant(name):
    raise ValueError(f"not strict JSON: {name}")


def test_by_quarter_splits_a_drive_in_time_order():
    from neural_render.evaluate import by_quarter

    assert by_quarter([1, 1, 2, 2, 3, 3, 4, 4]) == [1, 2, 3, 4]
    assert by_quarter([0, 5, 0, 9, 9]) == [2.5, 0, 9, 9]  # 5 frames: the first quarter takes the extra one


def test_zero_steps_reports_no_throughput_rather_than_zero(tmp_path, capsys):
    out = tmp_path / "run"
    assert train_main(["--preset", "tiny", "--steps", "0", "--out", str(out), "--no-progress", "--res", "64x32"]) == 0
    printed = capsys.readouterr().out
    assert "no step was timed (at step 0)" in printed and "0.0 frames/s" not in printed
    assert json.loads(printed.strip().splitlines()[-1])["frames_timed"] == 0


@pytest.mark.parametrize("value, needle", [("warp", "expected NAME=WEIGHT"), ("blur=1", "expected NAME=WEIGHT"),
                                           ("warp=much", "must be a number"), ("warp=-1", ">= 0"),
                                           ("warp=nan", ">= 0")])
def test_loss_weight_takes_a_known_loss_and_a_finite_weight(tmp_path, capsys, value, needle):
    with pytest.raises(SystemExit) as exit_info:
        train_main(["--preset", "tiny", "--out", str(tmp_path / "run"), "--loss-weight", value])
    assert exit_info.value.code == 2 and needle in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_loss_weight_overrides_the_recipe_and_is_saved(tmp_path):
    out = tmp_path / "run"
    assert train_main(["--preset", "tiny", "--steps", "1", "--out", str(out), "--no-progress", "--sample-every", "0",
                       "--loss-weight", "warp=7.5", "--loss-weight", "mask=0"]) == 0
    weights = json.loads((out / "config.json").read_text())["weights"]
    assert weights["warp"] == 7.5 and weights["mask"] == 0 and weights["l1"] == 10.0  # the rest: the recipe's
