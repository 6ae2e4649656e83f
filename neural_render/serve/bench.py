"""`python -m neural_render.serve.bench`: N simulators rendering through one render service against N
local Renderers, for each N of --clients, in one run. It starts the service itself (on free ports, the
same model, device and precision), drives N RemoteRenderer threads at once, then N local Renderer
threads at once, and prints one table: total frames/s, per-frame latency p50 / p99 (render() wall
time, as a drive sees it) and the mean batch the server ran each frame in (local: 1 by definition).

Every client renders its own stream of random label maps with flow (a few distinct frames, cycled:
the cost of a frame does not depend on its content), so the server's streams really are separate.
"""

from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
import types
from pathlib import Path

import numpy as np

from carla_bridge.core import cli
from carla_bridge.core.frames import parse_size
from neural_render.checkpoint import default_model_path
from neural_render.runtime import Renderer
from neural_render.runtime.common import PRECISIONS
from neural_render.runtime.remote import RemoteRenderer

DISTINCT_FRAMES = 8  # per client, cycled
SERVER_START_TIMEOUT_S = 120.0  # ~8 s measured on the 2-core box


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m neural_render.serve.bench", description=__doc__,
                                     formatter_class=cli.HelpFormatter)
    parser.add_argument("--clients", type=client_counts, default=[1, 2, 4, 8], help="comma-separated, e.g. 1,2,4,8")
    parser.add_argument("--res", default="256x128", help="WIDTHxHEIGHT of every stream")
    parser.add_argument("--frames", type=cli.positive_int, default=100, help="frames per client")
    parser.add_argument("--model", type=Path, default=default_model_path("cpu"))
    parser.add_argument("--device", type=cli.device, default="cpu", help="the server's and the local Renderers'")
    parser.add_argument("--precision", default="fp32", choices=PRECISIONS)
    parser.add_argument("--max-batch", type=cli.positive_int, default=8, help="the server's --max-batch")
    parser.add_argument("--json", type=Path, help="also write the rows here, one JSON object (for a committed run)")
    args = parser.parse_args(argv)
    if args.json is not None and not args.json.parent.is_dir():  # checked now, not after minutes of measuring
        parser.error(f"argument --json: folder {str(args.json.parent)!r} does not exist; create it first")
    try:
        args.size = parse_size(args.res)
    except ValueError as error:
        parser.error(str(error))
    return args


def client_counts(text: str) -> list[int]:
    try:
        counts = [int(part) for part in text.split(",")]
    except ValueError:
        counts = []
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected positive whole numbers separated by commas, e.g. 1,2,4,8")
    return counts


def client_frames(client: int, size: tuple[int, int]) -> list[types.SimpleNamespace]:
    width, height = size
    rng = np.random.default_rng(client)
    return [types.SimpleNamespace(labels=rng.integers(0, 29, (height, width), dtype=np.uint8),
                                  flow=rng.standard_normal((height, width, 2)).astype(np.float32), cut=False)
            for _ in range(DISTINCT_FRAMES)]


def run_clients(renderers: list, frames: int, size: tuple[int, int]) -> dict[str, float]:
    """All renderers at once, each in its own thread (a simulator each): frames/s over the whole run,
    latency percentiles in ms, and the mean batch size the frames ran in."""
    latencies: list[list[float]] = [[] for _ in renderers]
    batches: list[list[int]] = [[] for _ in renderers]
    errors: list[BaseException] = []

    def drive(index: int) -> None:
        renderer, own = renderers[index], client_frames(index, size)
        try:
            for i in range(frames):
                start = time.perf_counter()
                renderer.render(own[i % len(own)])
                latencies[index].append(time.perf_counter() - start)
                batches[index].append(getattr(renderer, "last_batch_size", 1))
        except BaseException as error:  # re-raised below: a thread's exception would be lost
            errors.append(error)

    threads = [threading.Thread(target=drive, args=(i,)) for i in range(len(renderers))]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - start
    if errors:
        raise errors[0]
    every = np.concatenate(latencies) * 1e3
    return {"fps": every.size / wall, "p50": float(np.percentile(every, 50)), "p99": float(np.percentile(every, 99)),
            "batch": float(np.mean(np.concatenate(batches)))}


def start_server(args: argparse.Namespace, log_path: Path) -> tuple[subprocess.Popen, str]:
    http, grpc, metrics = free_ports(3)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "neural_render.serve", "--model", str(args.model), "--device", args.device,
             "--precision", args.precision, "--max-batch", str(args.max_batch), "--http-port", str(http),
             "--grpc-port", str(grpc), "--metrics-port", str(metrics)], stdout=log, stderr=subprocess.STDOUT)
    url = f"grpc://127.0.0.1:{grpc}"
    deadline = time.monotonic() + SERVER_START_TIMEOUT_S
    while process.poll() is None and time.monotonic() < deadline:
        try:
            RemoteRenderer(url, args.size, timeout_s=2.0).close()
            return process, url
        except ConnectionError:
            time.sleep(0.5)
    process.terminate()
    sys.exit(f"error: the render service did not start (log {log_path}):\n{log_path.read_text()[-2000:]}")


def free_ports(count: int) -> list[int]:
    probes = [socket.socket() for _ in range(count)]
    try:
        for probe in probes:
            probe.bind(("127.0.0.1", 0))
        return [probe.getsockname()[1] for probe in probes]
    finally:
        for probe in probes:
            probe.close()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    width, height = args.size
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        server, url = start_server(args, Path(folder) / "server.log")
        try:
            for count in args.clients:
                remotes = [RemoteRenderer(url, args.size, stream=f"bench-{count}-{i}") for i in range(count)]
                rows.append(("remote", count, run_clients(remotes, args.frames, args.size)))
                for remote in remotes:
                    remote.close()
                locals_ = [Renderer(args.model, backend="torch", device=args.device, precision=args.precision,
                                    size=args.size) for _ in range(count)]
                rows.append(("local", count, run_clients(locals_, args.frames, args.size)))
                for renderer in locals_:
                    renderer.close()
        finally:
            server.terminate()
            server.wait(timeout=60)
    print(f"{width}x{height}, {args.frames} frames per client, {args.device} {args.precision}, "
          f"server --max-batch {args.max_batch}")
    print("| clients | renderer | total frames/s | p50 ms | p99 ms | mean batch |")
    print("|---|---|---|---|---|---|")
    for kind, count, result in rows:
        print(f"| {count} | {kind} | {result['fps']:.1f} | {result['p50']:.1f} | {result['p99']:.1f} | "
              f"{result['batch']:.2f} |")
    if args.json is not None:
        args.json.write_text(rows_json(args, rows))
        print(f"wrote {args.json}")
    return 0


def rows_json(args: argparse.Namespace, rows: list[tuple[str, int, dict[str, float]]]) -> str:
    width, height = args.size
    settings = {"res": f"{width}x{height}", "frames": args.frames, "device": args.device,
                "precision": args.precision, "max_batch": args.max_batch, "model": str(args.model)}
    return json.dumps({**settings, "rows": [{"renderer": kind, "clients": count, "frames_per_s": result["fps"],
                                             "p50_ms": result["p50"], "p99_ms": result["p99"],
                                             "mean_batch": result["batch"]} for kind, count, result in rows]},
                      indent=1) + "\n"


if __name__ == "__main__":
    sys.exit(main())
