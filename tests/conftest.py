"""Suite-wide set-up: the tests write exported ONNX files and CARLA settings notes to a cache folder
of their own, never to the user's ~/.cache/neural-drive (tests that need a fresh one set their own)."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def private_cache(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path_factory.mktemp("neural-drive-cache")))
        yield
