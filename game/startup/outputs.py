"""Up-front checks of every path a run will write: --record, --report, --screenshot, --export,
--export-frames. A bad path found only at the end (a --screenshot or --report written at teardown, a
recording that cannot start) loses the whole run, so each is checked before anything starts, naming
its flag. Folders are created here, as the run would create them anyway; a start that fails after this
(no CARLA server, say) removes the ones still empty (remove_empty). An output that already holds a
previous run's result is refused unless --overwrite, so nothing saved is replaced silently.
"""

from __future__ import annotations

import os
from pathlib import Path

from carla_bridge.core.files import folder_write_problem
from game.export import FRAME_GLOB
from game.profiler.compare import COMPARISON_FILE
from game.profiler.report import REPORT_FILE
from game.startup.cli import GameConfig, LaunchError


def check_outputs(config: GameConfig) -> list[Path]:
    """LaunchError naming the flag when one of the run's outputs cannot be written. Returns the folders
    it created (deepest first), for remove_empty when the start fails."""
    created: list[Path] = []
    try:
        _check_outputs(config, created)
    except BaseException:
        remove_empty(created)
        raise
    return created


def remove_empty(folders: list[Path]) -> None:
    """Remove those of ``folders`` (deepest first) that are still empty: a failed start left an empty
    --record folder behind."""
    for folder in folders:
        try:
            folder.rmdir()  # refuses a folder that holds anything
        except OSError:
            pass


def _check_outputs(config: GameConfig, created: list[Path]) -> None:
    for flag, folder in (("--record", config.record), ("--report", config.report),
                         ("--export-frames", config.export_frames)):
        if folder is not None:
            created += _missing(Path(folder))
            writable_folder(flag, Path(folder))
    if config.profile and config.report is None:
        # where its report goes by default: reports/<timestamp> under the current folder
        created += _missing(Path("reports"))
        writable_folder("--profile", Path("reports"), fix="pass --report DIR")
    for flag, file in (("--screenshot", config.screenshot), ("--export", config.export)):
        if file is not None:
            created += _missing(Path(file).parent)
            writable_file(flag, Path(file))
    if config.replay is not None:
        for flag, target in (("--export", config.export), ("--export-frames", config.export_frames),
                             ("--record", config.record)):
            if target is not None and _inside(Path(target), Path(config.replay)):
                # Writing render.mp4/engine.mp4 over the recording (or reading engine.mp4 while
                # writing it) destroys what the session saved; a recording would nest a session in it.
                raise LaunchError(f"{flag} {target}: lies inside the replayed session {config.replay}; "
                                  f"write it outside the session folder")
    if not config.overwrite:
        _refuse_previous_results(config)


def _refuse_previous_results(config: GameConfig) -> None:
    previous = [("--screenshot", config.screenshot, config.screenshot), ("--export", config.export, config.export)]
    if config.report is not None:
        # --backend all writes comparison.json (and a folder per backend) where one drive writes report.json
        report_file = COMPARISON_FILE if config.backend == "all" else REPORT_FILE
        previous.append(("--report", config.report, Path(config.report) / report_file))
    if config.export_frames is not None:
        first_frame = next(Path(config.export_frames).glob(FRAME_GLOB), None)
        previous.append(("--export-frames", config.export_frames, first_frame))
    for flag, given, existing in previous:
        if existing is not None and Path(existing).exists():
            held = "already exists" if existing == given else f"already holds {Path(existing).name}"
            raise LaunchError(f"{flag} {given}: {held} (a previous result); pass --overwrite to replace it, "
                              f"or another path")


def writable_folder(flag: str, folder: Path, given: Path | None = None, fix: str = "pass another path") -> None:
    """given: the path as passed on the command line, when folder is its parent. Checked by creating a
    file there (folder_write_problem): os.access says yes to root, and for /sys."""
    where = f"{flag} {given}: its folder {folder}" if given is not None else f"{flag} {folder}"
    problem = folder_write_problem(folder)
    if problem is not None:
        raise LaunchError(f"{where}: {problem}; {fix}")


def writable_file(flag: str, file: Path) -> None:
    if file.is_dir():
        raise LaunchError(f"{flag} {file}: is a folder; name a file in it, e.g. {file / ('out' + file.suffix)}")
    writable_folder(flag, file.parent, given=file)
    if file.exists() and not file.is_file():  # a pipe or a device: the write would fail only at the end
        raise LaunchError(f"{flag} {file}: is not a regular file (a device or a pipe); name a file")
    if file.exists() and not os.access(file, os.W_OK):
        raise LaunchError(f"{flag} {file}: the file exists and is read-only; pass another path")


def _missing(folder: Path) -> list[Path]:
    """``folder`` and its ancestors that do not exist yet, deepest first (what mkdir(parents=True) makes)."""
    return [path for path in (folder, *folder.parents) if not path.exists()]


def _inside(target: Path, folder: Path) -> bool:
    target, folder = target.resolve(), folder.resolve()
    return target == folder or folder in target.parents
