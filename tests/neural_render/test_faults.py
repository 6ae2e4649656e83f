"""Fault suite (README, Reliability): damaged weights handed to the tools that load them, as real
processes. Each must end with exit status 2 and a one-line error naming the file, no traceback, within
seconds, under an address-space limit that turns an attempt to build a huge network into a failure of
this test rather than of the machine."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
from pathlib import Path

import pytest

from support.checkpoints import damaged_checkpoints, tiny_checkpoint

REPO = Path(__file__).resolve().parents[2]
# torch, onnx and a tiny network fit in well under this; a 4096-wide generator does not.
ADDRESS_SPACE = 3 << 30
DAMAGES = ("truncated", "garbage", "missing tensor", "wrong shape", "negative widths", "huge widths",
           "widths the tensors do not fill", "non-JSON config", "config not an object")

pytestmark = pytest.mark.fault


@pytest.fixture(scope="module")
def damaged(tmp_path_factory):
    folder = tmp_path_factory.mktemp("damaged")
    return damaged_checkpoints(tiny_checkpoint(folder / "sound.safetensors"), folder)


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def _run(argv: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(PYTHONPATH=str(REPO), NEURAL_DRIVE_CACHE=str(cwd / "cache"))
    return subprocess.run([sys.executable, *argv], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=60, preexec_fn=_limited)


def _assert_clear_refusal(result: subprocess.CompletedProcess, path: Path) -> None:
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and str(path) in result.stderr, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if str(path) in line]
    assert len(lines) == 1 and "error" in lines[0], result.stderr[-2000:]


@pytest.mark.parametrize("damage", DAMAGES)
def test_export_refuses_damaged_weights(damaged, tmp_path, damage):
    path = damaged[damage]
    result = _run(["-m", "neural_render.export", "--model", str(path), "--res", "64x32",
                   "--out", str(tmp_path / "out.onnx")], tmp_path)
    _assert_clear_refusal(result, path)
    assert not (tmp_path / "out.onnx").exists()


@pytest.mark.parametrize("damage", ("huge widths", "widths the tensors do not fill", "non-JSON config"))
def test_launch_refuses_damaged_weights(damaged, tmp_path, damage):
    path = damaged[damage]
    result = _run([str(REPO / "launch.py"), "--model", str(path), "--source", "procedural", "--res", "64x32",
                   "--headless", "--frames", "1", "--backend", "torch", "--device", "cpu"], tmp_path)
    _assert_clear_refusal(result, path)
