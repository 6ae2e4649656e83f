"""python -m neural_render.train --preset cpu --data procedural --steps N --out DIR [options]

Several GPUs or machines: the same command under torchrun, e.g.
    torchrun --nproc_per_node 4 -m neural_render.train --preset gpu --device cuda --steps 20000 --out runs/gpu
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import fields

from carla_bridge.frames import parse_resolution
from carla_bridge.numba_threads import prefer_one_numba_thread
from neural_render import arg_types
from neural_render.train.config import PRESET_DEFAULTS, RECIPES, LossWeights, TrainConfig, resolve

LOSS_NAMES = tuple(f.name for f in fields(LossWeights))


def _per_preset(show) -> str:
    """A default that depends on --preset, spelled out for --help: 'default per preset: tiny 1, cpu 2, ...'."""
    return "default per preset: " + ", ".join(f"{name} {show(values)}" for name, values in PRESET_DEFAULTS.items())


def loss_weight(text: str) -> tuple[str, float]:
    """argparse type of --loss-weight: 'warp=10' -> ('warp', 10.0), a known loss and a finite weight >= 0."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or name not in LOSS_NAMES:
        raise argparse.ArgumentTypeError(f"expected NAME=WEIGHT with NAME one of {', '.join(LOSS_NAMES)}, got {text!r}")
    try:
        weight = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"the weight of {name} must be a number, got {value!r}") from None
    if not (math.isfinite(weight) and weight >= 0):
        raise argparse.ArgumentTypeError(f"the weight of {name} must be a finite number >= 0, got {value!r}")
    return name, weight


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m neural_render.train", description=__doc__,
                                formatter_class=arg_types.HelpFormatter)
    p.add_argument("--preset", default="cpu", choices=sorted(PRESET_DEFAULTS), help="generator preset (sizes)")
    p.add_argument("--recipe", default="fast", choices=sorted(RECIPES),
                   help="fast: L1+SSIM, no GAN (minutes); vid2vid: full GAN objective")
    p.add_argument("--data", default="procedural", choices=["procedural", "replay", "cityscapes"],
                   help="procedural: the built-in world; replay: recorded sessions; cityscapes: the dataset")
    p.add_argument("--data-path", help="session folder(s) for replay, dataset root for cityscapes")
    p.add_argument("--weather", help="procedural weather: default (the world's), all (random per clip), or an index "
                        "(default: default)")
    p.add_argument("--steps", type=int, default=1000, help="total optimizer steps (a resumed run counts its old ones)")
    p.add_argument("--out", required=True, help="output folder: checkpoints, config.json, samples/, log.jsonl")
    p.add_argument("--res", help="training size WIDTHxHEIGHT ("
                   + _per_preset(lambda v: f"{v['res'][0]}x{v['res'][1]}") + ")")
    p.add_argument("--batch", type=int, help="clips per step per process (" + _per_preset(lambda v: v["batch"]) + ")")
    p.add_argument("--device", default="cpu", help="cpu or cuda (cuda:N)")
    p.add_argument("--workers", type=int, help="data worker processes (" + _per_preset(lambda v: v["workers"]) + ")")
    p.add_argument("--seed", type=int, default=0, help="seed of the initial weights and of the training data")
    p.add_argument("--lr", type=float, help="generator and discriminator learning rate (default per recipe: "
                   + ", ".join(f"{name} {recipe['lr_g']:g}" for name, recipe in RECIPES.items()) + ")")
    p.add_argument("--lr-decay-steps", type=int,
                   help="decay the learning rate linearly to zero over the last N of --steps (default 0: constant)")
    p.add_argument("--gan-weight", type=float, help="override the image GAN weight of the recipe (default per "
                   "recipe: " + ", ".join(f"{name} {recipe['weights'].gan:g}" for name, recipe in RECIPES.items()) + ")")
    p.add_argument("--loss-weight", type=loss_weight, action="append", metavar="NAME=WEIGHT",
                   help="override one loss weight of the recipe, repeatable, e.g. --loss-weight warp=10 "
                        f"(names: {', '.join(LOSS_NAMES)}; the recipes are in neural_render/train/config.py)")
    p.add_argument("--seq-len", type=int, help="maximum clip length (progressive growth ends here; "
                   + _per_preset(lambda v: v["schedule"].max_len) + ")")
    p.add_argument("--amp", choices=["auto", "bf16", "fp16", "off"],
                   help=f"mixed precision on CUDA (default: {TrainConfig.amp})")
    p.add_argument("--vgg-weights", help="local VGG19 weights (.safetensors) to add a perceptual loss")
    p.add_argument("--sample-every", type=int,
                   help=f"steps between sample strips (PNG) (default: {TrainConfig.sample_every})")
    p.add_argument("--ckpt-every", type=int, help=f"steps between checkpoints (default: {TrainConfig.ckpt_every})")
    start = p.add_mutually_exclusive_group()  # an --out that already holds a run needs one of them
    start.add_argument("--resume", action="store_true", help="continue from the checkpoint in --out")
    start.add_argument("--overwrite", action="store_true",
                       help="delete the run already in --out (its weights, state, log, samples) and start over")
    p.add_argument("--time-limit", type=float, help="minutes; stop, save and exit cleanly after this")
    p.add_argument("--threads", type=int, help="torch CPU threads of the trainer (default: cores minus workers)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    return p


def main(argv: list[str] | None = None) -> int:
    prefer_one_numba_thread()  # one per world (workers inherit it): numba's spinning pool starves torch
    args = build_parser().parse_args(argv)
    try:
        overrides = dict(
            data=args.data, data_path=args.data_path, steps=args.steps, batch=args.batch, device=args.device,
            workers=args.workers, seed=args.seed, weather=args.weather, amp=args.amp, vgg_weights=args.vgg_weights,
            lr_decay_steps=args.lr_decay_steps, sample_every=args.sample_every, ckpt_every=args.ckpt_every,
            time_limit_min=args.time_limit,
        )
        if args.threads is not None and args.threads < 1:
            raise ValueError(f"--threads must be at least 1, got {args.threads}")
        if args.res:
            overrides["res"] = parse_resolution(args.res)
        if args.lr is not None:
            if not args.lr > 0:
                raise ValueError(f"--lr must be positive, got {args.lr}")
            overrides["lr_g"] = overrides["lr_d"] = args.lr
        cfg = resolve(args.preset, args.recipe, **overrides)
        if args.gan_weight is not None:
            cfg.weights.gan = args.gan_weight
        for name, weight in args.loss_weight or []:  # after --gan-weight: the more specific flag wins
            setattr(cfg.weights, name, weight)
        if args.vgg_weights:
            cfg.weights.vgg = cfg.weights.vgg or 10.0  # imaginaire's perceptual weight
        if args.seq_len is not None:
            if args.seq_len < 1:
                raise ValueError(f"--seq-len must be at least 1 frame, got {args.seq_len}")
            cfg.schedule.max_len = args.seq_len
            cfg.schedule.min_len = min(cfg.schedule.min_len, args.seq_len)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from neural_render.train.loop import TrainSetupError, train

    try:
        train(cfg, args.out, resume=args.resume, show_progress=not args.no_progress, threads=args.threads,
              overwrite=args.overwrite)
    except TrainSetupError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
