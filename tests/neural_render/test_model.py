"""The generator: shapes, ranges, the no-history path, presets, size checks, FLOP counting."""

import pytest
import torch

from neural_render.model import (PRESETS, GeneratorConfig, Vid2VidGenerator, build_generator, count_flops, count_params,
                                 example_inputs, one_hot)

W, H = 64, 32


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_generator("tiny").eval()


def test_output_shapes_and_ranges(model):
    with torch.no_grad():
        out = model(*example_inputs(model.config, W, H, batch=2))
    assert out.image.shape == (2, 3, H, W) and out.hallucinated.shape == (2, 3, H, W)
    assert out.flow.shape == (2, 2, H, W) and out.flow.dtype == torch.float32
    assert out.mask.shape == (2, 1, H, W)
    assert 0.0 <= float(out.mask.min()) and float(out.mask.max()) <= 1.0
    assert float(out.image.abs().max()) <= 1.0


def test_composition_equation(model):
    """y = m * warp(prev[-1], flow) + (1 - m) * h (vid2vid eq. 4)."""
    from neural_render.warp import warp
    labels, prev, flow, hist, hflow = example_inputs(model.config, W, H)
    with torch.no_grad():
        out = model(labels, prev, flow, hist, hflow)
    expected = out.mask * warp(prev[:, -1], out.flow) + (1 - out.mask) * out.hallucinated
    torch.testing.assert_close(out.image, expected, atol=1e-5, rtol=0)


def test_no_history_is_pure_hallucination(model):
    labels, prev, flow, _, hflow = example_inputs(model.config, W, H)
    zero = torch.zeros(1)
    with torch.no_grad():
        a = model(labels, prev, flow, zero, hflow)
        b = model(labels, torch.rand_like(prev), flow * 3, zero, hflow)  # history content must not leak
    assert float(a.mask.abs().max()) == 0.0
    torch.testing.assert_close(a.image, a.hallucinated)
    torch.testing.assert_close(a.image, b.image)


def test_nothing_is_reused_from_outside_the_previous_frame(model):
    """Pixels whose flow leaves the previous frame take the hallucinated image, whatever the mask branch says."""
    labels, prev, _, hist, hflow = example_inputs(model.config, W, H)
    flow = torch.zeros(1, 2, H, W)
    flow[:, 0, :, :8] = -20.0  # the 8 left columns come from beyond the left edge (a turn)
    with torch.no_grad():
        out = model(labels, prev, flow, hist, hflow)
    assert float(out.mask[..., :8].abs().max()) == 0.0
    torch.testing.assert_close(out.image[..., :8], out.hallucinated[..., :8])
    assert float(out.mask[..., 16:].min()) > 0.0  # in view: the learned mask still mixes the history in


def test_engine_flow_gated_by_has_flow(model):
    labels, prev, flow, hist, _ = example_inputs(model.config, W, H)
    with torch.no_grad():
        off = model(labels, prev, flow, hist, torch.zeros(1))
        off_zero = model(labels, prev, torch.zeros_like(flow), hist, torch.zeros(1))
    torch.testing.assert_close(off.image, off_zero.image)


def test_uint8_and_int64_labels_agree(model):
    labels, prev, flow, hist, hflow = example_inputs(model.config, W, H)
    with torch.no_grad():
        a = model(labels, prev, flow, hist, hflow).image
        b = model(labels.long(), prev, flow, hist, hflow).image
    torch.testing.assert_close(a, b)


def test_one_hot():
    ids = torch.tensor([[[[0, 2], [1, 28]]]], dtype=torch.uint8)
    hot = one_hot(ids, torch.arange(29), torch.float32)
    assert hot.shape == (1, 29, 2, 2)
    assert torch.equal(hot.argmax(1)[0], ids[0, 0].long()) and float(hot.sum()) == 4.0


def test_presets_and_sizes():
    assert set(PRESETS) >= {"tiny", "cpu", "gpu"}
    assert count_params(build_generator("tiny")) < 20_000
    for name in ("cpu", "gpu"):
        for v in PRESETS[name].widths:
            assert v % 8 == 0
    m = PRESETS["cpu"].multiple
    with pytest.raises(ValueError, match=f"multiples of {m} \\(the nearest: {4 * m}x{2 * m}\\)"):
        PRESETS["cpu"].check_size(4 * m - 1, 2 * m - 1)  # the suggestion rounds to the nearest, not down
    with pytest.raises(ValueError, match="unknown preset"):
        build_generator("huge")
    with pytest.raises(ValueError, match="unknown fields"):
        GeneratorConfig.from_dict({"name": "x", "bogus": 1})


def test_flops_cpu_preset_budget():
    gflops = count_flops(PRESETS["cpu"], 256, 128) / 1e9
    assert 0.5 <= gflops <= 1.5, gflops
    assert count_flops(PRESETS["tiny"], W, H) > 0


def test_config_round_trip():
    cfg = PRESETS["cpu"]
    assert GeneratorConfig.from_dict(cfg.to_dict()) == cfg
    assert isinstance(Vid2VidGenerator(PRESETS["tiny"]), torch.nn.Module)


def test_the_size_rule_holds_for_training_and_tools_too():
    """The bottleneck check lives in GeneratorConfig.check_size, which train and bench call directly."""
    with pytest.raises(ValueError, match="too small for preset 'cpu'.*at least 16x8"):
        build_generator("cpu").config.check_size(8, 8)
    build_generator("tiny").config.check_size(8, 8)  # its bottleneck is 1/4: 2x2 pixels run fine
