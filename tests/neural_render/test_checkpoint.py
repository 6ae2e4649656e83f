"""save_generator / load_generator round trip and every broken-file case -> CheckpointError."""

import json
import os
import stat

import pytest
import torch

from neural_render.checkpoint import DEFAULT_MODEL_PATH, CheckpointError, load_generator, read_metadata, save_generator
from neural_render.model import build_generator, example_inputs
from support.checkpoints import resaved, with_config


@pytest.fixture()
def saved(tmp_path):
    torch.manual_seed(3)
    model = build_generator("tiny").eval()
    path = save_generator(model, tmp_path / "tiny.safetensors", meta={"steps": 12, "psnr": 23.5})
    return model, path


def test_round_trip(saved):
    model, path = saved
    loaded = load_generator(path, preset="tiny")
    assert loaded.config == model.config and not loaded.training
    args = example_inputs(model.config, 64, 32)
    with torch.no_grad():
        torch.testing.assert_close(loaded(*args).image, model(*args).image)
    config, meta = read_metadata(path)
    assert config.name == "tiny" and meta == {"steps": 12, "psnr": 23.5}


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_generator(tmp_path / "nope.safetensors")


def test_training_run_folder_loads_its_generator(saved, tmp_path):
    model, path = saved
    run = tmp_path / "run"
    run.mkdir()
    path.rename(run / "generator.safetensors")
    assert load_generator(run).config == model.config
    with pytest.raises(CheckpointError, match="folder without generator.safetensors"):
        load_generator(tmp_path)


def test_preset_mismatch(saved):
    with pytest.raises(CheckpointError, match="preset 'cpu'"):
        load_generator(saved[1], preset="cpu")


def test_truncated_file(saved, tmp_path):
    data = saved[1].read_bytes()
    for cut in (4, 100, len(data) // 2, len(data) - 7):
        bad = tmp_path / f"cut{cut}.safetensors"
        bad.write_bytes(data[:cut])
        with pytest.raises(CheckpointError):
            load_generator(bad)


def test_corrupt_file(tmp_path):
    bad = tmp_path / "garbage.safetensors"
    bad.write_bytes(b"\x00" * 64 + b"not a safetensors file" * 10)
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        load_generator(bad)


def test_a_file_that_is_no_checkpoint_is_not_called_corrupt(tmp_path):
    notes = tmp_path / "README.md"
    notes.write_text("# not weights\n")
    with pytest.raises(CheckpointError, match="not a generator checkpoint") as caught:
        read_metadata(notes)
    assert "corrupt" not in str(caught.value) and "cpu.safetensors" in str(caught.value)


def test_not_a_generator(tmp_path):
    from safetensors.torch import save_file
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(3)}, str(path))
    with pytest.raises(CheckpointError, match="not a neural-drive generator"):
        load_generator(path)


def test_wrong_weights_for_config(saved, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file
    _, path = saved
    with safe_open(str(path), framework="pt") as f:
        metadata = f.metadata()
    state = load_file(str(path))
    state.pop(next(iter(state)))
    bad = tmp_path / "missing_key.safetensors"
    save_file(state, str(bad), metadata=metadata)
    with pytest.raises(CheckpointError, match="do not fit"):
        load_generator(bad)
    cfg = json.loads(metadata["config"])
    cfg["widths"] = [16, 16]
    bad2 = tmp_path / "other_widths.safetensors"
    save_file(load_file(str(path)), str(bad2), metadata={**metadata, "config": json.dumps(cfg)})
    with pytest.raises(CheckpointError, match="do not fit"):
        load_generator(bad2)


def test_nan_weights(tmp_path):
    model = build_generator("tiny")
    with torch.no_grad():
        model.out_conv.weight[0, 0, 0, 0] = float("nan")
    path = save_generator(model, tmp_path / "nan.safetensors")
    with pytest.raises(CheckpointError, match="NaN"):
        load_generator(path)


def test_default_path_location():
    assert DEFAULT_MODEL_PATH.parent.name == "models" and DEFAULT_MODEL_PATH.suffix == ".safetensors"


def test_saved_file_gets_the_mode_the_umask_gives(tmp_path):
    """safetensors creates its file 0600 whatever the umask: checkpoints came out private."""
    old = os.umask(0o027)
    try:
        path = save_generator(build_generator("tiny"), tmp_path / "g.safetensors")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640


def _edited(path, tmp_path, edit_state):
    return resaved(path, tmp_path / "edited.safetensors", edit_state=edit_state)


def _misfit_message(path) -> str:
    with pytest.raises(CheckpointError, match="do not fit the 'tiny' network") as caught:
        load_generator(path)
    message = str(caught.value)
    assert "\n" not in message
    return message


def test_a_missing_tensor_is_named(saved, tmp_path):
    """The error names the missing keys, rather than ending at torch's 'Error(s) in loading state_dict
    for Vid2VidGenerator:' with the keys cut off."""
    keys = list(saved[0].state_dict())
    message = _misfit_message(_edited(saved[1], tmp_path, lambda s: [s.pop(keys[0]), s.pop(keys[1])]))
    assert f"missing '{keys[0]}' (and 1 more)" in message, message


def test_an_unexpected_tensor_is_named(saved, tmp_path):
    message = _misfit_message(_edited(saved[1], tmp_path, lambda s: s.update(stray=torch.zeros(2))))
    assert "unexpected 'stray'" in message and "more" not in message, message


def test_a_wrongly_shaped_tensor_names_both_shapes(saved, tmp_path):
    name, tensor = next((k, v) for k, v in saved[0].state_dict().items() if v.dim() == 4)
    shape = tuple(tensor.shape)
    message = _misfit_message(_edited(saved[1], tmp_path, lambda s: s.update({name: torch.zeros(1, *shape[1:])})))
    assert f"'{name}' has shape {(1, *shape[1:])} in the file, {shape} in the network" in message, message


@pytest.mark.parametrize("fields, named", [
    ({"widths": [8, -4]}, "widths"),
    ({"widths": []}, "widths"),
    ({"widths": [8, 8.5]}, "widths"),
    ({"flow_widths": "88"}, "flow_widths"),
    ({"num_classes": 1}, "num_classes"),
    ({"num_classes": 29.0}, "num_classes"),
    ({"k": True}, "k"),
    ({"n_blocks": -1}, "n_blocks"),
    ({"spade_hidden": 0}, "spade_hidden"),
    ({"spade_kernel": 2}, "spade_kernel"),
    ({"n_flow_blocks": "1"}, "n_flow_blocks"),
    ({"separable": 1}, "separable"),
    ({"name": 7}, "name"),
])
def test_a_config_field_out_of_range_is_named_with_its_range(saved, tmp_path, fields, named):
    bad = with_config(saved[1], tmp_path / "bad.safetensors", **fields)
    with pytest.raises(CheckpointError) as caught:
        load_generator(bad)
    message = str(caught.value)
    assert f"GeneratorConfig.{named}" in message and str(bad) in message and "\n" not in message, message


@pytest.mark.parametrize("config_text, problem", [("{widths: [8", "not JSON"), ("[8, 8]", "not a JSON object")])
def test_a_config_that_is_no_json_object_is_a_checkpoint_error(saved, tmp_path, config_text, problem):
    bad = resaved(saved[1], tmp_path / "bad.safetensors", edit_metadata=lambda m: m.update(config=config_text))
    with pytest.raises(CheckpointError, match=problem):
        read_metadata(bad)


def test_a_config_bigger_than_its_tensors_is_refused_before_the_network_is_built(saved, tmp_path, monkeypatch):
    """The network a config implies is compared with the file's tensor shapes first: a few KB of
    tensors under widths that would build gigabytes of parameters never reach the constructor."""
    import neural_render.checkpoint as checkpoint

    bad = with_config(saved[1], tmp_path / "wide.safetensors", widths=[4096, 4096])

    def no_build(config):
        raise AssertionError(f"built a {config.widths} network from a file whose tensors do not fit it")
    monkeypatch.setattr(checkpoint, "Vid2VidGenerator", no_build)
    with pytest.raises(CheckpointError, match="do not fit the 'tiny' network"):
        load_generator(bad)
