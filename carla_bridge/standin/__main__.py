"""``python -m carla_bridge.standin --port P [--seed S] [--res WxH]``: serve the procedural world as CARLA.

Prints ``READY <host>:<port>`` on stdout once both ports listen (scripts and tests wait for it) and
shuts down cleanly on SIGTERM or Ctrl+C (connections closed, exit status 0).
"""

from __future__ import annotations

import argparse
import logging
import sys

from carla_bridge.core import cli
from carla_bridge.core.serving import serve_until_signalled
from carla_bridge.core.frames import CAMERA_SIDES, parse_size
from carla_bridge.procedural.config import MAX_ACTORS


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m carla_bridge.standin",
        description="A CARLA 0.9.16 wire-protocol server (msgpack-rpc on PORT, streaming on PORT+1, "
        "127.0.0.1 only) whose world and cameras are the procedural world.",
    )
    parser.add_argument("--port", type=int, default=2000, help="RPC port; streaming uses PORT+1 (default 2000)")
    parser.add_argument("--seed", type=cli.non_negative_int, default=0, help="procedural town seed (default 0)")
    parser.add_argument("--res", default="512x256", help="procedural world's native WIDTHxHEIGHT; cameras "
                        "render at their own image_size_x/y (default 512x256)")
    parser.add_argument("--pedestrians", type=int, default=None,
                        help="walking pedestrians in the town (default: the procedural world's; 0 = a static world)")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    args = parser.parse_args(argv)
    if args.pedestrians is not None and not 0 <= args.pedestrians <= MAX_ACTORS:  # WorldConfig's names its field
        parser.error(f"argument --pedestrians: must be in 0..{MAX_ACTORS}, got {args.pedestrians}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        size = parse_size(args.res, sides=CAMERA_SIDES)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    try:  # here, not at the top: the server needs msgpack, an optional package (the carla extra)
        from carla_bridge.standin.server import StandinServer
    except ImportError as error:
        print(f"error: the stand-in server needs msgpack ({error}): pip install -e .[carla]", file=sys.stderr)
        return 2
    try:
        server = StandinServer(port=args.port, seed=args.seed, size=size, pedestrians=args.pedestrians)
    except OSError as error:  # a port in use: name both, since PORT + 1 is not on the command line
        print(f"error: {error}; the stand-in needs ports {args.port} (rpc) and {args.port + 1} (streaming): "
              f"stop what holds it or pass another --port", file=sys.stderr)
        return 1
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1

    serve_until_signalled(server, logging.getLogger("carla_bridge.standin"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
