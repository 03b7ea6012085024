"""analysis/bench_sweep.py: the quick run returns a consistent table; FLOP counts add up.

No timing thresholds: only the structure and the identities tying the columns together.
"""

import doctest

import pytest

from analysis import bench_sweep
from tfapprox.budget import Budget


def test_quick_run_reports_every_size_with_consistent_ratios():
    result = bench_sweep.main(["--quick"])
    assert result["backend"] in ("tensorflow", "jax")
    assert result["matmul_gflops"] > 0
    assert [row["size"] for row in result["rows"]] == ["small", "fig5"]
    for row in result["rows"]:
        assert row["members"] == len(row["m_h"]) == 2
        assert row["ratio"] == pytest.approx(row["seconds_stock"] / row["seconds_engine"])
        assert row["ratio_sequential"] == pytest.approx(
            row["seconds_sequential_engine"] / row["seconds_engine"]
        )
        assert row["fraction_of_peak"] == pytest.approx(
            row["gflops_engine"] / result["matmul_gflops"]
        )
        assert all(len(times) == result["repeats"] for times in row["times"].values())
        assert row["ratio_end_to_end"] > 0


def test_forward_flops_add_the_parts_by_hand():
    budget = Budget(n=32, m_h=4, m_v=32, m_ff=128, ff_depth=3)
    tau = 16
    ff_in = 2 * 1 * 128 + 2 * 128 + 2 * (2 * 128 * 128 + 2 * 128) + 2 * 128 * 32 + 32
    attention = 2 * 32 * (2 * 4 + 32) + 2 * tau * 4 + 5 * tau + 2 * tau * 32
    ff_out = 2 * 32 * 128 + 2 * 128 + 2 * (2 * 128 * 128 + 2 * 128) + 2 * 128 * 1 + 1
    expected = tau * (1 + ff_in + attention + ff_out)
    assert bench_sweep.forward_flops(budget, tau, 1) == expected


def test_doctests_of_bench_sweep_pass():
    result = doctest.testmod(bench_sweep, verbose=False)
    assert result.failed == 0 and result.attempted >= 1
