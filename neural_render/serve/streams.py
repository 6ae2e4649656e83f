"""Each stream's history on the service's device, and one batched forward pass over the streams of a
batch: the torch backend's RenderStep (neural_render.runtime.torch_backend.eval_step) with the batch
dimension it already has, fed from a table of per-stream history instead of one DeviceHistory.

The history of a stream is what DeviceHistory keeps for one drive (neural_render/runtime/buffers.py):
the K-1 previous label maps and the K-1 previous outputs. A stream that is new, was dropped for being
idle, changed size, or sent a cut starts like a Renderer after reset(): every older label plane is the
current map, the previous frames are zeros, has_history = 0. So a stream never sees another's history.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import torch

from neural_render.model import Vid2VidGenerator
from neural_render.runtime.common import DTYPES
from neural_render.runtime.torch_backend import eval_step


@dataclass
class StreamHistory:
    labels: torch.Tensor  # (K-1, H, W) uint8: the previous label maps, oldest first
    frames: torch.Tensor  # (K-1, 3, H, W): the previous outputs, oldest first
    last_seen: float  # time.monotonic() of its last frame


@dataclass
class StreamFrame:
    """One checked request: the stream's id, its labels (H, W) uint8, flow (H, W, 2) float32 or None."""

    stream: str
    labels: np.ndarray
    flow: np.ndarray | None
    cut: bool


class BatchedStreams:
    """Renders the frames of many streams in one forward pass per size, keeping each stream's history.
    Called from one thread at a time (PyTriton's one model instance runs one batch at a time)."""

    def __init__(self, model: Vid2VidGenerator, device: str, precision: str, idle_timeout_s: float):
        self.device = torch.device(device)
        self.dtype = DTYPES[precision]
        self.k = model.config.k
        self.module = eval_step(model, self.device, self.dtype)
        self.idle_timeout_s = idle_timeout_s
        self.streams: dict[str, StreamHistory] = {}

    def drop_idle(self, now: float) -> None:
        """Forget the streams idle for longer than idle_timeout_s: memory stays bounded by the streams
        that are rendering; a dropped stream that comes back starts with a cut."""
        stale = [name for name, history in self.streams.items() if now - history.last_seen > self.idle_timeout_s]
        for name in stale:
            del self.streams[name]

    @torch.no_grad()
    def render(self, frames: list[StreamFrame]) -> tuple[list[np.ndarray], float]:
        """The (H, W, 3) uint8 image of each frame, in order, and the seconds the forward passes took:
        one pass per round (each stream at most once: see _rounds) and size."""
        now = time.monotonic()
        self.drop_idle(now)
        images: list[np.ndarray | None] = [None] * len(frames)
        compute_s = 0.0
        for round_indices in _rounds(frames):
            for indices in _by_size(frames, round_indices):
                start = time.perf_counter()
                batch_images = self._render_batch([frames[i] for i in indices], now)
                compute_s += time.perf_counter() - start
                for i, image in zip(indices, batch_images):
                    images[i] = image
        return images, compute_s

    def _render_batch(self, frames: list[StreamFrame], now: float) -> list[np.ndarray]:
        labels, prev_frames, flow, has_history, has_flow = self._inputs(frames)
        _, image_u8, next_frames, next_labels = self.module(labels, prev_frames, flow, has_history, has_flow)
        for i, frame in enumerate(frames):
            # clone: a stream's history must not keep the whole batch's output tensors alive
            self.streams[frame.stream] = StreamHistory(next_labels[i].clone(), next_frames[i].clone(), now)
        return list(image_u8.cpu().numpy())  # .cpu() waits for the device

    def _inputs(self, frames: list[StreamFrame]) -> tuple[torch.Tensor, ...]:
        """The RenderStep's inputs for a batch: (labels, prev_frames, flow, has_history, has_flow)."""
        height, width = frames[0].labels.shape
        label_planes, frame_stacks, flows, history_flags, flow_flags = [], [], [], [], []
        for frame in frames:
            current = torch.from_numpy(frame.labels).to(self.device)
            history = self.streams.get(frame.stream)
            if frame.cut or history is None or history.labels.shape[1:] != (height, width):
                previous = current.expand(self.k - 1, height, width)
                frame_stacks.append(torch.zeros(self.k - 1, 3, height, width, dtype=self.dtype, device=self.device))
                history_flags.append(0.0)
            else:
                previous = history.labels
                frame_stacks.append(history.frames)
                history_flags.append(1.0)
            label_planes.append(torch.cat([previous, current[None]]))
            if frame.flow is None:
                flows.append(torch.zeros(2, height, width, device=self.device))
                flow_flags.append(0.0)
            else:
                flows.append(torch.from_numpy(frame.flow).to(self.device).permute(2, 0, 1))
                flow_flags.append(1.0)
        return (torch.stack(label_planes), torch.stack(frame_stacks), torch.stack(flows),
                torch.tensor(history_flags, device=self.device), torch.tensor(flow_flags, device=self.device))


def _by_size(frames: list[StreamFrame], indices: list[int]) -> list[list[int]]:
    """``indices`` grouped by the frames' (H, W), in arrival order: one forward pass per size."""
    groups: dict[tuple[int, ...], list[int]] = {}
    for i in indices:
        groups.setdefault(frames[i].labels.shape, []).append(i)
    return list(groups.values())


def _rounds(frames: list[StreamFrame]) -> list[list[int]]:
    """The frames' indices split into rounds in which each stream appears once: two frames of one
    stream in a batch (a client that sent its next frame before the answer) run one after the other,
    the second on the first's history."""
    rounds: list[list[int]] = []
    seen: list[set[str]] = []
    for i, frame in enumerate(frames):
        for members, names in zip(rounds, seen):
            if frame.stream not in names:
                members.append(i)
                names.add(frame.stream)
                break
        else:
            rounds.append([i])
            seen.append({frame.stream})
    return rounds
