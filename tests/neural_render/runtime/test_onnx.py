"""neural_render.runtime.onnx: the ONNX export of one render step (opset 17 with a
bilinear/border/align_corners GridSample, named I/O, static shapes, fp16 for strongly typed TensorRT)
and its cache, which trusts an entry only when its stamp says it is these weights at this size."""

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import neural_render.runtime.onnx as export
from neural_render.model import build_generator
from neural_render.runtime import Renderer
from neural_render.runtime.onnx import INPUT_NAMES, OUTPUT_NAMES, cached_onnx, check_graph, export_onnx, model_hash
from support.runtime import random_frame, tiny_generator_with_flow

W, H = 64, 32


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    model = tiny_generator_with_flow()  # non-zero flow head: the graph carries the predicted flow and mask
    return model, export_onnx(model, tmp_path_factory.mktemp("onnx") / "tiny.onnx", W, H)


@pytest.fixture(scope="module")
def model():
    return tiny_generator_with_flow()


def frame(seed, cut=False):
    return random_frame(seed, (W, H), cut=cut)


def make(model, backend):
    return Renderer(model, backend=backend, device="cpu", size=(W, H))


def test_graph_attributes(exported):
    _, path = exported
    m = onnx.load(str(path))
    assert next(o.version for o in m.opset_import if o.domain in ("", "ai.onnx")) == 17
    grids = [n for n in m.graph.node if n.op_type == "GridSample"]
    assert len(grids) == 1
    attrs = {a.name: onnx.helper.get_attribute_value(a) for a in grids[0].attribute}
    assert attrs["mode"] == b"bilinear" and attrs["padding_mode"] == b"border" and attrs["align_corners"] == 1
    assert [i.name for i in m.graph.input] == list(INPUT_NAMES)
    assert [o.name for o in m.graph.output] == list(OUTPUT_NAMES)
    labels = m.graph.input[0].type.tensor_type
    assert labels.elem_type == onnx.TensorProto.UINT8
    assert [d.dim_value for d in labels.shape.dim] == [1, 3, H, W]  # static shapes
    assert m.graph.output[1].type.tensor_type.elem_type == onnx.TensorProto.UINT8  # image_u8 on the device
    assert check_graph(path)["opset"] == 17


def test_uint8_only_at_the_graphs_edges(exported):
    """TensorRT's ONNX parser takes uint8 as a graph input or output and as a Cast's output, nothing
    else: a uint8 Transpose or Slice inside the graph failed every TensorRT build."""
    m = onnx.shape_inference.infer_shapes(onnx.load(str(exported[1])))
    types = {v.name: v.type.tensor_type.elem_type for v in [*m.graph.input, *m.graph.value_info, *m.graph.output]}
    outputs = {o.name for o in m.graph.output}
    uint8 = onnx.TensorProto.UINT8
    for node in m.graph.node:
        if any(types.get(name) == uint8 for name in node.input):
            assert node.op_type == "Cast", f"{node.name} ({node.op_type}) takes a uint8 tensor"
        for name in node.output:
            if types.get(name) == uint8:
                assert node.op_type == "Cast" and name in outputs, f"{node.name} makes uint8 {name} inside the graph"


def test_a_changed_export_revision_is_exported_again(exported, tmp_path, monkeypatch):
    model, _ = exported
    before = cached_onnx(model, W, H, directory=tmp_path)
    monkeypatch.setattr(export, "EXPORT_REVISION", export.EXPORT_REVISION + 1)
    assert cached_onnx(model, W, H, directory=tmp_path) != before


def test_cache_reuses_and_repairs(exported, tmp_path):
    model, _ = exported
    p1 = cached_onnx(model, W, H, directory=tmp_path)
    mtime = p1.stat().st_mtime_ns
    assert cached_onnx(model, W, H, directory=tmp_path) == p1 and p1.stat().st_mtime_ns == mtime
    p1.write_bytes(b"corrupt")  # a broken cache file is exported again, not trusted
    p2 = cached_onnx(model, W, H, directory=tmp_path)
    assert p2 == p1 and check_graph(p2)["opset"] == 17
    other = build_generator("tiny")
    assert model_hash(other) != model_hash(model)
    assert cached_onnx(other, W, H, directory=tmp_path) != p1


def test_a_changed_forward_is_exported_again(exported, tmp_path, monkeypatch):
    """Same weights, new network maths (FORWARD_REVISION bumped): the cached graph must not be reused."""
    model, _ = exported
    before = cached_onnx(model, W, H, directory=tmp_path)
    monkeypatch.setattr(export, "FORWARD_REVISION", export.FORWARD_REVISION + 1)
    assert cached_onnx(model, W, H, directory=tmp_path) != before


def test_fp16_graph_for_strongly_typed_tensorrt(exported, tmp_path):
    """TensorRT 11 builds only strongly typed networks: the fp16 graph carries fp16 itself, while the
    warp grid, the flow input and the uint8 ends stay as they are."""
    path = export_onnx(exported[0], tmp_path / "tiny16.onnx", W, H, precision="fp16")
    m = onnx.load(str(path))
    types = {v.name: v.type.tensor_type.elem_type for v in [*m.graph.input, *m.graph.output]}
    assert types["prev_frames"] == types["image"] == onnx.TensorProto.FLOAT16
    assert types["flow"] == onnx.TensorProto.FLOAT and types["labels"] == onnx.TensorProto.UINT8
    assert check_graph(path)["grid_samples"][0]["mode"] == b"bilinear"


def test_a_cached_onnx_with_altered_weights_is_exported_again(model, tmp_path, monkeypatch):
    """A cache file that still parses and has the right nodes but whose weights were changed (disk
    corruption, a foreign file under our name) rendered wrong images without a word."""
    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))
    want = make(model, "onnxruntime").render(frame(3, cut=True))
    path = cached_onnx(model, W, H)
    graph = onnx.load(str(path))
    for init in graph.graph.initializer:
        values = numpy_helper.to_array(init)
        if values.dtype.kind == "f":
            init.CopyFrom(numpy_helper.from_array((values * -3).astype(values.dtype), init.name))
    onnx.save(graph, str(path))
    np.testing.assert_array_equal(make(model, "onnxruntime").render(frame(3, cut=True)), want)


def test_a_cached_onnx_of_another_size_is_exported_again(model, tmp_path, monkeypatch):
    """Another size's graph under our name crashed inside ONNX Runtime at the first render."""
    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))
    want = make(model, "onnxruntime").render(frame(4, cut=True))
    path = cached_onnx(model, W, H)
    path.write_bytes(cached_onnx(model, 2 * W, 2 * H).read_bytes())
    np.testing.assert_array_equal(make(model, "onnxruntime").render(frame(4, cut=True)), want)


def test_a_failed_export_leaves_no_temporary_file(model, tmp_path, monkeypatch):
    def broken(path):
        raise RuntimeError("simulated bad graph")

    monkeypatch.setattr(export, "check_graph", broken)
    with pytest.raises(RuntimeError, match="simulated"):
        export.export_onnx(model, tmp_path / "m.onnx", W, H)
    assert list(tmp_path.iterdir()) == []


def test_an_older_versions_export_in_a_read_only_cache_still_serves(model, tmp_path, monkeypatch):
    """Caches baked into an image before the stamp existed must not fail once they are read-only."""
    monkeypatch.setenv("NEURAL_DRIVE_CACHE", str(tmp_path))
    path = export.cached_onnx(model, W, H)
    old = onnx.load(str(path))
    kept = [p for p in old.metadata_props if not p.key.startswith(export.STAMP_PREFIX)]
    del old.metadata_props[:]
    old.metadata_props.extend(kept)
    onnx.save(old, str(path))  # as an older version wrote it: no stamp
    monkeypatch.setattr(export, "cache_problem", lambda directory=None: "not writable (read-only file system)")
    assert export.cached_onnx(model, W, H) == path  # used as it is, not a CacheError
    edited = onnx.load(str(path))
    edited.metadata_props.add(key=export.STAMP_PREFIX + "size", value="8x8")
    onnx.save(edited, str(path))  # a stamp that does not match is damage: still refused
    with pytest.raises(export.CacheError, match="read-only"):
        export.cached_onnx(model, W, H)


def _cache_entry(model, tmp_path):
    """Where cached_onnx keeps the export of ``model`` at W x H in ``tmp_path``, found by exporting once."""
    path = cached_onnx(model, W, H, directory=tmp_path)
    return path, path.read_bytes()


@pytest.mark.parametrize("damage", ["truncated", "garbage", "empty"])
def test_a_damaged_cache_entry_is_exported_again(model, tmp_path, damage):
    path, sound = _cache_entry(model, tmp_path)
    path.write_bytes({"truncated": sound[: len(sound) * 2 // 3], "garbage": bytes(range(256)) * 40,
                      "empty": b""}[damage])
    assert cached_onnx(model, W, H, directory=tmp_path) == path
    assert path.read_bytes() == sound and export.stamp_problem(path, export.export_stamp(model, W, H, "fp32")) is None


def test_a_folder_under_the_cache_entrys_name_is_a_clear_error(model, tmp_path):
    path, _ = _cache_entry(model, tmp_path)
    path.unlink()
    path.mkdir()
    (path / "kept.txt").write_text("someone's file")
    with pytest.raises(export.CacheError) as caught:
        cached_onnx(model, W, H, directory=tmp_path)
    message = str(caught.value)
    assert str(path) in message and "is a folder" in message and "remove it" in message, message
    assert (path / "kept.txt").read_text() == "someone's file"  # nothing of the user's is removed
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]  # and no temporary is left
