"""tfapprox.export: .keras round trips and SavedModels served without tfapprox.

Each `verify_export` starts a fresh Python (a TensorFlow import, seconds), so
the module verifies one SavedModel, one .keras file and one mismatch.
"""

import json
import os

import numpy as np
import pytest

from tfapprox import Budget
from tfapprox.export import (
    ExportVerificationError,
    export_saved_model,
    load_model,
    save_model,
    verify_export,
)

BUDGET = Budget(n=4, m_h=2, m_v=3, m_ff=8)


def make_model(seed):
    import keras

    from tfapprox.models import build_transformer

    keras.utils.set_random_seed(seed)
    return build_transformer(BUDGET, 6, 2, output_dim=2)


@pytest.fixture(scope="module")
def model():
    return make_model(0)


@pytest.fixture(scope="module")
def x():
    return np.random.default_rng(0).uniform(size=(5, 6, 2)).astype("float32")


@pytest.fixture(scope="module")
def saved_model_path(model, tmp_path_factory):
    return export_saved_model(model, tmp_path_factory.mktemp("export") / "saved")


def test_keras_file_round_trip_gives_identical_predictions(model, x, tmp_path):
    path = save_model(model, tmp_path / "model.keras")
    loaded = load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), model.predict(x, verbose=0))
    # Sorted JSON: the configs agree up to tuple-versus-list.
    assert json.dumps(loaded.get_config(), sort_keys=True) == json.dumps(
        model.get_config(), sort_keys=True
    )
    assert os.listdir(tmp_path) == ["model.keras"]  # no temporary files left behind


def test_keras_file_loads_in_a_fresh_process_after_only_import_tfapprox(model, x, tmp_path):
    path = save_model(model, tmp_path / "model.keras")
    report = verify_export(model, path, x)
    assert report["format"] == "keras"
    assert report["batch_sizes"] == [1, 5]
    # Same weights, same graph: the predictions agree to float32 round-off.
    assert all(diff <= 1e-6 for diff in report["max_abs_diff"].values())


def test_saved_model_serves_in_a_fresh_process_without_tfapprox(model, saved_model_path):
    report = verify_export(model, saved_model_path)
    assert report["format"] == "saved_model"
    assert report["tfapprox_imported"] is False
    assert report["batch_sizes"] == [1, 8]
    assert set(report["max_abs_diff"]) == {"1", "8"}
    assert all(diff <= 1e-5 for diff in report["max_abs_diff"].values())


def test_verify_export_raises_when_predictions_differ(saved_model_path, x):
    other = make_model(1)  # same architecture, other weights
    with pytest.raises(
        ExportVerificationError, match="does not reproduce model.predict at batch size 1"
    ):
        verify_export(other, saved_model_path, x)


def test_export_saved_model_replaces_an_existing_export(model, x, tmp_path):
    import tensorflow as tf

    path = tmp_path / "saved"
    export_saved_model(make_model(1), path)
    export_saved_model(model, path)
    loaded = tf.saved_model.load(str(path))  # keep a reference: its variables live here
    served = loaded.serve(x).numpy()
    # In-process reload of the same graph: float32 round-off only.
    np.testing.assert_allclose(served, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    assert sorted(os.listdir(tmp_path)) == ["saved"]


def test_save_model_requires_the_keras_extension(model, tmp_path):
    with pytest.raises(ValueError, match="must end with '.keras'"):
        save_model(model, tmp_path / "model.h5")


def test_load_model_reports_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="model file not found"):
        load_model(tmp_path / "missing.keras")


def test_load_model_reports_a_corrupt_file(tmp_path):
    path = tmp_path / "corrupt.keras"
    path.write_bytes(b"not a zip archive")
    with pytest.raises(ValueError, match="is not a readable .keras model file"):
        load_model(path)


def test_load_model_refuses_a_folder(saved_model_path):
    with pytest.raises(ValueError, match="is a folder"):
        load_model(saved_model_path)


def test_verify_export_needs_two_rows(model, saved_model_path, x):
    with pytest.raises(ValueError, match="N >= 2"):
        verify_export(model, saved_model_path, x[:1])


def test_verify_export_reports_a_missing_export(model, tmp_path):
    with pytest.raises(FileNotFoundError, match="export not found"):
        verify_export(model, tmp_path / "nothing")
