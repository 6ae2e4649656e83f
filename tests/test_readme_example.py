"""The README's Python example runs as written (a library user copies it first)."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_the_readme_python_example_runs(monkeypatch, capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert blocks, "the README lost its Python example"
    monkeypatch.chdir(README.parent)  # it names models/cpu.safetensors relative to the checkout
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {"__name__": "readme"})
    out = capsys.readouterr().out
    assert "Renderer(cpu 256x128" in out and "(128, 256, 3)" in out
