"""Fusion-mask calibration: the offset moves only the mask, the rule picks the sharpest point inside
the flicker budget, and the CLI writes an ordinary checkpoint that records what it did."""

from __future__ import annotations

import json
import os
import stat

import pytest
import torch

from neural_render.calibrate import choose_offset, main, with_mask_offset
from neural_render.checkpoint import load_generator, read_metadata, save_generator
from neural_render.model import example_inputs
from neural_render.train.splits import EVAL_SEED_BASE, VALIDATION_SEED_BASE, split_seeds
from neural_render.warp import in_view
from support.runtime import tiny_generator_with_flow


def test_offset_lowers_the_mask_logit_and_nothing_else():
    model = tiny_generator_with_flow()
    inputs = example_inputs(model.config, 64, 32)
    with torch.no_grad():
        before, after = model(*inputs), with_mask_offset(model, 1.0)(*inputs)
    logit = lambda m: torch.logit(m.mask.clamp(1e-6, 1 - 1e-6))  # noqa: E731
    # Where the flow leaves the previous frame the mask is scaled down (or zeroed) by geometry, so the
    # learned logit shows only in pixels fully in view; the random flow leaves most of them so.
    inside = in_view(before.flow) == 1.0
    assert 0.5 < float(inside.float().mean()) < 1.0
    assert torch.allclose(logit(after)[inside], logit(before)[inside] - 1.0, atol=1e-4)  # exactly one logit lower
    assert bool((after.mask[~inside] <= before.mask[~inside]).all())
    assert torch.equal(after.flow, before.flow) and torch.equal(after.hallucinated, before.hallucinated)
    assert model.flow_branch.head.bias.tolist() != with_mask_offset(model, 1.0).flow_branch.head.bias.tolist()
    assert torch.equal(model(*inputs).mask, before.mask)  # the model given in is left as it was


def _point(offset, psnr, warp_error, warp_ratio=None):
    return {"offset": offset, "psnr": psnr, "warp_error": warp_error, "warp_ratio": warp_ratio}


def test_rule_takes_the_best_psnr_within_the_flicker_budget():
    curve = [_point(0.0, 21.0, 1.00), _point(0.5, 21.5, 1.05), _point(1.0, 22.0, 1.09), _point(2.0, 23.0, 1.30)]
    assert choose_offset(curve, 0.10)["offset"] == 1.0
    assert choose_offset(curve, 0.0)["offset"] == 0.0  # no budget: the model as trained
    assert choose_offset(curve, 0.5)["offset"] == 2.0
    with pytest.raises(ValueError, match="offset 0"):
        choose_offset(curve[1:], 0.1)


def test_ratio_rule_takes_the_best_psnr_steady_enough_and_names_the_steadiest_when_none_is():
    curve = [_point(-1.0, 21.0, 0.8, 0.40), _point(0.0, 22.0, 1.0, 0.50), _point(1.0, 23.0, 1.2, 0.60)]
    assert choose_offset(curve, 0.1, max_warp_ratio=0.5)["offset"] == 0.0  # at the limit counts
    assert choose_offset(curve, 0.1, max_warp_ratio=0.45)["offset"] == -1.0
    assert choose_offset(curve, 0.0, max_warp_ratio=0.7)["offset"] == 1.0  # the ratio rule, not the budget
    with pytest.raises(ValueError, match=r"steadiest, -1, reaches 0.400.*--offsets -2,-1.5"):
        choose_offset(curve, 0.1, max_warp_ratio=0.3)


def test_validation_seeds_never_meet_the_test_seeds():
    validation, test = split_seeds("validation", 100), split_seeds("test", 100)
    assert not set(validation) & set(test) and min(validation) == VALIDATION_SEED_BASE > max(test) >= EVAL_SEED_BASE
    with pytest.raises(ValueError, match="--split"):
        split_seeds("train", 1)


@pytest.fixture()
def checkpoint(tmp_path):
    return save_generator(tiny_generator_with_flow(), tmp_path / "tiny.safetensors", meta={"step": 7})


def _run(checkpoint, out, *extra):
    return main(["--model", str(checkpoint), "--out", str(out), "--res", "64x32", "--frames", "3", "--seeds", "1",
                 "--offsets", "0,1", "--no-progress", *extra])


def _reject_constant(name):
    raise ValueError(f"not strict JSON: {name}")


def test_cli_writes_a_checkpoint_that_records_its_calibration(checkpoint, tmp_path, capsys):
    out = tmp_path / "calibrated.safetensors"
    old_umask = os.umask(0o022)
    try:
        assert _run(checkpoint, out) == 0
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644  # safetensors alone makes it 0600
    # 3 frames leave a quarter of the drive empty: null there, not NaN (jq and JSON.parse reject NaN).
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1], parse_constant=_reject_constant)
    assert None in result["chosen"]["psnr_by_quarter"]
    chosen = result["mask_logit_offset"]
    assert chosen in (0.0, 1.0) and result["seeds"] == [VALIDATION_SEED_BASE]
    _, meta = read_metadata(out)
    assert meta["step"] == 7 and meta["calibration"]["mask_logit_offset"] == chosen  # training meta kept
    assert [p["offset"] for p in meta["calibration"]["curve"]] == [0.0, 1.0]
    original, calibrated = load_generator(checkpoint), load_generator(out)
    expected = with_mask_offset(original, chosen).flow_branch.head.bias
    assert torch.allclose(calibrated.flow_branch.head.bias, expected)


def test_cli_refuses_to_overwrite_or_to_calibrate_twice(checkpoint, tmp_path, capsys):
    out = tmp_path / "calibrated.safetensors"
    out.write_bytes(b"keep me")
    assert _run(checkpoint, out) == 2
    assert "--overwrite" in capsys.readouterr().err and out.read_bytes() == b"keep me"
    assert _run(checkpoint, out, "--overwrite", "--offsets", "1") == 0
    capsys.readouterr()
    assert _run(out, tmp_path / "twice.safetensors") == 2
    err = capsys.readouterr().err
    assert "already calibrated" in err and str(checkpoint) in err


@pytest.mark.parametrize("out", [
    "{tmp}/file/calibrated.safetensors",
    # root passes os.access there, yet the file system refuses: a trial write finds it before measuring
    pytest.param("/sys/calibrated.safetensors",
                 marks=pytest.mark.skipif(not os.path.isdir("/sys"), reason="needs Linux's /sys")),
])
def test_cli_checks_the_output_folder_before_measuring(checkpoint, tmp_path, capsys, out):
    (tmp_path / "file").write_text("a file where the output folder should be")
    assert _run(checkpoint, out.format(tmp=tmp_path)) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith("error: --out") and captured.err.count("\n") == 1, captured.err
    assert "warp_error" not in captured.out  # refused before any drive was measured


@pytest.mark.parametrize("offsets", ["nan", "0,inf", "1,-inf"])
def test_cli_refuses_offsets_that_are_not_finite(checkpoint, tmp_path, capsys, offsets):
    with pytest.raises(SystemExit) as exit_info:
        _run(checkpoint, tmp_path / "c.safetensors", "--offsets", offsets)
    assert exit_info.value.code == 2 and "offsets must be finite numbers" in capsys.readouterr().err


def test_cli_ratio_rule_records_the_baseline_and_writes_nothing_when_unreachable(checkpoint, tmp_path, capsys):
    out = tmp_path / "calibrated.safetensors"
    assert _run(checkpoint, out, "--max-warp-ratio", "1000") == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["max_warp_ratio"] == 1000 and "flicker_budget" not in result
    assert result["warp_error_framewise"] > 0 and result["chosen"]["warp_ratio"] <= 1000
    curve = read_metadata(out)[1]["calibration"]["curve"]
    assert all(p["warp_ratio"] == pytest.approx(p["warp_error"] / result["warp_error_framewise"], rel=1e-3)
               for p in curve)
    missing = tmp_path / "never.safetensors"
    assert _run(checkpoint, missing, "--max-warp-ratio", "1e-9") == 1
    captured = capsys.readouterr()
    assert "no offset reaches a warping-error ratio of 1e-09" in captured.err and not missing.exists()
    assert "ratio" in captured.out  # the measured curve is printed all the same
    with pytest.raises(SystemExit):
        _run(checkpoint, missing, "--max-warp-ratio", "0.5", "--flicker-budget", "0.1")
    assert "not allowed with argument" in capsys.readouterr().err


def test_evaluate_and_calibrate_give_one_ratio_for_the_same_drives():
    """evaluate averaged the per-drive ratios, calibrate divided the mean errors: on the same drives
    they gave 1.10 and 0.99, opposite verdicts on whether the history steadies the video."""
    from neural_render.calibrate import measure_curve
    from neural_render.evaluate import evaluate_model

    model = tiny_generator_with_flow()
    seeds = split_seeds("validation", 2)
    rows, summary = evaluate_model(model, 64, 32, 6, seeds, show_progress=False)
    _, (point,) = measure_curve(model, 64, 32, 6, seeds, offsets=(), show_progress=False)
    # (the summary holds its errors rounded to 6 decimals, the ratio is of the exact ones)
    assert summary["warp_ratio"] == pytest.approx(summary["warp_error"] / summary["warp_error_framewise"], rel=1e-3)
    assert summary["warp_ratio"] == pytest.approx(point["warp_ratio"], rel=1e-3)
    per_drive = [row["warp_ratio"] for _, row in rows]
    assert abs(sum(per_drive) / len(per_drive) / summary["warp_ratio"] - 1) > 1e-2  # the definitions differ here
