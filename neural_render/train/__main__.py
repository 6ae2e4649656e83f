"""python -m neural_render.train --preset cpu --data procedural --steps N --out DIR [options]

Several GPUs or machines: the same command under torchrun, e.g.
    torchrun --nproc_per_node 4 -m neural_render.train --preset gpu --device cuda --steps 20000 --out runs/gpu
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from dataclasses import fields
from typing import NoReturn


def _is_main_process() -> bool:
    """Rank 0 of a torchrun run, or a plain run: the one process that speaks. Every rank meets the same
    command-line and set-up errors (the set-up ones are agreed between ranks, loop._agree), and N
    copies of one line, or N usage texts, said nothing more than one."""
    return os.environ.get("RANK", "0") == "0"


def _interrupted_at_start_up() -> int:
    """Ctrl+C before the training loop takes it (it then stops cleanly and saves): one line, not a
    KeyboardInterrupt traceback from every rank (torchrun forwards Ctrl+C to each). Returns 130."""
    if _is_main_process():
        print("\n[train] Ctrl+C during start-up: stopped before training (nothing was saved)", file=sys.stderr,
              flush=True)
    return 130


try:  # torch loads here: seconds
    from carla_bridge.core import cli
    from carla_bridge.core.frames import CAMERA_SIDES, parse_size
    from carla_bridge.core.numba_threads import prefer_one_numba_thread
    from neural_render.runtime.select import cuda_device_problem
    from neural_render.train.config import PRESET_DEFAULTS, RECIPES, LossWeights, TrainConfig, continue_config, resolve
    from neural_render.train.loop import TrainSetupError, train
    from neural_render.train.state import check_same_network, read_saved_config
except KeyboardInterrupt:
    sys.exit(_interrupted_at_start_up())

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


def weather(text: str) -> str:
    """argparse type of --weather: default, all, or an index of the procedural world's presets, the
    same indices evaluate takes (the world would wrap 9 round to preset 4 without a word)."""
    # Imported here, after _main's prefer_one_numba_thread: this loads numba, which sizes its pool then.
    from carla_bridge.procedural.config import WEATHER_NAMES

    if text in ("default", "all"):
        return text
    if text.isdecimal() and int(text) < len(WEATHER_NAMES):
        return str(int(text))
    raise argparse.ArgumentTypeError(f"must be default, all or an index 0-{len(WEATHER_NAMES) - 1}, got {text!r}")


def build_parser() -> argparse.ArgumentParser:
    from carla_bridge.procedural.config import WEATHER_NAMES  # loads numba: after prefer_one_numba_thread

    p = argparse.ArgumentParser(prog="python -m neural_render.train", description=__doc__,
                                formatter_class=cli.HelpFormatter)
    # The flags that set the run default to None, so that a --resume knows which ones were given: those
    # change the run, the rest keep the run's saved values (help texts state the defaults of a new run).
    p.add_argument("--preset", choices=sorted(PRESET_DEFAULTS),
                   help=f"generator preset (sizes) (default: {TrainConfig.preset})")
    p.add_argument("--recipe", choices=sorted(RECIPES),
                   help="fast: L1+SSIM, no GAN (minutes); vid2vid: full GAN objective; sharp: vid2vid's with a small "
                        "reconstruction term, to fine-tune a fast model (--init) for texture; framewise: fast's "
                        f"losses with the history off, the frame-by-frame baseline (default: {TrainConfig.recipe})")
    p.add_argument("--init", metavar="CHECKPOINT",
                   help="start a new run from these generator weights (.safetensors or a run folder, same "
                        "--preset), e.g. --recipe sharp --init models/cpu.safetensors")
    p.add_argument("--data", choices=["procedural", "replay", "cityscapes"],
                   help="procedural: the built-in world; replay: recorded sessions; cityscapes: the dataset "
                        f"(default: {TrainConfig.data})")
    p.add_argument("--data-path", help="session folder(s) for replay, dataset root for cityscapes")
    p.add_argument("--weather", type=weather, metavar="WEATHER",
                   help="procedural weather: default (the world's), all (random per clip), or an index: "
                        + ", ".join(f"{i} {n}" for i, n in enumerate(WEATHER_NAMES)) + " (default: default)")
    p.add_argument("--steps", type=int, help="total optimizer steps (a resumed run counts its old ones) "
                   f"(default: {TrainConfig.steps})")
    p.add_argument("--out", required=True, help="output folder: checkpoints, config.json, samples/, log.jsonl")
    p.add_argument("--res", help="training size WIDTHxHEIGHT ("
                   + _per_preset(lambda v: f"{v['res'][0]}x{v['res'][1]}") + ")")
    p.add_argument("--batch", type=int, help="clips per step per process (" + _per_preset(lambda v: v["batch"]) + ")")
    p.add_argument("--device", type=cli.device, help=f"cpu, cuda or cuda:N (default: {TrainConfig.device})")
    p.add_argument("--workers", type=cli.non_negative_int,
                   help="data worker processes, 0: load in the trainer (" + _per_preset(lambda v: v["workers"]) + ")")
    p.add_argument("--seed", type=int, help="seed of the initial weights and of the training data "
                   f"(default: {TrainConfig.seed})")
    p.add_argument("--lr", type=float, help="generator and discriminator learning rate (default per recipe: "
                   + ", ".join(f"{name} {recipe['lr_g']:g}" for name, recipe in RECIPES.items()) + ")")
    p.add_argument("--lr-decay-steps", type=int,
                   help="decay the learning rate linearly to zero over the last N of --steps (default 0: constant)")
    p.add_argument("--gan-weight", type=float, help="override the image GAN weight of the recipe (default per "
                   "recipe: " + ", ".join(f"{name} {recipe['weights'].gan:g}" for name, recipe in RECIPES.items()) + ")")
    p.add_argument("--loss-weight", type=loss_weight, action="append", metavar="NAME=WEIGHT",
                   help="override one loss weight of the recipe, repeatable, e.g. --loss-weight warp=10 "
                        f"(names: {', '.join(LOSS_NAMES)}; vgg needs --vgg-weights; the recipes are in "
                        "neural_render/train/config.py)")
    p.add_argument("--seq-len", type=int, help="maximum clip length (progressive growth ends here; "
                   + _per_preset(lambda v: v["schedule"].max_len) + ")")
    p.add_argument("--amp", choices=["auto", "bf16", "fp16", "off"],
                   help=f"mixed precision on CUDA (default: {TrainConfig.amp})")
    p.add_argument("--vgg-weights", help="local VGG19 weights (.safetensors) to add a perceptual loss (weight 10 "
                   "unless --loss-weight vgg=W)")
    p.add_argument("--sample-every", type=cli.non_negative_int,
                   help=f"steps between sample strips (PNG), 0: none (default: {TrainConfig.sample_every})")
    p.add_argument("--ckpt-every", type=cli.non_negative_int,
                   help=f"steps between checkpoints, 0: only at the end (default: {TrainConfig.ckpt_every})")
    start = p.add_mutually_exclusive_group()  # an --out that already holds a run needs one of them
    start.add_argument("--resume", action="store_true",
                       help="continue the run in --out from its checkpoint, with its settings: only the flags "
                            "given change them (said, and recorded in log.jsonl)")
    start.add_argument("--overwrite", action="store_true",
                       help="delete the run already in --out (its weights, state, log, samples) and start over")
    p.add_argument("--time-limit", type=cli.positive_float, metavar="MINUTES",
                   help="minutes (> 0) this command trains before it stops, saves and exits cleanly "
                        "(default: none; not kept by --resume)")
    p.add_argument("--threads", type=int, help="torch CPU threads of the trainer (default: cores minus workers)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")
    return p


def _overrides(args: argparse.Namespace) -> dict:
    """The TrainConfig fields the command line sets (None: flag not given)."""
    overrides = dict(
        data=args.data, data_path=args.data_path, steps=args.steps, batch=args.batch, device=args.device,
        workers=args.workers, seed=args.seed, weather=args.weather, amp=args.amp, vgg_weights=args.vgg_weights,
        lr_decay_steps=args.lr_decay_steps, sample_every=args.sample_every, ckpt_every=args.ckpt_every,
        time_limit_min=args.time_limit, init=args.init,
    )
    if args.threads is not None and args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    if args.res:
        overrides["res"] = parse_size(args.res, sides=CAMERA_SIDES)
    if args.lr is not None:
        if not args.lr > 0:
            raise ValueError(f"--lr must be positive, got {args.lr}")
        overrides["lr_g"] = overrides["lr_d"] = args.lr
    return overrides


def _config(args: argparse.Namespace) -> TrainConfig:
    """A new run: preset defaults, the recipe, the flags. A --resume: the run's saved config, the flags
    given (a preset or recipe other than the run's is refused: there is nothing to continue)."""
    saved = read_saved_config(args.out) if args.resume else None
    if saved is None:
        cfg = resolve(args.preset or TrainConfig.preset, args.recipe or TrainConfig.recipe, **_overrides(args))
    else:
        if args.init:
            raise ValueError(f"--init starts a new run from other weights; --resume continues {args.out} from its "
                             "own: drop one of them")
        check_same_network(saved, args.preset or saved.get("preset"), args.recipe or saved.get("recipe"), args.out)
        cfg = continue_config(saved, **_overrides(args))
    if args.vgg_weights:  # a perceptual term needs a weight: imaginaire's 10 unless --loss-weight vgg sets one
        cfg.weights.vgg = cfg.weights.vgg or 10.0
    if args.gan_weight is not None:
        cfg.weights.gan = args.gan_weight
    for name, weight in args.loss_weight or []:  # after --gan-weight: the more specific flag wins
        setattr(cfg.weights, name, weight)
    if args.seq_len is not None:
        if args.seq_len < 1:
            raise ValueError(f"--seq-len must be at least 1 frame, got {args.seq_len}")
        cfg.schedule.max_len = args.seq_len
        cfg.schedule.min_len = min(cfg.schedule.min_len, args.seq_len)
    return cfg


def _quiet(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """``parser`` exiting 2 on a bad command line without its usage and error text (the ranks other than
    0: rank 0 says it). ``error`` is the method argparse documents for overriding."""
    def error(message: str) -> NoReturn:
        raise SystemExit(2)

    parser.error = error  # type: ignore[method-assign]
    return parser


def main(argv: list[str] | None = None) -> int:
    """The command line; 0 when trained (or stopped cleanly by Ctrl+C, SIGTERM or --time-limit and
    saved), 2 for a bad command line or set-up, 1 when the loss is not finite, 130 for Ctrl+C during
    the start-up (before the loop takes Ctrl+C to stop cleanly)."""
    try:
        return _main(argv, _is_main_process())
    except KeyboardInterrupt:  # only before the loop installs its handler (loop.train gives it back last)
        return _interrupted_at_start_up()


def _main(argv: list[str] | None, speak: bool) -> int:
    prefer_one_numba_thread()  # one per world (workers inherit it): numba's spinning pool starves torch
    parser = build_parser()
    if not speak:
        _quiet(parser)
    args = parser.parse_args(argv)
    try:
        cfg = _config(args)
    except ValueError as exc:
        if speak:
            print(f"error: {exc}", file=sys.stderr)
        return 2
    kept = "" if args.device else " (the run's, kept by --resume)"
    problem = cuda_device_problem(cfg.device)
    if problem:
        parser.error(f"--device {cfg.device}{kept}: {problem}")
    if cfg.weights.vgg > 0 and not cfg.vgg_weights:  # else the term is left out without a word
        parser.error("--loss-weight vgg needs --vgg-weights FILE (local VGG19 weights, .safetensors); "
                     "without it there is no perceptual loss to weigh")
    try:
        train(cfg, args.out, resume=args.resume, show_progress=not args.no_progress, threads=args.threads,
              overwrite=args.overwrite)
    except TrainSetupError as exc:
        if speak:  # the same error on every rank (loop._agree): said once
            print(f"error: {exc}", file=sys.stderr)
        return 2
    except FloatingPointError as exc:  # every rank raises it at the same step (Trainer._backward_and_step)
        if speak:
            print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
