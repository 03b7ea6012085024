"""The train, export and info commands, run in-process with CliRunner.

One tiny `tfapprox train` run is shared by the module; the bad-input tests
fail before any training.
"""

import os

import numpy as np
import pytest
from helpers import assert_one_line_error, run_cli, run_cli_json

from tfapprox import Budget
from tfapprox.datasets import save_dataset
from tfapprox.export import load_model
from tfapprox.targets import load_preset
from tfapprox.training import load_results

TRAIN = ("--n", 4, "--m-h", 2, "--m-ff", 8, "--epochs", 2, "--batch-size", 32, "--no-jit")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return tmp_path_factory.mktemp("cli_train")


@pytest.fixture(scope="module")
def dataset_path(folder):
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(64, 5, 1)).astype("float32")
    y = np.repeat(x.mean(axis=1, keepdims=True), 5, axis=1)
    path = folder / "data.npz"
    save_dataset(path, x, y, {"target": "mean"})
    return path


@pytest.fixture(scope="module")
def trained(folder, dataset_path):
    out = folder / "run"
    summary = run_cli_json("train", dataset_path, *TRAIN, "--seed", 3, "--out", out)
    return out, summary


def write_npz(path, **arrays):
    """A raw .npz (bypassing save_dataset's validation) to feed bad data in."""
    from tfapprox._io import atomic_save_npz

    atomic_save_npz(path, **arrays)
    return path


def test_train_writes_model_and_results_file(trained):
    out, summary = trained
    assert sorted(os.listdir(out)) == ["model.keras", "result.json"]
    results = load_results(out / "result.json")
    (run,) = results["runs"]
    assert run["budget"] == {"n": 4, "m_h": 2, "m_v": 4, "m_ff": 8, "ff_depth": 3}
    assert run["seed"] == 3
    assert run["loss"] == summary["loss"]
    assert results["metadata"]["sequence_length"] == 5
    assert results["metadata"]["data_path"].endswith("data.npz")
    assert results["metadata"]["data"] == results["metadata"]["data_path"]


def test_train_json_reports_the_run(trained):
    out, summary = trained
    assert summary["model_path"] == str(out / "model.keras")
    assert summary["epochs"] == 2
    assert summary["hyperparameters"]["batch_size"] == 32
    assert summary["jit_compile"] is False
    assert summary["parameter_count"] == Budget(n=4, m_h=2, m_ff=8).parameter_count(5, 1)


def test_info_prints_budget_parameters_and_layers(trained):
    out, summary = trained
    result = run_cli("info", out / "model.keras")
    assert "budget: n=4 m_h=2 m_v=4 m_ff=8 ff_depth=3" in result.output
    assert f"parameters: {summary['parameter_count']:,}" in result.output
    for layer in ("position_encoding", "f_hat", "attention", "F_hat"):
        assert layer in result.output


def test_info_json_describes_the_model(trained):
    out, summary = trained
    info = run_cli_json("info", out / "model.keras")
    assert info["budget"] == summary["budget"]
    assert info["parameter_count"] == summary["parameter_count"]
    assert info["sequence_length"] == 5 and info["output"] == "sequence"
    assert [layer["name"] for layer in info["layers"]] == [
        "x",
        "position_encoding",
        "f_hat",
        "attention",
        "F_hat",
    ]
    assert sum(layer["parameters"] for layer in info["layers"]) == info["parameter_count"]


def test_export_saved_model_is_verified(trained, tmp_path):
    out, _ = trained
    report = run_cli_json(
        "export", out / "model.keras", "--format", "saved_model", "--out", tmp_path / "saved"
    )
    assert report["format"] == "saved_model" and report["tfapprox_imported"] is False
    assert all(diff <= 1e-5 for diff in report["max_abs_diff"].values())
    assert os.path.isfile(tmp_path / "saved" / "saved_model.pb")


def test_export_keras_is_verified(trained, tmp_path):
    out, _ = trained
    result = run_cli(
        "export", out / "model.keras", "--format", "keras", "--out", tmp_path / "copy.keras"
    )
    assert "verified in a fresh process" in result.output
    assert os.path.isfile(tmp_path / "copy.keras")


# ----------------------------------------------------------------------------
# Bad input: one clear line, non-zero exit, no traceback.


def test_train_rejects_a_missing_data_file(tmp_path):
    result = run_cli(
        "train", tmp_path / "missing.npz", *TRAIN, "--out", tmp_path / "o", expect_exit=2
    )
    assert_one_line_error(result, "missing.npz", "neither a dataset file nor a preset", "default")


def test_train_samples_a_preset_and_evaluates_on_held_out_data(tmp_path):
    out = tmp_path / "preset"
    summary = run_cli_json(
        "train", "fig5b-r2", "--samples", 32, "--data-seed", 4, *TRAIN, "--out", out
    )
    # val_loss is the saved model's MSE on the held-out sequences (seed 4 + 1).
    held_out = load_preset("fig5b-r2").sample(8, seed=5)
    predicted = np.asarray(load_model(out / "model.keras").predict(held_out.x, verbose=0))
    assert summary["metrics"]["val_loss"] == pytest.approx(
        np.mean((predicted - held_out.y) ** 2), rel=1e-4
    )
    results = load_results(out / "result.json")
    assert results["metadata"]["data"] == "preset fig5b-r2 (32 samples, seed 4)"
    assert results["metadata"]["sequence_length"] == 16
    assert "data_path" not in results["metadata"]


def test_train_rejects_a_corrupt_npz(tmp_path):
    path = tmp_path / "corrupt.npz"
    path.write_bytes(b"definitely not a zip file")
    result = run_cli("train", path, *TRAIN, "--out", tmp_path / "o", expect_exit=1)
    assert_one_line_error(result, "Error:", "is not a readable .npz dataset file")


def test_train_rejects_wrong_shapes(tmp_path):
    path = write_npz(
        tmp_path / "flat.npz", x=np.zeros((4, 5), "float32"), y=np.zeros((4, 5, 1), "float32")
    )
    result = run_cli("train", path, *TRAIN, "--out", tmp_path / "o", expect_exit=1)
    assert_one_line_error(result, "`x` must have shape (N, tau, d)")


def test_train_rejects_nan_in_the_data(tmp_path):
    x = np.zeros((4, 5, 1), "float32")
    x[1, 2, 0] = np.nan
    path = write_npz(tmp_path / "nan.npz", x=x, y=np.zeros((4, 5, 1), "float32"))
    result = run_cli("train", path, *TRAIN, "--out", tmp_path / "o", expect_exit=1)
    assert_one_line_error(result, "non-finite")


@pytest.mark.parametrize("option", ["--n", "--m-h", "--m-v", "--m-ff", "--ff-depth", "--epochs"])
def test_train_rejects_non_positive_budget_values(dataset_path, tmp_path, option):
    args = list(TRAIN)
    if option in args:
        args[args.index(option) + 1] = 0
    else:
        args += [option, 0]
    result = run_cli("train", dataset_path, *args, "--out", tmp_path / "o", expect_exit=2)
    assert_one_line_error(result, option, "0 is not in the range x>=1")
    assert not os.path.exists(tmp_path / "o")


def test_export_rejects_an_unknown_format(trained, tmp_path):
    out, _ = trained
    result = run_cli(
        "export", out / "model.keras", "--format", "onnx", "--out", tmp_path / "m", expect_exit=2
    )
    assert_one_line_error(result, "'onnx' is not one of 'keras', 'saved_model'")


def test_export_keras_needs_the_keras_extension(trained, tmp_path):
    out, _ = trained
    result = run_cli(
        "export",
        out / "model.keras",
        "--format",
        "keras",
        "--out",
        tmp_path / "m.h5",
        expect_exit=2,
    )
    assert_one_line_error(result, "must end with '.keras'")


def test_export_rejects_a_missing_model(tmp_path):
    result = run_cli("export", tmp_path / "none.keras", "--out", tmp_path / "saved", expect_exit=2)
    assert_one_line_error(result, "does not exist")


def test_info_rejects_a_corrupt_model(tmp_path):
    path = tmp_path / "corrupt.keras"
    path.write_bytes(b"junk")
    result = run_cli("info", path, expect_exit=1)
    assert_one_line_error(result, "Error:", "is not a readable .keras model file")


def test_info_rejects_a_missing_model(tmp_path):
    result = run_cli("info", tmp_path / "none.keras", expect_exit=2)
    assert_one_line_error(result, "does not exist")


def test_commands_are_registered():
    from tfapprox_cli.train import COMMANDS

    assert [command.name for command in COMMANDS] == ["train", "export", "info"]
    result = run_cli("--help")
    for name in ("train", "export", "info"):
        assert name in result.output


def test_ctrl_c_in_train_says_nothing_was_written_and_exits_130(tmp_path, monkeypatch):
    from tfapprox import training

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "fit", interrupted)
    out = tmp_path / "run"
    result = run_cli("train", "default", *TRAIN, "--out", out, expect_exit=130)
    assert "Traceback" not in result.output
    text = " ".join(result.stderr.split())
    assert f"Interrupted: nothing was written to {out}" in text and "tfapprox sweep" in text
    assert list(out.iterdir()) == []


def test_train_kink_range_starts_f_hat_bent_over_the_tokens(dataset_path, tmp_path):
    # With one epoch at a learning rate of 1e-9 the saved model is its start.
    args = [a for a in TRAIN if a != "--no-jit"]
    args[args.index("--epochs") + 1] = 1
    summary = run_cli_json(
        "train", dataset_path, *args, "--learning-rate", 1e-9, "--seed", 3,
        "--position-encoding", "none", "--kink-range", "0.2,0.8", "--out", tmp_path / "k",
    )  # fmt: skip
    assert summary["hyperparameters"]["model_kwargs"] == {
        "position_encoding": "none",
        "kink_range": [0.2, 0.8],
    }
    first = load_model(tmp_path / "k" / "model.keras").get_layer("f_hat").hidden_layers[0]
    kernel, bias = (np.asarray(w) for w in first.weights)
    kinks = -bias / kernel[0]
    assert np.all((kinks > 0.2 - 1e-6) & (kinks < 0.8 + 1e-6))


@pytest.mark.parametrize("value", ["1,0", "0", "a,b", "0,inf", "0,1,2"])
def test_train_and_sweep_reject_a_bad_kink_range(dataset_path, tmp_path, value):
    sweep = ("--m-h", 2, "--m-ff", 8, "--n", 4, "--epochs", 2)
    for command, options in (("train", TRAIN), ("sweep", sweep)):
        result = run_cli(
            command, dataset_path, *options, "--kink-range", value, "--out", tmp_path / "o",
            expect_exit=2,
        )  # fmt: skip
        assert_one_line_error(result, "--kink-range", f"{value!r} is not LOW,HIGH")
    assert not os.path.exists(tmp_path / "o")
