"""torch -> ONNX export of one render step, and the cache of exported files the ONNX Runtime and
TensorRT backends build from.

The graph is `RenderStep` (model.py): static shapes, batch 1, history as explicit inputs/outputs:
  inputs  labels (1,K,H,W) uint8, prev_frames (1,K-1,3,H,W) float, flow (1,2,H,W) float32,
          has_history (1,) float32, has_flow (1,) float32, and weather (1,weather_dim) float32 for a
          model that takes it (config.weather_dim > 0; the config is in model_hash, so its own cache key)
  outputs image (1,3,H,W) float, image_u8 (1,H,W,3) uint8, next_frames (1,K-1,3,H,W), next_labels (1,K-1,H,W) uint8
We export with opset 17 through the TorchScript exporter (dynamo=False): GridSample there keeps
mode="bilinear"; opset 20 renames it to "linear", which TensorRT's ONNX parser has mis-sampled.

Every file carries a stamp in its metadata (model hash, size, precision, sha256 of the graph), so a
cache entry is trusted only when it is the export of exactly these weights at this size: a file that
still parses but whose weights changed (disk corruption, a foreign file under our name, another size's
graph) would render wrong images or fail inside ONNX Runtime.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import warnings
from pathlib import Path

import onnx
import torch

from carla_bridge.core.files import atomic_path, cache_folder, folder_write_problem
from neural_render.model import (FORWARD_REVISION, GeneratorConfig, RenderStep, Vid2VidGenerator, build_generator,
                                  example_inputs)
from neural_render.runtime.common import DTYPES

OPSET = 17
# Bump when the exported graph changes while the forward's maths stay (model.FORWARD_REVISION counts
# those): cached exports are keyed by it through model_hash. 2: uint8 only at the graph's edges, where
# TensorRT's ONNX parser accepts it (RenderStep).
EXPORT_REVISION = 2
INPUT_NAMES = ("labels", "prev_frames", "flow", "has_history", "has_flow")
WEATHER_INPUT = "weather"
OUTPUT_NAMES = ("image", "image_u8", "next_frames", "next_labels")
EXPORT_PRECISIONS = ("fp32", "fp16")  # fp16: the graph strongly typed TensorRT builds
STAMP_PREFIX = "neural_drive."
UNSTAMPED = "it carries no export stamp (exported by an older version, or not by us)"
log = logging.getLogger("neural_render.runtime")


class CacheError(ValueError):
    """The export cache folder cannot take a file. A ValueError because that is what every tool's
    one-line error path catches (bench, export, and the launcher's backend start): a cache variable
    naming a file must be one line, not a FileExistsError traceback."""


def cache_problem(directory: str | Path | None = None) -> str | None:
    """None when the cache folder (``directory``, else cache_folder()) can take a new file; otherwise one
    line naming where the folder came from, the path and what to do."""
    folder = Path(directory) if directory else cache_folder()
    problem = folder_write_problem(folder)
    if problem is None:
        return None
    if directory:  # a caller's own folder: the environment has nothing to do with it
        return f"ONNX cache folder {folder}: {problem}; pass another folder"
    where = f"NEURAL_DRIVE_CACHE={folder}" if "NEURAL_DRIVE_CACHE" in os.environ else f"the cache folder {folder}"
    return f"{where}: {problem}; set NEURAL_DRIVE_CACHE to a writable folder"


def input_names(config: GeneratorConfig) -> tuple[str, ...]:
    """The graph's inputs for a model of ``config``, in RenderStep's order."""
    return INPUT_NAMES + ((WEATHER_INPUT,) if config.weather_dim else ())


def model_hash(model: Vid2VidGenerator) -> str:
    """sha256 of the forward's and the export's revisions, the config and every weight, so neither a
    retrained model nor a changed network or graph reuses a stale export."""
    h = hashlib.sha256(f"forward {FORWARD_REVISION} export {EXPORT_REVISION}".encode())
    h.update(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(tensor.detach().cpu().float().contiguous().numpy().tobytes())
    return h.hexdigest()


def export_onnx(model: Vid2VidGenerator, path: str | Path, width: int, height: int,
                precision: str = "fp32", stamp: dict[str, str] | None = None) -> Path:
    """Export `RenderStep(model)` at a static (width, height) to `path` (ONNX opset 17), stamped; returns
    it. The size and precision are the caller's, checked where they entered (Renderer, export CLI)."""
    path = Path(path)
    # Export a CPU copy so the caller's model (maybe on CUDA, maybe compiled) is left alone.
    step = RenderStep(build_generator(model.config).to(DTYPES[precision])).eval()
    step.model.load_state_dict({k: v.detach().cpu() for k, v in model.state_dict().items()})
    args = example_inputs(step.model.config, width, height, dtype=DTYPES[precision], seed=0)
    with atomic_path(path) as tmp, torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation notice
        torch.onnx.export(step, args, str(tmp), dynamo=False, opset_version=OPSET,
                          input_names=list(input_names(model.config)), output_names=list(OUTPUT_NAMES),
                          do_constant_folding=True)
        _stamp(tmp, stamp or export_stamp(model, width, height, precision))
        check_graph(tmp)
    return path


def export_stamp(model: Vid2VidGenerator, width: int, height: int, precision: str,
                 digest: str | None = None) -> dict[str, str]:
    """What an export of (model, size, precision) is; written into the graph's metadata_props."""
    return {"model_sha256": digest or model_hash(model), "size": f"{width}x{height}", "precision": precision}


def _graph_digest(m: onnx.ModelProto) -> str:
    # GraphProto holds every node and weight (metadata_props live on ModelProto, outside it).
    return hashlib.sha256(m.graph.SerializeToString()).hexdigest()


def _stamp(path: Path, stamp: dict[str, str]) -> None:
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
    return _check_model(onnx.load(str(path)), path)


def _check_model(m: onnx.ModelProto, path: str | Path) -> dict:
    opset = next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx"))
    grids = [{a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
             for node in m.graph.node if node.op_type == "GridSample"]
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
    path = Path(directory or cache_folder()) / f"{key}.onnx"
    if path.exists() and not path.is_file():  # the export's final rename cannot replace a folder
        kind = "a folder" if path.is_dir() else "not a regular file"
        elsewhere = "pass another folder" if directory else "set NEURAL_DRIVE_CACHE to another folder"
        raise CacheError(f"ONNX cache entry {path}: is {kind}, where the export of this model belongs; "
                         f"remove it, or {elsewhere}")
    stale = None
    if path.exists():
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
