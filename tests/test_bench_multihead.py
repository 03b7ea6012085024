"""analysis/bench_multihead.py: the quick run's structure, FLOP counts and model agreement.

No timing thresholds: the structure of the result, the identities tying its
columns together, and that the two models compute the same function.
"""

import doctest
import json
import statistics

import numpy as np
import pytest

from analysis import bench_multihead
from analysis.bench_multihead import flop_count

ROW_KEYS = {
    "rpe",
    "batch",
    "tau",
    "n",
    "heads",
    "m_h",
    "steps",
    "steps_per_execution",
    "max_abs_diff",
    "samples_per_s_ours",
    "samples_per_s_stock",
    "ratio",
    "ratio_paired_median",
    "train_flops_per_sample",
    "gflops_ours",
    "gflops_stock",
    "fraction_of_peak",
    "fraction_of_peak_stock",
    "params_ours",
    "params_stock",
    "seconds_ours",
    "seconds_stock",
    "ratio_cpu",
    "cpu_seconds_ours",
    "cpu_seconds_stock",
}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "result.json"
    return bench_multihead.main(["--quick", "--json", str(path)]), path


def test_quick_run_has_one_row_per_rpe_with_every_column(quick):
    result, _ = quick
    assert [row["rpe"] for row in result["rows"]] == ["linear", "none"]
    for row in result["rows"]:
        assert set(row) == ROW_KEYS
        assert len(row["seconds_ours"]) == len(row["seconds_stock"]) == result["repeats"]
    assert result["never_slower"] == (result["ratio_min"] >= 1.0)


def test_json_file_holds_the_returned_result(quick):
    result, path = quick
    assert json.loads(path.read_text())["rows"] == json.loads(json.dumps(result["rows"]))


def test_columns_follow_from_the_timings_and_flop_count(quick):
    result, _ = quick
    peak = result["peak"]["gflops"]
    for row in result["rows"]:
        assert row["ratio"] == pytest.approx(row["samples_per_s_ours"] / row["samples_per_s_stock"])
        assert row["ratio_cpu"] == pytest.approx(
            statistics.median(row["cpu_seconds_stock"]) / statistics.median(row["cpu_seconds_ours"])
        )
        assert row["gflops_ours"] == pytest.approx(
            row["train_flops_per_sample"] * row["samples_per_s_ours"] / 1e9
        )
        assert row["fraction_of_peak"] == pytest.approx(row["gflops_ours"] / peak)
        expected = flop_count(
            row["tau"], row["n"], row["heads"], row["m_h"], row["m_h"], row["rpe"]
        )
        assert row["train_flops_per_sample"] == expected


def test_models_compute_the_same_function_with_the_same_parameters(quick):
    result, _ = quick
    for row in result["rows"]:
        # Same weights, same function (the linear bias with scale 1; no bias
        # with the stock layer's 1/√m_h): float32 round-off only.
        assert row["max_abs_diff"] < 1e-5, row["rpe"]
        assert row["params_ours"] == row["params_stock"]


def test_flop_count_adds_the_bias_only_with_an_rpe():
    tau, heads = 5, 3
    assert (
        flop_count(tau, 6, heads, 2, 2, "linear") - flop_count(tau, 6, heads, 2, 2, "none")
        == 3 * tau * tau * heads
    )


def test_doctests_of_bench_multihead_pass():
    assert doctest.testmod(bench_multihead).failed == 0


def test_control_times_a_copy_of_the_stock_model_with_its_weights():
    result = bench_multihead.main(["--quick", "--rpe", "linear", "--control"])
    (row,) = result["rows"]
    assert set(row) == ROW_KEYS | {"ratio_control", "ratio_paired_control"}
    assert row["ratio_control"] > 0
    low, high = result["control"]["band"]
    assert low == high == row["ratio_control"]
    slower = result["control"]["slower_beyond_noise"]
    assert [r["ratio"] for r in slower] == ([row["ratio"]] if row["ratio"] < low else [])


def test_control_model_is_the_stock_model_with_the_same_weights():
    point = {"rpe": "linear", "batch": 2, "tau": 5, "n": 4, "heads": 2, "m_h": 2}
    models = bench_multihead.build_models(point, seed=0, control=True)
    x = np.random.default_rng(0).normal(size=(2, 5, 4)).astype("float32")
    np.testing.assert_array_equal(
        models["control"].predict(x, verbose=0), models["stock"].predict(x, verbose=0)
    )
