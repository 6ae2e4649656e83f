"""python -m neural_render.train.raw_weights --run runs/cpu --out runs/cpu_raw.safetensors

The optimizer's own generator weights of a training run, not their moving average, as an ordinary
checkpoint that evaluate, calibrate, export and the game take like any other.

A run's ``generator.safetensors`` holds the EMA of the generator (decay 0.999 per step, the weight
averaging of Karras et al., "Progressive Growing of GANs", ICLR 2018). Over a long run that is what to
ship. After a short fine-tune it is not: its time constant is 1,000 steps, so 700 steps after a resume
with other loss weights half of it (0.999^700 = 0.50) is still the model from before. Once the learning
rate has decayed to zero (``--lr-decay-steps``) the raw weights have settled and are the fine-tune's
own result: on the shipped model's fine-tune they were both sharper and steadier than the EMA on the
validation drives (models/cpu.md), so that is what ships. Which of the two to use is a validation
question; this tool only makes the raw weights usable.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from carla_bridge.core import cli
from carla_bridge.core.files import file_write_problem
from neural_render.checkpoint import load_generator, save_generator, shapes_of, state_misfit
from neural_render.train.state import read_raw_generator


def save_raw_weights(run: str | Path, out: str | Path) -> int:
    """Write the raw generator of the training state in ``run`` to ``out``; returns its step.
    ValueError when ``run`` holds no readable training state or it does not fit the run's model."""
    info, raw = read_raw_generator(run)
    model = load_generator(run)  # the EMA file: architecture and config; its weights are replaced below
    misfit = state_misfit(shapes_of(model.state_dict()), shapes_of(raw))  # missing or misshapen tensors, on one line
    if misfit:
        raise ValueError(f"--run {run}: the training state does not fit its generator.safetensors ({misfit})")
    model.load_state_dict(raw)
    save_generator(model, out, meta={"step": info["step"], "train_config": info["config"], "weights": "raw",
                                     "source": str(run)})
    return int(info["step"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m neural_render.train.raw_weights", description=__doc__,
                                formatter_class=cli.HelpFormatter)
    p.add_argument("--run", required=True, help="a training run's --out folder")
    p.add_argument("--out", required=True, type=Path, help="where to write the .safetensors")
    p.add_argument("--overwrite", action="store_true", help="replace --out when it exists")
    args = p.parse_args(argv)
    try:
        if args.out.exists() and not args.overwrite:
            raise ValueError(f"--out {args.out} already exists; pass --overwrite to replace it, or another path")
        problem = file_write_problem(args.out)
        if problem:
            raise ValueError(f"--out {args.out}: {problem}; pass another path")
        step = save_raw_weights(args.run, args.out)
    except ValueError as exc:  # CheckpointError included
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"raw generator weights of {args.run} at step {step}: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
