"""Command line of launch.py: flags, their checks, and the resolved GameConfig.

Flag names follow CARLA's PythonAPI/examples/manual_control.py where they overlap (--host, -p/--port,
--res, --sync, -a/--autopilot, --filter, --generation, --rolename, --gamma, -s/--seed, -v/--verbose).
One difference: there --res is the window size; here it is the render size (the network's cost), and
--window sizes the window. A bad value is a one-line argparse error that names the flag. Nothing heavy
is imported here, so `--help` answers at once.
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass, fields
from pathlib import Path

from carla_bridge.core import cli
from carla_bridge.core.frames import CAMERA_SIDES, parse_size
from game.keys.bindings import bindings_text

SOURCES = ("auto", "procedural", "carla", "replay")
RECORD_FORMATS = ("folder", "mcap")
LIVE_VIEWS = ("foxglove",)
# neural_render.runtime's BACKENDS and PRECISIONS, plus auto, all and remote (the render service,
# neural_render.serve, through RemoteRenderer), written out: importing the runtime
# imports torch, which made `launch.py --help` take 4.0 s instead of 0.55 s (2-core box).
# tests/game/startup/test_cli.py checks that they match.
BACKENDS = ("auto", "tensorrt", "tensorrt-rtx", "torch", "onnxruntime", "openvino", "remote", "all")
PRECISIONS = ("fp32", "fp16", "bf16")
SCREENSHOT_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")  # what pygame.image.save writes; others silently become TGA
SIZE_FLAGS = ("--res", "--window")  # WIDTHxHEIGHT values
VERSION = "0.1.0"  # pyproject.toml's project version, written out (tests/test_launch.py checks they match)
OTHER_COMMANDS = (  # the project's other entry points, for --help's epilog (README lists them all)
    "  python -m carla_bridge.standin --port 2000       a CARLA-compatible stand-in server to drive\n"
    "  python -m neural_render.train --preset cpu --data procedural --steps 20000 --out runs/cpu\n"
    "  python -m neural_render.evaluate --model models/cpu.safetensors --res 256x128 --seeds 5\n"
    "  python -m carla_bridge.session sessions/<stamp> --load   check a recorded session\n"
)


def error_line(message: str) -> str:
    """launch.py's one prefix for a problem it stops on, the one argparse gives a bad flag."""
    return f"launch.py: error: {message}"


def retrain_command(preset: str = "cpu") -> str:
    """The command that trains a generator of `preset` and puts it where the game looks for it."""
    return (f"python -m neural_render.train --preset {preset} --recipe fast --data procedural --steps 20000 "
            f"--out runs/{preset} && cp runs/{preset}/generator.safetensors models/{preset}.safetensors")


RETRAIN_COMMAND = retrain_command("cpu")


@dataclass
class GameConfig:
    """Everything launch.py decides from its flags (None = pick a sensible default at start-up)."""

    source: str = "auto"
    host: str = "127.0.0.1"
    port: int = 2000
    tm_port: int = 8000
    res: tuple[int, int] | None = None
    window: tuple[int, int] | None = None
    sync: bool = True
    autopilot: bool = False
    filter: str = "vehicle.*"
    generation: str = "All"
    rolename: str = "hero"
    gamma: float = 2.2
    timeout: float = 10.0
    seed: int | None = None
    model: Path | None = None
    preset: str | None = None
    backend: str = "auto"
    server: str | None = None
    device: str | None = None
    precision: str = "fp32"
    compile: bool = False
    headless: bool = False
    frames: int | None = None
    screenshot: Path | None = None
    record: Path | None = None
    record_rgb: bool = False
    record_format: str = "folder"
    live: str | None = None
    live_port: int = 8765
    replay: Path | None = None
    export: Path | None = None
    export_frames: Path | None = None
    export_size: tuple[int, int] | None = None
    profile: bool = False
    report: Path | None = None
    overwrite: bool = False
    threaded: bool = False
    verbose: bool = False


def _resolution(flag: str):
    def parse(text: str) -> tuple[int, int]:
        try:
            return parse_size(text, flag, CAMERA_SIDES)
        except ValueError as error:
            raise argparse.ArgumentTypeError(str(error)) from None

    parse.__name__ = "WIDTHxHEIGHT"
    return parse


def _listen_port(text: str) -> int:
    """A port to listen on: 0 asks the system for any free one."""
    return 0 if text.strip() == "0" else _port(text)


def _generation(text: str) -> str:
    if text.lower() == "all":
        return "All"
    if text not in ("1", "2", "3"):
        raise argparse.ArgumentTypeError(f"must be 1, 2, 3 or All, got {text!r}")
    return text


def _timeout(text: str) -> float:
    """0.1 to 3600 s: below, a live server is taken for a dead one ("time-out of 0ms"); above, the wait
    overflows the platform's time (1e12 s raises OverflowError)."""
    value = cli.positive_float(text)
    if not 0.1 <= value <= 3600.0:
        raise argparse.ArgumentTypeError(f"must lie in 0.1..3600 seconds, got {text}")
    return value


def _port(text: str) -> int:
    value = cli.positive_int(text)
    if value > 65535:
        raise argparse.ArgumentTypeError(f"must be a TCP port in 1..65535, got {value}")
    return value


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line (the problem and where to look), not the 12-line usage
    block that buries it."""

    def error(self, message: str):
        self.exit(2, error_line(f"{message} (python launch.py --help lists every flag)\n"))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="launch.py",
        description=(
            "Drive through the procedural world (or CARLA) and watch a recurrent vid2vid + SPADE\n"
            "generator turn the semantic label map into a video, live. Also records, replays,\n"
            "exports and profiles sessions."
        ),
        epilog=(
            "keys (in the window):\n" + bindings_text() + "\n\n"
            "examples:\n"
            "  python launch.py                                  drive (CARLA if one answers, else procedural)\n"
            "  python launch.py --headless --frames 200 --screenshot shot.png\n"
            "  python launch.py --record sessions               record from the start (R toggles)\n"
            "  python launch.py --replay sessions/<stamp> --export out.mp4\n"
            "  python launch.py --profile --report reports/cpu --headless --frames 300\n\n"
            "other commands (each has --help):\n" + OTHER_COMMANDS
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"launch.py (neural-drive) {VERSION}")
    world = parser.add_argument_group("world")
    world.add_argument("--source", choices=SOURCES, default="auto",
                       help="where frames come from; auto = CARLA at --host/--port if it answers, "
                            "else the procedural world (default: auto)")
    world.add_argument("--host", default="127.0.0.1", help="CARLA server address (default: 127.0.0.1)")
    world.add_argument("-p", "--port", type=_port, default=2000, help="CARLA server port (default: 2000)")
    world.add_argument("--tm-port", type=_port, default=8000,
                       help="CARLA Traffic Manager port, used by the autopilot (default: 8000)")
    world.add_argument("--sync", action=argparse.BooleanOptionalAction, default=True,
                       help="CARLA synchronous mode, a fixed time step per tick (default: on, so each "
                            "rendered frame follows the last one and the engine flow matches it)")
    world.add_argument("-a", "--autopilot", action="store_true", help="start with the autopilot driving")
    world.add_argument("--filter", default="vehicle.*", metavar="PATTERN",
                       help="CARLA actor filter for the ego, among vehicle.* blueprints (default: vehicle.*)")
    world.add_argument("--generation", type=_generation, default="All", metavar="G",
                       help="restrict the ego to a vehicle generation: 1, 2, 3 or All (default: All, every "
                            "generation; manual_control.py's default is 2)")
    world.add_argument("--rolename", default="hero", metavar="NAME", help="the ego's role name (default: hero)")
    world.add_argument("--gamma", type=cli.positive_float, default=2.2,
                       help="gamma correction of the CARLA rgb camera (default: 2.2)")
    world.add_argument("--timeout", type=_timeout, default=10.0, metavar="SECONDS",
                       help="CARLA client time-out, 0.1 to 3600: a server silent this long ends the drive "
                            "(default: 10)")
    world.add_argument("-s", "--seed", type=cli.non_negative_int, default=None, help="world / spawn seed")

    world.add_argument("-v", "--verbose", action="store_true",
                       help="print debug information (log level DEBUG: CARLA connection, sessions)")

    view = parser.add_argument_group("view")
    view.add_argument("--res", type=_resolution("--res"), default=None, metavar="WIDTHxHEIGHT",
                      help="render size (default: 256x128 on CPU, 512x256 on CUDA, 1024x512 for the gpu preset; "
                           "with --replay: the recorded size, or the session resampled to this one). "
                           "manual_control.py's --res is the window size: here that is --window")
    view.add_argument("--window", type=_resolution("--window"), default=None, metavar="WIDTHxHEIGHT",
                      help="window size (default: 1280x720)")
    view.add_argument("--headless", action="store_true",
                      help="no window (SDL dummy driver); the autopilot drives unless replaying")
    view.add_argument("--frames", type=cli.positive_int, default=None, metavar="N",
                      help="stop after N ticks (default: run until ESC / Ctrl+C)")
    view.add_argument("--screenshot", type=Path, default=None, metavar="PATH",
                      help="save the final window image as PNG")
    view.add_argument("--threaded", action="store_true",
                      help="overlap the source tick t+1 with inference of tick t in a worker thread "
                           "(one tick more latency, higher frame rate)")

    model = parser.add_argument_group("model")
    model.add_argument("--model", type=Path, default=None, metavar="PATH",
                       help="generator weights (.safetensors; default: the shipped model in models/, "
                            "or an UNTRAINED model of --preset when none is shipped yet)")
    model.add_argument("--preset", default=None, help="generator preset: tiny, cpu, gpu (default: cpu)")
    model.add_argument("--backend", choices=BACKENDS, default="auto",
                       help="inference backend (default: auto = tensorrt-rtx on an RTX card, tensorrt on other "
                            "GPUs, else torch on CUDA; on the CPU openvino, else onnxruntime); "
                            "all (with --profile): compare every available backend on the same frames and exit")
    model.add_argument("--server", default=None, metavar="URL",
                       help="--backend remote: the render service's gRPC address, grpc://HOST:PORT (started with "
                            "python -m neural_render.serve; README, Serve many simulators)")
    model.add_argument("--device", type=cli.device, default=None, help="cpu, cuda or cuda:N (default: auto)")
    model.add_argument("--precision", choices=PRECISIONS, default="fp32", help="default: fp32")
    model.add_argument("--compile", action="store_true",
                       help="torch backend: torch.compile, with CUDA graphs on CUDA (end to end 3.0x faster than "
                            "eager, both fp16, for the gpu preset at 1024x512 on an H200, models/gpu.md); the first "
                            "frames compile, tens of seconds. tensorrt, tensorrt-rtx: CUDA graphs. onnxruntime, openvino: "
                            "nothing to compile")

    sessions = parser.add_argument_group("sessions and profiling")
    sessions.add_argument("--record", type=Path, default=None, metavar="DIR",
                          help="record from the start into a new folder under DIR (R also records, "
                               "under DIR or ./sessions)")
    sessions.add_argument("--record-rgb", action="store_true", help="also record the engine rgb (training data)")
    sessions.add_argument("--record-format", choices=RECORD_FORMATS, default="folder",
                          help="folder (default): session.json, PNGs, npy, mp4s; mcap: one DIR/<stamp>.mcap "
                               "file that Foxglove opens (needs the mcap extra; README, Open a session in Foxglove)")
    sessions.add_argument("--live", choices=LIVE_VIEWS, default=None,
                          help="foxglove: serve the drive live over the Foxglove WebSocket protocol on "
                               "127.0.0.1 (the same channels as --record-format mcap)")
    sessions.add_argument("--live-port", type=_listen_port, default=8765, metavar="PORT",
                          help="the --live server's port (default 8765, Foxglove's; 0: any free port)")
    sessions.add_argument("--replay", type=Path, default=None, metavar="DIR",
                          help="replay a recorded session (same as --source replay)")
    sessions.add_argument("--export", type=Path, default=None, metavar="OUT.mp4",
                          help="render the --replay session to a video and exit")
    sessions.add_argument("--export-frames", type=Path, default=None, metavar="DIR",
                          help="render the --replay session to PNG frames and exit")
    sessions.add_argument("--export-size", type=_resolution("--export-size"), default=None, metavar="WIDTHxHEIGHT",
                          help="scale the exported side-by-side frames to fit this box, in proportion "
                               "(default: 1280 wide; the panes are rendered at --res either way)")
    sessions.add_argument("--overwrite", action="store_true",
                          help="replace an existing --export/--export-frames/--screenshot/--report output "
                               "(default: refuse, so nothing saved is lost)")
    sessions.add_argument("--profile", action="store_true", help="time every stage; write a report at exit")
    sessions.add_argument("--report", type=Path, default=None, metavar="DIR",
                          help="profiling report folder (implies --profile; default: reports/<timestamp>)")
    return parser


def _attach_negative_sizes(argv: list[str]) -> list[str]:
    """`--res -64x32` -> `--res=-64x32`: argparse takes a value starting with '-' for a flag and said
    "expected one argument"; attached, the value reaches the size check and its real error."""
    out: list[str] = []
    for arg in argv:
        if out and out[-1] in SIZE_FLAGS and re.fullmatch(r"-\d+[xX]-?\d+", arg):
            out[-1] = f"{out[-1]}={arg}"
        else:
            out.append(arg)
    return out


def parse_args(argv: list[str] | None = None) -> GameConfig:
    """Parse and cross-check the flags; errors go through parser.error, naming the flag."""
    parser = build_parser()
    args = parser.parse_args(_attach_negative_sizes(sys.argv[1:] if argv is None else list(argv)))
    if args.replay is not None and args.source not in ("auto", "replay"):
        parser.error(f"argument --replay: cannot be combined with --source {args.source}")
    if args.source == "replay" and args.replay is None:
        parser.error("argument --source: 'replay' needs --replay DIR (the session folder)")
    if args.replay is not None:
        args.source = "replay"
    if args.record_format == "mcap" or args.live:  # the live view sends the MCAP channels
        # Imported only then: carla_bridge.session pulls in numpy and PIL, which --help must not wait for.
        from carla_bridge.session.format import mcap_problem

        problem = mcap_problem()
        if problem:
            parser.error(f"argument {'--record-format' if args.record_format == 'mcap' else '--live'}: {problem}")
    if args.live_port != 8765 and args.live is None:
        parser.error("argument --live-port: needs --live foxglove (the server it is the port of)")
    for flag, value in (("--export", args.export), ("--export-frames", args.export_frames)):
        if value is not None and args.replay is None:
            parser.error(f"argument {flag}: needs --replay DIR (the session to export)")
    if args.export_size is not None and args.export is None and args.export_frames is None:
        parser.error("argument --export-size: needs --export OUT.mp4 or --export-frames DIR (what it sizes)")
    if args.screenshot is not None and args.screenshot.suffix.lower() not in SCREENSHOT_SUFFIXES:
        parser.error(f"argument --screenshot: must end in {', '.join(SCREENSHOT_SUFFIXES)}, "
                     f"got {str(args.screenshot)!r}")
    if args.export is not None and args.export.suffix.lower() != ".mp4":
        parser.error(f"argument --export: must name an .mp4 file, got {str(args.export)!r}")
    if args.preset is not None:
        _check_preset(parser, args.preset)
    if args.report is not None:
        args.profile = True
    if args.backend == "remote" and args.server is None:
        parser.error("argument --backend: 'remote' needs --server grpc://HOST:PORT (python -m neural_render.serve)")
    if args.server is not None and args.backend != "remote":
        parser.error("argument --server: renders through the service only with --backend remote")
    if args.backend == "all" and not args.profile:
        parser.error("argument --backend: 'all' compares backends and needs --profile")
    if args.backend == "all" and args.source == "carla":  # a comparison needs the same frames for every backend
        parser.error("argument --backend: 'all' renders procedural frames or a --replay session, not CARLA; "
                     "record a CARLA drive with --record DIR and compare on it with --replay")
    exporting = args.export is not None or args.export_frames is not None
    if args.backend == "all" and exporting:
        parser.error("argument --backend: an export renders with one backend; pick torch, onnxruntime or tensorrt")
    if args.frames is not None and exporting:
        parser.error("argument --frames: an export renders the whole --replay session; leave --frames out")
    if exporting:  # refused rather than dropped: --record/--report would make their folders for nothing
        ignored = [flag for flag, given in (("--record", args.record), ("--screenshot", args.screenshot),
                                            ("--profile", args.profile and args.report is None),
                                            ("--report", args.report), ("--threaded", args.threaded)) if given]
        if ignored:
            parser.error(f"argument {ignored[0]}: an export renders the --replay session to a file, without a "
                         f"drive: {', '.join(ignored)} do not apply; leave them out, or drive the replay "
                         f"without --export")
    names = {f.name for f in fields(GameConfig)}
    return GameConfig(**{k: v for k, v in vars(args).items() if k in names})


def _check_preset(parser: argparse.ArgumentParser, preset: str) -> None:
    # Imported only when the flag is given: neural_render.model pulls in torch, which --help must not wait for.
    from neural_render.model import PRESETS

    if preset not in PRESETS:
        parser.error(f"argument --preset: unknown preset {preset!r}; choose from {', '.join(PRESETS)}")


class LaunchError(RuntimeError):
    """A start-up problem with a message meant for the person at the console (printed, exit code 2)."""
