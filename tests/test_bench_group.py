"""analysis/bench_group.py --quick: the benchmark reports consistent times and ratios.

No timing thresholds: only the structure and the identities tying the numbers together.
"""

import json

import pytest

from analysis import bench_group


def test_quick_run_reports_consistent_ratios(tmp_path, capsys):
    result = bench_group.main(["--quick", "--json", str(tmp_path / "bench.json")])
    assert result["backend"] in ("tensorflow", "jax")
    assert result["models"] == ["transformer_0", "rnn_4", "mlp_4"]
    assert all(len(times) == result["repeats"] == 1 for times in result["times"].values())
    assert result["seconds_group"] == result["times"]["group"][0] > 0
    assert result["ratio"] == pytest.approx(result["seconds_stock"] / result["seconds_group"])
    assert result["ratio_end_to_end"] == pytest.approx(
        result["seconds_cold_stock"] / result["seconds_cold_group"]
    )
    assert result["timed_steps_per_model"] == 1  # 2 epochs of one batch of 32, the first untimed
    assert json.loads((tmp_path / "bench.json").read_text())["ratio"] == result["ratio"]
    assert "ratio" in capsys.readouterr().out


def test_models_of_the_full_group_have_the_stated_sizes():
    models = bench_group.build_models(bench_group.SPEC)
    tau, d, budgets, rnns, mlps = bench_group.SPEC
    assert len(models) == len(budgets) + len(rnns) + len(mlps)
    for model in models:
        assert model.output_shape == (None, tau, 1)
    rnn = models[len(budgets)]
    width = rnns[0]  # SimpleRNN: d·w + w·w + w, then Dense w + 1
    assert rnn.count_params() == d * width + width * width + width + width + 1
