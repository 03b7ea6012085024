"""analysis/bench_finisher.py: the quick run times both finishers on the same start.

No timing thresholds: only the structure, the identities tying the columns
together, and that both ways reach the same losses.
"""

import statistics

import pytest

from analysis import bench_finisher


def test_quick_run_reports_consistent_ratios_and_the_same_losses():
    result = bench_finisher.main(["--quick"])
    assert result["backend"] in ("tensorflow", "jax")
    assert result["members"] == 2 and result["matmul_gflops"] > 0
    for kind in ("batched", "stock"):
        assert len(result["times"][kind]) == result["repeats"] == 1
        rate = statistics.median(result["evaluations"][kind]) / result[f"seconds_{kind}"]
        assert result["evaluations_per_second"][kind] == pytest.approx(rate)
        assert result["fraction_of_peak"][kind] == pytest.approx(
            result["gflops"][kind] / result["matmul_gflops"]
        )
    assert result["ratio"] == pytest.approx(result["seconds_stock"] / result["seconds_batched"])
    # Same starts, same algorithm: the same losses, to float32 rounding.
    assert result["loss_after"]["batched"] == pytest.approx(result["loss_after"]["stock"], rel=1e-3)
    for kind in ("batched", "stock"):
        assert result["evaluations"][kind][0] >= result["members"] * (result["steps"] + 1)


def test_bad_arguments_exit_with_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench_finisher.main(["--quick", "--members", "0"])
    assert exit_info.value.code == 2
    assert "--members must be >= 1" in capsys.readouterr().err
