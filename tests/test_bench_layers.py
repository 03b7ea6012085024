"""analysis/bench_layers.py: the quick run's table is consistent; FLOP counts match hand counts.

No timing thresholds: only the structure of the result, the identities that
tie its columns together, and the arithmetic of the FLOP and parameter counts.
"""

import doctest
import json
import math

import pytest

from analysis import bench_layers
from analysis.bench_layers import flop_count, grid_points, parse_grid, parse_size, plan_steps
from tfapprox.budget import Budget

ROW_KEYS = {
    "tau",
    "n",
    "m_h",
    "m_v",
    "m_ff",
    "batch",
    "steps",
    "steps_per_execution",
    "flop_ratio",
    "samples_per_s_ours",
    "samples_per_s_stock",
    "ratio",
    "ratio_paired_median",
    "gflops_ours",
    "gflops_stock",
    "fraction_of_peak",
    "fraction_of_peak_stock",
    "train_flops_per_sample_ours",
    "train_flops_per_sample_stock",
    "params_ours",
    "params_stock",
    "loss_ours",
    "loss_stock",
}


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    path = tmp_path_factory.mktemp("bench") / "bench_layers.json"
    result = bench_layers.main(["--quick", "--json", str(path)])
    return result, path


@pytest.fixture(scope="module")
def row(quick):
    result, _ = quick
    assert len(result["rows"]) == 1  # --quick runs one tiny size
    return result["rows"][0]


def test_quick_run_returns_rows_with_every_column(quick, row):
    result, _ = quick
    assert set(row) >= ROW_KEYS
    assert {"size", "gflops", "gflops_median_before", "gflops_median_after"} <= set(result["peak"])
    assert result["peak"]["gflops"] > 0
    assert (row["tau"], row["n"], row["m_h"], row["m_v"], row["m_ff"]) == (8, 8, 2, 8, 8)
    assert row["batch"] == 8 and result["batches"] == [8]
    assert result["ratio_min"] == result["ratio_median"] == row["ratio"]


def test_json_file_holds_the_returned_result(quick):
    result, path = quick
    saved = json.loads(path.read_text())
    assert saved["rows"][0]["ratio"] == pytest.approx(result["rows"][0]["ratio"], rel=1e-12)
    assert saved["peak"] == pytest.approx(result["peak"], rel=1e-12)
    assert set(saved["rows"][0]) == set(result["rows"][0])


def test_ratio_is_ours_over_stock(row):
    assert row["samples_per_s_ours"] > 0 and row["samples_per_s_stock"] > 0
    assert row["ratio"] == pytest.approx(row["samples_per_s_ours"] / row["samples_per_s_stock"])


def test_samples_per_second_come_from_the_median_fit(quick, row):
    result, _ = quick
    for name in ("ours", "stock"):
        seconds = sorted(row[f"seconds_{name}"])
        assert len(seconds) == result["repeats"]
        median = (seconds[(len(seconds) - 1) // 2] + seconds[len(seconds) // 2]) / 2
        expected = row["steps"] * row["batch"] / median
        assert row[f"samples_per_s_{name}"] == pytest.approx(expected)


def test_gflops_and_fraction_of_peak_follow_from_the_flop_count(quick, row):
    result, _ = quick
    for name in ("ours", "stock"):
        gflops = row[f"train_flops_per_sample_{name}"] * row[f"samples_per_s_{name}"] / 1e9
        assert row[f"gflops_{name}"] == pytest.approx(gflops)
    assert row["fraction_of_peak"] == pytest.approx(row["gflops_ours"] / result["peak"]["gflops"])
    assert result["peak"]["gflops"] >= result["peak"]["gflops_median_before"]


def test_row_flops_are_the_flop_count_of_its_budget(row):
    budget = Budget(n=row["n"], m_h=row["m_h"], m_v=row["m_v"], m_ff=row["m_ff"])
    assert row["train_flops_per_sample_ours"] == flop_count(budget, row["tau"], "ours")["train"]
    assert row["train_flops_per_sample_stock"] == flop_count(budget, row["tau"], "stock")["train"]


def test_models_differ_only_by_the_stock_output_projection(row):
    budget = Budget(n=row["n"], m_h=row["m_h"], m_v=row["m_v"], m_ff=row["m_ff"])
    assert row["params_ours"] == budget.parameter_count(row["tau"], input_dim=1, output_dim=1)
    # MultiHeadAttention(use_bias=False) adds only W_O, (1 head, m_v) -> m_v.
    assert row["params_stock"] - row["params_ours"] == row["m_v"] * row["m_v"]


def test_both_models_train_to_finite_losses(row):
    assert math.isfinite(row["loss_ours"]) and math.isfinite(row["loss_stock"])


def test_stock_model_uses_multi_head_attention_without_biases():
    import keras

    budget = Budget(n=6, m_h=2, m_v=5, m_ff=4)
    model = bench_layers.build_stock(budget, sequence_length=3)
    attention = model.get_layer("attention")
    assert isinstance(attention, keras.layers.MultiHeadAttention)
    shapes = sorted(tuple(w.shape) for w in attention.weights)
    # W_Q, W_K (n, 1, m_h); W_V (n, 1, m_v); W_O (1, m_v, m_v); no bias vectors.
    assert shapes == sorted([(6, 1, 2), (6, 1, 2), (6, 1, 5), (1, 5, 5)])
    for name in ("position_encoding", "f_hat", "F_hat"):
        assert type(model.get_layer(name)).__module__ == "tfapprox.layers"


def test_flop_count_matches_a_hand_count_for_a_tiny_budget():
    # tau=3, d=1, n=2, m_h=1, m_v=2, m_FF=4, depth 2, d_out=1.
    budget = Budget(n=2, m_h=1, m_v=2, m_ff=4, ff_depth=2)
    tau = 3
    # Dense(in, out): 2·in·out multiply-adds + out bias adds (+ out ReLUs if hidden).
    f_hat = (2 * 1 * 4 + 4 + 4) + (2 * 4 * 4 + 4 + 4) + (2 * 4 * 2 + 2)  # 16 + 40 + 18 = 74
    big_f = (2 * 2 * 4 + 4 + 4) + (2 * 4 * 4 + 4 + 4) + (2 * 4 * 1 + 1)  # 24 + 40 + 9 = 73
    ours = (
        tau * 1  # position encoding add
        + tau * f_hat  # 222
        + tau * 2 * 2 * (1 + 1 + 2)  # q, k, v projections: 48
        + 2 * tau * tau * 1  # q·k logits: 18
        + 5 * tau * tau  # softmax: 45
        + 2 * tau * tau * 2  # weights · v: 36
        + tau * big_f  # 219
    )
    assert ours == 591
    counted = flop_count(budget, tau, "ours")
    assert counted["forward"] == ours
    assert counted["train"] == 3 * ours
    stock = ours + tau * tau + 2 * tau * 2 * 2  # + logit scale 9 + output projection 24
    assert flop_count(budget, tau, "stock")["forward"] == stock == 624
    assert flop_count(budget, tau, "stock")["train"] == 3 * stock


def test_flop_count_parts_sum_to_the_forward_count():
    budget = Budget(n=16, m_h=4, m_v=8, m_ff=32)
    for model in ("ours", "stock"):
        counted = flop_count(budget, 12, model, input_dim=3, output_dim=2)
        parts = {k: v for k, v in counted.items() if k not in ("forward", "train")}
        assert sum(parts.values()) == counted["forward"]


def test_flop_count_rejects_an_unknown_model():
    with pytest.raises(ValueError, match="`model` must be 'ours' or 'stock'"):
        flop_count(Budget(n=2, m_h=1, m_ff=2), 2, "keras")


def test_parse_size_derives_widths_from_tau_and_n():
    assert parse_size("64x128") == {"tau": 64, "n": 128, "m_h": 32, "m_v": 128, "m_ff": 128}
    assert parse_size("4X2x1x3x5") == {"tau": 4, "n": 2, "m_h": 1, "m_v": 3, "m_ff": 5}


@pytest.mark.parametrize("text", ["64", "64x0", "axb", "1x2x3", "8x8x2x8x8x1"])
def test_parse_size_rejects_malformed_sizes(text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="TAUxN"):
        parse_size(text)


def test_doctests_of_bench_layers_pass():
    result = doctest.testmod(bench_layers, verbose=False)
    assert result.attempted > 0 and result.failed == 0


def test_flop_ratio_is_stock_over_ours(row):
    expected = row["train_flops_per_sample_stock"] / row["train_flops_per_sample_ours"]
    assert row["flop_ratio"] == pytest.approx(expected)
    assert row["flop_ratio"] > 1  # stock adds the output projection and the scale


def test_default_grid_has_144_points_spanning_every_axis():
    points = grid_points()
    assert len(points) == 144
    assert len({tuple(sorted(p.items())) for p in points}) == 144
    assert {p["tau"] for p in points} == {16, 32, 64, 128}
    assert {p["batch"] for p in points} == {64, 256}
    for p in points:
        assert p["m_v"] == p["n"] in (32, 64, 128)
        assert p["m_h"] in (p["n"] // 8, p["n"] // 4, p["n"] // 2)
        assert p["m_ff"] in (p["n"], 4 * p["n"])


def test_grid_option_restricts_axes():
    points = grid_points(parse_grid(["tau=16,64", "n=128", "m_h=n/2", "batch=256"]))
    assert [(p["tau"], p["m_h"], p["m_ff"]) for p in points] == [
        (16, 64, 128),
        (16, 64, 512),
        (64, 64, 128),
        (64, 64, 512),
    ]
    assert {p["batch"] for p in points} == {256}


@pytest.mark.parametrize("item", ["depth=3", "tau=", "tau=0", "m_h=n/x", "batch=a"])
def test_parse_grid_rejects_unknown_axes_and_values(item):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="grid axis"):
        parse_grid([item])


def test_grid_and_sizes_are_exclusive():
    with pytest.raises(SystemExit):
        bench_layers.parse_args(["--grid", "tau=16", "--sizes", "8x8"])


def test_sizes_run_at_every_batch():
    args = bench_layers.parse_args(["--sizes", "8x8", "16x8", "--batch", "4", "32"])
    assert [(p["tau"], p["batch"]) for p in args.points] == [(8, 4), (16, 4), (8, 32), (16, 32)]


def test_plan_steps_targets_the_seconds_and_divides_by_steps_per_execution():
    # 3e8 FLOPs at 30 % of 10 GFLOP/s: 0.1 s per step, 2 s wanted -> 20 steps.
    assert plan_steps(3e8, 10.0, 2.0) == (20, 10)
    assert plan_steps(3e8, 10.0, 2.0, steps_per_execution=3) == (21, 3)
    assert plan_steps(3e12, 10.0, 2.0) == (1, 1)


def test_control_times_a_copy_of_the_stock_model():
    result = bench_layers.main(["--quick", "--control"])
    rows = result["rows"]
    assert all(row["ratio_control"] > 0 for row in rows)
    low, high = result["control"]["band"]
    assert low == min(row["ratio_control"] for row in rows)
    assert high == max(row["ratio_control"] for row in rows)
    slower = [row["ratio"] for row in rows if row["ratio"] < low]
    assert [point["ratio"] for point in result["control"]["slower_beyond_noise"]] == slower
