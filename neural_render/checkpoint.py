"""Generator weights as safetensors: the resolved config (JSON) and free-form meta ride in the file's
metadata, so a checkpoint alone rebuilds its network. Every way a file can be wrong (missing,
truncated, corrupt, another preset, NaN weights) becomes a `CheckpointError` that says how to fix it.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from carla_bridge.core.files import atomic_path
from neural_render.model import PRESETS, GeneratorConfig, Vid2VidGenerator, build_generator

FORMAT = "neural-drive-generator"
FORMAT_VERSION = "1"
MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
RUN_WEIGHTS_FILE = "generator.safetensors"  # the (EMA) weights a training run keeps in its --out folder


def default_model_path(preset: str = "cpu") -> Path:
    """Where the shipped weights of a preset live: <repo>/models/<preset>.safetensors."""
    return MODELS_DIR / f"{preset}.safetensors"


DEFAULT_MODEL_PATH = default_model_path("cpu")


class CheckpointError(ValueError):
    """A weights file that cannot be used; the message names the file and what to do."""


def save_generator(model: Vid2VidGenerator, path: str | Path, meta: dict | None = None) -> Path:
    """Write weights + config (+ meta, JSON-serialisable) to `path` atomically; returns the path."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in model.state_dict().items()}
    metadata = {"format": FORMAT, "format_version": FORMAT_VERSION,
                "config": json.dumps(model.config.to_dict()), "meta": json.dumps(meta or {}, default=str)}
    with atomic_path(path) as tmp:  # never a half-written checkpoint under the real name
        save_file(tensors, str(tmp), metadata=metadata)
    return path


def read_metadata(path: str | Path) -> tuple[GeneratorConfig, dict]:
    """(config, meta) of a checkpoint without loading its weights."""
    config, meta, _ = _read_header(path)
    return config, meta


def load_generator(path: str | Path, preset: str | None = None, map_location: str | torch.device = "cpu") -> Vid2VidGenerator:
    """Rebuild the generator stored in `path` (eval mode). `preset`, when given, must match the file's.
    The config and the tensor shapes are checked against each other from the file's header first, so
    a damaged config never builds (and allocates) a network the file's tensors cannot fill."""
    from safetensors.torch import load_file

    config, _, shapes = _read_header(path)
    path = weights_path(path)  # a run folder resolves to its generator.safetensors
    if preset is not None and preset not in PRESETS:  # a typo is not a mismatch with the file
        raise ValueError(f"preset '{preset}': choose one of {', '.join(PRESETS)} (or None: the file's own)")
    if preset is not None and config.name != preset:
        raise CheckpointError(f"{path}: holds a '{config.name}' generator but preset '{preset}' was asked for: "
                              f"pass --preset {config.name} or a checkpoint trained for '{preset}'")
    misfit = state_misfit(state_shapes(config), shapes)
    if misfit is None:
        try:
            state = load_file(str(path), device="cpu")
        except Exception as exc:
            raise CheckpointError(f"{path}: weights unreadable ({exc}); the file is corrupt or truncated: "
                                  f"copy it again or re-train") from exc
        for name, tensor in state.items():
            if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
                raise CheckpointError(f"{path}: weight '{name}' holds NaN/inf (training diverged); use an earlier checkpoint")
        model = Vid2VidGenerator(config)
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:  # a misfit state_misfit does not know: torch's words, on one line
            misfit = " ".join(str(exc).split())
    if misfit is not None:
        raise CheckpointError(f"{path}: weights do not fit the '{config.name}' network ({misfit}); "
                              f"the file was written by another version: re-export or re-train")
    return model.to(map_location).eval()


def state_shapes(config: GeneratorConfig) -> dict[str, tuple[int, ...]]:
    """The name and shape of every tensor in the state_dict of the network ``config`` builds, from a
    weightless copy on the "meta" device: no memory for the weights, whatever the widths."""
    with torch.device("meta"):
        return {name: tuple(t.shape) for name, t in build_generator(config).state_dict().items()}


def shapes_of(state: dict[str, torch.Tensor]) -> dict[str, tuple[int, ...]]:
    return {name: tuple(tensor.shape) for name, tensor in state.items()}


def state_misfit(expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]]) -> str | None:
    """None when ``found`` (a file's tensor shapes) has exactly the names and shapes of ``expected``
    (the network's); otherwise the first missing name, unexpected name and wrongly shaped tensor, on
    one line. load_state_dict puts those on later lines, which a one-line error cut off."""
    missing = [k for k in expected if k not in found]
    unexpected = [k for k in found if k not in expected]
    reshaped = [k for k in expected if k in found and tuple(found[k]) != tuple(expected[k])]
    parts = []
    if missing:
        parts.append(f"missing '{missing[0]}'{_more(missing)}")
    if unexpected:
        parts.append(f"unexpected '{unexpected[0]}'{_more(unexpected)}")
    if reshaped:
        k = reshaped[0]
        parts.append(f"'{k}' has shape {tuple(found[k])} in the file, {tuple(expected[k])} in the network"
                     f"{_more(reshaped)}")
    return "; ".join(parts) or None


def _more(keys: list[str]) -> str:
    return f" (and {len(keys) - 1} more)" if len(keys) > 1 else ""


def weights_path(path: str | Path) -> Path:
    """``path`` itself when it is a file; a training run's --out folder resolves to the weights
    neural_render.train saves in it (RUN_WEIGHTS_FILE); anything else is a CheckpointError."""
    path = Path(path)
    if path.is_dir():
        inside = path / RUN_WEIGHTS_FILE
        if inside.is_file():
            return inside
        raise CheckpointError(f"{path}: a folder without {RUN_WEIGHTS_FILE}; pass the .safetensors file "
                              f"itself (or a training run's --out folder)")
    if not path.is_file():
        hint = "train one with `python -m neural_render.train` or pass --model PATH"
        raise CheckpointError(f"{path}: no such checkpoint; {hint}")
    return path


def _read_header(path: str | Path) -> tuple[GeneratorConfig, dict, dict[str, tuple[int, ...]]]:
    """(config, meta, tensor shapes) from the file's header; no weight is read."""
    from safetensors import safe_open

    path = weights_path(path)
    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            shapes = {name: tuple(f.get_slice(name).get_shape()) for name in f.keys()}
    except Exception as exc:
        if path.suffix.lower() != ".safetensors":  # README.md, an image...: not a damaged checkpoint
            raise CheckpointError(f"{path}: not a generator checkpoint; pass the .safetensors weights that "
                                  f"neural_render.train saves (the shipped one: {DEFAULT_MODEL_PATH})") from exc
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc}); it is corrupt or truncated: "
                              f"copy or re-train it (python -m neural_render.train)") from exc
    config, meta = _parse_metadata(path, metadata)
    return config, meta, shapes


def _parse_metadata(path: Path, metadata: dict) -> tuple[GeneratorConfig, dict]:
    if metadata.get("format") != FORMAT or "config" not in metadata:
        raise CheckpointError(f"{path}: a safetensors file but not a neural-drive generator (no config in its "
                              f"metadata); save it with neural_render.checkpoint.save_generator")
    if metadata.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{path}: checkpoint format {metadata.get('format_version')} is not "
                              f"{FORMAT_VERSION}; update neural-drive or re-train")
    damaged = "the file is damaged or was not written by neural_render.checkpoint: copy it again or re-train"
    raw, meta = _json_object(path, metadata, "config", damaged), _json_object(path, metadata, "meta", damaged)
    try:
        config = GeneratorConfig.from_dict({k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()})
    except (ValueError, TypeError) as exc:  # a field out of its range (model.FIELD_RANGES) or unknown
        raise CheckpointError(f"{path}: the config in its metadata cannot be used ({exc}); {damaged}") from None
    return config, meta


def _json_object(path: Path, metadata: dict, key: str, damaged: str) -> dict:
    """The JSON object stored under ``key`` of a file's metadata ({} when absent)."""
    try:
        value = json.loads(metadata.get(key, "{}"))
    except ValueError as exc:
        raise CheckpointError(f"{path}: the {key} in its metadata is not JSON ({exc}); {damaged}") from None
    if not isinstance(value, dict):
        raise CheckpointError(f"{path}: the {key} in its metadata is not a JSON object but "
                              f"{type(value).__name__}; {damaged}")
    return value


def model_summary(model: Vid2VidGenerator) -> str:
    params = sum(p.numel() for p in model.parameters())
    return f"{model.config.name}: {params / 1e6:.3f} M params ({math.ceil(params * 4 / 1024)} KiB fp32)"
