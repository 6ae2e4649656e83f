"""Stored expected outputs for a fixed seed (diffusers style): any change to the network's maths,
init or input handling shows up here. If a change is intended, regenerate with
`python tests/test_model_expected.py` and commit the new numbers with the change."""

import torch

from neural_render.model import RenderStep, build_generator

# Generated once by running this file (torch 2.13 CPU); see the docstring.
EXPECTED = {
    "frame0": {"slice": [-0.66316, -0.62058, -0.52775, 0.26451, 0.32533, 0.30746, -0.09689, -0.15652, -0.25578],
               "sum": 141.575, "abs_sum": 2430.097},
    "frame1": {"slice": [-0.02602, -0.04169, -0.01488, 0.26308, 0.28674, 0.18806, -0.07921, -0.07377, -0.06742],
               "sum": 139.975, "abs_sum": 2132.487},
}


def run_two_frames() -> tuple[torch.Tensor, torch.Tensor]:
    torch.manual_seed(1234)
    model = build_generator("tiny").eval()
    # The flow head starts at zero (no residual, mask 0.5); give it weights so the test covers it.
    torch.nn.init.normal_(model.flow_branch.head.weight, std=0.05)
    step = RenderStep(model)
    g = torch.Generator().manual_seed(99)
    h, w, k = 32, 64, model.config.k
    first = torch.randint(0, 29, (1, 1, h, w), generator=g, dtype=torch.uint8)
    labels = first.repeat(1, k, 1, 1)
    prev = torch.zeros(1, k - 1, 3, h, w)
    flow = torch.zeros(1, 2, h, w)
    with torch.no_grad():
        img0, _, prev, next_labels = step(labels, prev, flow, torch.zeros(1), torch.zeros(1))
        new = torch.randint(0, 29, (1, 1, h, w), generator=g, dtype=torch.uint8)
        flow = torch.randn(1, 2, h, w, generator=g)
        img1, _, _, _ = step(torch.cat([next_labels, new], 1), prev, flow, torch.ones(1), torch.ones(1))
    return img0, img1


def summary(img: torch.Tensor) -> dict:
    return {"slice": [round(float(v), 5) for v in img[0, :, 10, 20:23].flatten()],
            "sum": round(float(img.sum()), 3), "abs_sum": round(float(img.abs().sum()), 3)}


def test_expected_values():
    img0, img1 = run_two_frames()
    for name, img in (("frame0", img0), ("frame1", img1)):
        got = summary(img)
        want = EXPECTED[name]
        torch.testing.assert_close(torch.tensor(got["slice"]), torch.tensor(want["slice"]), atol=1e-4, rtol=0)
        assert abs(got["sum"] - want["sum"]) < 1e-2, (name, got["sum"], want["sum"])
        assert abs(got["abs_sum"] - want["abs_sum"]) < 1e-2, (name, got["abs_sum"], want["abs_sum"])


if __name__ == "__main__":
    a, b = run_two_frames()
    print({"frame0": summary(a), "frame1": summary(b)})
