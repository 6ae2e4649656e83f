"""The recurrent vid2vid + SPADE generator, in one file (nanoGPT style): config and presets, small
modules, then the network.

Per step t it sees the label maps of frames t-K+1..t, its own K-1 previous outputs and the engine
flow t -> t-1, and composes (vid2vid, Wang et al., NeurIPS 2018, eq. 4):

    y_t = m_t * W(y_{t-1}, w_t) + (1 - m_t) * h_t

where w_t is the flow (engine flow + a predicted residual), m_t the soft occlusion mask and h_t the
hallucinated image. h_t comes from a decoder whose normalisation layers are SPADE (Park et al.,
CVPR 2019, eq. 1): gamma(s) * (x - mu) / sigma + beta(s), with gamma/beta predicted per pixel from the
label map s, so labels steer every scale instead of being washed out by normalisation.

The first frame after a reset uses the same network with has_history = 0: the previous frames are
zeroed, the mask is forced to 0, and the output is pure hallucination.

Real-time choices (the `cpu` preset must run >= 15 frames/s at 256x128 through ONNX Runtime on 2 CPU
cores): one-hot is built inside the network from uint8 ids, the flow branch works from 1/2 resolution
and predicts at 1/2, SPADE hidden features are computed once per scale and shared by that scale's
layers, the full-resolution stage is a single class-adaptive (1x1, "CLADE", Tan et al. 2021)
modulation plus one narrow 3x3 conv, and `separable` swaps 3x3 convs for depthwise + pointwise.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import NamedTuple

import torch
import torch.nn as nn
import torch.nn.functional as F

from neural_render.warp import in_view, sample_coords, warp

# Bump when the forward's maths change for the same weights: cached exports (ONNX, TensorRT engines) are
# keyed by it (neural_render.runtime.onnx.model_hash), so a user's cache is rebuilt instead of running the
# old graph. 2: the fusion mask is 0 where the flow leaves the previous frame (in_view).
FORWARD_REVISION = 2


def _nearest_multiple(value: int, m: int) -> int:
    """The multiple of m closest to value (ties go up), at least m: 255 -> 256, 127 -> 128 for m = 8."""
    return max(m, (value + m // 2) // m * m)


# The range of every integer field of GeneratorConfig. A config also comes from a checkpoint's metadata,
# which is checked against these before any network is built: far above every preset (widths 256,
# 3 blocks), far below a network that would not fit in memory at all. num_classes <= 256: labels are uint8.
MAX_LEVELS = 8      # entries in widths / flow_widths (each one halves the resolution)
MAX_WIDTH = 4096
FIELD_RANGES: dict[str, tuple[int, int]] = {
    "num_classes": (2, 256), "k": (2, 16), "widths": (1, MAX_WIDTH), "n_blocks": (0, 32),
    "spade_hidden": (1, MAX_WIDTH), "flow_widths": (1, MAX_WIDTH), "n_flow_blocks": (0, 32), "weather_dim": (0, 64),
}  # and spade_kernel is 1 or 3, separable a bool, name a short string


def _is_int_in(value, low: int, high: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _shown(value) -> str:
    """repr of a value that came from a file, cut short: an error message must stay one readable line."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class GeneratorConfig:
    name: str = "tiny"
    num_classes: int = 29           # CARLA semantic tags 0..28
    k: int = 3                      # label maps seen per step (current + K-1 previous)
    widths: tuple[int, ...] = (8, 8)        # image branch width at 1/2, 1/4, ... resolution
    n_blocks: int = 1               # SPADE resblocks at the bottleneck
    spade_hidden: int = 8           # max width of the per-scale SPADE hidden features
    spade_kernel: int = 1           # kernel of the gamma/beta convs (SPADE uses 3)
    flow_widths: tuple[int, ...] = (8, 8)   # flow branch width at 1/4, 1/8, ... resolution
    n_flow_blocks: int = 0          # plain resblocks at the flow branch bottleneck
    separable: bool = False         # depthwise-separable 3x3 convs (CPU presets)
    weather_dim: int = 0            # weather vector length (carla_bridge.core.weather); 0: none, as before it

    def __post_init__(self) -> None:
        for field, (low, high) in FIELD_RANGES.items():
            value = getattr(self, field)
            if field in ("widths", "flow_widths"):
                if not isinstance(value, (tuple, list)) or not 1 <= len(value) <= MAX_LEVELS \
                        or not all(_is_int_in(w, low, high) for w in value):
                    raise ValueError(f"GeneratorConfig.{field}: 1..{MAX_LEVELS} integers, each in {low}..{high}; "
                                     f"got {_shown(value)}")
            elif not _is_int_in(value, low, high):
                raise ValueError(f"GeneratorConfig.{field}: an integer in {low}..{high}, got {_shown(value)}")
        if not _is_int_in(self.spade_kernel, 1, 3) or self.spade_kernel == 2:
            raise ValueError(f"GeneratorConfig.spade_kernel: 1 or 3, got {_shown(self.spade_kernel)}")
        if not isinstance(self.separable, bool):
            raise ValueError(f"GeneratorConfig.separable: true or false, got {_shown(self.separable)}")
        if not isinstance(self.name, str) or not 1 <= len(self.name) <= 64:
            raise ValueError(f"GeneratorConfig.name: a string of 1..64 characters, got {_shown(self.name)}")
        object.__setattr__(self, "widths", tuple(self.widths))
        object.__setattr__(self, "flow_widths", tuple(self.flow_widths))

    @property
    def multiple(self) -> int:
        """Width and height must be multiples of this (deepest downsampling of either branch)."""
        return max(2 ** len(self.widths), 2 ** (len(self.flow_widths) + 1))

    def check_size(self, width: int, height: int) -> None:
        m = self.multiple
        if width <= 0 or height <= 0 or width % m or height % m:
            raise ValueError(
                f"size {width}x{height}: preset '{self.name}' needs width and height that are positive "
                f"multiples of {m} (the nearest: {_nearest_multiple(width, m)}x{_nearest_multiple(height, m)})")
        scale = 2 ** len(self.widths)  # the SPADE decoder's bottleneck
        if (width // scale) * (height // scale) < 2:
            # Instance norm over a single pixel there fails inside the backend ("Expected more than 1
            # spatial element when training"): the cpu preset at 8x8, gpu at 16x16.
            raise ValueError(f"size {width}x{height} is too small for preset '{self.name}': its bottleneck "
                             f"(1/{scale}) would hold one pixel; use at least {max(m, 2 * scale)}x{m}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> GeneratorConfig:
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"GeneratorConfig: unknown fields {sorted(unknown)}")
        return cls(**data)


PRESETS: dict[str, GeneratorConfig] = {
    # A few thousand parameters: unit tests only.
    "tiny": GeneratorConfig(name="tiny", widths=(8, 8), spade_hidden=4, flow_widths=(4, 8)),
    # Laptop CPU through ONNX Runtime: ~1 GFLOP/frame at 256x128, bottleneck at 1/8.
    "cpu": GeneratorConfig(name="cpu", widths=(16, 32, 64), n_blocks=2, spade_hidden=32, spade_kernel=1,
                           flow_widths=(24, 48), n_flow_blocks=1, separable=False),
    # Tensor-core GPU (fp16): widths multiples of 16, bottleneck at 1/16, plain convs; ~68 GFLOP at 1024x512.
    "gpu": GeneratorConfig(name="gpu", widths=(32, 64, 128, 256), n_blocks=3, spade_hidden=64, spade_kernel=1,
                           flow_widths=(32, 64, 128), n_flow_blocks=2, separable=False),
}


class GeneratorOutput(NamedTuple):
    image: torch.Tensor          # (B, 3, H, W) in [-1, 1], the composed frame y_t
    flow: torch.Tensor           # (B, 2, H, W) float32 pixels, total flow used for the warp
    mask: torch.Tensor           # (B, 1, H, W) in [0, 1], weight of the warped previous frame
    hallucinated: torch.Tensor   # (B, 3, H, W) in [-1, 1], h_t


def one_hot(ids: torch.Tensor, classes: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, K, H, W) integer ids -> (B, K*C, H, W) one-hot, via a compare with arange(C).

    A compare exports to ONNX as Cast + Equal + Cast (no ScatterElements), so only 1 byte per pixel
    crosses to the device and the expansion happens there. Ids outside 0..C-1 give all-zero pixels."""
    b, k, h, w = ids.shape
    # Compare in float32 (exact for small ints): Equal on float is supported by ORT's CPU kernels and
    # TensorRT alike, where int64/uint8 compares are not everywhere.
    hot = ids.float().unsqueeze(2) == classes.float().view(1, 1, -1, 1, 1)
    return hot.to(dtype).reshape(b, k * classes.numel(), h, w)


def conv3x3(cin: int, cout: int, stride: int = 1, separable: bool = False) -> nn.Module:
    """3x3 conv; depthwise + pointwise when `separable` (MobileNet, Howard et al. 2017): ~9x fewer MACs."""
    if separable and cin >= 8:
        return nn.Sequential(nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.Conv2d(cin, cout, 1))
    return nn.Conv2d(cin, cout, 3, stride, 1)


def up2(x: torch.Tensor) -> torch.Tensor:
    return F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=False)


class SPADE(nn.Module):
    """SPADE normalisation (Park et al. 2019, eq. 1): gamma(s) * instance_norm(x) + beta(s).

    gamma and beta come from `seg`, the shared hidden features of the label map at this scale (SPADE
    computes them per layer; sharing them per scale keeps the cost low). We predict (1 + gamma) as in
    the official code so a zero-initialised layer starts as a plain instance norm. With a weather
    vector, a linear map of it adds a per-channel scale and shift to gamma and beta (FiLM, Perez et
    al., AAAI 2018): the same labels lit by another sun; zero-initialised, so it starts as no change."""

    def __init__(self, channels: int, seg_channels: int, kernel: int, weather_dim: int = 0):
        super().__init__()
        self.norm = nn.InstanceNorm2d(channels, affine=False)
        self.gamma_beta = nn.Conv2d(seg_channels, 2 * channels, kernel, 1, kernel // 2)
        self.weather = nn.Linear(weather_dim, 2 * channels) if weather_dim else None
        for parameter in self.weather.parameters() if weather_dim else ():
            nn.init.zeros_(parameter)

    def forward(self, x: torch.Tensor, seg: torch.Tensor, weather: torch.Tensor | None = None) -> torch.Tensor:
        gamma_beta = self.gamma_beta(seg)
        if self.weather is not None:
            gamma_beta = gamma_beta + self.weather(weather.to(gamma_beta.dtype))[:, :, None, None]
        gamma, beta = gamma_beta.chunk(2, dim=1)
        return self.norm(x) * (1 + gamma) + beta


class SPADEResBlock(nn.Module):
    """SPADE residual block (Park et al. 2019, Fig. 4): two SPADE-ReLU-conv units and a learned
    shortcut (SPADE + 1x1 conv) when the width changes."""

    def __init__(self, cin: int, cout: int, seg_channels: int, cfg: GeneratorConfig):
        super().__init__()
        mid = min(cin, cout)
        self.norm_0 = SPADE(cin, seg_channels, cfg.spade_kernel, cfg.weather_dim)
        self.conv_0 = conv3x3(cin, mid, separable=cfg.separable)
        self.norm_1 = SPADE(mid, seg_channels, cfg.spade_kernel, cfg.weather_dim)
        self.conv_1 = conv3x3(mid, cout, separable=cfg.separable)
        self.learned_shortcut = cin != cout
        if self.learned_shortcut:
            self.norm_s = SPADE(cin, seg_channels, cfg.spade_kernel, cfg.weather_dim)
            self.conv_s = nn.Conv2d(cin, cout, 1, bias=False)

    def forward(self, x: torch.Tensor, seg: torch.Tensor, weather: torch.Tensor | None) -> torch.Tensor:
        dx = self.conv_0(F.leaky_relu(self.norm_0(x, seg, weather), 0.2))
        dx = self.conv_1(F.leaky_relu(self.norm_1(dx, seg, weather), 0.2))
        xs = self.conv_s(self.norm_s(x, seg, weather)) if self.learned_shortcut else x
        return xs + dx


class ResBlock(nn.Module):
    """Plain pre-activation residual block (flow branch)."""

    def __init__(self, channels: int, separable: bool):
        super().__init__()
        self.conv_0 = conv3x3(channels, channels, separable=separable)
        self.conv_1 = conv3x3(channels, channels, separable=separable)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_1(F.leaky_relu(self.conv_0(F.leaky_relu(x, 0.2)), 0.2))


MASK_LOGIT = 2  # channel of FlowMaskBranch's output holding the fusion mask's logit (neural_render.calibrate)


class FlowMaskBranch(nn.Module):
    """vid2vid's flow/mask branch: from the K label maps, the K-1 previous frames and the engine flow,
    predict a residual flow (normalised units) and the occlusion-mask logit, at 1/2 resolution."""

    def __init__(self, cfg: GeneratorConfig):
        super().__init__()
        cin = cfg.k * cfg.num_classes + 3 * (cfg.k - 1) + 2 + 2   # + engine flow + has_flow/has_history planes
        widths = cfg.flow_widths
        self.down = nn.ModuleList()
        for i, w in enumerate(widths):  # input is pooled to 1/2 first, so level i is at 1/2^(i+2)
            self.down.append(conv3x3(cin if i == 0 else widths[i - 1], w, stride=2, separable=cfg.separable and i > 0))
        self.blocks = nn.Sequential(*[ResBlock(widths[-1], cfg.separable) for _ in range(cfg.n_flow_blocks)])
        self.up = nn.ModuleList(conv3x3(widths[i + 1], widths[i], separable=cfg.separable)
                                for i in reversed(range(len(widths) - 1)))
        self.up_last = conv3x3(widths[0], widths[0], separable=cfg.separable)
        self.head = nn.Conv2d(widths[0], 3, 3, 1, 1)  # residual flow x, y and the mask logit (MASK_LOGIT)
        # Zero init: no residual flow and mask 0.5 at the start of training.
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.avg_pool2d(x, 2)
        skips = []
        for conv in self.down:
            x = F.leaky_relu(conv(x), 0.2)
            skips.append(x)
        x = self.blocks(x)
        for conv, skip in zip(self.up, reversed(skips[:-1])):
            x = F.leaky_relu(conv(up2(x)), 0.2) + skip
        x = F.leaky_relu(self.up_last(up2(x)), 0.2)      # back at 1/2 resolution
        return self.head(x)


class Vid2VidGenerator(nn.Module):
    def __init__(self, config: GeneratorConfig):
        super().__init__()
        self.config = cfg = config
        c, widths = cfg.num_classes, cfg.widths
        self.register_buffer("classes", torch.arange(c), persistent=False)
        self.flow_branch = FlowMaskBranch(cfg)
        # Image branch encoder: current labels + warped previous frame + has_history plane
        # (vid2vid's image branch also sees the previous frames).
        self.enc = nn.ModuleList(conv3x3(c + 3 + 1 if i == 0 else widths[i - 1], w, stride=2,
                                         separable=cfg.separable and i > 0) for i, w in enumerate(widths))
        hidden = [min(w, cfg.spade_hidden) for w in widths]
        self.seg = nn.ModuleList(nn.Conv2d(c, h, 3, 1, 1) for h in hidden)   # shared SPADE hidden per scale
        self.bottleneck = nn.ModuleList(SPADEResBlock(widths[-1], widths[-1], hidden[-1], cfg) for _ in range(cfg.n_blocks))
        self.dec = nn.ModuleList(SPADEResBlock(widths[i + 1], widths[i], hidden[i], cfg)
                                 for i in reversed(range(len(widths) - 1)))
        # Full resolution: class-adaptive modulation straight from the one-hot (1x1), keeps label edges crisp.
        self.out_norm = SPADE(widths[0], c, 1, cfg.weather_dim)
        self.out_conv = nn.Conv2d(widths[0], 3, 3, 1, 1)

    def forward(self, labels: torch.Tensor, prev_frames: torch.Tensor, flow: torch.Tensor, has_history: torch.Tensor,
                has_flow: torch.Tensor, weather: torch.Tensor | None = None) -> GeneratorOutput:
        """weather (B, weather_dim) float, required when the config has weather_dim, ignored otherwise."""
        cfg = self.config
        b, k, h, w = labels.shape
        dtype = self.out_conv.weight.dtype
        hist = has_history.to(dtype).view(b, 1, 1, 1)
        hflow = has_flow.float().view(b, 1, 1, 1)
        engine_flow = flow.float() * hflow
        prev = prev_frames.to(dtype) * hist.unsqueeze(1)               # no history -> zeros, whatever came in
        onehot_all = one_hot(labels, self.classes, dtype)              # (B, K*C, H, W)
        onehot = onehot_all[:, (k - 1) * cfg.num_classes:]            # current frame (B, C, H, W)

        # Flow / mask branch. Engine flow enters normalised to [-1, 1] image units.
        norm = torch.tensor([2.0 / w, 2.0 / h], device=labels.device).view(1, 2, 1, 1)
        planes = torch.cat([hflow.expand(b, 1, h, w), hist.float().expand(b, 1, h, w)], 1)
        x = torch.cat([onehot_all, prev.flatten(1, 2), (engine_flow * norm).to(dtype), planes.to(dtype)], 1)
        out = up2(self.flow_branch(x)).float()
        total_flow = engine_flow + out[:, :2] / norm                   # residual back to pixels
        # No history -> pure hallucination. Where the flow reaches outside the previous frame (the side
        # a turn brings into view) the warp only smears the edge pixels inward: nothing there can be
        # reused, so that part is painted anew whatever the learned mask says (vid2vid's occlusion
        # mask, Wang et al. 2018 sec. 3.2, made exact for out-of-view pixels). A geometric fact, not
        # learned: detached, so training cannot lower the mask by pushing the flow out of view.
        coords = sample_coords(total_flow)
        mask = torch.sigmoid(out[:, MASK_LOGIT:]) * hist.float() * in_view(total_flow, coords.detach())
        warped = warp(prev[:, -1], total_flow, coords)

        # Image branch: encoder, SPADE bottleneck, SPADE decoder with additive skips.
        x = torch.cat([onehot, warped, hist.expand(b, 1, h, w)], 1)
        skips, segs, seg_in = [], [], onehot
        for conv, seg_conv in zip(self.enc, self.seg):
            x = F.leaky_relu(conv(x), 0.2)
            seg_in = F.avg_pool2d(seg_in, 2)                           # class fractions at this scale
            skips.append(x)
            segs.append(F.relu(seg_conv(seg_in)))
        for block in self.bottleneck:
            x = block(x, segs[-1], weather)
        for block, i in zip(self.dec, reversed(range(len(cfg.widths) - 1))):
            x = block(up2(x), segs[i], weather) + skips[i]
        x = F.leaky_relu(self.out_norm(up2(x), onehot, weather), 0.2)
        hallucinated = torch.tanh(self.out_conv(x))

        # vid2vid composition (Wang et al. 2018, eq. 4).
        m = mask.to(dtype)
        image = m * warped + (1 - m) * hallucinated
        return GeneratorOutput(image, total_flow, mask, hallucinated)


class RenderStep(nn.Module):
    """One inference step with the history as explicit inputs/outputs, shared by the torch backend and
    the ONNX export: returns (image, image_u8 (B, H, W, 3) uint8, next_frames, next_labels) where
    next_frames/next_labels are the K-1 most recent outputs/label maps for the next step."""

    def __init__(self, model: Vid2VidGenerator):
        super().__init__()
        self.model = model

    def forward(self, labels, prev_frames, flow, has_history, has_flow, weather=None):
        image = self.model(labels, prev_frames, flow, has_history, has_flow, weather).image
        next_frames = torch.cat([prev_frames[:, 1:], image.unsqueeze(1).to(prev_frames.dtype)], 1)
        # uint8 only at the graph's edges: TensorRT (and TensorRT-RTX) take uint8 as a network input or
        # output and as a Cast's output, never into another op, so the permute runs before the cast and
        # the label planes are sliced as float (exact for ids 0..255) and cast back.
        image_u8 = ((image.float() + 1.0) * 127.5).round().clamp(0, 255).permute(0, 2, 3, 1).to(torch.uint8)
        next_labels = labels.float()[:, 1:].to(torch.uint8)
        return image, image_u8, next_frames, next_labels


def build_generator(preset: str | GeneratorConfig, **overrides) -> Vid2VidGenerator:
    """A generator from a preset name (``PRESETS``) or config, with optional field overrides."""
    if isinstance(preset, GeneratorConfig):
        cfg = preset
    elif preset in PRESETS:
        cfg = PRESETS[preset]
    else:
        raise ValueError(f"unknown preset '{preset}': choose one of {sorted(PRESETS)}")
    if overrides:
        cfg = GeneratorConfig.from_dict({**cfg.to_dict(), **overrides})
    return Vid2VidGenerator(cfg)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: Vid2VidGenerator | GeneratorConfig, width: int, height: int) -> int:
    """FLOPs (2 x MACs of convs/matmuls, torch's FlopCounterMode) of one frame at width x height.
    Runs a weightless copy on the "meta" device: shapes only, no compute, any resolution in ~1 s."""
    from torch.utils.flop_counter import FlopCounterMode

    cfg = model.config if isinstance(model, Vid2VidGenerator) else model
    with torch.device("meta"):
        meta = Vid2VidGenerator(cfg)
        k = cfg.k
        args = (torch.zeros(1, k, height, width, dtype=torch.uint8), torch.zeros(1, k - 1, 3, height, width),
                torch.zeros(1, 2, height, width), torch.ones(1), torch.ones(1), torch.zeros(1, cfg.weather_dim))
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        meta(*args)
    return int(counter.get_total_flops())


def example_inputs(cfg: GeneratorConfig, width: int, height: int, batch: int = 1, device=None,
                   dtype: torch.dtype = torch.float32, seed: int | None = None) -> tuple[torch.Tensor, ...]:
    """Random valid inputs (labels uint8, prev_frames, flow, has_history=1, has_flow=1, and the weather
    in [0, 1] when the config takes it): RenderStep's inputs, in its order."""
    g = torch.Generator().manual_seed(0 if seed is None else seed)
    labels = torch.randint(0, cfg.num_classes, (batch, cfg.k, height, width), generator=g, dtype=torch.uint8)
    prev = torch.rand(batch, cfg.k - 1, 3, height, width, generator=g) * 2 - 1
    flow = torch.randn(batch, 2, height, width, generator=g) * 2
    ones = torch.ones(batch)
    weather = (torch.rand(batch, cfg.weather_dim, generator=g).to(device),) if cfg.weather_dim else ()
    return (labels.to(device), prev.to(device, dtype), flow.to(device), ones.to(device), ones.to(device), *weather)
