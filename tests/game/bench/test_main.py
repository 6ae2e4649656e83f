"""The one entry of the measuring tools: `python -m game.bench <tool>` runs the tool named, with its
own flags; no tool, or an unknown one, is a usage error."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from game.bench.__main__ import TOOLS, main

ROOT = Path(__file__).resolve().parents[3]


def test_every_tool_is_a_module_with_a_main():
    import importlib

    for name, (module, about) in TOOLS.items():
        assert callable(importlib.import_module(module).main) and about, name


@pytest.mark.parametrize("tool", sorted(TOOLS))
def test_each_tool_answers_help_under_its_subcommand(tool, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([tool, "--help"])
    assert exit_info.value.code == 0
    assert f"usage: python -m game.bench {tool}" in capsys.readouterr().out


def test_no_tool_or_an_unknown_one_is_a_usage_error(capsys):
    assert main([]) == 2 and "usage: python -m game.bench <tool>" in capsys.readouterr().err
    assert main(["bogus"]) == 2 and "unknown tool 'bogus'; choose one of generator" in capsys.readouterr().err
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in TOOLS)


def test_the_suite_imports_neither_pygame_nor_carla():
    """The GPU machine it runs on has torch, numpy, onnx and onnxruntime, and nothing else."""
    code = ("import sys; import game.bench.suite; "
            "print(sorted(m for m in ('pygame', 'carla') if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stderr
