"""The session writer as a separate process (``writer="process"``): the drive's cost per tick is a memcpy
into a shared slot. Not the default: on a busy 2-core box it measured slower for the drive than the
writer thread (recorder.py gives the figures); it is the choice where spare cores exist, and where a
killed game must still leave every frame it handed over on disk.

Why a process: a writer thread shares the GIL with the drive (its JSON, digest and bookkeeping run under
it, and every C call hands the GIL back and forth). Here the game process copies the tick's arrays into
a slot of a shared-memory ring (slots.py) and sends a few hundred bytes (slot number, position, record)
down a pipe (add() ~0.5 ms at 512x256, the thread's ~0.2 ms); everything else (FrameSink in writer.py)
runs in ``python -c ...child_main`` at nice +5, ffmpeg under it. Total CPU per frame is the same as the
thread's (~7 ms at 512x256 with both videos) plus ~0.15 s to start the interpreter.

Lifetime and crash rules:
- The writer is started with subprocess (not multiprocessing: no re-import of the game's __main__, no
  fork of a process with BLAS threads) in its own process group, so Ctrl+C in the terminal reaches only
  the game, whose close() then flushes the writer; the writer also ignores SIGINT. It stays in the
  game's session: with autogroup scheduling a new session would compete with the game as an equal and
  its nice +5 would mean nothing (see video.py). ffmpeg runs under it at the same nice.
- If the game dies (crash, kill -9), the writer reads EOF on its command pipe (or sees its parent pid
  change, if a fork of the game holds the pipe open): it writes every tick already in its slots, closes
  the videos and exits. Nothing handed over is lost and no writer outlives that by more than the flush.
  session.json then stays ``closed: false``, as after any crash; frames.jsonl is the truth.
- If the writer dies, the game sees EOF or a broken pipe and sets ``error``; the drive goes on.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import numpy as np

from carla_bridge.session.slots import Field, SlotRing, shm_folder, slot_bytes, slot_layout
from carla_bridge.session.video import BACKGROUND_NICE, lower_priority
from carla_bridge.session.writer import FramePacket, FrameSink, WriterState, run_hook

PIPE_BYTES = 1 << 20  # command pipe size: holds every in-flight message, so send() never waits
MESSAGE_BYTES = 2048  # generous size of one frame's message (record ~0.6 kB pickled) for that bound
MAX_SLOTS = 256
CHILD = ("import sys; from carla_bridge.session.procwriter import child_main; "
         "sys.exit(child_main(sys.argv[1]))")


def _pipe() -> tuple[int, int, int]:
    """A pipe as large as allowed (Linux; the default 64 kB elsewhere or past the user's pipe quota)."""
    read, write = os.pipe()
    try:
        fcntl.fcntl(write, fcntl.F_SETPIPE_SZ, PIPE_BYTES)
        size = fcntl.fcntl(write, fcntl.F_GETPIPE_SZ)
    except (AttributeError, OSError):
        size = 1 << 16
    return read, write, size


def slot_count(per_slot: int, max_bytes: int, pipe_bytes: int) -> int:
    """Slots for a backlog of max_bytes, at most what the pipe holds messages for (so handing a frame
    over never blocks) and half the free shared memory (a small Docker /dev/shm: fewer slots, which
    stops a recording that falls far behind sooner, rather than failing to reserve one mid-drive)."""
    stat = os.statvfs(shm_folder())
    free = stat.f_bavail * stat.f_frsize
    count = min(MAX_SLOTS, max_bytes // per_slot + 2, pipe_bytes // MESSAGE_BYTES, free // 2 // per_slot)
    if count < 2:
        raise OSError(f"not enough shared memory in {shm_folder()} for two frames of {per_slot} bytes")
    return count


class ProcessWriter:
    """Drive side of the writer process; same interface as writer.SessionWriter (put, poll, state, finish).

    ``put`` takes a FramePacket whose arrays may be the source's own buffers: it copies them into a slot.
    Arrays that do not match the slot layout (another shape) travel pickled in the message instead.
    """

    def __init__(self, directory: Path, fps: float, video: bool, crf: int, size: tuple[int, int],
                 flow: bool, depth: bool, engine: bool, max_bytes: int, hook: str | None = None) -> None:
        self.state = WriterState()
        fields = slot_layout(size, flow, depth, engine)
        cmd_read, self._cmd_fd, pipe_bytes = _pipe()
        try:
            count = slot_count(slot_bytes(fields), max_bytes, pipe_bytes)
            self.ring = SlotRing.create(fields, count)
        except BaseException:
            os.close(cmd_read)
            os.close(self._cmd_fd)
            raise
        self._free = list(range(count - 1, -1, -1))  # LIFO: a short backlog keeps touching the same pages
        self._inflight: dict[int, tuple[int, bool]] = {}
        self._final: dict[str, Any] | None = None
        self.ready = False  # the writer process has mapped the slots and opened frames.jsonl
        res_read, res_write = os.pipe()
        config = {
            "directory": str(directory), "fps": fps, "video": video, "crf": crf, "hook": hook,
            "cmd_fd": cmd_read, "res_fd": res_write, "parent_pid": os.getpid(), "sys_path": sys.path,
            "ring": str(self.ring.path), "count": count,
            "fields": [[f.name, f.shape, f.dtype, f.offset] for f in fields],
        }
        root = str(Path(__file__).resolve().parents[2])  # so the child imports this same checkout
        path = os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")]))
        env = dict(os.environ, PYTHONPATH=path)
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", CHILD, json.dumps(config)], pass_fds=(cmd_read, res_write),
                stdin=subprocess.DEVNULL, process_group=0, env=env,
            )
        except BaseException:
            for fd in (cmd_read, self._cmd_fd, res_read, res_write):
                os.close(fd)
            self.ring.close()
            raise
        os.close(cmd_read)
        os.close(res_write)
        lower_priority(self.proc.pid, BACKGROUND_NICE)
        self._cmd = Connection(self._cmd_fd, readable=False)
        self._res = Connection(res_read, writable=False)

    def can_take(self) -> bool:
        return bool(self._free)

    def put(self, packet: FramePacket) -> None:
        """Copy the packet into a free slot and hand it over (the caller checked can_take())."""
        slot = self._free.pop()
        try:
            try:
                self.ring.reserve(slot)
            except OSError as exc:
                raise RuntimeError(
                    f"no shared memory left for the frame queue in {self.ring.path.parent} ({exc.strerror}); "
                    "free some RAM or /dev/shm space, or record with writer='thread'"
                ) from exc
            views = self.ring.views(slot)
            inline: dict[str, np.ndarray] = {}
            named = dict(packet.arrays, render=packet.render, engine=packet.engine)
            named.pop("rgb", None)  # the engine image: stored once, written as rgb PNG and engine.mp4
            if "rgb" in packet.arrays and packet.engine is None:
                named["engine"] = packet.arrays["rgb"]
            for name, array in named.items():
                if array is None:
                    continue
                view = views.get(name)
                if view is not None and array.shape == view.shape:
                    np.copyto(view, array, casting="same_kind")
                    inline[name] = None  # in the slot
                else:
                    inline[name] = np.array(array)
            message = (slot, packet.position, packet.record, inline, "rgb" in packet.arrays, packet.video)
            self._cmd.send(message)
        except OSError:  # broken pipe: the writer died; say so rather than "[Errno 32]"
            self._writer_gone()
            return
        except BaseException:
            self._free.append(slot)
            raise
        self._inflight[slot] = (packet.nbytes, packet.video)
        self.state.pending_bytes += packet.nbytes
        self.state.pending_video += packet.video

    def poll(self) -> None:
        """Collect the writer's reports (slots done, frames written, errors) without waiting."""
        try:
            while self._res.poll():
                self._handle(self._res.recv())
        except (EOFError, OSError):
            self._writer_gone()

    def wait_ready(self, timeout_s: float) -> bool:
        """Wait until the writer process is up (interpreter started, numpy imported: ~0.2-0.5 s)."""
        try:
            while not self.ready and self._final is None and self._res.poll(timeout_s):
                self._handle(self._res.recv())
        except (EOFError, OSError):
            self._writer_gone()
        return self.ready

    def finish(self) -> dict[str, int]:
        """Flush: tell the writer to stop, wait until it has written everything; frames per video."""
        try:
            self._cmd.send(None)
        except OSError:
            pass
        try:
            while self._final is None:
                self._handle(self._res.recv())
        except (EOFError, OSError):
            self._writer_gone()
        self.proc.wait()
        self._cmd.close()
        self._res.close()
        self.ring.close()
        return (self._final or {}).get("video", {})

    def _handle(self, message: tuple) -> None:
        kind, *rest = message
        if kind == "ready":
            self.ready = True
        elif kind == "done":
            slot, frames, error = rest
            nbytes, video = self._inflight.pop(slot)
            self._free.append(slot)
            self.state.pending_bytes -= nbytes
            self.state.pending_video -= video
            self.state.frames_written, self.state.error = frames, error
        elif kind == "final":
            self._final = rest[0]
            self.state.frames_written = self._final["frames"]
            self.state.error = self.state.error or self._final["error"]
            self.state.notes.extend(self._final["notes"])

    def _writer_gone(self) -> None:
        if self._final is None and self.state.error is None:
            code = self.proc.poll()
            self.state.error = (
                f"the session writer process ended unexpectedly (exit code {code}); the "
                f"{self.state.frames_written} frames it reported are complete"
            )
        self._final = self._final or {}
        self._free = []  # nothing more can be handed over


def _send(conn: Connection, message: Any) -> None:
    try:
        conn.send(message)
    except OSError:  # the game is gone; keep writing what it handed over
        pass


def child_main(config_json: str) -> int:
    """The writer process: write every slot it is handed, in order, until told to stop or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl+C is for the game, which flushes us on close
    config = json.loads(config_json)
    sys.path.extend(p for p in config["sys_path"] if p not in sys.path)
    cmd = Connection(config["cmd_fd"], writable=False)
    res = Connection(config["res_fd"], readable=False)
    fields = [Field(name, tuple(shape), dtype, offset) for name, shape, dtype, offset in config["fields"]]
    ring = SlotRing.attach(config["ring"], fields, config["count"])
    try:
        sink = FrameSink(Path(config["directory"]), config["fps"], config["video"], config["crf"], nice=0)
        run_hook(config["hook"])
    except Exception as exc:
        _send(res, ("final", {"frames": 0, "error": f"the session writer could not start: {exc}",
                              "notes": [], "video": {}}))
        return 1
    _send(res, ("ready",))
    try:
        while True:
            if not cmd.poll(1.0):
                if os.getppid() != config["parent_pid"]:
                    break  # orphaned while a fork of the game holds the pipe open: flush and go
                continue
            try:
                message = cmd.recv()
            except EOFError:  # the game died: everything it handed over is in the slots; write it
                break
            except Exception as exc:  # a message cut by an interrupt in the game: stop cleanly, say so
                sink.error = sink.error or f"recording stopped: the frame queue was corrupted ({exc!r})"
                break
            if message is None:
                break
            slot, position, record, inline, has_rgb, video = message
            views = ring.views(slot)
            arrays = {name: views[name] if array is None else array for name, array in inline.items()}
            render, engine = arrays.pop("render", None), arrays.pop("engine", None)
            if has_rgb:
                arrays["rgb"] = engine
            sink.write(FramePacket(position, record, arrays, render, engine if video else None, video))
            _send(res, ("done", slot, sink.frames_written, sink.error))
    finally:
        sink.finish()
        _send(res, ("final", {"frames": sink.frames_written, "error": sink.error, "notes": sink.notes,
                              "video": sink.video_frames()}))
    return 0
