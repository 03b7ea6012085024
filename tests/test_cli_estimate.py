"""Tests for `tfapprox estimate`: spectra of presets, datasets and models."""

import json

import numpy as np
import pytest

from tests.helpers import assert_one_line_error, run_cli, run_cli_json

BOUND_KEYS = {"beta", "c_beta", "beta_ci", "rank", "singular_values"}


@pytest.fixture(scope="module")
def model_file(tmp_path_factory):
    """A tiny random model with m_h = 3, saved as .keras."""
    import keras

    from tfapprox import Budget, models

    keras.utils.set_random_seed(2)
    model = models.build_transformer(
        Budget(n=8, m_h=3, m_ff=8, ff_depth=2), 4, 1, activation="tanh"
    )
    path = tmp_path_factory.mktemp("model") / "model.keras"
    model.save(path)
    return path


@pytest.fixture
def inputs_file(tmp_path, rng):
    from tfapprox import datasets

    path = tmp_path / "inputs.npz"
    datasets.save_dataset(path, rng.random((6, 4, 1)), rng.random((6, 4, 1)), {"source": "test"})
    return path


@pytest.fixture(scope="module")
def targets():
    from tfapprox import targets

    return targets


def test_estimate_model_json_has_the_bound_keys_and_rank_at_most_m_h(model_file):
    out = run_cli_json("estimate", model_file, "--order", "8")
    assert set(out) >= BOUND_KEYS
    assert out["kind"] == "model" and out["source"] == "model"
    assert out["rank"] <= 3
    assert out["positions"] == 4 and out["num_points"] == 8
    assert len(out["beta_ci"]) == 2
    assert out["singular_values"] == sorted(out["singular_values"], reverse=True)


def test_estimate_model_with_data_uses_the_data_driven_estimate(model_file, inputs_file):
    out = run_cli_json("estimate", model_file, "--data", inputs_file, "--allow-short")
    assert out["source"] == "data" and out["method"] == "data"
    assert out["rank"] <= 3
    assert len(out["singular_values"]) <= 3


def test_estimate_model_data_with_wrong_tau_is_one_line_error(model_file, tmp_path, rng):
    from tfapprox import datasets

    path = tmp_path / "tau5.npz"
    datasets.save_dataset(path, rng.random((3, 5, 1)), rng.random((3, 5, 1)))
    result = run_cli("estimate", model_file, "--data", path, expect_exit=1)
    assert_one_line_error(result, "tau=5", "tau=4")


def test_estimate_human_output_names_beta_c_beta_and_rank(model_file):
    output = run_cli("estimate", model_file, "--order", "8").output
    assert "beta   =" in output and "C_beta =" in output and "95% CI" in output
    assert "numerical rank =" in output
    assert "singular values" in output


def test_estimate_writes_a_png_plot(model_file, tmp_path):
    plot = tmp_path / "plots" / "spectrum.png"
    out = run_cli_json("estimate", model_file, "--order", "8", "--plot", plot)
    assert out["plot"] == str(plot)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_estimate_missing_model_file_is_one_line_error(tmp_path):
    result = run_cli("estimate", tmp_path / "missing.keras", expect_exit=1)
    assert_one_line_error(result, "not found", "missing.keras")


def test_estimate_corrupt_model_file_is_one_line_error(tmp_path):
    path = tmp_path / "bad.keras"
    path.write_bytes(b"not a zip archive")
    result = run_cli("estimate", path, expect_exit=1)
    assert_one_line_error(result, "bad.keras", "not a readable .keras model file")


def test_estimate_corrupt_dataset_file_is_one_line_error(tmp_path):
    path = tmp_path / "bad.npz"
    path.write_bytes(b"garbage")
    result = run_cli("estimate", path, expect_exit=1)
    assert_one_line_error(result, "bad.npz")


def test_estimate_dataset_without_target_metadata_is_one_line_error(inputs_file):
    result = run_cli("estimate", inputs_file, expect_exit=1)
    assert_one_line_error(result, "inputs.npz")


def test_estimate_other_file_types_are_refused(tmp_path):
    path = tmp_path / "kernel.txt"
    path.write_text("1 2 3")
    result = run_cli("estimate", path, expect_exit=1)
    assert_one_line_error(result, ".npz", ".keras")


def test_estimate_bad_option_value_exits_2(model_file):
    result = run_cli("estimate", model_file, "--order", "0", expect_exit=2)
    assert "Traceback" not in result.output


def test_estimate_unknown_preset_lists_the_known_ones(targets):
    result = run_cli("estimate", "no-such-preset", expect_exit=1)
    assert_one_line_error(result, "no-such-preset", "fig5b-rinf")


def test_estimate_preset_recovers_beta(targets):
    out = run_cli_json("estimate", "fig5b-rinf")
    assert abs(out["beta"] - 1.0) <= 0.05
    assert out["kind"] == "target" and out["target"]["beta"] == pytest.approx(1.0)


def test_estimate_finite_rank_preset_reports_rank(targets):
    out = run_cli_json("estimate", "fig5b-r6")
    assert out["rank"] == 6
    assert abs(out["beta"] - 1.0) <= 0.05


def test_estimate_rank_two_preset_is_too_short_to_fit(targets):
    result = run_cli("estimate", "fig5a-r2", expect_exit=1)
    assert_one_line_error(result, "at least 3", "numerical rank 2")
    out = run_cli_json("estimate", "fig5a-r2", "--allow-short")
    assert out["rank"] == 2 and out["beta"] is None


def test_estimate_dataset_rebuilds_its_target(targets, tmp_path):
    path = tmp_path / "fig5b.npz"
    targets.load_preset("fig5b-r6").sample(8, seed=0).save(path)
    out = run_cli_json("estimate", path)
    assert out["rank"] == 6 and abs(out["beta"] - 1.0) <= 0.05


def test_estimate_json_is_parseable_and_sorted(model_file):
    text = run_cli("estimate", model_file, "--order", "8", "--json").output
    assert list(json.loads(text)) == sorted(json.loads(text))
    assert np.isfinite(json.loads(text)["beta"])


def test_estimate_json_feeds_bound_from_estimate(targets, tmp_path):
    estimate = run_cli("estimate", "fig5b-rinf", "--json").stdout
    path = tmp_path / "est.json"
    path.write_text(estimate)
    fitted = json.loads(estimate)
    out = run_cli_json("bound", "--from-estimate", path, "--tau", 16, "--alpha", 0.5, "--m-ff", 128)
    from tfapprox import theory

    bound = theory.Bound(tau=16, alpha=0.5, beta=fitted["beta"], c_beta=fitted["c_beta"])
    assert out["m_h_opt"] == pytest.approx(bound.optimal_m_h(128), rel=1e-12)
    assert out["m_h"] == bound.integer_m_h(128) == 2
