"""game.bench.comparison: paths measured in turns, rows as medians of their rounds, speed ratios."""

from game.bench.comparison import round_robin, speedup_lines, speedups

FIGURES = ("fps", "mean_ms", "p50_ms", "p95_ms", "p99_ms", "min_ms", "max_ms")


def test_paths_take_turns_and_each_row_is_the_median_of_its_rounds():
    calls = []
    p50s = {("256x128", "openvino"): iter([30.0, 10.0, 12.0]), ("256x128", "onnxruntime"): iter([20.0, 21.0, 40.0])}

    def measure(res, backend):
        calls.append(backend)
        p50 = next(p50s[(res, backend)])
        return {"res": res, "backend": backend, **{key: p50 for key in FIGURES}}
    rows = round_robin(list(p50s), 3, measure)
    assert calls == ["openvino", "onnxruntime"] * 3  # in turns, not one path's rounds in a block
    assert [row["p50_ms"] for row in rows] == [12.0, 21.0] and rows[0]["p50_ms_rounds"] == [30.0, 10.0, 12.0]
    assert speedups(rows) == {"256x128": {"openvino": 1.0, "onnxruntime": 0.571}}
    assert speedup_lines(rows) == ["at 256x128: openvino runs 1.75x as fast as onnxruntime "
                                   "(median p50 12.0 against 21.0 ms, 3 rounds)"]
