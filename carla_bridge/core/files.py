"""Files the project writes for others to read, and whether a path can take one.

Whole or not at all: a file is written under a temporary name in the same folder and renamed, so a
reader (or a kill) never sees half a file. With the mode any new file gets: safetensors' ``save_file``
and ``tempfile.mkstemp`` create their files 0600 whatever the umask, which leaves weights unreadable in a
shared run folder where every other file is 0644; writers of such files call
``replace_with_default_mode`` instead of ``os.replace``, or ``write_atomic``.

Whether a folder can take a new file is found out by creating one, not by asking ``os.access``, which
answers from permission bits: yes to root everywhere, and yes for file systems that refuse writes anyway
(``/sys``, a read-only mount, a full quota). Every tool that writes a result checks its output this way
before it starts, so a bad path fails at once and not after the work.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO


def cache_folder() -> Path:
    """What the project keeps between runs (exported ONNX files, TensorRT engines, the CARLA settings
    notes): $NEURAL_DRIVE_CACHE, by default ~/.cache/neural-drive."""
    return Path(os.environ.get("NEURAL_DRIVE_CACHE", Path.home() / ".cache" / "neural-drive"))


def stamped_folder(root: str | Path, suffix: str = "") -> Path:
    """A fresh name under ``root`` for a run's output, by the time it starts: root/20250101-120000 (the
    names sort by time), root/20250101-120000-2 when that one exists; ``suffix`` ends the name (.mcap)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path, n = Path(root) / f"{stamp}{suffix}", 1
    while path.exists():
        n += 1
        path = Path(root) / f"{stamp}-{n}{suffix}"
    return path


def current_umask() -> int:
    """The process umask, read without changing it where Linux shows it (/proc/self/status); elsewhere
    set and restored at once, as os offers no other way."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def default_file_mode() -> int:
    """The mode ``open(path, "w")`` gives a new file under the current umask."""
    return 0o666 & ~current_umask()


def replace_with_default_mode(tmp: str | Path, path: str | Path) -> None:
    """Give ``tmp`` the default mode of a new file, then rename it to ``path`` atomically."""
    os.chmod(tmp, default_file_mode())
    os.replace(tmp, path)


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path in ``path``'s folder for the block to write (a library that wants a file name:
    torch.onnx.export, safetensors). Renamed onto ``path``, with the default mode of a new file, when
    the block ends without an error; removed otherwise. A reader never sees half a file, and a failure
    leaves neither a partial file nor the temporary one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        replace_with_default_mode(tmp, path)  # not mkstemp's 0600
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_file(path: str | Path, mode: str = "wb", durable: bool = False) -> Iterator[IO]:
    """``atomic_path`` opened for writing (``mode`` "wb" or "w", text in UTF-8). ``durable`` syncs the
    data to the disk before the rename, for a file that must survive a power cut whole (session.json)."""
    with atomic_path(path) as tmp, open(tmp, mode, encoding=None if "b" in mode else "utf-8") as handle:
        yield handle
        if durable:
            handle.flush()
            os.fsync(handle.fileno())


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` whole or not at all (``atomic_file``)."""
    with atomic_file(path) as handle:
        handle.write(data)
    return Path(path)


def folder_write_problem(folder: str | Path) -> str | None:
    """None when a file can be created in ``folder`` (made first, with its parents, if missing);
    otherwise what is wrong, in words that fit after the folder's name."""
    folder = Path(folder)
    for parent in (folder, *folder.parents):  # mkdir's own error names only the missing leaf
        if parent.exists() and not parent.is_dir():
            return f"{parent} is a file, not a folder"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        return f"cannot be created ({error.strerror or error})"
    try:
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".write-probe-"):
            pass
    except OSError as error:
        return f"is not writable ({error.strerror or error})"
    return None


def file_write_problem(file: str | Path) -> str | None:
    """None when ``file`` can be written (its folder made first if missing); otherwise what is wrong,
    in words that fit after ``--flag FILE:``."""
    file = Path(file)
    if file.is_dir():
        return "is a folder; name a file in it"
    problem = folder_write_problem(file.parent)
    return None if problem is None else f"its folder {file.parent}: {problem}"

def figure_problem(flag: str, path: str | Path, suffixes: tuple[str, ...], overwrite: bool) -> str | None:
    """A figure file (``--strip``), checked before any rendering. None when ``path`` can take the figure; otherwise one line naming ``flag``, the problem and the
    fix. ``suffixes``: the file name endings the writer knows (lower case, first is the suggestion).
    An existing figure is refused unless ``overwrite``: it is the picture of a README or model card."""
    path = Path(path)
    if path.is_dir():
        return f"{flag} {path}: is a folder; name a file in it, e.g. {path / ('strip' + suffixes[0])}"
    if path.exists() and not path.is_file():  # the atomic rename would put a file in its place
        return f"{flag} {path}: is not a regular file (a device or a pipe); name an image file"
    if path.suffix.lower() not in suffixes:
        return (f"{flag} {path}: must end in {', '.join(suffixes)} (the image formats it can write), "
                f"e.g. {path.with_suffix(suffixes[0])}")
    problem = file_write_problem(path)
    if problem is not None:
        return f"{flag} {path}: {problem}; pass another path"
    if path.exists() and not overwrite:
        return f"{flag} {path}: already exists (a previous figure); pass --overwrite to replace it, or another path"
    return None
