"""neural_render.train.raw_weights: a run's optimizer weights (not the EMA) as an ordinary checkpoint."""

import shutil

import pytest
import torch

from neural_render.checkpoint import load_generator, read_metadata
from neural_render.train.config import resolve
from neural_render.train.loop import train
from neural_render.train.raw_weights import main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    cfg = resolve("tiny", "fast", steps=3, sample_every=0, ckpt_every=0, log_every=1)
    cfg.warmup_max = 2
    trainer = train(cfg, out, show_progress=False)
    return out, trainer


def test_writes_the_raw_generator_with_its_step_and_says_so(run, tmp_path, capsys):
    folder, trainer = run
    out = tmp_path / "raw.safetensors"
    assert main(["--run", str(folder), "--out", str(out)]) == 0
    assert "step 3" in capsys.readouterr().out
    raw, ema = load_generator(out).state_dict(), trainer.G_ema.state_dict()
    assert all(torch.equal(value, trainer.G.state_dict()[key]) for key, value in raw.items())
    assert any(not torch.equal(value, ema[key]) for key, value in raw.items())  # not the EMA file again
    meta = read_metadata(out)[1]
    assert meta["weights"] == "raw" and meta["step"] == 3 and meta["train_config"]["preset"] == "tiny"


def test_refuses_a_folder_without_a_state_and_an_existing_out(run, tmp_path, capsys):
    folder, _ = run
    assert main(["--run", str(tmp_path), "--out", str(tmp_path / "raw.safetensors")]) == 2
    assert "no training state" in capsys.readouterr().err
    keep = tmp_path / "keep.safetensors"
    keep.write_bytes(b"keep me")
    assert main(["--run", str(folder), "--out", str(keep)]) == 2
    assert "--overwrite" in capsys.readouterr().err and keep.read_bytes() == b"keep me"


def test_a_damaged_state_is_named_not_a_traceback(run, tmp_path, capsys):
    folder, _ = run
    damaged = tmp_path / "damaged"
    shutil.copytree(folder, damaged)
    state = damaged / "train_state.safetensors"
    state.write_bytes(state.read_bytes()[:1000])  # cut short, as by a full disk
    out = tmp_path / "raw.safetensors"
    assert main(["--run", str(damaged), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "train_state.safetensors cannot be read" in err and err.count("\n") == 1
    assert not out.exists()


def test_a_state_of_another_network_names_the_tensor_on_one_line(run, tmp_path, capsys):
    """torch's load_state_dict error spans lines; the misfit is named on one (checkpoint.state_misfit)."""
    from safetensors.torch import load_file, save_file

    folder, _ = run
    other = tmp_path / "other"
    shutil.copytree(folder, other)
    path = other / "train_state.safetensors"
    tensors = load_file(str(path))
    key = next(k for k in tensors if k.startswith("G.") and tensors[k].dim() == 4)
    tensors[key] = torch.zeros(1, *tensors[key].shape[1:])  # another width: not this run's network
    save_file(tensors, str(path))
    out = tmp_path / "raw.safetensors"
    assert main(["--run", str(other), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "does not fit" in err and f"'{key[2:]}' has shape (1," in err, err
    assert not out.exists()
