"""One training step of the recurrent generator on a batch of clips (vid2vid, Wang et al. 2018).

Per step: unroll the generator over the clip (``Rollout``, as at play time), update the image and
temporal discriminators on detached outputs, then the generator on the weighted loss sum, average
gradients over ranks, clip them, step Adam, update the EMA generator. AMP on CUDA (bf16, or fp16 with
a GradScaler). All randomness of a step (flow dropout) comes from (seed, step, rank), and the data
from the sample index, so resuming reproduces an uninterrupted run exactly.
"""

from __future__ import annotations

import copy
import math
from contextlib import nullcontext

import torch

from carla_bridge.core.weather import WEATHER_DIM
from neural_render.checkpoint import load_generator
from neural_render.metrics import occlusion_mask
from neural_render.model import build_generator
from neural_render.train import losses as L
from neural_render.train.clip import Clip, clip_length, slice_clip
from neural_render.train.config import TrainConfig, learning_rate
from neural_render.train.ddp import DistInfo, average_gradients, broadcast_module, ranks_with
from neural_render.train.discriminators import ImageDiscriminator, TemporalDiscriminator
from neural_render.train.rollout import Rollout
from neural_render.train.splits import mix
from neural_render.train.vgg import VGGLoss


class Trainer:
    def __init__(self, cfg: TrainConfig, dist: DistInfo | None = None) -> None:
        self.cfg, self.dist = cfg, dist or DistInfo()
        self.device = torch.device(cfg.device)
        torch.manual_seed(cfg.seed)  # identical initial weights on every rank and every run
        # --weather all draws a preset per clip: the generator then takes the weather (model.SPADE's FiLM).
        weather_dim = WEATHER_DIM if cfg.weather == "all" else 0
        self.G = build_generator(cfg.preset, weather_dim=weather_dim).to(self.device)
        self.G.config.check_size(*cfg.res)
        if cfg.init:  # a CheckpointError (ValueError) names the file when it is not this preset's
            start = load_generator(cfg.init, preset=cfg.preset)
            # A model trained without weather starts a weather one exactly: its weather maps start at zero.
            strict = start.config.weather_dim == weather_dim
            self.G.load_state_dict(start.state_dict(), strict=strict)
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False)
        self.k = self.G.config.k
        w = cfg.weights
        self.D_img = self.D_tmp = self.opt_d = None
        if w.gan > 0 or w.feature_matching > 0:
            self.D_img = ImageDiscriminator(cfg.d_filters, cfg.d_layers, cfg.d_scales).to(self.device)
        if w.temporal_gan > 0:
            self.D_tmp = TemporalDiscriminator(self.k, cfg.d_filters, cfg.d_layers, cfg.d_scales).to(self.device)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=cfg.betas)
        d_params = [p for d in (self.D_img, self.D_tmp) if d is not None for p in d.parameters()]
        if d_params:
            self.opt_d = torch.optim.Adam(d_params, lr=cfg.lr_d, betas=cfg.betas)
        self.vgg = VGGLoss(cfg.vgg_weights).to(self.device) if cfg.vgg_weights and w.vgg > 0 else None
        self.amp_dtype = self._amp_dtype()
        self.scaler = torch.amp.GradScaler("cuda") if self.amp_dtype == torch.float16 else None
        self.step = 0
        self.resumed_from: dict | None = None  # the training state info a resume loaded (state.load_state)

    def sync_replicas(self) -> None:
        """Copy rank 0's networks to every rank (no-op without a process group). Called by the loop once
        every rank has set up without error: a collective here, in the constructor, left the other ranks
        waiting when one rank failed before it (a --vgg-weights file missing on one machine)."""
        for module in (self.G, self.G_ema, self.D_img, self.D_tmp):
            broadcast_module(module)

    def _amp_dtype(self) -> torch.dtype | None:
        if self.device.type != "cuda" or self.cfg.amp == "off":
            return None
        if self.cfg.amp == "fp16" or (self.cfg.amp == "auto" and not torch.cuda.is_bf16_supported()):
            return torch.float16
        return torch.bfloat16

    def _autocast(self):
        if self.amp_dtype is None:
            return nullcontext()
        return torch.autocast(device_type="cuda", dtype=self.amp_dtype)

    def _to_device(self, batch: Clip) -> dict[str, torch.Tensor]:
        length = min(self.cfg.schedule.length(self.step), clip_length(batch))
        if length < clip_length(batch):
            batch = slice_clip(batch, 0, length)
        d = {k: v.to(self.device, non_blocking=True) for k, v in batch.items()}
        d["real"] = d["rgb"].float() / 127.5 - 1.0
        d.setdefault("labels_clean", d["labels"])
        return d

    def train_step(self, batch: Clip) -> dict[str, float]:
        cfg = self.cfg
        d = self._to_device(batch)
        b, t_len = d["labels"].shape[:2]
        self._set_learning_rates()
        # Flow dropout: some clips hide the engine flow from the generator (as CARLA without the flow
        # camera, or Cityscapes) so the flow branch learns to predict it; the losses still see it.
        g = torch.Generator().manual_seed(mix(cfg.seed, self.step, self.dist.rank, 7))
        keep = (torch.rand(b, generator=g) >= cfg.flow_dropout).float().to(self.device)
        self.G.train()
        rollout = Rollout(self.G, history=cfg.history, detach=True)
        outs = []
        with self._autocast():
            for t in range(t_len):
                has_flow = d["has_flow"][:, t] * keep
                outs.append(rollout.step(d["labels"][:, t], d["flow"][:, t], has_flow, cut=t == 0,
                                         weather=d["weather"][:, t]))
        fakes = torch.stack([o.image.float() for o in outs], 1)  # (B, T, 3, H, W)
        logs: dict[str, float] = {}
        if self.opt_d is not None:
            logs.update(self._discriminator_step(d, fakes.detach()))
        loss, parts = self._generator_loss(d, outs, fakes)
        logs.update(parts)
        self._backward_and_step(loss, self.opt_g, self.G)
        self._update_ema()
        self.step += 1
        logs["loss_g"] = float(loss.detach())
        logs["lr_g"] = self.opt_g.param_groups[0]["lr"]
        return logs

    def _set_learning_rates(self) -> None:
        # Every step, from the config: this also makes a resumed run take the --lr it was given
        # rather than the rate stored in the optimizer state it loaded.
        cfg = self.cfg
        for opt, base in ((self.opt_g, cfg.lr_g), (self.opt_d, cfg.lr_d)):
            if opt is not None:
                for group in opt.param_groups:
                    group["lr"] = learning_rate(base, self.step, cfg.steps, cfg.lr_decay_steps)

    # -- discriminators ---------------------------------------------------------------------------
    def _temporal_windows(self, d, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        t_len, k = images.shape[1], self.k
        if t_len < k:
            return None
        frames = torch.cat([images[:, s : s + k] for s in range(t_len - k + 1)])
        flows = torch.cat([d["flow"][:, s + 1 : s + k] * d["has_flow"][:, s + 1 : s + k, None, None, None]
                           for s in range(t_len - k + 1)])
        return frames, flows

    def _discriminator_step(self, d, fakes: torch.Tensor) -> dict[str, float]:
        cfg = self.cfg
        labels = d["labels"].flatten(0, 1)
        with self._autocast():
            loss = torch.zeros((), device=self.device)
            if self.D_img is not None:
                real_s = self.D_img.score(labels, d["real"].flatten(0, 1))
                fake_s = self.D_img.score(labels, fakes.flatten(0, 1))
                loss = loss + L.gan_d_loss(real_s, fake_s, cfg.gan_mode)
            real_w, fake_w = self._temporal_windows(d, d["real"]), self._temporal_windows(d, fakes)
            if self.D_tmp is not None and real_w is not None:
                loss = loss + L.gan_d_loss(self.D_tmp.score(*real_w), self.D_tmp.score(*fake_w), cfg.gan_mode)
        if not loss.requires_grad:
            # Only a temporal D, and the clip is shorter than its K frames (the first steps of the
            # progressive schedule): nothing to train it on. An Adam step on zero gradients would still
            # move it (momentum). Every rank has the same clip length, so all skip together.
            return {}
        params = [m for m in (self.D_img, self.D_tmp) if m is not None]
        self._backward_and_step(loss, self.opt_d, *params)
        return {"loss_d": float(loss.detach())}

    # -- generator --------------------------------------------------------------------------------
    def _generator_loss(self, d, outs, fakes) -> tuple[torch.Tensor, dict[str, float]]:
        cfg, w = self.cfg, self.cfg.weights
        real, t_len = d["real"], fakes.shape[1]
        terms: dict[str, torch.Tensor] = {}

        def add(name: str, weight: float, value: torch.Tensor) -> None:
            if weight > 0:
                terms[name] = terms.get(name, 0.0) + weight * value / t_len

        for t, out in enumerate(outs):
            add("l1", w.l1, L.reconstruction(out.image, real[:, t]))
            add("ssim", w.ssim, L.ssim_loss(out.image, real[:, t]))
            if self.vgg is not None:
                add("vgg", w.vgg, self.vgg(out.image.float(), real[:, t]))
            if t == 0 or not cfg.history:
                continue  # no history: no flow, mask or temporal terms
            flow = d["flow"][:, t]
            known = d["has_flow"][:, t].view(-1, 1, 1, 1)
            depth_ok = (d["has_depth"][:, t] * d["has_depth"][:, t - 1]).view(-1, 1, 1)
            valid = occlusion_mask(
                flow, d["labels_clean"][:, t], d["labels_clean"][:, t - 1],
                d["depth"][:, t] * depth_ok + (1 - depth_ok) * 1e6, d["depth"][:, t - 1] * depth_ok + (1 - depth_ok) * 1e6,
            ) * known
            add("flow", w.flow, L.flow_l1(out.flow, flow, valid))
            # Where the engine flow is unknown (Cityscapes) vid2vid's unmasked flow-warp loss still applies.
            warp_mask = valid + (1 - known) * torch.ones_like(valid)
            add("flow_warp", w.flow_warp, L.flow_warp(out.flow, real[:, t - 1], real[:, t], warp_mask))
            warped_prev = L.warp(fakes[:, t - 1].detach(), out.flow)
            add("mask", w.mask, L.mask_loss(out.mask, warped_prev, real[:, t]))
            add("warp", w.warp, L.temporal_warp(out.image, fakes[:, t - 1], flow, valid))
        if self.D_img is not None:
            with self._autocast():
                labels = d["labels"].flatten(0, 1)
                self.D_img.requires_grad_(False)
                fake_s = self.D_img.score(labels, fakes.flatten(0, 1))
                real_s = self.D_img.score(labels, real.flatten(0, 1)) if w.feature_matching > 0 else None
                self.D_img.requires_grad_(True)
            add("gan", w.gan * t_len, L.gan_g_loss(fake_s, cfg.gan_mode))
            if real_s is not None:
                add("feature_matching", w.feature_matching * t_len, L.feature_matching(real_s, fake_s))
        fake_w = self._temporal_windows(d, fakes)
        if self.D_tmp is not None and fake_w is not None:
            with self._autocast():
                self.D_tmp.requires_grad_(False)
                score = self.D_tmp.score(*fake_w)
                self.D_tmp.requires_grad_(True)
            add("temporal_gan", w.temporal_gan * t_len, L.gan_g_loss(score, cfg.gan_mode))
        total = sum(terms.values())
        return total, {name: float(v.detach()) for name, v in terms.items()}

    # -- optimisation -----------------------------------------------------------------------------
    def _backward_and_step(self, loss: torch.Tensor, opt: torch.optim.Optimizer, *modules) -> None:
        finite = bool(torch.isfinite(loss))
        if self.dist.enabled:
            # Every rank learns whether any rank's loss is not finite (each trains on its own clips): a
            # rank that raised alone left the others waiting in the gradient all-reduce below.
            bad = ranks_with(not finite, str(self.device))
            if bad:
                raise FloatingPointError(f"step {self.step}: loss is not finite on rank {', '.join(map(str, bad))}; "
                                         "lower --lr or use --amp off")
        elif not finite:
            raise FloatingPointError(f"step {self.step}: loss is {float(loss)}; lower --lr or use --amp off")
        opt.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            self.scaler.unscale_(opt)
        else:
            loss.backward()
        for m in modules:
            average_gradients(m)
        params = [p for group in opt.param_groups for p in group["params"]]
        torch.nn.utils.clip_grad_norm_(params, self.cfg.grad_clip)
        if self.scaler is not None:
            self.scaler.step(opt)
            self.scaler.update()
        else:
            opt.step()

    @torch.no_grad()
    def _update_ema(self) -> None:
        # Model averaging (imaginaire model_average, Karras et al. 2018): beta ramps up from 0 so the
        # EMA is usable after minutes, not only after thousands of steps.
        beta = min(self.cfg.ema_beta, (1 + self.step) / (10 + self.step))
        for e, p in zip(self.G_ema.parameters(), self.G.parameters()):
            e.lerp_(p.detach(), 1 - beta)
        for e, p in zip(self.G_ema.buffers(), self.G.buffers()):
            e.copy_(p)

    def throughput_frames(self, batch: Clip) -> int:
        """Frames trained on by one step on all ranks."""
        return min(self.cfg.schedule.length(self.step), clip_length(batch)) * self.cfg.batch * self.dist.world_size


def is_finite(logs: dict[str, float]) -> bool:
    return all(math.isfinite(v) for v in logs.values())
