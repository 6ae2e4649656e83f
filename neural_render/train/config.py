"""Training configuration: one dataclass, named presets (sizes per generator preset) and recipes (loss
weights), EDM2 style: preset defaults, then the recipe, then command-line overrides; the resolved
config is saved as JSON beside every checkpoint, and a --resume starts from that saved config instead
(``continue_config``): only the flags it is given change the run.

Loss weights follow NVlabs imaginaire's vid2vid configs (configs/projects/vid2vid/cityscapes: gan 1,
feature_matching 10, flow 10 (flow L1, flow warp and mask), Adam lr 2e-4 betas (0.5, 0.999), EMA 0.999,
hinge GAN, 2-scale 3-layer 64-filter image D). Without a VGG file the perceptual term (10) is replaced
by L1 (pix2pixHD-style). ``fast`` trades the GAN for strong L1 + SSIM: it reaches high PSNR/SSIM
against the engine image in minutes, which is what the shipped real-time model needs.
"""

from __future__ import annotations

import copy
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from neural_render.train.augment import AugmentConfig
from neural_render.train.data_procedural import SequenceSchedule


@dataclass
class LossWeights:
    l1: float = 10.0
    ssim: float = 0.0
    gan: float = 1.0
    feature_matching: float = 10.0
    temporal_gan: float = 1.0
    flow: float = 10.0  # flow L1 vs engine flow
    flow_warp: float = 10.0  # warp(real_{t-1}, predicted flow) vs real_t
    mask: float = 10.0
    warp: float = 1.0  # temporal: output_t vs warp(output_{t-1}, engine flow), non-occluded
    vgg: float = 0.0  # only with --vgg-weights FILE

    @property
    def uses_discriminators(self) -> bool:
        return self.gan > 0 or self.feature_matching > 0 or self.temporal_gan > 0


RECIPES: dict[str, dict[str, Any]] = {
    # Reconstruction-heavy: no discriminators, fast and stable; what the shipped model is trained with.
    "fast": dict(
        weights=LossWeights(l1=10.0, ssim=3.0, gan=0.0, feature_matching=0.0, temporal_gan=0.0,
                            flow=10.0, flow_warp=10.0, mask=10.0, warp=3.0),
        lr_g=5e-4, lr_d=5e-4,
    ),
    # The full vid2vid objective (image + temporal PatchGANs, feature matching), imaginaire's weights.
    "vid2vid": dict(weights=LossWeights(), lr_g=2e-4, lr_d=2e-4),
    # Fine-tuning a reconstruction-trained model (--init) for texture: the vid2vid objective with the
    # reconstruction kept small, so the discriminators, not the blurry mean of L1, decide the detail;
    # the temporal terms stay, so sharpness does not come as flicker. A quarter of vid2vid's rate: the
    # generator starts good, and a hinge GAN on a pretrained G diverges at full rate on batch 2.
    "sharp": dict(weights=LossWeights(l1=2.0, ssim=1.0, gan=1.0, feature_matching=10.0, temporal_gan=1.0,
                                      flow=10.0, flow_warp=10.0, mask=10.0, warp=3.0),
                  lr_g=5e-5, lr_d=2e-4),
    # The honest frame-by-frame baseline: the same network trained with its history off (every frame
    # as after a cut) and no temporal term at all, as a single-frame pix2pixHD/SPADE model is trained.
    "framewise": dict(weights=LossWeights(l1=10.0, ssim=3.0, gan=0.0, feature_matching=0.0, temporal_gan=0.0,
                                          flow=0.0, flow_warp=0.0, mask=0.0, warp=0.0),
                      lr_g=5e-4, lr_d=5e-4, history=False),
}

PRESET_DEFAULTS: dict[str, dict[str, Any]] = {
    "tiny": dict(res=(64, 32), batch=1, d_filters=16, d_layers=2, d_scales=2,
                 schedule=SequenceSchedule(2, 3, 50), workers=0, warmup_max=3),
    "cpu": dict(res=(256, 128), batch=2, d_filters=32, d_layers=3, d_scales=2,
                schedule=SequenceSchedule(2, 6, 500), workers=1, warmup_max=8),
    "gpu": dict(res=(512, 256), batch=4, d_filters=64, d_layers=3, d_scales=2,
                schedule=SequenceSchedule(4, 8, 2000), workers=8, warmup_max=40),
}


@dataclass
class TrainConfig:
    preset: str = "cpu"
    recipe: str = "fast"
    data: str = "procedural"  # procedural | replay | cityscapes
    data_path: str | None = None
    res: tuple[int, int] = (256, 128)
    batch: int = 2
    steps: int = 1000
    seed: int = 0
    device: str = "cpu"
    workers: int = 1
    lr_g: float = 5e-4
    lr_d: float = 5e-4
    # pix2pixHD / vid2vid's ``niter_decay``: keep the learning rate for the first ``steps - lr_decay_steps``
    # steps, then decay it linearly to zero at ``steps`` (0: constant throughout). See ``learning_rate``.
    lr_decay_steps: int = 0
    betas: tuple[float, float] = (0.5, 0.999)
    ema_beta: float = 0.999
    grad_clip: float = 10.0
    amp: str = "auto"  # auto (bf16 on CUDA when supported, else fp16 + GradScaler) | bf16 | fp16 | off
    gan_mode: str = "hinge"  # hinge | lsgan
    flow_dropout: float = 0.2  # train some clips without engine flow so the flow branch learns too
    d_filters: int = 64
    d_layers: int = 3
    d_scales: int = 2
    warmup_max: int = 20
    weather: str = "default"  # procedural weather: default | all | preset index (see data_procedural)
    weights: LossWeights = field(default_factory=LossWeights)
    schedule: SequenceSchedule = field(default_factory=SequenceSchedule)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    vgg_weights: str | None = None
    sample_every: int = 200
    ckpt_every: int = 500
    log_every: int = 10
    time_limit_min: float | None = None
    history: bool = True  # False: the generator never sees its past outputs (the framewise recipe)
    init: str | None = None  # a checkpoint of the same preset whose weights a new run starts from

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        data = dict(data)
        data["weights"] = LossWeights(**data.get("weights", {}))
        data["schedule"] = SequenceSchedule(**data.get("schedule", {}))
        data["augment"] = AugmentConfig(**data.get("augment", {}))
        data["res"] = tuple(data.get("res", (256, 128)))
        data["betas"] = tuple(data.get("betas", (0.5, 0.999)))
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"train config: unknown fields {sorted(unknown)}")
        return cls(**data)


def learning_rate(base: float, step: int, steps: int, decay_steps: int) -> float:
    """Learning rate of optimizer step ``step`` (0-based) out of ``steps``: ``base`` until the last
    ``decay_steps`` steps, then linear to zero: the niter / niter_decay schedule of pix2pixHD and vid2vid
    (and CycleGAN, Zhu et al. 2017, appendix 7.1), counted in steps instead of epochs."""
    if decay_steps <= 0:
        return base
    remaining = steps - step  # steps still to take, this one included
    return base * min(1.0, max(remaining, 0) / decay_steps)


def resolve(preset: str, recipe: str, **overrides: Any) -> TrainConfig:
    """Preset defaults, then the recipe, then explicit overrides (None values are ignored)."""
    if preset not in PRESET_DEFAULTS:
        raise ValueError(f"--preset must be one of {sorted(PRESET_DEFAULTS)}, got {preset!r}")
    if recipe not in RECIPES:
        raise ValueError(f"--recipe must be one of {sorted(RECIPES)}, got {recipe!r}")
    values: dict[str, Any] = {"preset": preset, "recipe": recipe}
    values.update(copy.deepcopy(PRESET_DEFAULTS[preset]))  # copies: a run never edits the tables
    values.update(copy.deepcopy(RECIPES[recipe]))
    values.update({k: v for k, v in overrides.items() if v is not None})
    return check(TrainConfig(**values))


def continue_config(saved: dict[str, Any], **overrides: Any) -> TrainConfig:
    """The config of a --resume: the run's own (``saved`` with its checkpoint), then explicit overrides
    (None values are ignored). Not the preset defaults: a resume that repeats only --steps must not undo
    a fine-tune's --lr, --lr-decay-steps and --loss-weight. --time-limit is this command's, never the run's."""
    try:
        cfg = TrainConfig.from_dict(saved)
    except (TypeError, ValueError) as error:  # a field this version no longer has, or a damaged value
        raise ValueError(f"--resume: the run's saved settings do not fit this version ({error}); continue it "
                         f"with the version that started it, or start over with --overwrite") from None
    cfg.time_limit_min = None
    for name, value in overrides.items():
        if value is not None:
            setattr(cfg, name, copy.deepcopy(value))
    return check(cfg)


def check(cfg: TrainConfig) -> TrainConfig:
    """``cfg`` when its settings can train; else ValueError naming the flag."""
    if cfg.data not in ("procedural", "replay", "cityscapes"):
        raise ValueError(f"--data must be procedural, replay or cityscapes, got {cfg.data!r}")
    if cfg.data != "procedural" and not cfg.data_path:
        raise ValueError(f"--data {cfg.data} needs --data-path (a folder of sessions or a Cityscapes root)")
    if cfg.batch < 1 or cfg.steps < 0:
        raise ValueError(f"--batch must be >= 1 and --steps >= 0, got {cfg.batch} and {cfg.steps}")
    if cfg.weather not in ("default", "all") and not str(cfg.weather).isdigit():
        raise ValueError(f"--weather must be default, all or a preset index, got {cfg.weather!r}")
    if cfg.lr_decay_steps < 0:
        raise ValueError(f"--lr-decay-steps must be >= 0, got {cfg.lr_decay_steps}")
    if cfg.amp not in ("auto", "bf16", "fp16", "off"):
        raise ValueError(f"--amp must be auto, bf16, fp16 or off, got {cfg.amp!r}")
    return cfg
