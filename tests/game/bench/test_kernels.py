"""The kernels benchmark (`python -m game.bench kernels`): bad flags are flag errors before the model is
built."""

from __future__ import annotations

import pytest
import torch

from game.bench.kernels import main


@pytest.mark.parametrize("argv, said", [
    (["--res", "abc"], "--res must look like WIDTHxHEIGHT (e.g. 512x256), got 'abc'"),
    (["--res", "60x32"], "size 60x32"),
    (["--device", "tpu"], "argument --device: must be cpu, cuda or cuda:N"),
    (["--top", "0"], "argument --top: must be at least 1"),
    pytest.param(["--device", "cuda"], "--device cuda: torch sees no CUDA GPU",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is here")),
])
def test_perf_profile_flag_errors(argv, said, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--preset", "tiny", "--res", "64x32", "--frames", "1", *argv])
    assert exit_info.value.code == 2 and said in capsys.readouterr().err
