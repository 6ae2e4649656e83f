"""python -m neural_render.calibrate --model runs/cpu --res 256x128 --frames 60 --seeds 5 --out calibrated.safetensors

Post-training calibration of the fusion mask: one scalar, fitted on the validation seeds.

Each frame the generator blends ``y = m * warp(y_{t-1}) + (1 - m) * h`` (vid2vid, Wang et al. 2018,
eq. 4) with ``m = sigmoid(mask logit)``. Training settles ``m`` as a trade between the reconstruction
terms (L1, SSIM: pull ``y`` toward the true frame) and the temporal ones (temporal warp, mask loss: pull
it toward the warped history). Where that trade lands over a long drive is a side effect of the loss
weights and of the clip length, not a choice anybody made: on the shipped model's weights an offset of
+3 gained 1.6 dB PSNR for 3 % more warping error on the validation drives (models/cpu.md). This tool
makes the choice explicit: it measures mask-logit offsets on the validation seeds (neither trained on
nor reported, ``neural_render.train.splits``) and keeps the offset with the best PSNR whose warping
error stays within ``--flicker-budget`` of the uncalibrated model's (default 10 %), or, with ``--max-warp-ratio R``,
whose warping error is at most R x that of the same model frame by frame (the steadiness target of
the shipped model is R = 0.5). A positive offset lowers the logit (trusts the history less), a negative
one raises it. The frame-by-frame baseline is measured once on the same drives (it does not depend on
the mask), and every point of the curve gets its ratio.

The offset is folded into the bias of the flow branch's mask output, so the calibrated file is an
ordinary checkpoint that every backend, the ONNX export and the game run unchanged. (The network also
multiplies ``m`` by ``warp.in_view``, 0 where the flow leaves the previous frame: the offset moves the
learned part only.) Its metadata records the offset, the rule, the whole curve and the checkpoint it
came from. Prints a table; the LAST line is JSON.
"""

from __future__ import annotations

import argparse
import copy
import math
import sys
from pathlib import Path

import torch

from carla_bridge.core import cli
from carla_bridge.core.cli import finite_or_null, json_line
from carla_bridge.core.files import file_write_problem
from carla_bridge.core.numba_threads import prefer_one_numba_thread
from neural_render.checkpoint import load_generator, read_metadata, save_generator
from neural_render.evaluate import add_drive_options, apply_drive_options, evaluate_model
from neural_render.model import MASK_LOGIT, Vid2VidGenerator
from neural_render.train.splits import split_seeds

DEFAULT_OFFSETS = (0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
DEFAULT_FLICKER_BUDGET = 0.10
CURVE_KEYS = ("psnr", "ssim", "warp_error", "psnr_by_quarter")


def with_mask_offset(model: Vid2VidGenerator, offset: float) -> Vid2VidGenerator:
    """A copy of ``model`` whose fusion-mask logit is lowered by ``offset`` everywhere."""
    shifted = copy.deepcopy(model)
    with torch.no_grad():
        shifted.flow_branch.head.bias[MASK_LOGIT] -= offset
    return shifted


def choose_offset(curve: list[dict], flicker_budget: float, max_warp_ratio: float | None = None) -> dict:
    """The point of ``curve`` (one dict per offset, offset 0 among them) with the highest PSNR whose
    warping error is at most (1 + flicker_budget) x that of offset 0; with ``max_warp_ratio``, whose
    ``warp_ratio`` (to the same model frame by frame) is at most that instead. ValueError when no point
    of the curve is steady enough, naming the steadiest."""
    if max_warp_ratio is not None:
        steady = [point for point in curve if point["warp_ratio"] <= max_warp_ratio]
        if not steady:
            best = min(curve, key=lambda point: point["warp_ratio"])
            raise ValueError(f"no offset reaches a warping-error ratio of {max_warp_ratio:g} or less (the steadiest, "
                             f"{best['offset']:+g}, reaches {best['warp_ratio']:.3f}); measure lower offsets, which "
                             f"trust the history more, e.g. --offsets {best['offset'] - 1:g},{best['offset'] - 0.5:g}")
        return max(steady, key=lambda point: point["psnr"])
    base = next((point for point in curve if point["offset"] == 0.0), None)
    if base is None:
        raise ValueError("the calibration curve needs offset 0 (the model as trained) as its reference")
    limit = base["warp_error"] * (1.0 + flicker_budget)
    return max((point for point in curve if point["warp_error"] <= limit), key=lambda point: point["psnr"])


def measure_curve(model: Vid2VidGenerator, width: int, height: int, frames: int, seeds: list[int],
                  offsets: tuple[float, ...] = DEFAULT_OFFSETS, device: str = "cpu",
                  show_progress: bool = True) -> tuple[float, list[dict]]:
    """(frame-by-frame warping error, curve): offset 0 and every offset measured on the drives of
    ``seeds``. The frame-by-frame baseline is measured once, with offset 0: without history the mask
    weighs nothing, so it is the same at every offset. The size is the caller's, checked against the
    model where it was loaded."""
    curve, framewise_error = [], math.nan
    for offset in sorted({0.0, *map(float, offsets)}):
        first = not curve
        _, summary = evaluate_model(with_mask_offset(model, offset), width, height, frames, seeds, device,
                                    show_progress=show_progress, framewise=first, desc=f"offset {offset:+g}")
        if first:
            framewise_error = summary["warp_error_framewise"]
        ratio = summary["warp_error"] / framewise_error if framewise_error > 0 else math.nan
        curve.append({"offset": offset, **{key: summary[key] for key in CURVE_KEYS}, "warp_ratio": round(ratio, 4)})
    return framewise_error, curve


def format_curve(curve: list[dict], chosen: float) -> str:
    lines = [f"{'offset':>7} {'psnr':>8} {'ssim':>7} {'warp_error':>11} {'ratio':>6}", "-" * 43]
    for point in curve:
        mark = "  <- chosen" if point["offset"] == chosen else ""
        lines.append(f"{point['offset']:>+7.2f} {point['psnr']:>8.3f} {point['ssim']:>7.4f} "
                     f"{point['warp_error']:>11.6f} {point['warp_ratio']:>6.3f}{mark}")
    return "\n".join(lines)


def _check_writable(out: Path) -> None:
    """ValueError naming --out when it cannot be written: found by creating a file in its folder, as
    os.access says yes to root even where the file system refuses (/sys, a read-only mount)."""
    problem = file_write_problem(out)
    if problem:
        raise ValueError(f"--out {out}: {problem}; pass another path")


def _offsets(text: str) -> tuple[float, ...]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    try:
        offsets = tuple(float(part) for part in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, e.g. 0,0.5,1, got {text!r}") from None
    bad = [part for part, value in zip(parts, offsets) if not math.isfinite(value)]
    if bad:  # float() takes nan and inf: a model shifted by them renders nothing to measure
        raise argparse.ArgumentTypeError(f"offsets must be finite numbers, e.g. 0,0.5,1, got {', '.join(bad)}")
    return offsets


def main(argv: list[str] | None = None) -> int:
    prefer_one_numba_thread()  # numba's spinning pool starves torch in this process
    p = argparse.ArgumentParser(prog="python -m neural_render.calibrate", description=__doc__,
                                formatter_class=cli.HelpFormatter)
    p.add_argument("--model", required=True, help="the trained generator (.safetensors or a training run's folder)")
    p.add_argument("--out", required=True, type=Path, help="where to write the calibrated .safetensors")
    p.add_argument("--overwrite", action="store_true", help="replace --out when it exists")
    add_drive_options(p)
    p.add_argument("--offsets", type=_offsets, default=DEFAULT_OFFSETS,
                   help="mask-logit offsets to measure, comma-separated (0 is always added); "
                        f"default {','.join(f'{o:g}' for o in DEFAULT_OFFSETS)}")
    rule = p.add_mutually_exclusive_group()
    rule.add_argument("--flicker-budget", type=float,
                      help="keep the sharpest offset whose warping error grows by at most this fraction over the "
                           f"uncalibrated model's (the rule unless --max-warp-ratio; default {DEFAULT_FLICKER_BUDGET:g})")
    rule.add_argument("--max-warp-ratio", type=cli.positive_float,
                      help="keep the sharpest offset whose warping error is at most this times the same model's "
                           "frame by frame (the shipped model's target: 0.5)")
    args = p.parse_args(argv)
    if args.flicker_budget is None and args.max_warp_ratio is None:
        args.flicker_budget = DEFAULT_FLICKER_BUDGET
    try:
        width, height = apply_drive_options(args)
        if args.flicker_budget is not None and args.flicker_budget < 0:
            raise ValueError(f"--flicker-budget must be >= 0, got {args.flicker_budget}")
        if args.out.exists() and not args.overwrite:
            raise ValueError(f"--out {args.out} already exists; pass --overwrite to replace it, or another path")
        _check_writable(args.out)  # now, not after minutes of measuring
        _, meta = read_metadata(args.model)
        if "calibration" in meta:
            raise ValueError(f"{args.model} is already calibrated (mask-logit offset "
                             f"{meta['calibration']['mask_logit_offset']:+g}); calibrate the checkpoint it came "
                             f"from, {meta['calibration']['source']}")
        model = load_generator(args.model, map_location=args.device).eval()
        model.config.check_size(width, height)
        seeds = split_seeds("validation", args.seeds)
    except ValueError as exc:  # CheckpointError included
        print(f"error: {exc}", file=sys.stderr)
        return 2
    framewise_error, curve = measure_curve(model, width, height, args.frames, seeds, args.offsets, args.device,
                                           not args.no_progress)
    try:
        chosen = choose_offset(curve, args.flicker_budget, args.max_warp_ratio)["offset"]
    except ValueError as exc:  # no offset steady enough: the measured curve is still worth seeing
        print(format_curve(curve, chosen=math.nan))
        print(f"error: {exc}; nothing written", file=sys.stderr)
        return 1
    print(format_curve(curve, chosen))
    if args.max_warp_ratio is not None:
        rule = {"max_warp_ratio": args.max_warp_ratio,
                "rule": "highest validation PSNR whose warping error is at most max_warp_ratio x frame by frame's"}
    else:
        rule = {"flicker_budget": args.flicker_budget,
                "rule": "highest validation PSNR whose warping error is within flicker_budget of offset 0's"}
    calibration = {"mask_logit_offset": chosen, "source": str(args.model), "split": "validation", "seeds": seeds,
                   "frames": args.frames, "res": f"{width}x{height}", **rule,
                   "warp_error_framewise": framewise_error, "curve": curve}
    try:
        save_generator(with_mask_offset(model, chosen), args.out,
                       meta={**meta, "calibration": finite_or_null(calibration)})  # strict JSON readers too
    except OSError as exc:  # the folder went away or filled up while measuring; the curve is printed above
        print(f"error: --out {args.out}: cannot be written ({exc.strerror or exc}); chosen offset was "
              f"{chosen:+g}", file=sys.stderr)
        return 1
    print(f"calibrated: {args.out} (mask-logit offset {chosen:+g})")
    print(json_line({"out": str(args.out), **{k: v for k, v in calibration.items() if k != "curve"},
                     "chosen": next(point for point in curve if point["offset"] == chosen)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
