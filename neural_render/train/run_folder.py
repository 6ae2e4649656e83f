"""What a training run keeps in its --out folder, and what a --resume changes about it.

A folder that holds a run is refused unless the command says what to do with it, so a new run neither
replaces nor mixes with it (starting again at step 0, replacing generator.safetensors and appending
to log.jsonl): --resume continues it, --overwrite removes the run's own files (and only those: anything
else a user keeps there stays) and starts over.

A resume may change settings, and such changes are often deliberate: vid2vid (Wang et al. 2018) grows
the clip length (--seq-len) and the resolution during training, a run moved from a CPU to a GPU takes
a bigger --batch, and a fine-tune reweighs the losses (--loss-weight). So they are allowed, printed in
one line and written to log.jsonl as a ``resume`` record (config.json holds the newest settings; the
log holds the history). A flag a resume is not given keeps the run's own value
(config.continue_config). Only a change of network or recipe (--preset, --recipe: other
discriminators and optimizer state) cannot continue a run: state.load_state refuses those, naming the
flag.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from carla_bridge.core.files import write_atomic
from neural_render.checkpoint import RUN_WEIGHTS_FILE
from neural_render.train.config import TrainConfig
from neural_render.train.state import STATE_JSON, STATE_TENSORS

# Evidence of an earlier run: its weights, its resumable state, its log (a run killed before its first
# checkpoint leaves only the log, and a new run would append to it).
RUN_EVIDENCE = (RUN_WEIGHTS_FILE, STATE_TENSORS, STATE_JSON, "log.jsonl")
# Everything a run writes, as globs relative to --out (loop.py: config.json, samples/, tb/).
# A kill during a save leaves the half-written temporary of an atomic write: NAME.tmpPID (checkpoints,
# training state) or .NAME.*.tmp (carla_bridge.core.files.write_atomic: the trimmed log.jsonl).
RUN_OUTPUTS = (*RUN_EVIDENCE, *(f"{name}.tmp*" for name in RUN_EVIDENCE), *(f".{name}.*.tmp" for name in RUN_EVIDENCE),
               "config.json", "samples/step_*.png", "tb/events.out.tfevents.*")


def previous_run_files(out: str | Path) -> list[str]:
    """Names of the files in ``out`` that show an earlier run is there (empty: none)."""
    out = Path(out)
    return [name for name in RUN_EVIDENCE if (out / name).exists()]


def refuse_previous_run(out: str | Path, resume: bool, overwrite: bool) -> None:
    """ValueError, before anything is trained or written, when ``out`` holds a run that neither
    --resume nor --overwrite tells us what to do with."""
    if resume and overwrite:
        raise ValueError("--resume continues the run in --out and --overwrite deletes it: pass one of them")
    found = previous_run_files(out)
    if not found or overwrite:
        return
    if not resume:
        raise ValueError(f"--out {out} already holds a training run ({', '.join(found)}); pass --resume to "
                         f"continue it, --overwrite to start over, or another --out")
    if STATE_JSON not in found or STATE_TENSORS not in found:
        # --resume would start at step 0 and replace the weights it found: the same loss.
        raise ValueError(f"--resume: {out} holds {', '.join(found)} but no complete training state "
                         f"({STATE_JSON} + {STATE_TENSORS}) to continue from; pass --overwrite to start "
                         f"over, or another --out")


def run_files(out: str | Path) -> set[Path]:
    """The files of a run (see RUN_OUTPUTS) in ``out``."""
    out = Path(out)
    return {path for pattern in RUN_OUTPUTS for path in out.glob(pattern) if path.is_file()}


def clear_previous_run(out: str | Path) -> list[Path]:
    """Delete the files an earlier run wrote in ``out`` (see RUN_OUTPUTS); returns them."""
    removed = sorted(run_files(out))
    for path in removed:
        path.unlink()
    return removed


def _record(line: str) -> dict | None:
    """The record of one log.jsonl line; None when it is not one (the half-written last line of a run
    killed, or stopped by a full disk, in the middle of a write)."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict) or not isinstance(record.get("step", 0), (int, float)):
        return None
    return record


def trim_log(out: str | Path, step: int) -> tuple[int, int]:
    """Drop the log.jsonl records after ``step`` (the checkpoint a resume continues from) and the lines
    that are no records; returns how many of each. A run killed after its last checkpoint logged steps
    whose weights were lost: the resume trains them again, and keeping the old records would log those
    steps twice. A half-written line would glue itself to the resume's first record."""
    path = Path(out) / "log.jsonl"
    if not path.is_file():
        return 0, 0
    original = path.read_text(errors="replace")
    lines = [line for line in original.splitlines() if line.strip()]
    records = [_record(line) for line in lines]
    keep = [line for line, record in zip(lines, records) if record is not None and record.get("step", 0) <= step]
    unreadable = records.count(None)
    text = "".join(line + "\n" for line in keep)
    if text != original:
        write_atomic(path, text.encode())  # a kill here leaves the old log whole, never half of it
    return len(lines) - len(keep) - unreadable, unreadable


def record_resume_changes(out: str | Path, step: int, changes: dict[str, list[str]]) -> None:
    """Append a ``resume`` record to log.jsonl: from ``step`` on, the run trains with these changed
    settings ({field: [before, after]}); config.json holds only the newest."""
    with (Path(out) / "log.jsonl").open("a") as log:
        log.write(json.dumps({"step": step, "event": "resume", "changed": changes}) + "\n")


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


def resume_changes(info: dict[str, Any], cfg: TrainConfig, world_size: int) -> dict[str, list[str]]:
    """{field: [saved value, new value]} for the settings ``cfg`` (run by ``world_size`` processes)
    changes from the run whose training state ``info`` a resume loaded (values as text), leaving out
    the quiet ones. Another number of processes changes the clips per step (--batch is per process) as
    a --batch would, and is said the same way."""
    saved = info["config"]
    now = json.loads(json.dumps(cfg.to_dict()))  # tuples as lists, as they were saved
    changes = {k: [_show(k, saved[k]), _show(k, now[k])] for k in now
               if k not in QUIET and k in saved and saved[k] != now[k]}
    if "weights" in changes and isinstance(saved["weights"], dict):
        # Only the weights that moved, as --loss-weight spells them: 'warp=3 -> warp=10'.
        moved = [k for k in now["weights"] if saved["weights"].get(k) != now["weights"][k]]
        changes["weights"] = [" ".join(f"{k}={_number(saved['weights'].get(k))}" for k in moved),
                              " ".join(f"{k}={_number(now['weights'][k])}" for k in moved)]
    saved_world = info.get("world_size")
    if saved_world is not None and saved_world != world_size:
        changes["world_size"] = [str(saved_world), str(world_size)]
    return changes


def describe_changes(changes: dict[str, list[str]]) -> str:
    """'--res 64x32 -> 96x48, --batch 1 -> 2' (one flag once: --lr sets two fields)."""
    seen: dict[str, str] = {}
    for name, (was, now) in changes.items():
        seen.setdefault(FLAGS.get(name, name), f"{FLAGS.get(name, name)} {was} -> {now}")
    return ", ".join(seen.values())
