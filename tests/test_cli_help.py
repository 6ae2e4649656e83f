"""--help of the neural_render tools shows every default that means something, and no internal
tracker references such as "(issue 10)": a user cannot look those up."""

from __future__ import annotations

import pytest

from game.bench.generator import main as bench
from game.bench.suite import main as perf_suite
from neural_render.evaluate import main as evaluate
from neural_render.train.__main__ import main as train


@pytest.mark.parametrize("main, defaults", [
    (bench, ["--res RES WIDTHxHEIGHT (default: 256x128)", "(default: 100)", "--warmup WARMUP untimed frames first "
                                                                            "(default: 10)"]),
    (evaluate, ["(default: 256x128)", "frames per drive (default: 60)", "(default: 5)"]),
    (train, ["(default: 1000)", "(default per preset: tiny 1, cpu 2, gpu 4)", "tiny 64x32, cpu 256x128"]),
    (perf_suite, ["(default: 1024x512 2048x1024)", "(default: 300)"]),
])
def test_help_shows_the_defaults(main, defaults, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for default in defaults:
        assert default in out, default
    assert "issue" not in out.lower() and "(default: True)" not in out and "(default: None)" not in out


def test_the_stand_in_without_msgpack_names_the_extra():
    """msgpack comes with the carla extra; without it `python -m carla_bridge.standin` (even --help)
    ended in a ModuleNotFoundError traceback."""
    import subprocess
    import sys

    run = ("import runpy, sys; sys.modules['msgpack'] = None; sys.argv = ['standin'] + sys.argv[1:]; "
           "runpy.run_module('carla_bridge.standin', run_name='__main__', alter_sys=True)")
    shown = subprocess.run([sys.executable, "-c", run, "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "--port" in shown.stdout
    served = subprocess.run([sys.executable, "-c", run, "--port", "0"], capture_output=True, text=True, timeout=60)
    assert served.returncode == 2 and "pip install -e .[carla]" in served.stderr
    assert "Traceback" not in served.stderr
