"""neural_render.serve.bench without a server: its --clients flag, and the measuring loop over local
Renderers (the same loop measures the RemoteRenderers: tests/neural_render/serve/test_server.py)."""

import argparse
import json

import pytest

from neural_render.runtime import Renderer
from neural_render.serve.bench import client_counts, parse_args, rows_json, run_clients
from support.runtime import tiny_generator_with_flow


def test_client_counts():
    assert client_counts("1,2,4,8") == [1, 2, 4, 8]
    for bad in ("", "1,,2", "0,2", "two"):
        with pytest.raises(argparse.ArgumentTypeError, match="positive whole numbers separated by commas"):
            client_counts(bad)


def test_run_clients_counts_every_frame_of_every_client():
    size, frames = (64, 32), 3
    renderers = [Renderer(tiny_generator_with_flow(), backend="torch", device="cpu", size=size) for _ in range(2)]
    try:
        result = run_clients(renderers, frames, size)
    finally:
        for renderer in renderers:
            renderer.close()
    assert result["fps"] > 0 and 0 < result["p50"] <= result["p99"] and result["batch"] == 1.0
    assert all(renderer.frames_rendered == frames for renderer in renderers)


def test_the_json_holds_the_settings_and_every_row():
    args = parse_args(["--clients", "1,2", "--res", "64x32", "--frames", "3"])
    result = {"fps": 10.0, "p50": 1.0, "p99": 2.0, "batch": 1.5}
    written = json.loads(rows_json(args, [("remote", 2, result), ("local", 2, result)]))
    assert (written["res"], written["frames"], written["device"]) == ("64x32", 3, "cpu")
    assert [(row["renderer"], row["clients"], row["mean_batch"]) for row in written["rows"]] == \
        [("remote", 2, 1.5), ("local", 2, 1.5)]


def test_a_json_path_in_a_missing_folder_is_refused_before_measuring(tmp_path, capsys):
    with pytest.raises(SystemExit):
        parse_args(["--json", str(tmp_path / "no-such-folder" / "bench.json")])
    assert "does not exist; create it first" in capsys.readouterr().err
