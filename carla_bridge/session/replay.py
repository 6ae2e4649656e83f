"""ReplaySource: a recorded session played back as a Source (carla_bridge.core.frames.SourceBase).

Deterministic: the frames come from the lossless files, so labels, flow, depth and rgb are bit-identical
to what the drive saw; the controls given to ``step`` are ignored (the recorded ones are kept).
Replaying at another resolution (``size=``) resamples by nearest neighbour (labels stay valid tag ids)
and scales the flow vectors by the size ratio, since flow is measured in pixels.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from carla_bridge.core.frames import Control, SceneFrame, SourceBase
from carla_bridge.session.format import MCAP_SUFFIX, SessionFormatError, mcap_problem
from carla_bridge.session.reader import SessionIndex, open_session, record_control


def open_recording(path: str | Path) -> SessionIndex | Any:
    """A recorded session: a folder (reader.py) or an MCAP file (mcap_reader.McapSession), by its name."""
    if Path(path).suffix.lower() != MCAP_SUFFIX:
        return open_session(path)
    problem = mcap_problem()
    if problem:
        raise SessionFormatError(f"{path}: {problem}")
    from carla_bridge.session.mcap_reader import McapSession  # an optional package: the mcap extra
    return McapSession(path)


class SessionEnded(Exception):
    """Raised by ReplaySource.step after the last recorded frame."""


class ReplaySource(SourceBase):
    """Play a session (a folder or an .mcap file) back frame by frame.

    ``reset()`` rewinds and returns the first frame; ``step(control)`` returns the next one (the first
    one when called before any reset) and raises SessionEnded after the last. The first frame delivered
    after a rewind always has ``cut=True`` (a recording started mid-drive has no history to reuse).
    ``frame.ego`` is the recorded ego state (its ``control`` the control applied while driving);
    ``controls[i]`` / ``control`` are the controls the drive passed to the recorder.
    """

    name = "replay"
    weather_names: list[str] = ["as recorded"]

    def __init__(self, directory: str | Path, size: tuple[int, int] | None = None) -> None:
        self.session = open_recording(directory)
        if not self.session.records:
            raise SessionFormatError(
                f"{self.session.path}: the session holds no complete frame (recording stopped at once?)"
            )
        self.path = self.session.path
        self.meta: dict[str, Any] = self.session.meta
        self.notes: list[str] = self.session.notes
        self.controls: list[Control] = [record_control(r) for r in self.session.records]
        self.size = tuple(size) if size is not None else self.session.size
        self.position = -1  # position of the last frame returned
        self._next = 0

    def __len__(self) -> int:
        return len(self.session.records)

    @property
    def control(self) -> Control:
        """The recorded control of the last returned frame (Control() before the first)."""
        return self.controls[self.position] if self.position >= 0 else Control()

    def record(self, position: int) -> dict[str, Any]:
        """The frames.jsonl record of a frame (timings_ms, wall_time, render digest...)."""
        return self.session.records[position]

    def frame(self, position: int) -> SceneFrame:
        """Random access to frame ``position`` (cut as recorded)."""
        frame = self.session.load(position)
        if self.size != self.session.size:
            frame = resize_frame(frame, self.size)
        return frame

    def reset(self, seed: int | None = None) -> SceneFrame:
        """Rewind to the first frame (``seed`` is ignored: the session fixes everything)."""
        self._next = 0
        return self.step(Control())

    def respawn(self) -> SceneFrame:
        return self.reset()

    def set_weather(self, index: int) -> str:
        return self.weather_names[0]  # the weather is baked into the recording

    def step(self, control: Control | None = None) -> SceneFrame:
        if self._next >= len(self):
            raise SessionEnded(f"{self.path}: all {len(self)} recorded frames were played")
        frame = self.frame(self._next)
        if self._next == 0:
            frame.cut = True
        self.position = self._next
        self._next += 1
        return frame

    def __iter__(self) -> Iterator[SceneFrame]:
        """All frames from the start (rewinds first)."""
        self._next = 0
        while self._next < len(self):
            yield self.step()

    def close(self) -> None:
        self._next = len(self)


def resize_frame(frame: SceneFrame, size: tuple[int, int]) -> SceneFrame:
    """Nearest-neighbour resample of every array of ``frame`` to size (width, height); flow rescaled."""
    width, height = size
    src_w, src_h = frame.size
    rows = np.minimum((np.arange(height) + 0.5) * src_h / height, src_h - 1).astype(np.intp)
    cols = np.minimum((np.arange(width) + 0.5) * src_w / width, src_w - 1).astype(np.intp)

    def pick(array: np.ndarray | None) -> np.ndarray | None:
        return None if array is None else np.ascontiguousarray(array[rows][:, cols])

    flow = pick(frame.flow)
    if flow is not None:
        flow = (flow * np.array([width / src_w, height / src_h], dtype=np.float32)).astype(np.float32)
    return SceneFrame(
        index=frame.index, time_s=frame.time_s, labels=pick(frame.labels), flow=flow,
        depth=pick(frame.depth), rgb=pick(frame.rgb), ego=frame.ego, cut=frame.cut,
    )
