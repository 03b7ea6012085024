"""analysis/train_example.py: the plain Keras script runs end to end."""

import os

import pytest


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from analysis import train_example

    return train_example.main(["--quick", "--out", str(tmp_path_factory.mktemp("example"))])


def test_both_models_have_the_budget_parameter_count(report):
    assert report["by_hand"]["count_params"] == report["parameter_count"]
    assert report["build_transformer"]["count_params"] == report["parameter_count"]


@pytest.mark.parametrize("name", ["build_transformer", "by_hand"])
def test_fit_reduces_the_training_loss(report, name):
    assert report[name]["loss"] < report[name]["first_loss"]


@pytest.mark.parametrize("name", ["build_transformer", "by_hand"])
def test_saved_files_reload_with_the_same_predictions(report, name):
    assert os.path.isfile(report[name]["keras_path"])
    assert os.path.isfile(os.path.join(report[name]["saved_model_path"], "saved_model.pb"))
    # Reloaded in-process from the same weights: float32 round-off at most.
    assert report[name]["keras_max_abs_diff"] <= 1e-6
    assert report[name]["saved_model_max_abs_diff"] <= 1e-5


def test_hand_stacked_model_is_the_same_function_as_build_transformer(report):
    assert report["same_weights_max_abs_diff"] <= 1e-6


def test_data_is_the_bundled_default_preset(report):
    assert report["data"] == "preset:default"
    assert report["sequence_length"] == 16
