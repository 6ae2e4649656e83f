"""Check and summarize a session: ``python -m carla_bridge.session sessions/<stamp> [--load]``.

Exit status 0 when the session (a folder or an .mcap file) opens and holds a frame (a cut-off end is
only noted), 1 with the reason otherwise. --load also reads every frame, which finds truncated or
corrupt PNG/npy files and damaged messages.
``python -m carla_bridge.session export-mcap SESSION OUT.mcap`` converts a folder to MCAP (Foxglove).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from carla_bridge.core.files import file_write_problem
from carla_bridge.session.format import DISK_FULL, MCAP_SUFFIX, SessionFormatError, mcap_problem
from carla_bridge.session.replay import open_recording

EXPORT = "export-mcap"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == [EXPORT]:
        return export_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m carla_bridge.session", description=__doc__.split("\n\n")[0])
    parser.add_argument("session", help=f"the session folder or {MCAP_SUFFIX} file (or '{EXPORT}': see below)")
    parser.add_argument("--load", action="store_true", help="read every frame's files too")
    args = parser.parse_args(argv)
    try:
        index = open_recording(args.session)
        if args.load:
            for position in tqdm(range(len(index.records)), desc="load", unit="frame"):
                index.load(position)
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


def export_main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m carla_bridge.session {EXPORT}",
                                     description="Convert a session folder to an MCAP file for Foxglove.")
    parser.add_argument("session", help="the session folder")
    parser.add_argument("out", type=Path, help=f"the {MCAP_SUFFIX} file to write (must not exist)")
    args = parser.parse_args(argv)
    if args.out.suffix.lower() != MCAP_SUFFIX:
        parser.error(f"argument out: {args.out} must end in {MCAP_SUFFIX} (launch.py --replay reads it by its name)")
    if args.out.exists():
        parser.error(f"argument out: {args.out} exists; remove it or name another file")
    problem = file_write_problem(args.out)
    if problem:
        parser.error(f"argument out: {args.out} {problem}")
    problem = mcap_problem()
    if problem:
        parser.error(problem)
    from carla_bridge.session.mcap_export import export_mcap  # an optional package: the mcap extra
    try:
        frames = export_mcap(args.session, args.out)
    except SessionFormatError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"{args.out}: {frames} frames from {args.session}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
