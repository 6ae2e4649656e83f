"""`python -m neural_render.serve` where PyTriton cannot serve: it exits 2 before loading the model,
with one line saying what to install, instead of a Triton that answers every frame with an empty image
(numpy 2) or an ImportError traceback (no `serve` extra)."""

import sys

import numpy as np
import pytest

from neural_render.serve.__main__ import main


@pytest.mark.parametrize("environment", ["no serve extra", "numpy 2"])
def test_the_service_refuses_an_environment_pytriton_cannot_serve_in(environment, monkeypatch, capsys, tmp_path):
    if environment == "no serve extra":
        monkeypatch.setitem(sys.modules, "pytriton", None)  # import pytriton raises ImportError
        said = "needs PyTriton, the `serve` extra"
    else:
        pytest.importorskip("pytriton", reason="the numpy check runs only once PyTriton imports")
        monkeypatch.setattr(np, "__version__", "2.4.6")
        said = "PyTriton 0.7 needs numpy < 2 (numpy 2.4.6 here"
    assert main(["--model", str(tmp_path / "never-loaded.safetensors")]) == 2
    err = capsys.readouterr().err
    assert said in err and "pip install torch==2.13.0 -e '.[serve]'" in err
