"""Shared fixtures of the game tests (no tests here): a tiny generator saved with save_generator, and
a headless app on the real procedural world and the real Renderer at 64x32."""

from __future__ import annotations

import os

import numpy as np
import pytest

RES = "64x32"
WINDOW = "384x128"  # three 64x32 panes scaled 2x in a row: 128x64 each, letterboxed 32 px above and below


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory):
    """A freshly initialised `tiny` generator written through the checkpoint API."""
    torch = pytest.importorskip("torch")
    from neural_render.checkpoint import save_generator
    from neural_render.model import build_generator

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_generator(build_generator("tiny").eval(), path, meta={"note": "untrained, for the game tests"})
    return path


@pytest.fixture
def headless_env(monkeypatch, tmp_path):
    """SDL dummy video driver, no display, and a scratch working directory (sessions/, reports/)."""
    monkeypatch.setenv("SDL_VIDEODRIVER", "dummy")
    monkeypatch.setenv("SDL_AUDIODRIVER", "dummy")
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture
def make_app(headless_env, tiny_model_path):
    """make_app(*flags) -> a started App (procedural world, tiny model, torch backend); closed after."""
    from game.app.app import App
    from game.startup.cli import parse_args

    apps = []

    def make(*flags: str):
        argv = ["--source", "procedural", "--model", str(tiny_model_path), "--res", RES,
                "--window", WINDOW, "--backend", "torch", "--device", "cpu", "--seed", "3", *flags]
        app = App(parse_args(argv))
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


def post_key(key: int, mod: int = 0, up: bool = True) -> None:
    """Post a key press (and release) the way SDL delivers it."""
    import pygame

    pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key, mod=mod, unicode="", scancode=0))
    if up:
        pygame.event.post(pygame.event.Event(pygame.KEYUP, key=key, mod=mod, unicode="", scancode=0))


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour integer upscale, what pygame.transform.scale does for an exact multiple."""
    return np.repeat(np.repeat(image, factor, axis=0), factor, axis=1)


def load_png(path) -> np.ndarray:
    import imageio.v3 as iio

    return np.asarray(iio.imread(os.fspath(path)))[..., :3]


@pytest.fixture
def recorded(make_app):
    """Three ticks of a headless drive (the autopilot drives), recorded with engine.mp4."""
    from pathlib import Path

    assert make_app("--headless", "--frames", "3", "--record", "sessions").run() == 0
    (session,) = Path("sessions").iterdir()
    return session


def model_flags(tiny_model_path) -> list[str]:
    return ["--model", str(tiny_model_path), "--backend", "torch", "--device", "cpu"]


def one_line_error(capsys, *needles: str) -> str:
    """The run's stderr, asserted to be one "launch.py: error: ..." line holding every needle, with nothing driven."""
    captured = capsys.readouterr()
    err = captured.err
    assert err.startswith("launch.py: error: ") and err.count("\n") == 1, err
    for needle in needles:
        assert needle in err, err
    assert "ticks" not in captured.out  # nothing ran
    return err
