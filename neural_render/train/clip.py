"""A training clip: T consecutive frames as a dict of tensors, the unit every data source yields.

Keys (T frames, oldest first; the DataLoader's default collate adds the batch dimension):
  labels    (T, H, W)    uint8   semantic tag ids 0..28 (carla_bridge.core.labels)
  rgb       (T, 3, H, W) uint8   the target image (engine rgb, or a video frame)
  flow      (T, 2, H, W) float32 backward flow t -> t-1 in pixels (ARCHITECTURE.md), zeros where unknown
  has_flow  (T,)         float32 1 where flow[t] is the exact flow to frame t-1 of this clip
  depth     (T, H, W)    float32 metres, zeros where unknown
  has_depth (T,)         float32 1 where depth[t] is known
  weather   (T, D)       float32 the frame's weather (carla_bridge.core.weather), clear noon where unknown
Frame 0 of a clip never has flow (its previous frame is not in the clip), so has_flow[0] == 0.
Labels and colours stay uint8 until they reach the device: 4x less to copy than float.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from carla_bridge.core.weather import CLEAR_NOON

Clip = dict[str, torch.Tensor]


def frames_to_clip(frames: Sequence) -> Clip:
    """Stack SceneFrames (.index, .labels, .rgb, .flow, .depth, .cut) into a Clip.

    Raises ValueError when a frame has no rgb (nothing to learn from) or sizes differ.
    """
    if not frames:
        raise ValueError("frames_to_clip needs at least one frame")
    h, w = frames[0].labels.shape
    labels, rgb, flow, depth, has_flow, has_depth = [], [], [], [], [], []
    for i, f in enumerate(frames):
        if f.labels.shape != (h, w):
            raise ValueError(f"frame {i} has labels {f.labels.shape}, expected {(h, w)}")
        if f.rgb is None:
            raise ValueError(f"frame {i} (index {f.index}) has no rgb: training needs the engine image")
        labels.append(np.asarray(f.labels, dtype=np.uint8))
        rgb.append(np.asarray(f.rgb, dtype=np.uint8).transpose(2, 0, 1))
        known_flow = f.flow is not None and i > 0 and not f.cut
        flow.append(f.flow.transpose(2, 0, 1) if known_flow else np.zeros((2, h, w), np.float32))
        has_flow.append(1.0 if known_flow else 0.0)
        depth.append(f.depth if f.depth is not None else np.zeros((h, w), np.float32))
        has_depth.append(1.0 if f.depth is not None else 0.0)
    return {
        "labels": torch.from_numpy(np.stack(labels)),
        "rgb": torch.from_numpy(np.stack(rgb)),
        "flow": torch.from_numpy(np.ascontiguousarray(np.stack(flow), dtype=np.float32)),
        "has_flow": torch.tensor(has_flow, dtype=torch.float32),
        "depth": torch.from_numpy(np.ascontiguousarray(np.stack(depth), dtype=np.float32)),
        "has_depth": torch.tensor(has_depth, dtype=torch.float32),
        # As the renderer reads a frame without weather: clear noon.
        "weather": torch.from_numpy(np.stack([CLEAR_NOON if f.weather is None else f.weather for f in frames])),
    }


def clip_length(clip: Clip) -> int:
    return int(clip["labels"].shape[-3])


def slice_clip(clip: Clip, start: int, length: int) -> Clip:
    """Frames start..start+length-1 of a batched or unbatched clip; the new frame 0 loses its flow."""
    axis = 1 if clip["labels"].dim() == 4 else 0  # (B, T, H, W) or (T, H, W): time is axis 1 or 0
    out = {key: value.narrow(axis, start, length) for key, value in clip.items()}
    has_flow = out["has_flow"].clone()
    has_flow[..., 0] = 0.0
    out["has_flow"] = has_flow
    return out
