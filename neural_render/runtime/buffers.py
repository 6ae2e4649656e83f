"""History kept on the device as ping-pong buffers (torch tensors; used by the torch backend and by
the ONNX Runtime CUDA / TensorRT paths, which bind these tensors' addresses directly).

Set `cur` is what the next step reads: labels (1, K, H, W) uint8 whose first K-1 planes are the
previous label maps and whose last plane receives the new upload, and frames (1, K-1, 3, H, W), the
previous outputs. A step writes its history outputs straight into set `1 - cur` (next_labels into
planes 0..K-2, next_frames into frames), then `swap()` flips the sets: no copies, no allocation.
Only the current uint8 label map (and the float32 flow, when there is one) crosses from the host, and
for a model that takes the weather, its (1, weather_dim) float32 vector.
"""

from __future__ import annotations

import numpy as np
import torch


class DeviceHistory:
    def __init__(self, k: int, width: int, height: int, device: torch.device, frame_dtype: torch.dtype,
                 weather_dim: int = 0):
        self.k, self.width, self.height, self.device = k, width, height, device
        self.labels = [torch.zeros(1, k, height, width, dtype=torch.uint8, device=device) for _ in range(2)]
        self.frames = [torch.zeros(1, k - 1, 3, height, width, dtype=frame_dtype, device=device) for _ in range(2)]
        self.flow = torch.zeros(1, 2, height, width, dtype=torch.float32, device=device)
        self.flow_hw2 = torch.zeros(height, width, 2, dtype=torch.float32, device=device)
        self.has_history = torch.zeros(1, dtype=torch.float32, device=device)
        self.has_flow = torch.zeros(1, dtype=torch.float32, device=device)
        self.weather = torch.zeros(1, weather_dim, dtype=torch.float32, device=device) if weather_dim else None
        self.image = torch.zeros(1, 3, height, width, dtype=frame_dtype, device=device)
        self.image_u8 = torch.zeros(1, height, width, 3, dtype=torch.uint8, device=device)
        self.cuda = device.type == "cuda"
        self.stage_on_host(pinned=True)
        self.cur = 0

    def stage_on_host(self, pinned: bool) -> None:
        """(Re)allocate the host staging buffers. Pinned (page-locked, CUDA only) by default, so that
        host<->device copies are direct DMA and can be async; pageable exists for the benchmark that
        measures what pinning buys (the driver then copies through its own bounce buffer)."""
        pin = pinned and self.cuda
        height, width = self.height, self.width
        self.pinned = pin
        self.host_labels = torch.zeros(height, width, dtype=torch.uint8, pin_memory=pin)
        self.host_flow = torch.zeros(height, width, 2, dtype=torch.float32, pin_memory=pin)
        self.host_image = torch.zeros(height, width, 3, dtype=torch.uint8, pin_memory=pin)

    def reset(self) -> None:
        self.cur = 0
        for t in (*self.labels, *self.frames):
            t.zero_()

    def upload(self, labels: np.ndarray, flow: np.ndarray | None, has_history: bool,
               weather: np.ndarray | None = None) -> None:
        """Write the new label map (and flow, and weather) into the `cur` input set; no history -> zeros.
        The weather stays until the next one is given."""
        labels_dev = self.labels[self.cur]
        self.host_labels.numpy()[...] = labels
        new = labels_dev[0, self.k - 1]
        new.copy_(self.host_labels, non_blocking=self.pinned)
        if not has_history:  # every older plane is the current map; frames are zero
            labels_dev[0, : self.k - 1].copy_(new.expand(self.k - 1, -1, -1))
            self.frames[self.cur].zero_()
        self.has_history.fill_(1.0 if has_history else 0.0)
        if weather is not None:  # 24 bytes: a plain copy, no staging buffer
            self.weather.copy_(torch.from_numpy(weather).view(1, -1))
        if flow is None:
            self.has_flow.fill_(0.0)
            self.flow.zero_()
        else:
            self.host_flow.numpy()[...] = flow
            self.flow_hw2.copy_(self.host_flow, non_blocking=self.pinned)
            self.flow[0].copy_(self.flow_hw2.permute(2, 0, 1))
            self.has_flow.fill_(1.0)

    def inputs(self) -> tuple[torch.Tensor, ...]:
        """(labels, prev_frames, flow, has_history, has_flow[, weather]) in the graph's input order."""
        weather = () if self.weather is None else (self.weather,)
        return self.labels[self.cur], self.frames[self.cur], self.flow, self.has_history, self.has_flow, *weather

    def outputs(self) -> tuple[torch.Tensor, ...]:
        """(image, image_u8, next_frames, next_labels) buffers in the graph's output order."""
        nxt = 1 - self.cur
        return self.image, self.image_u8, self.frames[nxt], self.labels[nxt][:, : self.k - 1]

    def swap(self) -> None:
        self.cur = 1 - self.cur

    def download(self) -> np.ndarray:
        """The last image_u8 as a host (H, W, 3) uint8 array (a fresh copy the caller may keep)."""
        self.host_image.copy_(self.image_u8[0], non_blocking=self.pinned)
        if self.cuda:
            torch.cuda.current_stream(self.device).synchronize()
        return self.host_image.numpy().copy()


class HostHistory:
    """History kept in host memory as numpy arrays, for the backends that run on the CPU from numpy
    (ONNX Runtime's CPU provider, OpenVINO): a step's next_frames and next_labels outputs are the next
    step's prev_frames and first K-1 label planes, with the same semantics as DeviceHistory."""

    def __init__(self, k: int, width: int, height: int, weather_dim: int = 0):
        self.k, self.width, self.height = k, width, height
        self.weather = np.zeros((1, weather_dim), np.float32) if weather_dim else None
        self.reset()

    def reset(self) -> None:
        k, height, width = self.k, self.height, self.width
        self.labels = np.zeros((1, k, height, width), np.uint8)
        self.frames = np.zeros((1, k - 1, 3, height, width), np.float32)
        self.zero_flow = np.zeros((1, 2, height, width), np.float32)
        self.next_labels = np.zeros((1, k - 1, height, width), np.uint8)

    def feeds(self, labels: np.ndarray, flow: np.ndarray | None, has_history: bool,
              weather: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """The graph's inputs by name for this frame; no history -> every plane the current map, frames zero.
        The weather stays until the next one is given."""
        if has_history:
            self.labels[0, :-1] = self.next_labels[0]
        else:
            self.labels[0, :-1] = labels
            self.frames[...] = 0.0
        self.labels[0, -1] = labels
        flow_in = self.zero_flow if flow is None else flow.transpose(2, 0, 1)[None].copy()
        feeds = {"labels": self.labels, "prev_frames": self.frames, "flow": flow_in,
                 "has_history": np.array([float(has_history)], np.float32),
                 "has_flow": np.array([0.0 if flow is None else 1.0], np.float32)}
        if self.weather is not None:
            if weather is not None:
                self.weather[0] = weather
            feeds["weather"] = self.weather
        return feeds

    def keep(self, next_frames: np.ndarray, next_labels: np.ndarray) -> None:
        self.frames, self.next_labels = next_frames, next_labels
