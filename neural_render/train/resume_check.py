"""What a --resume changes about a run, said and recorded rather than done silently.

A resume with another --res, --batch or --seed used to continue without a word and overwrite
config.json, so the run's folder no longer said how its weights were trained. Such changes are often
deliberate: vid2vid (Wang et al. 2018) grows the clip length (--seq-len) and the resolution during
training, a run moved from a CPU to a GPU takes a bigger --batch, and a fine-tune reweighs the losses
(--loss-weight). So they are allowed, printed in one line and written to log.jsonl as a ``resume``
record (config.json holds the newest settings; the log holds the history). A flag a resume is not given
keeps the run's own value (config.continue_config): a resume that repeated only --steps used to put the
preset's defaults back, undoing a fine-tune's --lr and --loss-weight. Only a change of network
or recipe (--preset, --recipe: other discriminators and optimizer state) cannot continue a run:
load_state refuses those, naming the flag.
"""

from __future__ import annotations

import json
from typing import Any

from neural_render.train.config import TrainConfig

# How long, where and how fast to train: not worth a record.
QUIET = {"steps", "device", "workers", "amp", "data_path", "sample_every", "ckpt_every", "log_every",
         "time_limit_min"}
# How a user sets each field on the command line (the rest have no flag of their own).
FLAGS = {"res": "--res", "batch": "--batch", "seed": "--seed", "data": "--data", "weather": "--weather",
         "schedule": "--seq-len", "vgg_weights": "--vgg-weights", "weights": "--loss-weight",
         "lr_g": "--lr", "lr_d": "--lr", "lr_decay_steps": "--lr-decay-steps", "recipe": "--recipe",
         "preset": "--preset", "world_size": "torchrun processes"}


def _show(name: str, value: Any) -> str:
    if name == "res":
        return f"{value[0]}x{value[1]}"
    if name == "schedule" and isinstance(value, dict) and set(value) == {"min_len", "max_len", "double_every"}:
        return str(value["max_len"])  # what --seq-len sets
    return json.dumps(value) if isinstance(value, (dict, list)) else str(value)


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else str(value)


def resume_changes(saved: dict[str, Any], cfg: TrainConfig) -> dict[str, list[str]]:
    """{field: [saved value, new value]} for the settings ``cfg`` changes from the run saved with config
    ``saved`` (values as text), leaving out the quiet ones."""
    now = json.loads(json.dumps(cfg.to_dict()))  # tuples as lists, as they were saved
    changes = {k: [_show(k, saved[k]), _show(k, now[k])] for k in now
               if k not in QUIET and k in saved and saved[k] != now[k]}
    if "weights" in changes and isinstance(saved["weights"], dict):
        # Only the weights that moved, as --loss-weight spells them: 'warp=3 -> warp=10'.
        moved = [k for k in now["weights"] if saved["weights"].get(k) != now["weights"][k]]
        changes["weights"] = [" ".join(f"{k}={_number(saved['weights'].get(k))}" for k in moved),
                              " ".join(f"{k}={_number(now['weights'][k])}" for k in moved)]
    return changes


def describe_changes(changes: dict[str, list[str]]) -> str:
    """'--res 64x32 -> 96x48, --batch 1 -> 2' (one flag once: --lr sets two fields)."""
    seen: dict[str, str] = {}
    for name, (was, now) in changes.items():
        seen.setdefault(FLAGS.get(name, name), f"{FLAGS.get(name, name)} {was} -> {now}")
    return ", ".join(seen.values())
