"""Export outputs written under a partial name, moved into place only when the export completes:
out.mp4 is written as out.partial.mp4 beside it, the PNGs of frames/ into frames/partial-export/.

A QA pass found `--export keep.mp4 --overwrite` on a session with a corrupt frame replaced a good
export with a 9-frame file, `--export-frames --overwrite` deleted the old PNGs before the first render,
and without --overwrite the 9-frame file sat at the final path, refused by the next run as "a previous
result". Now a failed or interrupted export leaves the previous result as it was, and what it rendered
stays under the partial name (it may be all someone needed), replaced by the next export.
The final move is a rename on one file system: the partial mp4 lies beside its target, the partial
frames inside theirs (not beside: `--export-frames ~` would need /home writable).
"""

from __future__ import annotations

import os
from pathlib import Path


def partial_file(target: Path) -> Path:
    """out.mp4 -> out.partial.mp4 (the suffix stays last: ffmpeg picks the container from it)."""
    return target.with_name(f"{target.stem}.partial{target.suffix}")


def partial_folder(target: Path) -> Path:
    """frames -> frames/partial-export (the frame glob of frames/ does not look into it)."""
    return target / "partial-export"


def start_partial_folder(folder: Path, frame_glob: str) -> None:
    """Make the partial folder, without the frames a previous failed export left there."""
    folder.mkdir(parents=True, exist_ok=True)
    for old in folder.glob(frame_glob):
        old.unlink()


def commit_folder(partial: Path, target: Path, frame_glob: str) -> None:
    """Move the new frames over the target's, then drop the target's frames beyond the new count (a
    longer earlier export's tail). Each move replaces one file atomically, so every frame there is a
    whole old or a whole new one at any moment; the target's other files are left alone."""
    target.mkdir(parents=True, exist_ok=True)
    new = {frame.name for frame in partial.glob(frame_glob)}
    for name in sorted(new):
        os.replace(partial / name, target / name)
    for old in target.glob(frame_glob):
        if old.name not in new:
            old.unlink()
    try:
        partial.rmdir()
    except OSError:  # someone put another file there: leave it
        pass


def kept_note(frames: int, partials: list[tuple[Path, Path]], frame_glob: str,
              failed: tuple[Path, ...] = ()) -> str:
    """What a failed or interrupted export left, for its one-line message. partials: (partial, target)
    pairs. With no frame rendered the partial outputs are removed: there is nothing to keep. ``failed``:
    partials whose writer failed (ffmpeg on a full disk): they hold fewer frames than were rendered, and
    how many is not known here, so no count is promised for them (it used to say 60 of a 26-frame file).
    """
    present = [(partial, target) for partial, target in partials if partial.exists()]
    if frames == 0 or not present:
        for partial, _ in present:
            _remove_empty(partial)
        return "nothing was exported, no previous result was touched"
    whole = [str(partial) for partial, _ in present if partial not in failed]
    cut = [str(partial) for partial, _ in present if partial in failed and _has_data(partial)]
    said = [f"the {frames} frames exported before it are in {' and '.join(whole)}"] if whole else []
    said += [f"what ffmpeg wrote before it failed is in {' and '.join(cut)}"] if cut else []
    previous = [str(target) for _, target in present if _holds_result(target, frame_glob)]
    if previous:
        said.append(f"{' and '.join(previous)} {'is' if len(previous) == 1 else 'are'} as before")
    return "; ".join(said if whole or cut else ["nothing was exported", *said])


def _has_data(partial: Path) -> bool:
    """A failed writer's file with nothing in it is removed rather than pointed to."""
    if partial.is_file() and partial.stat().st_size == 0:
        _remove_empty(partial)
        return False
    return True


def _holds_result(target: Path, frame_glob: str) -> bool:
    """A previous export: the file, or a folder with frames (the up-front check makes it when missing)."""
    return target.is_file() or next(target.glob(frame_glob), None) is not None


def _remove_empty(partial: Path) -> None:
    try:
        if partial.is_dir():
            partial.rmdir()  # only when empty
        else:
            partial.unlink()
    except OSError:
        pass
