"""python -m neural_render.evaluate --model PATH --res 256x128 --frames 60 --seeds 5 [--device cpu]

Drives the procedural world with its autopilot on the held-out evaluation seeds
(``neural_render.train.splits.eval_seeds``, never used in training) and measures the generator against
the engine's own rgb: PSNR and SSIM (Wang et al. 2004), and the warping error of Lai et al. (ECCV 2018)
with the exact engine flow and occlusions masked from depth reprojection and label consistency, for
the recurrent model, for the same model frame by frame (history disabled), their ratio (< 1: the
history makes the video steadier; over several drives the ratio of the mean errors, as calibrate
computes it), and for the engine rgb itself as a reference. PSNR, SSIM and the warping error reward a
blurred picture (the blurry mean is their optimum; a picture without detail cannot flicker), so two
measures that do not are beside them: the sliced Wasserstein distance of Laplacian-pyramid patches
(``swd``, Karras et al. ICLR 2018, neural_render.swd; lower is closer to the engine's images, per
level in ``swd_by_level``, finest first) and the temporal residual error against the engine's video
(``temporal_residual``, metrics.temporal_residual_error: neither flicker nor a frozen blur scores
well). Outputs are rounded to uint8 first, as the renderer shows them. PSNR and SWD are also given per
quarter of the drive (``psnr_by_quarter``, ``swd_by_quarter``): a recurrent model that drifts away
from its inputs gets worse as the drive goes on, while the frame-by-frame model stays level. Prints a
table; the LAST line is strict JSON: a value with nothing to measure (a quarter of a drive shorter
than four frames) is null there, not NaN.
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
from tqdm import tqdm

from carla_bridge.core import cli
from carla_bridge.core.cli import json_line
from carla_bridge.core.files import figure_problem
from carla_bridge.core.frames import Control, parse_size
from carla_bridge.core.labels import colorize
from carla_bridge.core.numba_threads import prefer_one_numba_thread
from carla_bridge.core.png import write_png
from neural_render.checkpoint import load_generator
from neural_render.metrics import mean, occlusion_mask, psnr, ssim, temporal_residual_error, warping_error
from neural_render.swd import PatchSampler, swd_by_level
from neural_render.train.rollout import Rollout, to_uint8
from neural_render.train.splits import SPLITS, split_seeds

COLUMNS = ("psnr", "ssim", "psnr_framewise", "ssim_framewise", "warp_error", "warp_error_framewise",
           "warp_ratio", "warp_error_engine", "swd", "swd_framewise", "temporal_residual",
           "temporal_residual_framewise")
LISTS = ("psnr_by_quarter", "psnr_framewise_by_quarter", "swd_by_quarter", "swd_by_level")
SWD_DESCRIPTORS = 16384
"""Patches per pyramid level and drive (spread over its frames, 4 to 64 a frame): the paper's 16384
per level, and a 2,000-frame drive's projections stay within a few hundred MB."""


def by_quarter(values: list[float]) -> list[float]:
    """Means over four consecutive, near-equal parts of a drive (first quarter first)."""
    return [mean(list(part)) for part in np.array_split(np.asarray(values, dtype=np.float64), 4)]


def swd_summary(generated: PatchSampler, real: PatchSampler) -> dict[str, float | list[float]]:
    """SWD of a drive (the mean over levels), per level, and per quarter of the drive."""
    levels = swd_by_level(generated.descriptors(), real.descriptors())
    quarters = [mean(swd_by_level(generated.descriptors(slice(part[0], part[-1] + 1)),
                                  real.descriptors(slice(part[0], part[-1] + 1)))) if len(part) else np.nan
                for part in np.array_split(np.arange(len(real)), 4)]  # as by_quarter splits the drive
    return {"swd": mean(levels), "swd_by_level": levels, "swd_by_quarter": quarters}


def _tensors(frame, device) -> dict[str, torch.Tensor | None]:
    t = lambda a: None if a is None else torch.from_numpy(a).to(device).unsqueeze(0)  # noqa: E731
    return {
        "labels": t(frame.labels),
        "rgb": t(frame.rgb).permute(0, 3, 1, 2).float() / 255.0,
        "flow": None if frame.flow is None else t(frame.flow).permute(0, 3, 1, 2).contiguous(),
        "depth": t(frame.depth),
    }


@torch.no_grad()
def evaluate_seed(model, seed: int, width: int, height: int, frames: int, device, weather: int = 0,
                  snapshots: dict[int, np.ndarray] | None = None, framewise: bool = True,
                  on_frame=lambda: None) -> dict[str, float]:
    """Metrics of one held-out drive of ``frames`` frames; ``on_frame()`` after each (the progress bar).
    Frame indices given as keys of ``snapshots``
    get a strip row (labels | recurrent render | engine rgb, uint8) stored under that key. Without
    ``framewise`` the frame-by-frame baseline is skipped (its metrics are NaN): half the work, for
    callers that only compare recurrent variants of one model."""
    # Imported here, not at the top: numba sizes its thread pool when it loads, and main() first asks
    # for one thread (prefer_one_numba_thread: 0.17 s instead of 4.8 s per frame beside torch).
    from carla_bridge.procedural import ProceduralWorld, WorldConfig

    recurrent, baseline = Rollout(model, history=True), Rollout(model, history=False)
    acc: dict[str, list[float]] = {k: [] for k in ("psnr", "ssim", "psnr_fw", "ssim_fw", "we", "we_fw", "we_engine",
                                                   "tr", "tr_fw")}
    per_frame = min(64, max(4, SWD_DESCRIPTORS // frames))
    # One seed for all three: the same patch positions in the generated and the engine's frames.
    patches = {name: PatchSampler(height, width, per_frame, seed) for name in ("real", "y", "z")}
    prev = None
    with ProceduralWorld(WorldConfig(width=width, height=height, seed=seed, threads=1, weather=weather)) as world:
        frame = world.reset(seed=seed)
        for i in range(frames):
            if i:
                frame = world.step(Control(autopilot=True))
            cur = _tensors(frame, device)  # the procedural world always renders rgb
            has_flow = cur["flow"] is not None and not frame.cut and prev is not None
            flow = cur["flow"] if has_flow else None
            ones, sky = torch.ones(1, device=device), torch.from_numpy(frame.weather)[None].to(device)
            y = to_uint8(recurrent.step(cur["labels"], flow, ones if has_flow else None, cut=frame.cut,
                                        weather=sky).image).float() / 255
            z = to_uint8(baseline.step(cur["labels"], None, None, cut=True, weather=sky).image).float() / 255 \
                if framewise else None
            acc["psnr"].append(float(psnr(y, cur["rgb"])))
            patches["real"].add(cur["rgb"])
            patches["y"].add(y)
            acc["ssim"].append(float(ssim(y, cur["rgb"])))
            if framewise:
                acc["psnr_fw"].append(float(psnr(z, cur["rgb"])))
                acc["ssim_fw"].append(float(ssim(z, cur["rgb"])))
                patches["z"].add(z)
            if has_flow:
                mask = occlusion_mask(cur["flow"], cur["labels"], prev["labels"], cur["depth"], prev["depth"])
                acc["we"].append(float(warping_error(y, prev["y"], cur["flow"], mask)))
                acc["tr"].append(float(temporal_residual_error(y, prev["y"], cur["rgb"], prev["rgb"], cur["flow"], mask)))
                if framewise:
                    acc["we_fw"].append(float(warping_error(z, prev["z"], cur["flow"], mask)))
                    acc["tr_fw"].append(float(temporal_residual_error(z, prev["z"], cur["rgb"], prev["rgb"],
                                                                      cur["flow"], mask)))
                acc["we_engine"].append(float(warping_error(cur["rgb"], prev["rgb"], cur["flow"], mask)))
            if snapshots is not None and i in snapshots:
                render = (y[0].permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
                snapshots[i] = np.concatenate([colorize(frame.labels), render, frame.rgb], axis=1)
            prev = {**cur, "y": y, "z": z}
            on_frame()
    we, we_fw = mean(acc["we"]), mean(acc["we_fw"])
    swd = swd_summary(patches["y"], patches["real"])
    return {
        **swd, "swd_framewise": swd_summary(patches["z"], patches["real"])["swd"] if framewise else np.nan,
        "temporal_residual": mean(acc["tr"]), "temporal_residual_framewise": mean(acc["tr_fw"]),
        "psnr": mean(acc["psnr"]), "ssim": mean(acc["ssim"]),
        "psnr_framewise": mean(acc["psnr_fw"]), "ssim_framewise": mean(acc["ssim_fw"]),
        "warp_error": we, "warp_error_framewise": we_fw,
        "warp_ratio": we / we_fw if we_fw > 0 else float("nan"),
        "warp_error_engine": mean(acc["we_engine"]),
        "psnr_by_quarter": by_quarter(acc["psnr"]), "psnr_framewise_by_quarter": by_quarter(acc["psnr_fw"]),
    }


def format_table(rows: list[tuple[str, dict[str, float]]]) -> str:
    widths = [max(len(c), 9) for c in COLUMNS]
    head = f"{'seed':>8} " + " ".join(f"{c:>{w}}" for c, w in zip(COLUMNS, widths))
    lines = [head, "-" * len(head)]
    for name, r in rows:
        lines.append(f"{name:>8} " + " ".join(f"{r[c]:>{w}.5f}" for c, w in zip(COLUMNS, widths)))
    return "\n".join(lines)


def strip_moments(frames: int) -> dict[int, np.ndarray | None]:
    """The four frames of a drive a strip shows, as the ``snapshots`` of evaluate_seed (empty rows)."""
    return {int(i): None for i in np.linspace(frames // 4, frames - 1, 4).astype(int)}


def strip_image(snapshots: dict[int, np.ndarray | None]) -> np.ndarray:
    """The strip of the filled ``snapshots``: one row per moment, first moment on top."""
    return np.concatenate([row for row in snapshots.values() if row is not None], axis=0)


def evaluate_model(model, width: int, height: int, frames: int, seeds: list[int], device: str = "cpu",
                   weather: int = 0, show_progress: bool = True, framewise: bool = True,
                   snapshots: dict[int, np.ndarray | None] | None = None,
                   desc: str = "held-out seeds") -> tuple[list, dict]:
    """(per-seed rows, summary) of ``model`` over the drives of ``seeds``; the summary holds the mean of
    every column (the ratio of the mean warping errors for warp_ratio) and the PSNR by quarter.
    ``snapshots`` (from strip_moments): filled with the strip rows of the first seed's drive (labels |
    recurrent render | engine rgb), the picture of the README and model card; the caller writes it
    (strip_image) once the figures are out."""
    rows = []
    # Counted in frames, not seeds: a seed takes minutes on a 2-core CPU, and a bar by seed sat at 0 %
    # with no estimate until the first one ended.
    with tqdm(total=len(seeds) * frames, desc=desc, unit="frame", disable=not show_progress) as bar:
        for n, seed in enumerate(seeds):
            bar.set_postfix_str(f"seed {seed} ({n + 1}/{len(seeds)})")
            rows.append((str(seed), evaluate_seed(model, seed, width, height, frames, torch.device(device), weather,
                                                  snapshots if n == 0 else None, framewise, bar.update)))
    summary = {c: mean([r[c] for _, r in rows]) for c in COLUMNS}
    # The ratio of the means, not the mean of the per-drive ratios: it is what the two error columns
    # above it give, and what calibrate's --max-warp-ratio rule and curve use (the mean of ratios gave
    # 1.10 where calibrate said 0.99 for the same drives, opposite verdicts).
    we_fw = summary["warp_error_framewise"]
    summary["warp_ratio"] = summary["warp_error"] / we_fw if we_fw > 0 else float("nan")
    lists = {q: [round(float(v), 5) for v in np.mean([r[q] for _, r in rows], axis=0)] for q in LISTS}
    return rows, {**{k: round(v, 6) for k, v in summary.items()}, **lists}


def evaluate(model_path: str, width: int, height: int, frames: int, seeds: int, device: str = "cpu",
             preset: str | None = None, show_progress: bool = True, weather: int = 0,
             snapshots: dict[int, np.ndarray | None] | None = None, split: str = "test") -> dict:
    """Metrics of the checkpoint at ``model_path`` over the first ``seeds`` seeds of ``split`` (the
    held-out test seeds unless told otherwise); prints the per-seed table and returns the summary.
    ``snapshots``: as evaluate_model."""
    seed_list = split_seeds(split, seeds)
    model = load_generator(model_path, preset=preset, map_location=device).eval()
    model.config.check_size(width, height)  # once, here: evaluate_model and the drives trust it
    rows, summary = evaluate_model(model, width, height, frames, seed_list, device, weather, show_progress,
                                   snapshots=snapshots, desc=f"{split} seeds")
    print(format_table(rows + [("mean", summary)]))
    print(f"PSNR by quarter of the drive, recurrent: {summary['psnr_by_quarter']}; "
          f"frame by frame: {summary['psnr_framewise_by_quarter']}")
    print(f"SWD by quarter of the drive, recurrent: {summary['swd_by_quarter']}; "
          f"by pyramid level (finest first): {summary['swd_by_level']}")
    return {**summary, "model": str(model_path), "preset": model.config.name, "res": f"{width}x{height}",
            "frames": frames, "split": split, "seeds": seed_list, "weather": weather, "device": device}


def add_drive_options(p: argparse.ArgumentParser) -> None:
    """The options of a procedural evaluation drive, shared with neural_render.calibrate."""
    p.add_argument("--res", default="256x128", help="WIDTHxHEIGHT")
    p.add_argument("--frames", type=int, default=60, help="frames per drive")
    p.add_argument("--seeds", type=int, default=5, help="number of drives, one town seed each")
    p.add_argument("--device", type=cli.device, default="cpu", help="cpu, cuda or cuda:N")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: on a shared 2-core box 2 OpenMP threads measured 40x "
                        "slower than 1 because of spin-waiting; metrics do not depend on it)")
    p.add_argument("--no-progress", action="store_true", help="no tqdm bar")


def apply_drive_options(args: argparse.Namespace) -> tuple[int, int]:
    """Checks the options of add_drive_options (ValueError naming the flag) and sets torch's threads;
    returns (width, height)."""
    width, height = parse_size(args.res)
    if args.frames < 2:
        raise ValueError(f"--frames must be at least 2 (the warping error needs pairs), got {args.frames}")
    if args.threads < 1:
        raise ValueError(f"--threads must be at least 1, got {args.threads}")
    torch.set_num_threads(args.threads)
    return width, height


def main(argv: list[str] | None = None) -> int:
    prefer_one_numba_thread()  # numba's spinning pool starves torch in this process: before numba loads
    from carla_bridge.procedural.config import WEATHER_NAMES  # loads numba
    p = argparse.ArgumentParser(prog="python -m neural_render.evaluate", description=__doc__,
                                formatter_class=cli.HelpFormatter)
    p.add_argument("--model", required=True, help="the generator: .safetensors (e.g. models/cpu.safetensors) or a training run's folder")
    add_drive_options(p)
    p.add_argument("--split", choices=SPLITS, default="test",
                   help="test: the held-out seeds every reported figure uses (default); validation: the seeds "
                        "post-training choices are fitted to (neural_render.calibrate)")
    p.add_argument("--weather", type=int, default=0, choices=range(len(WEATHER_NAMES)), metavar="INDEX",
                   help="procedural weather preset: " + ", ".join(f"{i} {n}" for i, n in enumerate(WEATHER_NAMES)))
    p.add_argument("--preset", help="fail unless the checkpoint is this preset")
    p.add_argument("--strip", metavar="PATH.png", help="also write a PNG strip of the first held-out drive here")
    p.add_argument("--overwrite", action="store_true", help="replace --strip when it exists")
    args = p.parse_args(argv)
    try:
        width, height = apply_drive_options(args)
        problem = args.strip and figure_problem("--strip", args.strip, (".png",), args.overwrite)
        if problem:  # now, not after the whole evaluation
            raise ValueError(problem)
        snapshots = strip_moments(args.frames) if args.strip else None
        result = evaluate(args.model, width, height, args.frames, args.seeds, args.device, args.preset,
                          not args.no_progress, args.weather, snapshots, args.split)
    except ValueError as exc:  # CheckpointError included
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json_line(result))  # strict: a quarter without frames (--frames under 8) is null, not NaN
    if args.strip:  # last: the figures above are out whatever happens to the file
        try:
            write_png(args.strip, strip_image(snapshots))
        except OSError as exc:
            print(f"error: --strip {args.strip}: cannot be written ({exc.strerror or exc}); the figures above "
                  "are complete", file=sys.stderr)
            return 2
        print(f"strip: {args.strip}", file=sys.stderr)  # stderr: the JSON stays the last line of stdout
    return 0


if __name__ == "__main__":
    sys.exit(main())
