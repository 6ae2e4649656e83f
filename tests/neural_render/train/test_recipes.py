"""The recipes beyond fast and vid2vid: sharp (a GAN fine-tune started from other weights with
--init) and framewise (the frame-by-frame baseline: history off, no temporal term)."""

from __future__ import annotations

import pytest
import torch

from neural_render.checkpoint import load_generator, save_generator
from neural_render.model import build_generator
from neural_render.train.__main__ import main as train_main
from neural_render.train.config import resolve
from neural_render.train.loop import train


def _cfg(recipe: str, steps: int = 2, **kw):
    cfg = resolve("tiny", recipe, steps=steps, sample_every=0, ckpt_every=0, log_every=1, **kw)
    cfg.warmup_max = 2
    return cfg


def test_framewise_trains_the_image_branch_only(tmp_path):
    """History off: the flow branch and the fusion mask never take part, so their weights stay as
    initialised, while the image branch learns."""
    torch.manual_seed(0)
    initial = build_generator("tiny").state_dict()
    after = train(_cfg("framewise"), tmp_path, show_progress=False).G.state_dict()
    flow_keys = [k for k in initial if k.startswith("flow_branch.")]
    assert flow_keys and all(torch.equal(initial[k], after[k]) for k in flow_keys)
    assert any(not torch.equal(initial[k], after[k]) for k in initial if k.startswith("dec."))


def test_sharp_starts_from_the_init_weights_and_trains_with_discriminators(tmp_path):
    start = build_generator("tiny")
    torch.nn.init.normal_(next(start.parameters()), std=0.5)  # unlike any seed's initial weights
    init = save_generator(start, tmp_path / "start.safetensors")
    untrained = train(_cfg("sharp", steps=0, init=str(init)), tmp_path / "zero", show_progress=False)
    assert all(torch.equal(a, b) for a, b in zip(untrained.G.state_dict().values(), start.state_dict().values()))
    trainer = train(_cfg("sharp", init=str(init)), tmp_path / "run", show_progress=False)
    assert trainer.D_img is not None and trainer.D_tmp is not None
    trained = load_generator(tmp_path / "run").state_dict()
    assert any(not torch.equal(trained[k], v) for k, v in start.state_dict().items())


@pytest.mark.parametrize("extra, needle", [
    (["--out", "{tmp}/new", "--init", "{tmp}/cpu.safetensors"],
     "holds a 'cpu' generator but preset 'tiny' was asked for"),
    (["--out", "{tmp}/run", "--init", "{tmp}/start.safetensors", "--resume"], "--init starts a new run"),
])
def test_a_bad_init_is_a_one_line_error_before_any_step(tmp_path, capsys, extra, needle):
    save_generator(build_generator("cpu"), tmp_path / "cpu.safetensors")
    save_generator(build_generator("tiny"), tmp_path / "start.safetensors")
    train(_cfg("fast", steps=1), tmp_path / "run", show_progress=False)
    capsys.readouterr()
    argv = ["--preset", "tiny", "--steps", "2", "--no-progress", "--recipe", "sharp"]
    assert train_main(argv + [arg.format(tmp=tmp_path) for arg in extra]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err
    assert not (tmp_path / "new").exists()
