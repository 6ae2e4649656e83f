"""A ring of fixed-size frame slots in shared memory, between the drive and the writer process.

The drive copies a tick's arrays into a free slot (one memcpy each, no pickling, no GIL held by anyone
else) and sends the writer a small message naming the slot; the writer hands the slot back when the
tick is on disk. The mapping is a file in /dev/shm that the writer unlinks as soon as it has mapped it,
so nothing is left behind in /dev/shm however the two processes end.
Why not multiprocessing.shared_memory: its resource tracker is one more process and warns about
"leaked" segments that the writer legitimately outlives the drive with.
"""

from __future__ import annotations

import mmap
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ALIGN = 64  # cache-line aligned fields: memcpy at full speed


@dataclass(frozen=True)
class Field:
    name: str
    shape: tuple[int, ...]
    dtype: str
    offset: int  # within a slot

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape)) * np.dtype(self.dtype).itemsize


def slot_layout(size: tuple[int, int], flow: bool, depth: bool, engine: bool) -> list[Field]:
    """Fields of one slot for a (width, height) session: labels, render, and the optional arrays."""
    width, height = size
    specs = [("labels", (height, width), "u1"), ("render", (height, width, 3), "u1")]
    specs += [("flow", (height, width, 2), "<f4")] if flow else []
    specs += [("depth", (height, width), "<f4")] if depth else []
    specs += [("engine", (height, width, 3), "u1")] if engine else []
    fields, offset = [], 0
    for name, shape, dtype in specs:
        fields.append(Field(name, shape, dtype, offset))
        offset += -(-Field(name, shape, dtype, 0).nbytes // ALIGN) * ALIGN
    return fields


def slot_bytes(fields: list[Field]) -> int:
    last = fields[-1]
    return -(-(last.offset + last.nbytes) // ALIGN) * ALIGN


def shm_folder() -> Path:
    """/dev/shm (RAM) where it exists, else the temp folder (the page cache keeps it in RAM anyway)."""
    shm = Path("/dev/shm")
    return shm if shm.is_dir() and os.access(shm, os.W_OK) else Path(tempfile.gettempdir())


class SlotRing:
    """``count`` slots of ``fields``; create() on the drive side, attach() in the writer process."""

    def __init__(self, path: Path, fields: list[Field], count: int, fd: int, owner: bool) -> None:
        self.path, self.fields, self.count = path, fields, count
        self.slot_bytes = slot_bytes(fields)
        self._fd, self._owner = fd, owner
        self._map = mmap.mmap(fd, self.slot_bytes * count)
        self._reserved: set[int] = set()
        self._views = [{f.name: np.ndarray(f.shape, f.dtype, self._map, i * self.slot_bytes + f.offset)
                        for f in fields} for i in range(count)]

    @classmethod
    def create(cls, fields: list[Field], count: int) -> SlotRing:
        path = shm_folder() / f"neural-drive-session-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.ftruncate(fd, slot_bytes(fields) * count)  # sparse: RAM is used only by slots touched
            return cls(path, fields, count, fd, owner=True)
        except BaseException:
            os.close(fd)
            path.unlink(missing_ok=True)
            raise

    @classmethod
    def attach(cls, path: str, fields: list[Field], count: int) -> SlotRing:
        fd = os.open(path, os.O_RDWR)
        try:
            ring = cls(Path(path), fields, count, fd, owner=False)
        finally:
            os.close(fd)  # the mapping keeps the memory alive
        Path(path).unlink(missing_ok=True)  # both sides have it now; nothing to leak in /dev/shm
        return ring

    def views(self, slot: int) -> dict[str, np.ndarray]:
        return self._views[slot]

    def reserve(self, slot: int) -> None:
        """Back a slot with memory before its first use: a full /dev/shm then raises OSError(ENOSPC) here
        instead of killing the game with SIGBUS on the memcpy."""
        if slot in self._reserved:
            return
        if hasattr(os, "posix_fallocate"):
            os.posix_fallocate(self._fd, slot * self.slot_bytes, self.slot_bytes)
        self._reserved.add(slot)

    def close(self) -> None:
        self._views = []
        try:
            self._map.close()
        except BufferError:  # a view is still referenced somewhere; the GC unmaps it later
            pass
        if self._owner:
            os.close(self._fd)
            self.path.unlink(missing_ok=True)  # the writer never started: do not leave the file
