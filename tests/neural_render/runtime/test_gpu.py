"""CUDA paths of the torch backend (skipped without a GPU): fp16/bf16 agree with CPU fp32, and
torch.compile (CUDA graphs) renders the same frames as eager."""

import types

import numpy as np
import pytest
import torch

from neural_render.runtime import Renderer
from support.runtime import tiny_generator_with_flow

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
W, H = 128, 64


def frames(n):
    rng = np.random.default_rng(0)
    return [types.SimpleNamespace(labels=rng.integers(0, 29, (H, W), dtype=np.uint8),
                                  flow=rng.standard_normal((H, W, 2)).astype(np.float32), cut=i == 0)
            for i in range(n)]


@pytest.fixture(scope="module")
def model():
    return tiny_generator_with_flow()


@pytest.mark.parametrize("precision,tol", [("fp32", 1), ("fp16", 2), ("bf16", 8)])
def test_cuda_matches_cpu(model, precision, tol):
    ref = Renderer(model, backend="torch", device="cpu", size=(W, H))
    gpu = Renderer(model, backend="torch", device="cuda", precision=precision, size=(W, H))
    for f in frames(5):
        assert np.abs(ref.render(f).astype(int) - gpu.render(f).astype(int)).max() <= tol


def test_compiled_matches_eager(model):
    eager = Renderer(model, backend="torch", device="cuda", precision="fp16", size=(W, H))
    compiled = Renderer(model, backend="torch", device="cuda", precision="fp16", size=(W, H), compile=True)
    for f in frames(5):
        assert np.abs(eager.render(f).astype(int) - compiled.render(f).astype(int)).max() <= 2


def test_pageable_staging_renders_the_same_frames(model):
    """The perf suite's pageable-staging path changes only how bytes cross the bus."""
    pinned = Renderer(model, backend="torch", device="cuda", size=(W, H))
    pageable = Renderer(model, backend="torch", device="cuda", size=(W, H))
    pageable._backend.history.stage_on_host(pinned=False)
    assert pinned._backend.history.pinned and not pageable._backend.history.pinned
    for f in frames(4):
        assert np.array_equal(pinned.render(f), pageable.render(f))
