"""The shipped model, models/cpu.safetensors: it loads as the `cpu` preset, renders a fixed-seed drive
of the procedural world to the values stored below (diffusers style), and the ONNX Runtime backend
agrees with PyTorch on it. After retraining, print new values with
`PYTHONPATH=. python tests/test_shipped_model.py`.
"""

import numpy as np

from neural_render.checkpoint import default_model_path, load_generator

SHIPPED = default_model_path("cpu")
SEED, SIZE, FRAMES = 1_000_003, (128, 64), 4  # a held-out seed (neural_render.train.splits)
PIXELS = [(5, 10), (20, 64), (40, 30), (50, 100), (60, 5), (32, 127)]  # (row, column)

# Rendered on a 2-core x86-64 CPU, torch 2.13 fp32. Other CPUs may round differently: the bounds allow
# a few grey levels, far below what a changed model or a broken history would give.
EXPECTED_MEAN_RGB = [105.585, 121.466, 129.714]
EXPECTED_PIXELS = [[18, 34, 13], [134, 171, 225], [90, 116, 38], [93, 93, 98], [96, 96, 104], [124, 145, 135]]


def render_fixed_drive(backend: str = "torch") -> np.ndarray:
    """The last of FRAMES frames of an autopilot drive on SEED, rendered with history."""
    from carla_bridge.core.frames import Control
    from carla_bridge.procedural import ProceduralWorld, WorldConfig
    from neural_render.runtime import Renderer

    renderer = Renderer(SHIPPED, backend=backend, device="cpu", precision="fp32", size=SIZE)
    with ProceduralWorld(WorldConfig(width=SIZE[0], height=SIZE[1], seed=SEED, threads=1)) as world:
        frame = world.reset(seed=SEED)
        image = renderer.render(frame)
        for _ in range(FRAMES - 1):
            frame = world.step(Control(autopilot=True))
            image = renderer.render(frame)
    return image


def test_shipped_weights_load_as_the_cpu_preset():
    assert SHIPPED.exists(), f"{SHIPPED} is missing: the default model of launch.py must ship"
    assert SHIPPED.stat().st_size <= 20 * 2**20
    assert load_generator(SHIPPED).config.name == "cpu"


def test_shipped_calibration_was_fitted_on_validation_seeds_only():
    """models/cpu.md reports test-seed figures: the one post-training choice must not have seen them."""
    from neural_render.checkpoint import read_metadata
    from neural_render.train.splits import EVAL_SEED_BASE, VALIDATION_SEED_BASE

    calibration = read_metadata(SHIPPED)[1]["calibration"]
    assert calibration["split"] == "validation" and min(calibration["seeds"]) >= VALIDATION_SEED_BASE > EVAL_SEED_BASE
    assert calibration["mask_logit_offset"] in [point["offset"] for point in calibration["curve"]]


def test_shipped_model_renders_the_stored_values():
    image = render_fixed_drive("torch")
    assert image.shape == (SIZE[1], SIZE[0], 3) and image.dtype == np.uint8
    np.testing.assert_allclose(image.reshape(-1, 3).mean(0), EXPECTED_MEAN_RGB, atol=1.0)
    got = np.array([image[r, c] for r, c in PIXELS], dtype=np.int32)
    assert np.abs(got - np.array(EXPECTED_PIXELS)).max() <= 4, got.tolist()


def test_onnxruntime_matches_torch_on_the_shipped_weights():
    torch_image = render_fixed_drive("torch").astype(np.int32)
    ort_image = render_fixed_drive("onnxruntime").astype(np.int32)
    assert np.abs(torch_image - ort_image).max() <= 2


if __name__ == "__main__":
    image = render_fixed_drive("torch")
    print("EXPECTED_MEAN_RGB =", [round(float(v), 3) for v in image.reshape(-1, 3).mean(0)])
    print("EXPECTED_PIXELS =", [image[r, c].tolist() for r, c in PIXELS])
