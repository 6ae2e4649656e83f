"""neural_render.runtime.trt_shared: the engine cache both TensorRT backends keep (no library needed)."""

import logging

from neural_render.runtime.trt_shared import EngineCache, engine_key


def test_engine_key_changes_with_every_part():
    base = engine_key(b"onnx", "10.9.0", "NVIDIA H100", (256, 128), "fp16")
    assert base == engine_key(b"onnx", "10.9.0", "NVIDIA H100", (256, 128), "fp16")
    others = [engine_key(b"onnx2", "10.9.0", "NVIDIA H100", (256, 128), "fp16"),
              engine_key(b"onnx", "11.0.0", "NVIDIA H100", (256, 128), "fp16"),
              engine_key(b"onnx", "10.9.0", "SM89", (256, 128), "fp16"),
              engine_key(b"onnx", "10.9.0", "NVIDIA H100", (512, 256), "fp16"),
              engine_key(b"onnx", "10.9.0", "NVIDIA H100", (256, 128), "fp32")]
    assert len({base, *others}) == 6


def test_the_cache_builds_once_and_rebuilds_a_damaged_file(tmp_path, caplog):
    builds = []

    def build():
        builds.append(1)
        return b"engine %d" % len(builds)
    cache = EngineCache(tmp_path / "x.engine")
    assert cache.get_or_build(build) == (b"engine 1", True)
    assert cache.get_or_build(build) == (b"engine 1", False)
    blob = cache.path.read_bytes()
    cache.path.write_bytes(blob[:-1] + b"X")  # one byte flipped: still the right length, wrong digest
    with caplog.at_level(logging.WARNING, logger="neural_render.runtime"):
        assert cache.get_or_build(build) == (b"engine 2", True)
    assert "is corrupt" in caplog.text and len(builds) == 2
    cache.path.write_bytes(b"")  # an empty file (a full disk)
    assert cache.get_or_build(build) == (b"engine 3", True)
