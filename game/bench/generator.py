"""Throughput and latency of the generator per backend.

    python -m game.bench generator --preset cpu --res 256x128 --backend onnxruntime --frames 100
    python -m game.bench generator --preset gpu --res 1024x512 --backend torch --device cuda --dtype fp16 --compile
    python -m game.bench generator --model runs/tiny --res 64x32    # the checkpoint names its preset
    python -m game.bench generator --model models/cpu.safetensors --res 256x128,512x256 --repeats 5 \\
        --backend openvino,onnxruntime    # several paths in one run, in turns: medians and ratios

Default mode times the model alone with its inputs already on the device (CUDA events on the GPU);
`--end-to-end` times `Renderer.render` from host uint8 labels + float32 flow to a host uint8 frame.
Prints a table and, as the LAST line, JSON {"fps", "p50_ms", "p95_ms", "p99_ms", "params_m", "gflops",
"backend", "device", "preset", "res", "compile", "compiled", ...}, each saying what ran ("compiled" is
false for onnxruntime, which --compile does not touch). --backend and --res take comma-separated lists:
then the table has a row per path (the median of --repeats rounds, see comparison.py), a line per size
gives each backend's speed against the first one, and the last line is {"rows": [...], "speedups":
{res: {backend: x}}}.
`bench_path(...)` is one path as a function. Needs only torch, numpy, onnx, onnxruntime (PYTHONPATH=.).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch

from carla_bridge.core import cli
from carla_bridge.core.frames import parse_size
from game.bench.comparison import round_robin, speedup_lines, speedups
from game.bench.timing import print_result, summary, time_cuda, time_host
from game.bench.workloads import frame_pool
from neural_render.checkpoint import load_generator
from neural_render.export import DEFAULT_PRESET
from neural_render.model import PRESETS, Vid2VidGenerator, build_generator, count_flops, count_params
from neural_render.runtime import Renderer
from neural_render.runtime.buffers import HostHistory
from neural_render.runtime.common import BACKENDS, compile_note, precision_note
from neural_render.runtime.onnx import OUTPUT_NAMES, input_names
from neural_render.runtime.select import cuda_device_problem, resolve_backend
from neural_render.runtime.torch_backend import TorchBackend


def _model_only(model: Vid2VidGenerator, backend: str, device: str, precision: str, size, compile: bool,
                frames: int, warmup: int, threads: int | None = None) -> tuple[list[float], str, dict]:
    width, height = size
    if backend == "torch":
        be = TorchBackend(model, size, device, precision, compile=compile)
        h = be.history
        h.upload(np.zeros((height, width), np.uint8), None, True)
        inputs = h.inputs()

        def fn():
            if be.compiled and be.device.type == "cuda":
                torch.compiler.cudagraph_mark_step_begin()
            with torch.no_grad():
                be._forward(*inputs)
        timer = time_cuda if be.device.type == "cuda" else time_host
        ms = timer(fn, frames, warmup)
        # A compile that failed fell back to eager: say so, or the row would credit eager speed to compile.
        return ms, be.device_name, {"compiled": be.compiled, "precision": be.precision}
    if backend == "onnxruntime":
        from neural_render.runtime.ort_backend import OrtBackend  # imports onnxruntime: only for its rows
        be = OrtBackend(model, size, device, precision, threads=threads)
        if be.binding is not None:  # GPU EP: bind the device buffers once, run repeatedly
            for name, t in zip(input_names(model.config), be.history.inputs()):
                be._bind(name, t, output=False)
            for name, t in zip(OUTPUT_NAMES, be.history.outputs()):
                be._bind(name, t, output=True)
            return time_host(lambda: be.session.run_with_iobinding(be.binding), frames, warmup,
                              torch.cuda.synchronize), be.device_name, {"providers": be.session.get_providers(),
                                                                        "precision": be.precision,
                                                                        "compiled": be.compiled}
        feeds = _zero_feeds(model, size)
        return (time_host(lambda: be.session.run(None, feeds), frames, warmup), be.device_name,
                {"providers": be.session.get_providers(), "precision": be.precision, "compiled": be.compiled})
    if backend == "openvino":
        from neural_render.runtime.openvino_backend import OpenVINOBackend  # imports openvino: only for its rows
        be = OpenVINOBackend(model, size, device, precision, threads=threads)
        feeds = _zero_feeds(model, size)
        return (time_host(lambda: be.request.infer(feeds), frames, warmup), be.device_name,
                {"precision": be.precision, "compiled": be.compiled})
    if backend == "tensorrt-rtx":
        from neural_render.runtime.trt_rtx_backend import TensorRTRTXBackend as TensorRTBackend  # only for its rows
    else:
        from neural_render.runtime.trt_backend import TensorRTBackend  # imports tensorrt: only for its rows
    be = TensorRTBackend(model, size, device, precision if precision != "bf16" else "fp16", cuda_graph=bool(compile))
    be.history.upload(np.zeros((height, width), np.uint8), None, True)
    with torch.cuda.stream(be.stream):
        return time_cuda(be._execute, frames, warmup, be.stream), be.device_name, {"precision": be.precision,
                                                                                    "compiled": be.compiled}


def _zero_feeds(model: Vid2VidGenerator, size: tuple[int, int]) -> dict[str, np.ndarray]:
    """The graph's inputs of a frame with history and flow, for the CPU backends' model-only timing."""
    width, height = size
    return HostHistory(model.config.k, width, height, model.config.weather_dim).feeds(np.zeros((height, width), np.uint8),
                                                           np.zeros((height, width, 2), np.float32), True)


def compile_mode_problem(mode: bool | str) -> str | None:
    """One line when ``mode`` (a --compile MODE) is not a torch.compile mode. torch checks it only at the
    first call, after the backend was built, with an inductor traceback; here it is a flag error before
    any work."""
    if not isinstance(mode, str):
        return None
    from torch._inductor import list_mode_options  # inductor's import takes seconds: only for a named mode

    modes = list(list_mode_options())
    if mode in modes:
        return None
    return f"--compile {mode}: not a torch.compile mode; name one of {', '.join(modes)}, or give --compile alone"


def device_and_compile_problem(device: str | None, mode: bool | str) -> str | None:
    """The first problem with a --device (a GPU torch cannot use) and a --compile MODE, as a flag error
    line, or None: checked before any work by the generator and kernels benchmarks. Without the device check ONNX
    Runtime falls back to the CPU (as the Renderer should), and CPU figures would answer a question
    about the GPU."""
    problem = cuda_device_problem(device)
    if problem:
        return f"--device {device}: {problem}"
    return compile_mode_problem(mode)


CPU_GRAPH_BACKENDS = ("onnxruntime", "openvino")  # the ones --threads reaches in model-only timing


def threads_note(threads: int | None, row: dict) -> str | None:
    """One line when --threads was given but the row's path does not take it (see the flag's help), so
    that the figures are not read as measured at that thread count."""
    if not threads:
        return None
    if row["backend"] in CPU_GRAPH_BACKENDS and row["mode"] == "end-to-end":
        return (f"note: --threads {threads} applies to {row['backend']} model-only timing; the Renderer end to "
                "end ran with the library's default threads")
    if row["backend"] not in CPU_GRAPH_BACKENDS and row["device"] != "cpu":
        return f"note: --threads {threads} applies to CPU work only; the {row['backend']} row ran on {row['device']}"
    return None


def _end_to_end(model, backend, device, precision, size, compile, frames, warmup,
                threads=None, pinned=True) -> tuple[list[float], str, dict]:
    r = Renderer(model, backend=backend, device=device, precision=precision, size=size, compile=compile)
    history = getattr(r._backend, "history", None)  # device buffers: none for onnxruntime on the CPU
    if not pinned and history is not None:
        history.stage_on_host(pinned=False)
    pool = frame_pool(size)
    i = [0]
    stages: dict[str, list[float]] = {}

    def fn():
        r.render(pool[i[0] % len(pool)])
        i[0] += 1
        for name, (start, end) in r.last_timings.items():
            stages.setdefault(name, []).append((end - start) / 1e6)
    ms = time_host(fn, frames, warmup)
    # Where an end-to-end frame goes beyond the model (the Renderer's stages end with a device sync on
    # CUDA); medians over the timed frames only, the warm-up ones are dropped.
    extra = {"stages_p50_ms": {name: round(float(np.median(v[-frames:])), 3) for name, v in stages.items()},
             "precision": r.precision, "compiled": r.compiled}
    if history is not None:
        extra["pinned_staging"] = history.pinned
    return ms, r.device_name, extra


def bench_path(preset: str | None = None, res: str | tuple[int, int] = "256x128", backend: str = "onnxruntime",
               device: str | None = None, precision: str = "fp32", compile: bool | str = False, frames: int = 100,
               warmup: int = 10, model: Vid2VidGenerator | str | None = None, end_to_end: bool = False,
               flops: bool = True, threads: int | None = None, pinned: bool = True) -> dict:
    """Benchmark one path; returns the JSON dict the CLI prints (see the module docstring); its
    "precision" is the one the backend ran, which may differ from ``precision``.
    preset: with a checkpoint path for ``model``, None takes the file's (another name is an error);
    otherwise None means DEFAULT_PRESET.
    compile: False, True (reduce-overhead on CUDA) or a torch.compile mode name such as "max-autotune";
    the row's "compile" and "compiled" say what ran (False for onnxruntime, or a compile that failed).
    pinned=False (end to end only): pageable host staging buffers instead of pinned ones."""
    size = parse_size(res)
    if isinstance(model, str):
        model = load_generator(model, preset=preset)
    elif model is None:
        torch.manual_seed(0)
        model = build_generator(preset or DEFAULT_PRESET)
    model = model.eval()
    model.config.check_size(*size)
    backend, device = resolve_backend(backend, device)
    if compile and warmup < 3:
        warmup = 3  # compilation and CUDA-graph recording happen in the first calls
    if threads and backend == "torch" and device == "cpu":
        torch.set_num_threads(threads)
    if end_to_end:
        ms, device_name, extra = _end_to_end(model, backend, device, precision, size, compile, frames, warmup,
                                             threads, pinned)
    else:
        ms, device_name, extra = _model_only(model, backend, device, precision, size, compile, frames, warmup,
                                             threads)
    gflops = round(count_flops(model.config, *size) / 1e9, 3) if flops else None
    # The precision that ran, which the backend may have changed (onnxruntime on the CPU runs fp32 only):
    # a row must not credit fp32 speed to fp16.
    ran = extra.pop("precision")
    # Likewise what compiled: asked-for compile on onnxruntime (or a failed torch.compile) ran uncompiled.
    compiled = extra.pop("compiled")
    return {**summary(ms), "params_m": round(count_params(model) / 1e6, 4), "gflops": gflops,
            "backend": backend, "device": device_name, "preset": model.config.name, "res": f"{size[0]}x{size[1]}",
            "precision": ran, "compile": compile if compiled else False, "compiled": compiled,
            "mode": "end-to-end" if end_to_end else "model", "frames": frames, **extra}


def print_table(rows: list[dict]) -> None:
    cols = ("preset", "res", "backend", "device", "precision", "mode", "fps", "p50_ms", "p95_ms", "p99_ms",
            "params_m", "gflops")
    widths = [max(len(c), *(len(str(r.get(c))) for r in rows)) for c in cols]
    print("  ".join(c.ljust(w) for c, w in zip(cols, widths)))
    for r in rows:
        print("  ".join(str(r.get(c)).ljust(w) for c, w in zip(cols, widths)))


def add_preset_flag(ap: argparse.ArgumentParser, default: str) -> None:
    """--preset, defaulting to the --model checkpoint's own, else ``default``."""
    ap.add_argument("--preset", default=None, choices=sorted(PRESETS),
                    help=f"generator preset (sizes); default: the --model checkpoint's, {default} without "
                         f"--model; with --model it must match the checkpoint")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m game.bench generator", description=__doc__,
                                 formatter_class=cli.HelpFormatter)
    add_preset_flag(ap, DEFAULT_PRESET)
    ap.add_argument("--res", type=_listed, default=["256x128"], help="WIDTHxHEIGHT")
    ap.add_argument("--backend", type=_backends, default=["onnxruntime"],
                    help=f"inference backend ({', '.join(('auto', *BACKENDS))}), or several to compare in one "
                         "run: openvino,onnxruntime (the first is the baseline)")
    ap.add_argument("--repeats", type=cli.positive_int, default=1,
                    help="rounds per path, in turns with the other paths; each row is the median of its rounds")
    ap.add_argument("--device", type=cli.device, default=None,
                    help="cpu, cuda or cuda:N (default: cuda when present)")
    ap.add_argument("--dtype", "--precision", dest="precision", default="fp32", choices=["fp32", "fp16", "bf16"],
                    help="precision to ask for; the row reports the one the backend ran")
    ap.add_argument("--compile", nargs="?", const=True, default=False, metavar="MODE",
                    help="torch backend: torch.compile (default mode: reduce-overhead = CUDA graphs on cuda; or "
                         "name one, e.g. max-autotune); tensorrt: CUDA graphs; onnxruntime: nothing")
    ap.add_argument("--frames", type=cli.positive_int, default=100, help="timed frames")
    ap.add_argument("--warmup", type=cli.non_negative_int, default=10, help="untimed frames first")
    ap.add_argument("--model", default=None, help=".safetensors checkpoint or a training run's folder (default: random init)")
    ap.add_argument("--end-to-end", action="store_true", help="time Renderer.render, host uint8 in and out")
    ap.add_argument("--threads", type=cli.positive_int, default=None,
                    help="CPU threads (onnxruntime model-only, torch cpu)")
    args = ap.parse_args(argv)
    problem = device_and_compile_problem(args.device, args.compile)
    if problem:
        ap.error(problem)

    def measure(res: str, backend: str) -> dict:
        return bench_path(args.preset, res, backend, args.device, args.precision, args.compile, args.frames,
                          args.warmup, args.model, args.end_to_end, threads=args.threads)
    paths = [(res, backend) for res in args.res for backend in args.backend]
    try:
        rows = round_robin(paths, args.repeats, measure)
    except (ValueError, ImportError) as exc:  # bad --res / --model, a backend not installed here
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for row in rows:
        notes = (precision_note("--dtype", args.precision, row["precision"], row["backend"], row["device"]),
                 compile_note("--compile", args.compile, row.get("compiled", False), row["backend"]),
                 threads_note(args.threads, row))
        for note in dict.fromkeys(filter(None, notes)):
            print(note, file=sys.stderr)
    print_table(rows)
    if len(rows) == 1:
        print_result(rows[0])
        return 0
    for line in speedup_lines(rows):
        print(line)
    print_result({"rows": rows, "speedups": speedups(rows)})
    return 0


def _listed(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _backends(text: str) -> list[str]:
    names = _listed(text)
    unknown = [name for name in names if name not in ("auto", *BACKENDS)]
    if unknown or not names:
        raise argparse.ArgumentTypeError(f"{', '.join(unknown) or repr(text)}: choose from auto, {', '.join(BACKENDS)} "
                                         "(several: comma-separated)")
    return names
