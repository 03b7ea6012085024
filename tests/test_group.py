"""tfapprox.group.train_models: Keras models of any architectures train as they would alone.

Tiny models (τ = 6, widths ≤ 12) so each test's Keras work takes seconds.
Tolerances: the models of a group are independent in exact arithmetic (the
objective is a sum of separate losses), but XLA compiles the group and the
lone model into different programs, so float32 sums may be ordered
differently; over 56 Adam steps that stays far below rtol 1e-4 on losses.
"""

import json
import os
import pathlib
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
from helpers import assert_same_records, interrupted_then_resumed, running_sums_split

from tfapprox import Budget
from tfapprox.engine import _padded_order
from tfapprox.group import train_models
from tfapprox.metrics import paper_error
from tfapprox.models import build_transformer

ROOT = pathlib.Path(__file__).resolve().parents[1]
TAU = 6
CONSTANT = {"epochs": 7, "batch_size": 8, "learning_rate": 3e-3, "schedule": "constant"}


@pytest.fixture(scope="module")
def data():
    """64 sequences: 8 batches of 8, so 7 epochs are 56 steps."""
    return running_sums_split(TAU)[0]


@pytest.fixture(scope="module")
def held_out():
    return running_sums_split(TAU)[1]


def transformer(seed=0, **kwargs):
    return build_transformer(
        Budget(n=8, m_h=2, m_ff=12, ff_depth=2), TAU, 1, seed=seed, name="transformer", **kwargs
    )


def rnn(seed=1):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((TAU, 1)),
            keras.layers.SimpleRNN(8, return_sequences=True),
            keras.layers.Dense(1),
        ],
        name="rnn",
    )


def mlp(seed=2):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((TAU, 1)), keras.layers.Dense(12, activation="tanh"), keras.layers.Dense(1)],
        name="mlp",
    )


def group():
    return [transformer(), rnn(), mlp()]


@pytest.fixture(scope="module")
def trained(data, held_out):
    return train_models(group(), data, CONSTANT, validation_data=held_out)


@pytest.mark.parametrize(("index", "build"), [(0, transformer), (1, rnn)])
def test_model_in_group_matches_model_trained_alone(data, trained, index, build):
    alone = train_models([build()], data, CONSTANT)
    assert len(alone.records[0]["history"]) == 7  # 56 steps
    np.testing.assert_allclose(
        trained.records[index]["history"], alone.records[0]["history"], rtol=1e-4
    )
    for got, want in zip(trained.models[index].get_weights(), alone.models[0].get_weights()):
        np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-5)


def test_group_matches_keras_adam_loop(data, trained):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the reference loop uses tf.GradientTape")
    import tensorflow as tf

    x, y = data
    model = rnn()  # the group's initial weights
    optimizer = keras.optimizers.Adam(CONSTANT["learning_rate"])
    mse = keras.losses.MeanSquaredError()

    @tf.function
    def step(x_batch, y_batch):
        with tf.GradientTape() as tape:
            loss = mse(y_batch, model(x_batch, training=True))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    rng = np.random.default_rng(0)  # train_models' default shuffle_seed
    history = []
    for _ in range(CONSTANT["epochs"]):
        order, _ = _padded_order(rng.permutation(len(x)), CONSTANT["batch_size"])
        history.append(sum(float(step(x[rows], y[rows])) * len(rows) for rows in order) / len(x))
    np.testing.assert_allclose(trained.records[1]["history"], history, rtol=1e-4)


def test_records_report_loss_and_paper_norm_of_the_returned_models(data, held_out, trained):
    for index, record in enumerate(trained.records):
        model = trained.models[index]
        for (x, y), prefix in ((data, ""), (held_out, "val_")):
            prediction = model.predict(x, verbose=0)
            assert record[prefix + "loss"] == pytest.approx(
                np.mean((prediction - y) ** 2), rel=1e-5
            )
            assert record[prefix + "error"] == pytest.approx(paper_error(y, prediction), rel=1e-5)
            assert record[prefix + "accuracy"] is None
        assert record["stopped"] == "max_epochs" and record["epochs"] == 7
        assert record["name"] == model.name and record["group_size"] == 3
        assert record["parameter_count"] == model.count_params()
        # the kept weights are those of the best epoch: their loss is at most the best epoch-mean
        assert min(record["history"]) == record["best_loss"]
    assert trained.records[0]["budget"] == Budget(n=8, m_h=2, m_ff=12, ff_depth=2).to_dict()
    assert trained.records[1]["budget"] is None
    json.dumps(trained.to_dicts())  # JSON-ready


def test_trained_model_saves_and_reloads(tmp_path, data, trained):
    path = tmp_path / "rnn.keras"
    trained.models[1].save(path)
    reloaded = keras.saving.load_model(path)
    for saved, loaded in zip(trained.models[1].get_weights(), reloaded.get_weights()):
        np.testing.assert_array_equal(loaded, saved)
    # Same weights; oneDNN may pick another kernel for the reloaded graph, so
    # the float32 predictions can differ in the last bit (6e-8 seen on 2 cores).
    np.testing.assert_allclose(
        reloaded.predict(data[0][:8], verbose=0),
        trained.models[1].predict(data[0][:8], verbose=0),
        rtol=1e-6,
        atol=1e-7,
    )


def test_non_finite_model_stops_alone(data, trained):
    models = [transformer(), mlp()]
    weights = models[1].get_weights()
    weights[-2][:] = np.nan  # the output kernel
    models[1].set_weights(weights)
    with pytest.warns(RuntimeWarning, match=r"Model 1 \('mlp'\) stopped in epoch 1"):
        result = train_models(models, data, CONSTANT)
    record = result.records[1]
    assert record["stopped"] == "non_finite" and record["epochs"] == 1
    assert "keeping the initial weights" in record["message"]
    np.testing.assert_array_equal(np.isnan(result.models[1].get_weights()[-2]), True)
    assert result.records[0]["stopped"] == "max_epochs"
    np.testing.assert_allclose(
        result.records[0]["history"], trained.records[0]["history"], rtol=1e-4
    )


def test_plateau_stops_and_freezes_only_that_model(data, trained):
    seen = []
    models = [transformer(), mlp()]
    start = models[0].get_weights()
    result = train_models(
        models,
        data,
        {**CONSTANT, "patience": 2, "min_rel_delta": 1e-3},
        learning_rates=[1e-12, None],
        progress=lambda epoch, states: seen.append(states),
    )
    assert result.records[0]["stopped"] == "plateau" and result.records[0]["epochs"] == 3
    assert [states[0]["loss"] is None for states in seen] == [False] * 3 + [True] * 4
    assert seen[0][0]["name"] == "transformer" and seen[0][0]["learning_rate"] == 1e-12
    for got, want in zip(result.models[0].get_weights(), start):
        np.testing.assert_allclose(got, want, atol=1e-9)  # 24 steps of at most ~1e-12
    other = result.records[1]["history"]  # the MLP, undisturbed by the frozen model
    np.testing.assert_allclose(other, trained.records[2]["history"][: len(other)], rtol=1e-4)


def test_cosine_schedule_rates_follow_training_config(data):
    from tfapprox.config import TrainingConfig

    config = {"epochs": 4, "batch_size": 32, "schedule": "cosine", "warmup_epochs": 1}
    seen = []
    train_models([mlp()], data, config, progress=lambda e, s: seen.append(s[0]["learning_rate"]))
    expected = TrainingConfig(**config)
    assert seen == pytest.approx([expected.scheduled_rate(e) for e in range(1, 5)], rel=1e-12)


def test_classifiers_train_with_cross_entropy_from_logits(data):
    x, _ = data
    labels = (x.sum(axis=(1, 2)) > TAU / 2).astype("int64") + (x[:, 0, 0] > 0.5)  # 3 classes
    keras.utils.set_random_seed(3)
    classifier = keras.Sequential(
        [keras.Input((TAU, 1)), keras.layers.Flatten(), keras.layers.Dense(3)], name="classifier"
    )
    models = [transformer(output="pooled", output_dim=3), classifier]
    result = train_models(
        models, (x, labels), {**CONSTANT, "epochs": 3}, loss="sparse_categorical_crossentropy"
    )
    for record, model in zip(result.records, result.models):
        logits = model.predict(x, verbose=0).astype("float64")
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        assert record["loss"] == pytest.approx(-log_p[np.arange(len(x)), labels].mean(), rel=1e-5)
        assert record["accuracy"] == pytest.approx(np.mean(logits.argmax(axis=1) == labels))
        assert record["error"] is None and record["hyperparameters"]["loss"] == (
            "sparse_categorical_crossentropy"
        )
        assert record["history"][-1] < record["history"][0]


def test_language_model_labels_per_position(data):
    x, _ = data
    tokens = (x[..., 0] * 4).astype("int64")  # (N, tau) labels in 0..3
    next_tokens = np.roll(tokens, -1, axis=1)
    keras.utils.set_random_seed(4)
    model = keras.Sequential([keras.Input((TAU, 1)), keras.layers.Dense(4)], name="bigram")
    result = train_models(
        [model],
        (x, next_tokens),
        {**CONSTANT, "epochs": 2},
        loss=("sparse_categorical_crossentropy"),
    )
    logits = model.predict(x, verbose=0).astype("float64")  # (N, tau, 4)
    log_p = logits - np.log(np.exp(logits).sum(axis=-1, keepdims=True))
    expected = -np.take_along_axis(log_p, next_tokens[..., None], axis=-1).mean()
    assert result.records[0]["loss"] == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"models": []}, ValueError, "`models` is empty"),
        ({"models": "model"}, TypeError, "`models`"),
        ({"models": [3]}, TypeError, r"models\[0\]"),
        ({"models": [keras.Sequential([keras.layers.Dense(1)])]}, ValueError, "not built"),
        ({"models": "twice"}, ValueError, "appears twice"),
        (
            {"models": [keras.Sequential([keras.Input((TAU, 1)), keras.layers.Flatten()])]},
            ValueError,
            r"outputs shape \(None, 6\)",
        ),
        (
            {"models": [keras.Sequential([keras.Input((TAU, 2)), keras.layers.Dense(1)])]},
            ValueError,
            "cannot take",
        ),
        ({"loss": "mae"}, ValueError, "loss"),
        ({"loss": "sparse_categorical_crossentropy"}, ValueError, "integer class labels"),
        ({"config": {"epoch": 3}}, ValueError, "Unknown TrainingConfig settings"),
        ({"data": "file.npz"}, TypeError, "`data`"),
        ({"data": (np.zeros((4, TAU, 1)), np.zeros((5, TAU, 1)))}, ValueError, "same number"),
        ({"progress": 1}, TypeError, "progress"),
        ({"learning_rates": [1e-3, 1e-3]}, ValueError, "learning_rates"),
        ({"learning_rates": [0.0]}, ValueError, r"learning_rates\[0\]"),
        ({"checkpoint": 3}, TypeError, "checkpoint"),
        (
            {"validation_data": (np.zeros((4, TAU, 2)), np.zeros((4, TAU, 1)))},
            ValueError,
            "validation_data",
        ),
    ],
)
def test_bad_arguments_raise_naming_the_argument(data, kwargs, error, match):
    if kwargs.get("models") == "twice":
        model = mlp()
        kwargs["models"] = [model, model]
    arguments = {"models": [mlp()], "data": data, "config": {"epochs": 1}, **kwargs}
    with pytest.raises(error, match=match):
        train_models(
            arguments.pop("models"), arguments.pop("data"), arguments.pop("config"), **arguments
        )


def test_an_interrupted_group_resumes_from_its_checkpoint_to_the_same_result(
    data, held_out, tmp_path, monkeypatch
):
    import tfapprox.engine

    monkeypatch.setattr(tfapprox.engine, "CHECKPOINT_EVERY", 0.0)  # after every epoch
    config = {**CONSTANT, "finisher_steps": 3}
    plain = train_models(group(), data, config, validation_data=held_out)
    path = tmp_path / "group.npz"
    models = []

    def train(**kwargs):
        models[:] = group()
        return train_models(models, data, config, validation_data=held_out, **kwargs)

    resumed, epochs_run = interrupted_then_resumed(train, path)
    assert epochs_run == [4, 5, 6, 7]  # epochs 1-3 came from the checkpoint
    assert_same_records(plain.records, resumed.records)
    for a, b in zip(plain.models, models):
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(wa, wb)
    # After the epochs the checkpoint says so: a rerun goes straight to the finisher.
    epochs_run.clear()
    again = train_models(
        group(), data, config, checkpoint=path, progress=lambda e, s: epochs_run.append(e)
    )
    assert epochs_run == [] and again.records[0]["loss"] == plain.records[0]["loss"]


def test_an_interrupted_finisher_does_not_finish_a_model_again(data, tmp_path, monkeypatch):
    # The finisher runs the models one after the other; Ctrl-C in the second
    # one, then the same call: the first keeps its result, and all end as
    # in an uninterrupted call.
    import tfapprox.group

    config = {**CONSTANT, "finisher_steps": 3}
    plain = train_models(group(), data, config)
    real, calls = tfapprox.group.finish_model, []

    def counted(model, *args, **kwargs):
        calls.append(model.name)
        if len(calls) == 2 and interrupt:
            raise KeyboardInterrupt
        return real(model, *args, **kwargs)

    monkeypatch.setattr(tfapprox.group, "finish_model", counted)
    path, interrupt = tmp_path / "group.npz", True
    with pytest.raises(KeyboardInterrupt):
        train_models(group(), data, config, checkpoint=path)
    calls.clear()
    interrupt = False
    models = group()
    resumed = train_models(models, data, config, checkpoint=path)
    assert calls == [model.name for model in models[1:]]  # the first is not finished again
    assert_same_records(plain.records, resumed.records)
    for a, b in zip(plain.models, models):
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_array_equal(wa, wb)


def test_a_group_checkpoint_of_another_call_is_not_used(data, tmp_path, monkeypatch):
    import tfapprox.engine

    monkeypatch.setattr(tfapprox.engine, "CHECKPOINT_EVERY", 0.0)
    path = tmp_path / "group.npz"
    config = {**CONSTANT, "epochs": 2}
    train_models([mlp()], data, config, checkpoint=path)
    for other in (
        {"models": [mlp(seed=5)]},  # other initial weights
        {"models": [rnn()]},  # another architecture
        {"shuffle_seed": 1},
        {"config": {**config, "learning_rate": 1e-3}},
    ):
        call = {"models": [mlp()], "config": config, **other}
        path_before = path.read_bytes()
        seen = []
        result = train_models(
            call.pop("models"),
            data,
            call.pop("config"),
            checkpoint=path,
            progress=lambda e, s: seen.append(e),
            **call,
        )
        assert seen == [1, 2], other  # trained from the start
        assert result.records[0]["epochs"] == 2
        path.write_bytes(path_before)
    for damaged in (b"not an npz file", b"PK\x03\x04 a zip cut short"):
        path.write_bytes(damaged)
        seen = []
        train_models([mlp()], data, config, checkpoint=path, progress=lambda e, s: seen.append(e))
        assert seen == [1, 2]


def test_engine_module_offers_train_models():
    import tfapprox
    import tfapprox.engine

    assert tfapprox.engine.train_models is train_models is tfapprox.train_models


JAX_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.modules["tensorflow"] = None  # TensorFlow absent: importing it fails
    import warnings
    import numpy as np
    sys.path.insert(0, sys.argv[2])
    from test_group import group, CONSTANT
    from tfapprox.group import train_models
    arrays = np.load(sys.argv[1])
    models = group()
    for i, model in enumerate(models):
        model.set_weights([arrays[f"w{i}_{j}"] for j in range(len(model.weights))])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train_models(models, (arrays["x"], arrays["y"]), CONSTANT)
    print("RESULT" + json.dumps({"histories": [r["history"] for r in result.records],
                                 "errors": [r["error"] for r in result.records],
                                 "stopped": [r["stopped"] for r in result.records],
                                 "warnings": [str(w.message) for w in caught],
                                 "backend": result.records[0]["backend"]}))
    """
)


def test_jax_backend_without_tensorflow_matches_tensorflow(data, trained, tmp_path):
    pytest.importorskip("jax")
    x, y = data
    arrays = {"x": x, "y": y}
    for i, model in enumerate(group()):  # the initial weights of `trained`
        weights = model.get_weights()
        if i == 2:
            weights[-2] = weights[-2] * np.nan  # the MLP's output kernel
        arrays.update({f"w{i}_{j}": w for j, w in enumerate(weights)})
    np.savez(tmp_path / "arrays.npz", **arrays)
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)}
    completed = subprocess.run(
        [sys.executable, "-c", JAX_SCRIPT, str(tmp_path / "arrays.npz"), str(ROOT / "tests")],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    line = next(line for line in completed.stdout.splitlines() if line.startswith("RESULT"))
    jax_run = json.loads(line[len("RESULT") :])
    assert jax_run["backend"] == "jax"
    # The NaN in the MLP stops it alone; the transformer and the RNN train as under TensorFlow
    # (same initial weights). Different backends sum in different orders: rtol 1e-3 over
    # 56 Adam steps.
    assert jax_run["stopped"] == ["max_epochs", "max_epochs", "non_finite"]
    assert any("Model 2 ('mlp') stopped in epoch 1" in w for w in jax_run["warnings"])
    for index in (0, 1):
        np.testing.assert_allclose(
            jax_run["histories"][index], trained.records[index]["history"], rtol=1e-3
        )
        assert jax_run["errors"][index] == pytest.approx(trained.records[index]["error"], rel=1e-3)
