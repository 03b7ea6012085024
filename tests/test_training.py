"""tfapprox.training: fit (restarts, seeds, NaN handling), results files, sweeps.

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
from tfapprox.training import FitResult, fit, load_results, run_key, sweep, write_results

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


# ----------------------------------------------------------------------------
# Results files and sweeps


def run_dict(**overrides):
    run = {"budget": BUDGET.to_dict(), "loss": 0.5, "seed": 0}
    run.update(overrides)
    return run


def test_load_results_reads_what_write_results_wrote(tmp_path):
    path = tmp_path / "results.json"
    write_results(path, [run_dict(), run_dict(seed=1)], {"sequence_length": 6})
    results = load_results(path)
    assert [run["seed"] for run in results["runs"]] == [0, 1]
    assert results["metadata"] == {"sequence_length": 6}


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("{not json", "is not valid JSON"),
        ('{"metadata": {}}', '{"runs": [...]'),
        (
            json.dumps({"runs": [{"budget": BUDGET.to_dict(), "seed": 0}]}),
            "run 0 lacks the keys ['loss']",
        ),
        (
            json.dumps({"runs": [run_dict(), run_dict(loss="low")]}),
            "run 1: `loss` must be a number",
        ),
        (json.dumps({"runs": [run_dict(seed=1.5)]}), "`seed` must be an int"),
        (
            json.dumps({"runs": [run_dict(budget={"n": 4, "m_h": 2, "m_ff": 8})]}),
            "lacks the keys ['m_v', 'ff_depth']",
        ),
        (
            json.dumps({"runs": [run_dict(budget={**BUDGET.to_dict(), "m_h": 0})]}),
            "`m_h` must be a positive int",
        ),
    ],
)
def test_load_results_names_the_problem(tmp_path, content, fragment):
    path = tmp_path / "results.json"
    path.write_text(content)
    with pytest.raises(ValueError) as info:
        load_results(path)
    assert fragment in str(info.value) and str(path) in str(info.value)


def test_load_results_reports_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="results file not found"):
        load_results(tmp_path / "nope.json")


def test_sweep_resumes_without_retraining_finished_runs(data, tmp_path, monkeypatch, capsys):
    import tfapprox.training as training

    calls = []
    real_fit = training.fit

    def counting_fit(budget, *args, **kwargs):
        calls.append((budget, kwargs["seed"]))
        return real_fit(budget, *args, **kwargs)

    monkeypatch.setattr(training, "fit", counting_fit)
    small, other = Budget(n=4, m_h=1, m_ff=8), Budget(n=4, m_h=2, m_ff=8)
    options = dict(epochs=2, batch_size=64, jit_compile=False)
    path = tmp_path / "sweep.json"

    # "Interrupted" sweep: only the first budget finished.
    sweep(data, [small], path, seeds=(0,), **options)
    first = load_results(path)["runs"]
    assert len(first) == 1 and len(calls) == 1

    runs = sweep(data, [small, other], path, seeds=(0,), **options)
    assert calls == [(small, 0), (other, 0)]  # the finished run was not retrained
    results = load_results(path)
    assert results["runs"][0] == first[0]
    assert [run["budget"]["m_h"] for run in runs] == [1, 2]
    assert results["metadata"]["sequence_length"] == 6
    assert len({run_key(run) for run in results["runs"]}) == 2

    sweep(data, [small, other], path, seeds=(0,), **options)
    assert len(calls) == 2  # everything already done
    progress = capsys.readouterr().err
    assert "[2/2] n=4 m_h=2 m_v=4 m_ff=8 ff_depth=3 seed=0: loss" in progress and "ETA" in progress
    assert "[1/2] n=4 m_h=1 m_v=4 m_ff=8 ff_depth=3 seed=0: already in results" in progress


def test_sweep_key_includes_the_hyperparameters():
    base = run_dict(hyperparameters={"epochs": 2, "learning_rate": 0.001})
    assert run_key(base) == run_key(json.loads(json.dumps(base)))
    assert run_key(base) != run_key(
        {**base, "hyperparameters": {"epochs": 3, "learning_rate": 0.001}}
    )
    assert run_key(base) != run_key({**base, "seed": 1})


def test_sweep_refuses_a_results_file_of_other_data(data, tmp_path):
    path = tmp_path / "sweep.json"
    write_results(path, [], {"data_sha256": "0" * 64})
    with pytest.raises(ValueError, match="holds runs on different data"):
        sweep(data, [BUDGET], path, epochs=1)


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
