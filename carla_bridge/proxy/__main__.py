"""``python -m carla_bridge.proxy --port 2000 --carla-host H --carla-port 3000 --model M`` : a CARLA
proxy whose rgb cameras show neural frames (README, "Use it from your CARLA program").

The one module of carla_bridge that imports neural_render (the Renderer): the proxy itself takes a
render factory, so that carla_bridge stays below neural_render everywhere else (ARCHITECTURE.md).
Prints ``READY <host>:<port>`` on stdout once both ports listen; SIGTERM or Ctrl+C ends it (exit 0).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from carla_bridge.core import cli
from carla_bridge.core.serving import serve_until_signalled
from carla_bridge.proxy.cameras import CameraSelection
from neural_render.checkpoint import load_generator
from neural_render.runtime.common import BACKENDS
from neural_render.runtime.renderer import Renderer
from neural_render.runtime.select import available_backends, resolve_backend, unavailable_reason

REPO = Path(__file__).resolve().parents[2]
SHIPPED_MODEL = REPO / "models" / "cpu.safetensors"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m carla_bridge.proxy",
        description="A CARLA 0.9.16 proxy: point an unchanged CARLA program at --port and every "
        "sensor.camera.rgb it spawns streams neural frames rendered from the real server's semantic "
        "and optical-flow cameras; every other call and stream passes through unchanged.")
    parser.add_argument("--port", type=int, default=2000, help="RPC port; streaming uses PORT+1 (default 2000)")
    parser.add_argument("--listen", default="127.0.0.1", help="address to listen on (default 127.0.0.1; "
                        "0.0.0.0 opens it to the network)")
    parser.add_argument("--carla-host", default="127.0.0.1", help="the real CARLA server (default 127.0.0.1)")
    parser.add_argument("--carla-port", type=int, default=3000, help="its RPC port (default 3000)")
    parser.add_argument("--model", type=Path, default=SHIPPED_MODEL, help="generator weights (.safetensors; "
                        "default: the shipped models/cpu.safetensors)")
    parser.add_argument("--backend", choices=("auto", *BACKENDS), default="auto", help="inference backend")
    parser.add_argument("--device", type=cli.device, default=None, help="cpu, cuda or cuda:N (default: auto)")
    parser.add_argument("--cameras", type=CameraSelection.parse, default=CameraSelection.parse("all"),
                        help="which rgb cameras turn neural: all, or role:NAME (their role_name attribute)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    if not 1 <= args.port <= 65534:
        parser.error(f"argument --port: must lie in 1..65534 (streaming uses port + 1), got {args.port}")
    if not args.model.is_file():
        parser.error(f"argument --model: no file {args.model}; pass the path of a .safetensors generator")
    return args


def renderer_factory(args: argparse.Namespace):
    """(width, height) -> a Renderer of the model, one per neural camera (each keeps its own history).
    The weights and the backend are checked here, at the start; a camera's size at its spawn."""
    model = load_generator(args.model)
    backend, device = resolve_backend(args.backend, args.device)
    if backend not in available_backends(device):
        raise ValueError(f"--backend {backend} on {device}: {unavailable_reason(backend, device)}; pick another")

    def factory(width: int, height: int) -> Renderer:
        return Renderer(model, backend=backend, device=device, size=(width, height))
    return factory


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        factory = renderer_factory(args)
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    from carla_bridge.proxy.server import ProxyServer  # msgpack: the carla extra

    try:
        server = ProxyServer(args.port, args.carla_host, args.carla_port, factory, args.cameras, host=args.listen)
    except OSError as error:
        print(f"error: {error}; the proxy needs ports {args.port} (rpc) and {args.port + 1} (streaming): "
              f"stop what holds them or pass another --port", file=sys.stderr)
        return 1

    serve_until_signalled(server, logging.getLogger("carla_bridge.proxy"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
