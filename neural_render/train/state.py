"""Save and resume the whole training state without pickles: tensors in one safetensors file,
everything else (step, optimizer hyper-parameters, scaler, config) in a JSON file beside it.

OUT/generator.safetensors   the EMA generator via neural_render.checkpoint.save_generator (deployable)
OUT/train_state.safetensors G, EMA, discriminators, Adam moments
OUT/train_state.json        step, optimizer param_groups and scalar state, GradScaler, resolved config
OUT/config.json             the resolved TrainConfig (also written at the start of a run)
Both state files are written to temporary names and renamed. The tensors file also carries the JSON
in its metadata and is what a resume reads: one rename commits weights and step together, so a kill
between the two renames cannot pair weights from step N with a step count and Adam state from step M
(train_state.json is the readable copy; read_state_info falls back to it for checkpoints whose
tensors file carries no JSON).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from carla_bridge.core.files import replace_with_default_mode
from neural_render.checkpoint import RUN_WEIGHTS_FILE, save_generator

STATE_TENSORS, STATE_JSON = "train_state.safetensors", "train_state.json"
STATE_META_KEY = "train_state"  # the JSON inside the tensors file's metadata
RAW_GENERATOR = "G"  # prefix of the optimizer's (non-EMA) generator tensors in STATE_TENSORS


def _optimizer_split(prefix: str, opt: torch.optim.Optimizer | None, tensors: dict, info: dict) -> None:
    if opt is None:
        return
    sd = opt.state_dict()
    scalars: dict[str, dict[str, Any]] = {}
    for idx, state in sd["state"].items():
        for name, value in state.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}.{idx}.{name}"] = value.detach().cpu().contiguous().clone()
            else:
                scalars.setdefault(str(idx), {})[name] = value
    info[prefix] = {"param_groups": sd["param_groups"], "scalars": scalars, "count": len(sd["state"])}


def _optimizer_join(prefix: str, opt: torch.optim.Optimizer | None, tensors: dict, info: dict) -> None:
    if opt is None:
        return
    if prefix not in info:
        raise ValueError(f"training state has no {prefix} optimizer: it was saved with another --recipe")
    entry = info[prefix]
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "."):
            _, idx, name = key.split(".", 2)
            state.setdefault(int(idx), {})[name] = value
    for idx, scalars in entry["scalars"].items():
        state.setdefault(int(idx), {}).update(scalars)
    opt.load_state_dict({"state": state, "param_groups": entry["param_groups"]})


def save_state(trainer, out_dir: str | Path) -> Path:
    """Write generator.safetensors (EMA) and the resumable train state into ``out_dir``."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"step": trainer.step, "train_config": trainer.cfg.to_dict(), "weights": "ema"}
    save_generator(trainer.G_ema, out / RUN_WEIGHTS_FILE, meta=meta)
    tensors: dict[str, torch.Tensor] = {}
    for name, module in ((RAW_GENERATOR, trainer.G), ("G_ema", trainer.G_ema), ("D_img", trainer.D_img), ("D_tmp", trainer.D_tmp)):
        if module is not None:
            for key, value in module.state_dict().items():
                tensors[f"{name}.{key}"] = value.detach().cpu().contiguous().clone()
    # world_size: how many processes (torchrun) trained it; a resume with another number is said.
    info: dict[str, Any] = {"step": trainer.step, "config": trainer.cfg.to_dict(), "world_size": trainer.dist.world_size}
    _optimizer_split("opt_g", trainer.opt_g, tensors, info)
    _optimizer_split("opt_d", trainer.opt_d, tensors, info)
    if trainer.scaler is not None:
        info["scaler"] = trainer.scaler.state_dict()
    tmp_t = out / (STATE_TENSORS + f".tmp{os.getpid()}")
    tmp_j = out / (STATE_JSON + f".tmp{os.getpid()}")
    text = json.dumps(info, indent=1, default=float)
    save_file(tensors, str(tmp_t), metadata={STATE_META_KEY: text})
    tmp_j.write_text(text)
    replace_with_default_mode(tmp_t, out / STATE_TENSORS)  # safetensors makes it 0600; the commit point
    replace_with_default_mode(tmp_j, out / STATE_JSON)
    return out


def has_state(out_dir: str | Path) -> bool:
    out = Path(out_dir)
    return (out / STATE_JSON).is_file() and (out / STATE_TENSORS).is_file()


def read_state_info(out: Path) -> dict[str, Any]:
    """The JSON saved with the tensors (always their pair), else train_state.json (older checkpoints)."""
    from safetensors import safe_open

    with safe_open(str(out / STATE_TENSORS), framework="pt") as f:
        text = (f.metadata() or {}).get(STATE_META_KEY)
    return json.loads(text if text is not None else (out / STATE_JSON).read_text())


def read_raw_generator(out_dir: str | Path) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """(state info, the optimizer's generator state dict) of the run in ``out_dir``, for
    neural_render.train.raw_weights. ValueError naming the file when it cannot be read."""
    from safetensors import safe_open

    out = Path(out_dir)
    if not has_state(out):
        raise ValueError(f"{out}: no training state ({STATE_JSON} + {STATE_TENSORS}); pass the --out folder "
                         "of a training run")
    prefix = RAW_GENERATOR + "."
    try:
        info = read_state_info(out)
        with safe_open(str(out / STATE_TENSORS), framework="pt") as f:
            tensors = {key[len(prefix):]: f.get_tensor(key) for key in f.keys() if key.startswith(prefix)}
    except Exception as error:  # safetensors' SafetensorError derives from Exception only
        raise _damaged(out, error) from None
    return info, tensors


def _damaged(out: Path, error: Exception) -> ValueError:
    """The one-line error of a training state that cannot be read (truncated by a full disk, a copy cut
    short): safetensors and json say what broke in tracebacks of their own."""
    return ValueError(f"{out / STATE_TENSORS} cannot be read ({error}): the run's training state is damaged")


def read_saved_config(out_dir: str | Path) -> dict[str, Any] | None:
    """The config a --resume of ``out_dir`` continues (the one saved with its weights); None when the
    folder holds no training state, ValueError naming the file when it cannot be read."""
    out = Path(out_dir)
    if not has_state(out):
        return None
    try:
        return read_state_info(out)["config"]
    except Exception as error:
        raise _damaged(out, error) from None


def check_same_network(saved: dict[str, Any], preset: str, recipe: str, out: str | Path) -> None:
    """ValueError when a --resume asks for another --preset or --recipe than the run in ``out`` was
    trained with: other networks, discriminators and optimizer state, nothing to continue."""
    saved_preset = saved.get("preset")
    if saved_preset != preset:
        raise ValueError(f"--resume: {out} holds a '{saved_preset}' run, not --preset {preset}")
    saved_recipe = saved.get("recipe")
    if saved_recipe is not None and saved_recipe != recipe:
        raise ValueError(f"--resume: {out} holds a '{saved_recipe}' run (other losses and discriminators), "
                         f"not --recipe {recipe}: pass --recipe {saved_recipe}, or another --out")


def load_state(trainer, out_dir: str | Path) -> int:
    """Restore ``trainer`` from ``out_dir``; returns the step to continue from."""
    from safetensors.torch import load_file

    out = Path(out_dir)
    if not has_state(out):
        raise FileNotFoundError(f"--resume: no {STATE_JSON} + {STATE_TENSORS} in {out}; start without --resume")
    try:
        info = read_state_info(out)
        tensors = load_file(str(out / STATE_TENSORS), device="cpu")
    except Exception as error:  # a truncated file: SafetensorError, which derives from Exception only
        raise _damaged(out, error) from None
    check_same_network(info["config"], trainer.cfg.preset, trainer.cfg.recipe, out)
    # Kept for the loop to say and record what the resume changes (run_folder.resume_changes) before
    # config.json is rewritten with the new settings.
    trainer.resumed_from = info
    for name, module in ((RAW_GENERATOR, trainer.G), ("G_ema", trainer.G_ema), ("D_img", trainer.D_img), ("D_tmp", trainer.D_tmp)):
        if module is None:
            continue
        part = {k[len(name) + 1 :]: v for k, v in tensors.items() if k.startswith(name + ".")}
        if not part:
            raise ValueError(f"--resume: {out} has no {name} weights (saved with another --recipe?)")
        module.load_state_dict(part)
    _optimizer_join("opt_g", trainer.opt_g, tensors, info)
    _optimizer_join("opt_d", trainer.opt_d, tensors, info)
    if trainer.scaler is not None and "scaler" in info:
        trainer.scaler.load_state_dict(info["scaler"])
    trainer.step = int(info["step"])
    return trainer.step
