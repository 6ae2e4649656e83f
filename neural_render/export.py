"""python -m neural_render.export: one render step exported to ONNX, and a torch-vs-ORT check.

    python -m neural_render.export --preset cpu --res 256x128 --check [--out PATH [--overwrite]]
    python -m neural_render.export --model PATH --res 256x128 --check    # the checkpoint names its preset

The export itself and its cache are neural_render.runtime.onnx (the graph's inputs and outputs are
described there); without --out the file goes to that cache, where the backends find it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from carla_bridge.core.files import file_write_problem
from carla_bridge.core.frames import parse_size
from neural_render.checkpoint import load_generator
from neural_render.model import PRESETS, RenderStep, Vid2VidGenerator, build_generator
from neural_render.runtime.onnx import (EXPORT_PRECISIONS, WEATHER_INPUT, cache_problem, cached_onnx, check_graph,
                                        export_onnx)
from neural_render.runtime.ort_backend import session_options

DEFAULT_PRESET = "cpu"  # what --preset means without --model (random weights); with --model, the file's


# Largest |torch fp32 - ONNX Runtime| accepted over the output images (values in [-1, 1]) of an export
# of each precision. fp32 differs by operator order only. fp16 rounds every activation to 11
# significant bits (about 1e-3 near 1), and 8 frames of history carry that on: 2e-2 is 2.5 levels of
# the uint8 image, ten times the 1e-3 to 2e-3 measured for the tiny and the shipped cpu model (64x32,
# 256x128) and far below what a wrong graph shows (order 1).
PARITY_TOLERANCE = {"fp32": 1e-3, "fp16": 2e-2}
_ORT_NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(uint8)": np.uint8}


def _graph_feed(sess, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """``inputs`` cast to the types the graph declares (an fp16 export takes fp16 frames, fp32 flow)."""
    types = {i.name: _ORT_NUMPY_TYPES[i.type] for i in sess.get_inputs()}
    return {name: np.asarray(value).astype(types[name], copy=False) for name, value in inputs.items()}


def check_parity(model: Vid2VidGenerator, onnx_path: str | Path, width: int, height: int,
                 frames: int = 8, seed: int = 0) -> float:
    """Run fp32 torch and ONNX Runtime on the same random sequence, each carrying its own history;
    return the max |torch - ort| over every output image. Frame 0 has no history, later ones do.
    The graph gets its inputs in the types it declares, so an fp16 export is checked too (compare
    the result with ``PARITY_TOLERANCE`` of its precision)."""
    cfg = model.config
    step = RenderStep(model).eval()
    sess = ort.InferenceSession(str(onnx_path), session_options(), providers=["CPUExecutionProvider"])
    g = torch.Generator().manual_seed(seed)
    k = cfg.k
    first = torch.randint(0, cfg.num_classes, (1, 1, height, width), generator=g, dtype=torch.uint8)
    t_labels, t_prev = first.repeat(1, k, 1, 1), torch.zeros(1, k - 1, 3, height, width)
    o_labels, o_prev = t_labels.numpy(), t_prev.numpy()
    worst = 0.0
    for i in range(frames):
        new = torch.randint(0, cfg.num_classes, (1, 1, height, width), generator=g, dtype=torch.uint8)
        flow = torch.randn(1, 2, height, width, generator=g) * 1.5
        hist = torch.tensor([0.0 if i == 0 else 1.0])
        hflow = torch.tensor([1.0 if i % 3 else 0.0])
        weather = (torch.rand(1, cfg.weather_dim, generator=g),) if cfg.weather_dim else ()  # a new sky each frame
        if i > 0:  # shift the label history: K-1 carried maps + the new one
            t_labels = torch.cat([t_next_labels, new], 1)
            o_labels = np.concatenate([o_next_labels, new.numpy()], 1)
        with torch.no_grad():
            t_img, _, t_prev_new, t_next_labels = step(t_labels, t_prev, flow, hist, hflow, *weather)
        o_img, _, o_prev_new, o_next_labels = sess.run(None, _graph_feed(sess, {
            "labels": o_labels, "prev_frames": o_prev, "flow": flow.numpy(),
            "has_history": hist.numpy(), "has_flow": hflow.numpy(),
            **{WEATHER_INPUT: w.numpy() for w in weather}}))
        worst = max(worst, float(np.abs(t_img.numpy() - o_img.astype(np.float32)).max()))
        t_prev, o_prev = t_prev_new, o_prev_new
    return worst


def _output_problem(out: str | None, overwrite: bool) -> str | None:
    """What stops the export from writing where it was asked to, found before exporting: an --out that
    holds a previous export (replaced only with --overwrite), or a folder that takes no file."""
    if out is None:
        problem = cache_problem()
        return problem and f"{problem}, or pass --out"
    if out.endswith(("/", os.sep)):  # pathlib drops the slash: 'exports/' would become a file named exports
        return f"--out {out}: names a folder; name the .onnx file in it, e.g. {Path(out) / 'model.onnx'}"
    if Path(out).exists() and not Path(out).is_file() and not Path(out).is_dir():
        # a device or a pipe: the atomic rename would put a file in its place (as root, /dev/null itself)
        return f"--out {out}: is not a regular file (a device or a pipe); name an .onnx file"
    if Path(out).is_file() and not overwrite:
        return f"--out {out} already exists; pass --overwrite to replace it, or another path"
    problem = file_write_problem(out)  # by writing: os.access says yes to root on /sys
    return problem and f"--out {out}: {problem}; pass another path"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m neural_render.export", description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default=None, choices=sorted(PRESETS),
                    help=f"generator preset (default: the --model checkpoint's; {DEFAULT_PRESET} without --model); "
                         f"with --model it must match the checkpoint")
    ap.add_argument("--res", default="256x128", help="WIDTHxHEIGHT (static in the graph)")
    ap.add_argument("--model", default=None, help=".safetensors checkpoint or a training run's folder (default: random init, seed 0)")
    ap.add_argument("--out", default=None, help="output .onnx (default: the cache directory)")
    ap.add_argument("--overwrite", action="store_true", help="replace --out when it exists")
    ap.add_argument("--precision", default="fp32", choices=EXPORT_PRECISIONS)
    ap.add_argument("--check", action="store_true", help="compare torch and ONNX Runtime on 8 frames")
    args = ap.parse_args(argv)
    try:
        width, height = parse_size(args.res)
        if args.model:  # preset None: the checkpoint's own, as evaluate, calibrate and launch.py take it
            model = load_generator(args.model, preset=args.preset)
        else:
            torch.manual_seed(0)
            model = build_generator(args.preset or DEFAULT_PRESET)
        model.eval().config.check_size(width, height)  # the one check of the size: export_onnx trusts it
        problem = _output_problem(args.out, args.overwrite)  # last: it makes the folder
        if problem:
            raise ValueError(problem)
    except ValueError as exc:  # a bad --res, --out or --model (CheckpointError): one line, not a traceback
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if not args.model:  # as loud as the launcher's UNTRAINED banner: the graph renders noise
        print(f"warning: exporting an UNTRAINED {model.config.name} model (random weights, seed 0); pass --model "
              f"PATH for trained weights", file=sys.stderr)
    try:
        path = export_onnx(model, args.out, width, height, args.precision) if args.out else \
            cached_onnx(model, width, height, args.precision)
    except OSError as exc:  # the folder went away or filled up since the check above
        where = f"--out {args.out}" if args.out else "the ONNX cache folder"
        print(f"error: {where}: cannot be written ({exc.strerror or exc}); pass another --out", file=sys.stderr)
        return 2
    info = check_graph(path)
    print(f"exported {path} ({path.stat().st_size / 1e6:.2f} MB, opset {info['opset']}, "
          f"{len(info['grid_samples'])} GridSample nodes: bilinear, border, align_corners=1)")
    result = {"path": str(path), "opset": info["opset"], "preset": model.config.name, "res": f"{width}x{height}",
              "precision": args.precision}
    if args.check:
        tolerance = PARITY_TOLERANCE[args.precision]
        result["max_abs_diff"] = check_parity(model, path, width, height)
        result["tolerance"] = tolerance
        result["ok"] = result["max_abs_diff"] <= tolerance
        print(f"check: max |torch fp32 - ONNX Runtime {args.precision}| = {result['max_abs_diff']:.2e} over 8 frames, "
              f"tolerance {tolerance:g} for {args.precision}: {'ok' if result['ok'] else 'FAILED'}")
    print(json.dumps(result))
    return 0 if result.get("ok", True) else 1


if __name__ == "__main__":
    sys.exit(main())
