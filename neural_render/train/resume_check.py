"""Which settings a --resume may change, and a one-line error for those it may not.

A resume with another --res, --batch or --seed used to continue silently and overwrite config.json:
the run then mixed two sizes, or (batch, seed) replayed other clips than an uninterrupted run would,
and its folder no longer said how its weights were trained. Settings that only say how long, where or
how fast to train may change; a new --lr / --lr-decay-steps is a deliberate schedule change.
"""

from __future__ import annotations

import json
from typing import Any

from neural_render.train.config import TrainConfig

MAY_CHANGE = {"steps", "device", "workers", "amp", "data_path", "sample_every", "ckpt_every", "log_every",
              "time_limit_min", "lr_g", "lr_d", "lr_decay_steps"}
# How a user sets each field on the command line (the rest have no flag: another --preset or --recipe).
FLAGS = {"res": "--res", "batch": "--batch", "seed": "--seed", "data": "--data", "weather": "--weather",
         "schedule": "--seq-len", "vgg_weights": "--vgg-weights", "weights": "--gan-weight/--vgg-weights",
         "recipe": "--recipe", "preset": "--preset"}


def _show(name: str, value: Any) -> str:
    if name == "res":
        return f"{value[0]}x{value[1]}"
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def resume_mismatch(saved: dict[str, Any], cfg: TrainConfig) -> str | None:
    """None when ``cfg`` may continue a run saved with config ``saved``, else what differs and the fix."""
    now = json.loads(json.dumps(cfg.to_dict()))  # tuples as lists, as they were saved
    differ = [k for k in now if k not in MAY_CHANGE and k in saved and saved[k] != now[k]]
    if not differ:
        return None
    was = ", ".join(f"{FLAGS.get(k, k)} {_show(k, saved[k])} (now {_show(k, now[k])})" for k in differ)
    return (f"it was trained with {was}; pass the saved values to continue it, or train into another --out")
