"""torch -> ONNX export of one render step, a cache of exported files, and a torch-vs-ORT check.

    python -m neural_render.export --preset cpu --res 256x128 --check [--out PATH [--overwrite]]
    python -m neural_render.export --model PATH --res 256x128 --check    # the checkpoint names its preset

The graph is `RenderStep` (model.py): static shapes, batch 1, history as explicit inputs/outputs:
  inputs  labels (1,K,H,W) uint8, prev_frames (1,K-1,3,H,W) float, flow (1,2,H,W) float32,
          has_history (1,) float32, has_flow (1,) float32
  outputs image (1,3,H,W) float, image_u8 (1,H,W,3) uint8, next_frames (1,K-1,3,H,W), next_labels (1,K-1,H,W) uint8
We export with opset 17 through the TorchScript exporter (dynamo=False): GridSample there keeps
mode="bilinear"; opset 20 renames it to "linear", which TensorRT's ONNX parser has mis-sampled.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import sys
import warnings
from pathlib import Path

import numpy as np
import torch

from neural_render.model import FORWARD_REVISION, PRESETS, RenderStep, Vid2VidGenerator, build_generator, example_inputs
from carla_bridge.core.files import file_write_problem, folder_write_problem

OPSET = 17
INPUT_NAMES = ("labels", "prev_frames", "flow", "has_history", "has_flow")
OUTPUT_NAMES = ("image", "image_u8", "next_frames", "next_labels")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
log = logging.getLogger("neural_render.export")
DEFAULT_PRESET = "cpu"  # what --preset means without --model (random weights); with --model, the file's


def cache_dir() -> Path:
    """$NEURAL_DRIVE_CACHE or ~/.cache/neural-drive (exported ONNX files and TensorRT engines)."""
    return Path(os.environ.get("NEURAL_DRIVE_CACHE", Path.home() / ".cache" / "neural-drive"))


class CacheError(ValueError):
    """The export cache folder cannot take a file. A ValueError because that is what every tool's
    one-line error path catches (bench, export, and the launcher's backend start): a QA pass found
    NEURAL_DRIVE_CACHE set to a file ending in a FileExistsError traceback."""


def cache_problem(directory: str | Path | None = None) -> str | None:
    """None when the cache folder (``directory``, else cache_dir()) can take a new file; otherwise one
    line naming where the folder came from, the path and what to do."""
    folder = Path(directory) if directory else cache_dir()
    problem = folder_write_problem(folder)
    if problem is None:
        return None
    if directory:  # a caller's own folder: the environment has nothing to do with it
        return f"ONNX cache folder {folder}: {problem}; pass another folder"
    where = f"NEURAL_DRIVE_CACHE={folder}" if "NEURAL_DRIVE_CACHE" in os.environ else f"the cache folder {folder}"
    return f"{where}: {problem}; set NEURAL_DRIVE_CACHE to a writable folder"


def model_hash(model: Vid2VidGenerator) -> str:
    """sha256 of the forward's revision, the config and every weight, so neither a retrained model nor a
    changed network reuses a stale export."""
    h = hashlib.sha256(f"forward {FORWARD_REVISION}".encode())
    h.update(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().float().contiguous().numpy().tobytes())
    return h.hexdigest()


def step_inputs(model: Vid2VidGenerator, width: int, height: int, dtype: torch.dtype = torch.float32,
                seed: int = 0) -> tuple[torch.Tensor, ...]:
    return example_inputs(model.config, width, height, dtype=dtype, seed=seed)


def export_onnx(model: Vid2VidGenerator, path: str | Path, width: int, height: int,
                precision: str = "fp32", stamp: dict[str, str] | None = None) -> Path:
    """Export `RenderStep(model)` at a static (width, height) to `path` (ONNX opset 17); returns it.
    The file carries a stamp in its metadata (model hash, size, precision, sha256 of the graph) that
    `cached_onnx` checks before trusting a cache entry."""
    model.config.check_size(width, height)
    if precision not in ("fp32", "fp16"):
        raise ValueError(f"export precision must be fp32 or fp16 (strongly typed TensorRT), got '{precision}'")
    dtype = DTYPES[precision]
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Export a CPU copy so the caller's model (maybe on CUDA, maybe compiled) is left alone.
    step = RenderStep(build_generator(model.config).to(dtype)).eval()
    step.model.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
    args = step_inputs(step.model, width, height, dtype)
    tmp = path.with_name(path.name + f".tmp{os.getpid()}")
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
            torch.onnx.export(step, args, str(tmp), dynamo=False, opset_version=OPSET,
                              input_names=list(INPUT_NAMES), output_names=list(OUTPUT_NAMES),
                              do_constant_folding=True)
        _stamp(tmp, stamp or export_stamp(model, width, height, precision))
        check_graph(tmp)
        os.replace(tmp, path)  # atomic: a reader never sees a half-written file
    finally:  # a failed export leaves no .tmp<pid> file behind in the cache
        tmp.unlink(missing_ok=True)
    return path


STAMP_PREFIX = "neural_drive."
UNSTAMPED = "it carries no export stamp (exported by an older version, or not by us)"


def export_stamp(model: Vid2VidGenerator, width: int, height: int, precision: str,
                 digest: str | None = None) -> dict[str, str]:
    """What an export of (model, size, precision) is; written into the graph's metadata_props."""
    return {"model_sha256": digest or model_hash(model), "size": f"{width}x{height}", "precision": precision}


def _graph_digest(m) -> str:
    # GraphProto holds every node and weight (metadata_props live on ModelProto, outside it).
    return hashlib.sha256(m.graph.SerializeToString()).hexdigest()


def _stamp(path: Path, stamp: dict[str, str]) -> None:
    import onnx

    m = onnx.load(str(path))
    fields = {**stamp, "graph_sha256": _graph_digest(m)}
    kept = [p for p in m.metadata_props if not p.key.startswith(STAMP_PREFIX)]
    del m.metadata_props[:]
    m.metadata_props.extend(kept)
    for key, value in fields.items():
        m.metadata_props.add(key=STAMP_PREFIX + key, value=value)
    onnx.save(m, str(path))


def stamp_problem(path: str | Path, stamp: dict[str, str]) -> str | None:
    """None when ``path`` is a sound export with ``stamp``; otherwise why it is not (unreadable, not our
    graph, another model / size / precision, or nodes or weights changed since the export)."""
    import onnx

    try:
        m = onnx.load(str(path))
        _check_model(m, path)
    except Exception as exc:  # truncated, not ONNX, wrong opset or GridSample
        return f"not a usable graph ({type(exc).__name__}: {str(exc)[:120]})"
    found = {p.key[len(STAMP_PREFIX):]: p.value for p in m.metadata_props if p.key.startswith(STAMP_PREFIX)}
    if not found:
        return UNSTAMPED
    for key, value in stamp.items():
        if found.get(key) != value:
            return f"{key} is {found.get(key)!r}, expected {value!r}"
    if found.get("graph_sha256") != _graph_digest(m):
        return "its nodes or weights changed after the export (corrupt or edited)"
    return None


def check_graph(path: str | Path) -> dict:
    """Assert opset 17 and bilinear/border/align_corners GridSample nodes; returns what it found."""
    import onnx

    return _check_model(onnx.load(str(path)), path)


def _check_model(m, path: str | Path) -> dict:
    import onnx

    opset = next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))
    grids = []
    for node in m.graph.node:
        if node.op_type == "GridSample":
            grids.append({a.name: onnx.helper.get_attribute_value(a) for a in node.attribute})
    info = {"opset": opset, "grid_samples": grids,
            "inputs": [i.name for i in m.graph.input], "outputs": [o.name for o in m.graph.output]}
    if opset != OPSET:
        raise RuntimeError(f"{path}: exported opset {opset}, expected {OPSET}")
    for g in grids:
        if g.get("mode") != b"bilinear" or g.get("padding_mode") != b"border" or g.get("align_corners") != 1:
            raise RuntimeError(f"{path}: GridSample exported as {g}, expected bilinear/border/align_corners=1")
    if not grids:
        raise RuntimeError(f"{path}: no GridSample node (the warp is missing from the graph)")
    return info


def cached_onnx(model: Vid2VidGenerator, width: int, height: int, precision: str = "fp32",
                directory: str | Path | None = None) -> Path:
    """The exported ONNX for (model weights, preset, size, precision), exporting once per key."""
    digest = model_hash(model)
    stamp = export_stamp(model, width, height, precision, digest)
    key = f"{model.config.name}-{width}x{height}-{precision}-{digest[:16]}"
    path = Path(directory or cache_dir()) / f"{key}.onnx"
    stale = None
    if path.exists():
        # Not just "does it parse": a file whose weights were changed (disk corruption, a foreign file
        # under our name, another size's graph) rendered wrong images or failed inside ONNX Runtime.
        stale = stamp_problem(path, stamp)
        if stale is None:
            return path
    # Checked only when an export must be written: a read-only cache that already holds it still serves.
    problem = cache_problem(directory)
    if problem and stale == UNSTAMPED:
        # An older version's export (its graph checked by stamp_problem) in a cache we cannot write,
        # e.g. one baked into a CI image: its key already names the weights, size and precision.
        log.warning("export: using %s from an older version unchecked by stamp (%s)", path, problem)
        return path
    if problem:
        raise CacheError(f"{problem} (cached {path.name}: {stale})" if stale else problem)
    if stale:  # an older version's export is expected once after an upgrade; anything else is damage
        log.log(logging.INFO if stale == UNSTAMPED else logging.WARNING,
                "export: cached %s is not a sound export (%s); exporting again", path, stale)
    return export_onnx(model, path, width, height, precision, stamp)


def ort_session(path: str | Path, providers: list | None = None):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=providers or ["CPUExecutionProvider"])


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
    sess = ort_session(onnx_path)
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
        if i > 0:  # shift the label history: K-1 carried maps + the new one
            t_labels = torch.cat([t_next_labels, new], 1)
            o_labels = np.concatenate([o_next_labels, new.numpy()], 1)
        with torch.no_grad():
            t_img, _, t_prev_new, t_next_labels = step(t_labels, t_prev, flow, hist, hflow)
        o_img, _, o_prev_new, o_next_labels = sess.run(None, _graph_feed(sess, {
            "labels": o_labels, "prev_frames": o_prev, "flow": flow.numpy(),
            "has_history": hist.numpy(), "has_flow": hflow.numpy()}))
        worst = max(worst, float(np.abs(t_img.numpy() - o_img.astype(np.float32)).max()))
        t_prev, o_prev = t_prev_new, o_prev_new
    return worst


def _output_problem(out: str | None, overwrite: bool) -> str | None:
    """What stops the export from writing where it was asked to, found before exporting: an --out that
    holds a previous export (replaced only with --overwrite), or a folder that takes no file."""
    if out is None:
        problem = cache_problem()
        return problem and f"{problem}, or pass --out"
    if out.endswith(("/", os.sep)):  # pathlib drops the slash: 'exports/' became a file named exports
        return f"--out {out}: names a folder; name the .onnx file in it, e.g. {Path(out) / 'model.onnx'}"
    if Path(out).exists() and not Path(out).is_file() and not Path(out).is_dir():
        # a device or a pipe: the atomic rename would put a file in its place (as root, /dev/null itself)
        return f"--out {out}: is not a regular file (a device or a pipe); name an .onnx file"
    if Path(out).is_file() and not overwrite:
        return f"--out {out} already exists; pass --overwrite to replace it, or another path"
    problem = file_write_problem(out)  # by writing: os.access says yes to root on /sys
    return problem and f"--out {out}: {problem}; pass another path"


def main(argv: list[str] | None = None) -> int:
    from neural_render.checkpoint import load_generator
    from neural_render.runtime.common import parse_size

    ap = argparse.ArgumentParser(prog="python -m neural_render.export", description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default=None, choices=sorted(PRESETS),
                    help=f"generator preset (default: the --model checkpoint's; {DEFAULT_PRESET} without --model); "
                         f"with --model it must match the checkpoint")
    ap.add_argument("--res", default="256x128", help="WIDTHxHEIGHT (static in the graph)")
    ap.add_argument("--model", default=None, help=".safetensors checkpoint or a training run's folder (default: random init, seed 0)")
    ap.add_argument("--out", default=None, help="output .onnx (default: the cache directory)")
    ap.add_argument("--overwrite", action="store_true", help="replace --out when it exists")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "fp16"])
    ap.add_argument("--check", action="store_true", help="compare torch and ONNX Runtime on 8 frames")
    args = ap.parse_args(argv)
    try:
        width, height = parse_size(args.res)
        if args.model:  # preset None: the checkpoint's own, as evaluate, calibrate and launch.py take it
            model = load_generator(args.model, preset=args.preset)
        else:
            torch.manual_seed(0)
            model = build_generator(args.preset or DEFAULT_PRESET)
        model.eval().config.check_size(width, height)
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
