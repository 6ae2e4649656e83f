"""Check and summarize a session folder: ``python -m carla_bridge.session sessions/<stamp> [--load]``.

Exit status 0 when the session opens and holds a frame (a cut-off last line is only noted), 1 with the
reason otherwise. --load also reads every frame's files, which finds truncated or corrupt PNG/npy files.
"""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from carla_bridge.session.format import DISK_FULL, SessionFormatError
from carla_bridge.session.reader import load_frame, open_session


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m carla_bridge.session", description=__doc__.split("\n\n")[0])
    parser.add_argument("session", help="the session folder")
    parser.add_argument("--load", action="store_true", help="read every frame's files too")
    args = parser.parse_args(argv)
    try:
        index = open_session(args.session)
        if args.load:
            for position in tqdm(range(len(index.records)), desc="load", unit="frame"):
                load_frame(index, position)
    except SessionFormatError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    meta = index.meta
    width, height = index.size
    records = index.records
    if not records:  # ReplaySource refuses it too: 'opens' must mean launch.py --replay can play it
        print(f"error: {index.path}: the session holds no complete frame (recording stopped at once?); "
              "nothing to replay: record it again", file=sys.stderr)
        return 1
    duration = records[-1]["time_s"] - records[0]["time_s"]
    print(f"{index.path}: {len(records)} frames, {width}x{height}, {duration:.1f} s of simulation")
    for key in ("model", "model_sha256", "backend", "device", "precision", "source", "seed",
                "project_version", "git_commit", "started_at", "ended_at", "ended_by", "error"):
        if meta.get(key) is not None:
            print(f"  {key}: {meta[key]}")
    if meta.get("ended_by") == DISK_FULL:
        print(f"  {DISK_FULL} after {len(records)} frames: the recording stopped there; every frame before "
              "it is kept")
    if not meta.get("closed"):
        print("  not closed: the recording was cut off (crash or kill); frames up to the last line are kept")
    for note in index.notes:
        print(f"  note: {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
