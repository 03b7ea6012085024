"""tfapprox.training: fit (restarts, seeds, NaN handling, configs).

Graph compilation dominates the cost of a fit, so the tests share one
trained result (`trained`) and keep every other fit tiny and un-jitted.
"""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from tfapprox import Budget
from tfapprox.datasets import Dataset
from tfapprox.training import FitResult, fit

BUDGET = Budget(n=4, m_h=2, m_ff=8)
FIT = dict(epochs=8, batch_size=32, verbose=0)


def mean_target(num_samples=256, tau=6, seed=0):
    """y_t = the sequence mean of x: one uniform attention head solves it."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(num_samples, tau, 1)).astype("float32")
    y = np.repeat(x.mean(axis=1, keepdims=True), tau, axis=1)
    return Dataset(x, y, {"target": "mean"})


def mse(model, data):
    return float(np.mean((model.predict(data.x, verbose=0) - data.y) ** 2))


@pytest.fixture(scope="module")
def data():
    return mean_target()


@pytest.fixture(scope="module")
def trained(data):
    """The shared fit: default jit, two restarts, seed 0."""
    return fit(BUDGET, data, restarts=2, seed=0, **FIT)


def test_fit_reduces_the_loss_of_the_seeded_initialisation(data, trained):
    import keras

    from tfapprox.models import build_transformer

    keras.utils.set_random_seed(0)  # restart 0 of `trained` starts from these weights
    untrained = build_transformer(BUDGET, data.sequence_length, data.input_dim)
    assert trained.loss < 0.5 * mse(untrained, data)
    assert trained.history[-1] < trained.history[0]


def test_fit_keeps_the_restart_with_the_lowest_loss(data, trained):
    assert len(trained.restart_losses) == 2
    assert trained.restart_losses[0] != trained.restart_losses[1]  # different initialisations
    assert trained.loss == min(trained.restart_losses)
    assert trained.best_restart == int(np.argmin(trained.restart_losses))
    # The returned model is the kept one: float32 evaluation order, ~1e-7.
    assert mse(trained.model, data) == pytest.approx(trained.loss, rel=1e-5)


def test_fit_is_reproducible_with_a_seed(data, trained):
    again = fit(BUDGET, data, restarts=1, seed=0, **FIT)
    # Restart 0 of `trained` is the same run: same seed, init and shuffles.
    # CPU kernels are deterministic; allow only float32 round-off.
    assert again.loss == pytest.approx(trained.restart_losses[0], rel=1e-6, abs=1e-9)


def test_fit_result_records_budget_seed_and_hyperparameters(data, trained):
    assert trained.budget == BUDGET
    assert trained.seed == 0 and trained.restarts == 2
    assert trained.parameter_count == BUDGET.parameter_count(6, 1)
    assert trained.epochs == len(trained.history) == 8
    assert trained.stopped == "max_epochs"
    assert trained.hyperparameters["epochs"] == 8
    assert trained.hyperparameters["batch_size"] == 32
    assert trained.data == {
        "sequence_length": 6,
        "input_dim": 1,
        "output_dim": 1,
        "task": "sequence",
        "num_samples": 256,
    }


def test_fit_result_round_trips_through_json(trained):
    as_dict = json.loads(json.dumps(trained.to_dict()))
    assert "model" not in as_dict
    assert set(as_dict["budget"]) == {"n", "m_h", "m_v", "m_ff", "ff_depth"}
    assert isinstance(as_dict["loss"], float) and isinstance(as_dict["seed"], int)
    again = FitResult.from_dict(as_dict)
    assert again.to_dict() == trained.to_dict()
    assert again.budget == BUDGET


def test_fit_result_from_dict_rejects_unknown_fields(trained):
    with pytest.raises(ValueError, match="bogus"):
        FitResult.from_dict({**trained.to_dict(), "bogus": 1})


def test_fit_stops_on_inf_loss_and_keeps_the_initial_weights(data):
    huge = Dataset(data.x, data.y * 1e30)  # finite data, but the squared error overflows float32
    with pytest.warns(RuntimeWarning, match="training loss is inf"):
        result = fit(BUDGET, huge, epochs=3, batch_size=32, jit_compile=False, verbose=0)
    assert result.stopped == "non_finite"
    assert "epoch 1, batch 1" in result.message and "initial weights" in result.message
    assert result.epochs == 1 and result.history == []
    assert all(np.all(np.isfinite(w)) for w in result.model.get_weights())


def test_fit_stops_on_nan_and_keeps_the_best_weights_so_far(data):
    import keras

    class PoisonAtEpoch3(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                kernel = self.model.get_layer("attention").query_kernel
                kernel.assign(np.full(kernel.shape, np.nan, dtype="float32"))

    with pytest.warns(RuntimeWarning, match="training loss is nan"):
        result = fit(
            BUDGET,
            data,
            epochs=5,
            batch_size=32,
            jit_compile=False,
            verbose=0,
            callbacks=[PoisonAtEpoch3()],
        )
    assert result.stopped == "non_finite"
    assert "epoch 3, batch 1" in result.message
    assert "keeping the weights of epoch" in result.message
    assert result.epochs == 3 and len(result.history) == 2
    assert math.isfinite(result.loss)
    assert mse(result.model, data) == pytest.approx(result.loss, rel=1e-5)


def test_fit_trains_a_pooled_classifier_on_labels():
    rng = np.random.default_rng(1)
    x = rng.uniform(size=(128, 4, 2)).astype("float32")
    labels = (x[:, :, 0].mean(axis=1) > 0.5).astype("int64") + 2 * (x[:, 0, 1] > 0.5)
    result = fit(
        BUDGET,
        (x, labels),
        epochs=2,
        batch_size=32,
        jit_compile=False,
        verbose=0,
        validation_data=(x[:32], labels[:32]),
    )
    assert result.model.output_shape == (None, 4)  # 4 classes → 4 logits, pooled
    assert result.data["task"] == "labels"
    assert set(result.metrics) == {"accuracy", "val_loss", "val_accuracy"}
    assert 0.0 <= result.metrics["accuracy"] <= 1.0
    # The validation metrics are the final model's, on the validation data:
    # cross-entropy of the logits and accuracy of their argmax, in NumPy.
    logits = np.asarray(result.model.predict(x[:32], verbose=0), dtype="float64")
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    cross_entropy = -log_p[np.arange(32), labels[:32]].mean()
    assert result.metrics["val_loss"] == pytest.approx(cross_entropy, rel=1e-5)
    accuracy = np.mean(logits.argmax(axis=1) == labels[:32])
    assert result.metrics["val_accuracy"] == pytest.approx(accuracy, abs=1e-6)


def test_fit_log_dir_needs_tensorboard(data, tmp_path):
    import importlib.util

    if importlib.util.find_spec("tensorboard") is None:
        with pytest.raises(ValueError, match="tensorboard package is not installed"):
            fit(BUDGET, data, epochs=1, log_dir=tmp_path / "logs")
    else:
        fit(BUDGET, data, epochs=1, jit_compile=False, verbose=0, log_dir=tmp_path / "logs")
        assert os.listdir(tmp_path / "logs" / "seed_0")  # TensorBoard event folders


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        ({"epochs": 0}, "`epochs` must be a positive int"),
        ({"batch_size": 2.5}, "`batch_size` must be a positive int"),
        ({"learning_rate": -1.0}, "`learning_rate` must be > 0"),
        ({"restarts": 0}, "`restarts` must be a positive int"),
        ({"seed": -1}, "`seed` must be a non-negative int"),
        ({"reduce_lr_factor": 1.5}, "`reduce_lr_factor` must be < 1"),
        ({"verbose": 5}, "`verbose` must be 0, 1 or 2"),
    ],
)
def test_fit_rejects_bad_hyperparameters(data, kwargs, fragment):
    with pytest.raises((ValueError, TypeError), match=fragment):
        fit(BUDGET, data, **kwargs)


def test_fit_rejects_a_model_of_the_wrong_sequence_length(data):
    from tfapprox.models import build_transformer

    model = build_transformer(BUDGET, 5, 1)
    with pytest.raises(ValueError, match=r"inputs of shape \(None, 5, 1\)"):
        fit(model, data, epochs=1, verbose=0)


def test_fit_rejects_data_of_the_wrong_type():
    with pytest.raises(TypeError, match="`data` must be a tfapprox Dataset"):
        fit(BUDGET, np.zeros((4, 3, 1)), epochs=1)


def test_fit_reports_nan_in_the_data():
    x = np.zeros((4, 3, 1), dtype="float32")
    x[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        fit(BUDGET, (x, np.zeros((4, 3, 1))), epochs=1)


def test_fit_takes_a_training_config_and_keyword_overrides(data, trained):
    from tfapprox.config import TrainingConfig

    config = TrainingConfig(epochs=50, batch_size=32)
    again = fit(BUDGET, data, config=config, epochs=8, seed=0, verbose=0)
    # The keyword argument overrides the config; the rest comes from it.
    assert again.hyperparameters == {**trained.hyperparameters, "restarts": 1}
    # Restart 0 of `trained` is the same run; allow only float32 round-off.
    assert again.loss == pytest.approx(trained.restart_losses[0], rel=1e-6, abs=1e-9)


def test_fit_runs_every_epoch_without_a_patience_and_stops_with_one(data):
    # At lr 1e-9 the loss cannot improve by 0.1 %: a patience of 2 stops at
    # epoch 3, and the default (no patience) runs all 6 epochs.
    frozen = dict(epochs=6, batch_size=32, learning_rate=1e-9, schedule="constant", verbose=0)
    assert fit(BUDGET, data, **frozen).epochs == 6
    stopped = fit(BUDGET, data, patience=2, **frozen)
    assert (stopped.stopped, stopped.epochs) == ("plateau", 3)


def test_fit_rejects_an_unknown_keyword(data):
    with pytest.raises(TypeError, match="speed"):
        fit(BUDGET, data, speed=2)


def test_old_names_stay_importable_from_training():
    from tfapprox import results, sweeps, training

    assert training.load_results is results.read
    assert training.write_results is results.write
    assert training.run_key is results.run_key
    assert training.sweep is sweeps.sweep


def test_training_module_imports_without_tensorflow():
    code = (
        "import sys, tfapprox.training; "
        "print(any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules))"
    )
    env = {**os.environ, "TFAPPROX_LAZY_IMPORT": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
