"""Fault suite (README, Reliability): a damaged ONNX cache under a real headless drive on ONNX Runtime."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from neural_render.checkpoint import load_generator
from neural_render.runtime.onnx import cached_onnx, export_stamp, stamp_problem
from support.game import RES, tiny_model_path  # noqa: F401 (fixture)

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.fault


def _drive(model: Path, cache: Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env.update(PYTHONPATH=str(REPO), NEURAL_DRIVE_CACHE=str(cache))
    return subprocess.run([sys.executable, str(REPO / "launch.py"), "--model", str(model), "--source", "procedural",
                           "--res", RES, "--headless", "--frames", "2", "--backend", "onnxruntime", "--device", "cpu"],
                          cwd=cwd, env=env, capture_output=True, text=True, timeout=90)


def _damaged_entry(model_path: Path, cache: Path, damage: str) -> tuple[Path, dict]:
    """The cache entry the drive will look for, exported here and then damaged; and its sound stamp."""
    model = load_generator(model_path)
    width, height = (int(v) for v in RES.split("x"))
    entry = cached_onnx(model, width, height, "fp32", cache)
    sound = entry.read_bytes()
    if damage == "folder":
        entry.unlink()
        entry.mkdir()
    else:
        entry.write_bytes(sound[: len(sound) // 2] if damage == "truncated" else os.urandom(4096))
    return entry, export_stamp(model, width, height, "fp32")


@pytest.mark.slow  # a drive that exports first: ~6 s
@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_corrupt_cached_export_is_exported_again_and_the_drive_runs(tiny_model_path, tmp_path, damage):
    entry, stamp = _damaged_entry(tiny_model_path, tmp_path / "cache", damage)
    result = _drive(tiny_model_path, tmp_path / "cache", tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "exporting again" in result.stderr, result.stderr[-2000:]
    assert stamp_problem(entry, stamp) is None


def test_a_folder_under_the_cached_exports_name_ends_the_drive_with_a_clear_error(tiny_model_path, tmp_path):
    entry, _ = _damaged_entry(tiny_model_path, tmp_path / "cache", "folder")
    result = _drive(tiny_model_path, tmp_path / "cache", tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    assert f"{entry}: is a folder" in result.stderr and "remove it" in result.stderr, result.stderr[-2000:]
    assert entry.is_dir()
