#!/usr/bin/env python3
"""neural-drive: drive through the procedural world (or CARLA) and watch the neural rendering live.

    python launch.py                      # a window; CARLA if a server answers, else the procedural world
    python launch.py --help               # every flag and every key
    python launch.py --headless --frames 200 --screenshot shot.png

Thin on purpose: the flags live in game/startup/cli.py, the start-up in game/startup/main.py, the drive
in game/app/app.py.
"""

from __future__ import annotations

import os
import signal
import sys


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")  # keep pygame's banner off the console
    # The world, the inference and the display share the CPU: OpenMP threads that spin between
    # parallel regions starve the others. Measured on a loaded 2-core box, 150 headless frames with
    # --backend torch: median 835 ms per frame spinning (the default), 44.5 ms passive. Must be set
    # before torch or numba is imported; an explicit setting in the environment wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    from game.signals import interrupt_name, raise_terminated  # imports nothing heavy
    from game.startup.cli import parse_args  # light: `--help` answers in 0.5 s, before torch is imported

    config = parse_args(argv)
    # torch, pygame, numba: seconds of imports, where a Ctrl+C or SIGTERM is one line, not a traceback
    previous = signal.signal(signal.SIGTERM, raise_terminated)
    try:
        from game.startup.main import main as run_game
    except KeyboardInterrupt as interrupt:
        print(f"{interrupt_name(interrupt)}: stopped before the drive started", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
    return run_game(config)


if __name__ == "__main__":
    sys.exit(main())
