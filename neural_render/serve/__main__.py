"""`python -m neural_render.serve`: the render service, a Triton Inference Server (PyTriton) model that
renders many simulators' streams in batches; clients use neural_render.runtime.remote.RemoteRenderer
(or `python launch.py --backend remote --server grpc://HOST:PORT`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from carla_bridge.core import cli
from neural_render.checkpoint import CheckpointError, default_model_path, load_generator
from neural_render.runtime.common import PRECISIONS
from neural_render.runtime.select import cuda_device_problem

EXAMPLES = """examples:
  python -m neural_render.serve --model models/cpu.safetensors
  python -m neural_render.serve --model models/gpu.safetensors --device cuda --max-batch 8
  python launch.py --backend remote --server grpc://127.0.0.1:8001     # a client
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m neural_render.serve", description=__doc__, epilog=EXAMPLES,
                                     formatter_class=cli.HelpFormatter)
    parser.add_argument("--model", type=Path, default=default_model_path("cpu"), help="generator weights (.safetensors)")
    # Batching needs a graph with a batch dimension: the torch RenderStep has one; the ONNX and
    # TensorRT exports are built for batch 1 (neural_render/runtime/onnx.py), so they are not offered.
    parser.add_argument("--backend", choices=("torch",), default="torch",
                        help="torch: the streams of a batch run as one forward pass")
    parser.add_argument("--device", type=cli.device, default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--precision", choices=PRECISIONS, default="fp32")
    parser.add_argument("--max-batch", type=cli.positive_int, default=8, help="most streams in one forward pass")
    parser.add_argument("--max-queue-delay-us", type=cli.non_negative_int, default=0,
                        help="how long Triton's batcher may hold a request to fill a batch (0: batch what is queued)")
    parser.add_argument("--idle-timeout", type=cli.positive_float, default=60.0, metavar="SECONDS",
                        help="a stream with no frame for this long is dropped (it restarts with a cut)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (0.0.0.0: every interface)")
    parser.add_argument("--http-port", type=cli.positive_int, default=8000)
    parser.add_argument("--grpc-port", type=cli.positive_int, default=8001)
    parser.add_argument("--metrics-port", type=cli.positive_int, default=8002, help="Triton's /metrics (Prometheus)")
    args = parser.parse_args(argv)
    problem = cuda_device_problem(args.device)
    if problem:
        parser.error(f"argument --device: {problem}")
    if len({args.http_port, args.grpc_port, args.metrics_port}) < 3:
        parser.error("--http-port, --grpc-port and --metrics-port must differ")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from neural_render.serve.server import RenderFunction, pytriton_problem, serve

    problem = pytriton_problem()
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    try:
        model = load_generator(args.model)
    except (CheckpointError, FileNotFoundError) as error:
        print(f"error: --model {args.model}: {error}", file=sys.stderr)
        return 2
    if model.config.weather_dim:  # a request carries labels, flow and a cut; no weather yet
        print(f"error: --model {args.model} takes the weather, which the render service does not carry yet; "
              "serve a model trained without --weather all", file=sys.stderr)
        return 2
    function = RenderFunction(model, args.device, args.precision, args.idle_timeout)
    serve(function, args.host, args.http_port, args.grpc_port, args.metrics_port, args.max_batch,
          args.max_queue_delay_us)
    return 0


if __name__ == "__main__":
    sys.exit(main())
