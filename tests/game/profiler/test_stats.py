"""Profiler statistics: the percentile definition (linear interpolation) on inputs with known answers."""

import math

import numpy as np
import pytest

from game.profiler.stats import PERCENTILE_METHOD, percentile, summarize


def test_percentiles_of_1_to_100_have_known_values():
    values = list(range(1, 101))  # rank = p/100 * 99, so p-th percentile = 1 + 0.99 p
    assert percentile(values, 50) == pytest.approx(50.5)
    assert percentile(values, 90) == pytest.approx(90.1)
    assert percentile(values, 95) == pytest.approx(95.05)
    assert percentile(values, 99) == pytest.approx(99.01)
    assert percentile(values, 0) == 1 and percentile(values, 100) == 100


def test_percentile_interpolates_between_closest_ranks():
    assert percentile([4, 1, 3, 2], 50) == pytest.approx(2.5)  # order of input does not matter
    assert percentile([10.0, 20.0], 25) == pytest.approx(12.5)
    assert percentile([7.0], 99) == 7.0
    np.testing.assert_allclose(percentile([1, 2, 3, 4, 5], [10, 50, 90]), [1.4, 3.0, 4.6])
    assert "linear" in PERCENTILE_METHOD


def test_percentile_rejects_empty_and_out_of_range():
    with pytest.raises(ValueError, match="empty"):
        percentile([], 50)
    with pytest.raises(ValueError, match="0..100"):
        percentile([1, 2], 101)


def test_summarize_known_answers():
    s = summarize([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0])
    assert s["count"] == 10
    assert s["mean"] == pytest.approx(5.5)
    assert s["stdev"] == pytest.approx(math.sqrt(55 / 6))  # sample stdev (ddof=1) of 1..10
    assert (s["p50"], s["p90"], s["p95"], s["p99"]) == pytest.approx((5.5, 9.1, 9.55, 9.91))
    assert s["min"] == 1.0 and s["max"] == 10.0


def test_summarize_single_and_empty():
    assert summarize([3.0])["stdev"] == 0.0
    empty = summarize([])
    assert empty["count"] == 0 and empty["p50"] is None
