"""tfapprox.engine: batched members train exactly as the models they stand for.

Tiny models (τ ≤ 6, widths ≤ 16) so each test's Keras work takes seconds.
Tolerances: the members of an ensemble are independent in exact arithmetic;
padding changes only the blocking of float32 sums (adding exact zeros), so
trajectories agree to float32 rounding, amplified a little by 50+ Adam
steps. Hence rtol 1e-4 on losses (observed differences are ~1e-7).
"""

import functools
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
from tfapprox.engine import _padded_order, train_members, training_config
from tfapprox.models import attention_logits, build_transformer

ROOT = pathlib.Path(__file__).resolve().parents[1]
TAU = 6
CONSTANT = {"epochs": 7, "batch_size": 8, "learning_rate": 3e-3, "schedule": "constant"}
SMALL = Budget(n=8, m_h=2, m_ff=12, ff_depth=2)
MEMBERS = [
    (SMALL, 0),
    (Budget(n=8, m_h=5, m_ff=16, ff_depth=2), 1),
    (Budget(n=6, m_h=1, m_v=4, m_ff=8, ff_depth=2), 2),
]


@pytest.fixture(scope="module")
def data():
    """64 training sequences, a smooth target: 8 batches of 8, so 7 epochs are 56 steps."""
    return running_sums_split(TAU)[0]


@pytest.fixture(scope="module")
def held_out():
    return running_sums_split(TAU)[1]


@pytest.fixture(scope="module")
def ensemble(data, held_out):
    return train_members(MEMBERS, data, CONSTANT, validation_data=held_out)


@pytest.fixture(scope="module")
def alone(data):
    return train_members(MEMBERS[:1], data, CONSTANT)


def test_member_in_ensemble_matches_member_trained_alone(ensemble, alone):
    np.testing.assert_allclose(
        ensemble.records[0]["history"], alone.records[0]["history"], rtol=1e-4
    )
    assert len(alone.records[0]["history"]) == 7  # 56 steps


def test_engine_matches_keras_adam_loop(data, alone):
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the reference loop uses tf.GradientTape")
    import tensorflow as tf

    x, y = data
    model = build_transformer(SMALL, TAU, 1, seed=MEMBERS[0][1])  # the engine's initial weights
    optimizer = keras.optimizers.Adam(CONSTANT["learning_rate"])
    mse = keras.losses.MeanSquaredError()

    @tf.function
    def step(x_batch, y_batch):
        with tf.GradientTape() as tape:
            loss = mse(y_batch, model(x_batch))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    rng = np.random.default_rng(0)  # the engine's default shuffle_seed
    history = []
    for _ in range(CONSTANT["epochs"]):
        order, _ = _padded_order(rng.permutation(len(x)), CONSTANT["batch_size"])
        history.append(sum(float(step(x[rows], y[rows])) * len(rows) for rows in order) / len(x))
    np.testing.assert_allclose(alone.records[0]["history"], history, rtol=1e-4)


def test_xla_and_graph_mode_train_the_same_members(data, alone, monkeypatch):
    """``TFAPPROX_JIT_COMPILE`` changes how TensorFlow compiles, not what it computes.

    The suite runs without XLA (tests/conftest.py); this test trains the
    same member under the other setting and compares the trajectories.
    """
    if keras.backend.backend() != "tensorflow":
        pytest.skip("the switch applies to TensorFlow only")
    from tfapprox import engine
    from tfapprox.engine import jit_compile_enabled

    other = "1" if not jit_compile_enabled() else "0"
    monkeypatch.setenv("TFAPPROX_JIT_COMPILE", other)
    assert jit_compile_enabled() is (other == "1")
    before = set(engine._ENGINES)
    again = train_members(MEMBERS[:1], data, CONSTANT)
    # A new engine, compiled under the other setting: the cached one is not reused.
    assert [key[1] for key in set(engine._ENGINES) - before] == [other == "1"]
    np.testing.assert_allclose(again.records[0]["history"], alone.records[0]["history"], rtol=1e-4)
    assert again.records[0]["loss"] == pytest.approx(alone.records[0]["loss"], rel=1e-4)


@pytest.mark.parametrize("value", ["2", "maybe", "xla"])
def test_bad_jit_compile_setting_names_the_variable(value, monkeypatch):
    from tfapprox.engine import jit_compile_enabled

    monkeypatch.setenv("TFAPPROX_JIT_COMPILE", value)
    with pytest.raises(ValueError, match="TFAPPROX_JIT_COMPILE"):
        jit_compile_enabled()


def test_padded_member_attention_has_rank_at_most_its_m_h(data, ensemble):
    model = ensemble.member_model(2)  # m_h = 1, padded to 5
    logits = attention_logits(model, data[0][:8])
    ranks = [np.linalg.matrix_rank(matrix, tol=1e-5) for matrix in logits]
    assert max(ranks) <= 1
    model = ensemble.member_model(0)  # m_h = 2
    assert (
        max(np.linalg.matrix_rank(m, tol=1e-5) for m in attention_logits(model, data[0][:8])) <= 2
    )


def test_padding_stays_exactly_zero(ensemble):
    for weight, mask in zip(ensemble.padded_weights, ensemble.masks):
        assert np.all(weight[mask == 0] == 0.0)
    # and the members' real weights did train (not all padding)
    assert any(
        np.any(weight[mask == 1] != 0.0)
        for weight, mask in zip(ensemble.padded_weights, ensemble.masks)
    )


def test_effective_parameter_count_equals_budget_count(ensemble):
    for index, (budget, _) in enumerate(MEMBERS):
        expected = budget.parameter_count(TAU, 1)
        assert ensemble.records[index]["parameter_count"] == expected
        assert sum(int(mask[index].sum()) for mask in ensemble.masks) == expected
        assert ensemble.member_model(index).count_params() == expected


def test_member_model_predicts_as_engine_forward(data, ensemble):
    batched = ensemble.predict(data[0])  # (E, N, tau, 1)
    for index in range(len(MEMBERS)):
        single = ensemble.member_model(index).predict(data[0], verbose=0)
        # float32 sums in a different order: ~1e-7 relative
        np.testing.assert_allclose(batched[index], single, rtol=1e-5, atol=1e-6)


def test_records_report_losses_and_paper_norm_error(data, ensemble):
    x, y = data
    for index, record in enumerate(ensemble.records):
        prediction = ensemble.member_model(index).predict(x, verbose=0)
        assert record["loss"] == pytest.approx(np.mean((prediction - y) ** 2), rel=1e-5)
        # paper A's norm: mean over inputs of Σ_t |H_t − Ĥ_t|
        assert record["error"] == pytest.approx(
            np.abs(prediction - y).sum(axis=(1, 2)).mean(), rel=1e-5
        )
        assert record["stopped"] == "max_epochs" and record["epochs"] == 7
        assert (
            record["budget"] == MEMBERS[index][0].to_dict() and record["seed"] == MEMBERS[index][1]
        )
    json.dumps(ensemble.to_dicts())  # JSON-ready
    from tfapprox.training import validate_results

    validate_results({"runs": ensemble.to_dicts()})


def test_validation_loss_and_error_are_reported(ensemble, held_out):
    x, y = held_out
    for index, record in enumerate(ensemble.records):
        prediction = ensemble.member_model(index).predict(x, verbose=0)
        assert record["val_error"] == pytest.approx(
            np.abs(prediction - y).sum(axis=(1, 2)).mean(), rel=1e-5
        )
        assert record["val_loss"] == pytest.approx(np.mean((prediction - y) ** 2), rel=1e-5)


def test_pooled_output_and_short_last_batch(data):
    x, y = data
    result = train_members(
        MEMBERS[:2], (x[:50], y[:50, -1]), {**CONSTANT, "epochs": 2}
    )  # 50 = 6·8 + 2
    model = result.member_model(1)
    assert model.output_shape == (None, 1)
    np.testing.assert_allclose(
        result.predict(x[:5])[1], model.predict(x[:5], verbose=0), rtol=1e-5, atol=1e-6
    )


def test_non_finite_member_stops_alone(data, ensemble):
    weights = build_transformer(MEMBERS[1][0], TAU, 1, seed=1).get_weights()
    weights[-2][:] = np.nan  # F̂'s output kernel
    with pytest.warns(RuntimeWarning, match=r"Member 1 \(budget \(n=8, m_h=5.*seed 1\)"):
        result = train_members(MEMBERS, data, CONSTANT, initial_weights=[None, weights, None])
    record = result.records[1]
    assert record["stopped"] == "non_finite" and record["epochs"] == 1
    assert "keeping the initial weights" in record["message"]
    for index in (0, 2):
        assert result.records[index]["stopped"] == "max_epochs"
        np.testing.assert_allclose(
            result.records[index]["history"], ensemble.records[index]["history"], rtol=1e-4
        )


def test_plateau_stops_and_freezes_only_that_member(data, ensemble):
    seen = []
    members = [{"budget": SMALL, "seed": 0, "learning_rate": 1e-9}, MEMBERS[1]]
    config = {**CONSTANT, "patience": 2, "min_rel_delta": 1e-3}
    result = train_members(
        members, data, config, progress=lambda epoch, states: seen.append(states)
    )
    frozen = result.records[0]
    assert frozen["stopped"] == "plateau" and frozen["epochs"] == 3
    assert [states[0]["loss"] is None for states in seen] == [False] * 3 + [True] * 4
    assert result.records[1]["stopped"] == "max_epochs" and result.records[1]["epochs"] == 7
    # The frozen member did not disturb the other: same trajectory as in `ensemble`.
    np.testing.assert_allclose(
        result.records[1]["history"], ensemble.records[1]["history"], rtol=1e-4
    )


def test_without_a_patience_every_epoch_runs(data):
    members = [{"budget": SMALL, "seed": 0, "learning_rate": 1e-9}]
    result = train_members(members, data, {**CONSTANT, "patience": None})
    record = result.records[0]
    # The loss cannot move at lr 1e-9, yet nothing stops before the last epoch.
    assert record["stopped"] == "max_epochs" and record["epochs"] == CONSTANT["epochs"]
    assert len(record["history"]) == CONSTANT["epochs"]


def test_cosine_schedule_warms_up_then_decays():
    from tfapprox.engine import _schedule_rate

    config = training_config(
        {"epochs": 6, "schedule": "cosine", "warmup_epochs": 2, "min_learning_rate": 1e-5}
    )
    rates = [_schedule_rate(config, 3e-3, epoch) for epoch in range(6)]
    lr, floor = 3e-3, 1e-5  # warm-up 1/2, 2/2, then cosine over the 4 remaining epochs
    expected = [lr / 2, lr] + [
        floor + (lr - floor) * 0.5 * (1 + np.cos(np.pi * k / 4)) for k in (0, 1, 2, 3)
    ]
    np.testing.assert_allclose(rates, expected, rtol=1e-12)
    constant = training_config({"schedule": "constant", "warmup_epochs": 4})
    assert [_schedule_rate(constant, 1.0, e) for e in range(6)] == [0.25, 0.5, 0.75, 1, 1, 1]


def test_reduce_on_plateau_matches_keras_callback():
    from tfapprox.engine import _reduce_on_plateau

    config = training_config({"reduce_lr_patience": 2, "min_delta": 0.01, "min_learning_rate": 0.1})
    losses = [1.0, 0.9, 0.895, 0.894, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8, 0.8]
    model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(1.0), loss="mse")
    callback = keras.callbacks.ReduceLROnPlateau(
        monitor="loss", factor=0.5, patience=2, min_delta=0.01, min_lr=0.1
    )
    callback.set_model(model)
    callback.on_train_begin()
    rates, best, wait = np.array([1.0]), [np.inf], [0]
    for epoch, loss in enumerate(losses):
        callback.on_epoch_end(epoch, {"loss": loss})
        rates[0] = _reduce_on_plateau(
            0, loss, rates, best, wait, {**config, "reduce_lr_factor": 0.5}
        )
        assert rates[0] == pytest.approx(float(model.optimizer.learning_rate))


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"members": []}, ValueError, "`members` is empty"),
        ({"members": [("budget", 0)]}, TypeError, r"members\[0\]"),
        ({"members": [(SMALL, -1)]}, ValueError, r"members\[0\]\.seed"),
        (
            {"members": [(SMALL, 0), (Budget(n=8, m_h=2, m_ff=12, ff_depth=3), 0)]},
            ValueError,
            "ff_depth",
        ),
        ({"config": {"batch_size": 0}}, ValueError, "batch_size"),
        ({"config": {"epoch": 3}}, ValueError, "Unknown TrainingConfig settings"),
        ({"config": {"schedule": "linear"}}, ValueError, "schedule"),
        ({"config": {"schedule": "plateau", "warmup_epochs": 2}}, ValueError, "warmup_epochs"),
        ({"config": 3}, TypeError, "config"),
        ({"data": (np.zeros((4, TAU, 1)), np.zeros(4, dtype="int64"))}, ValueError, "class labels"),
        ({"data": "file.npz"}, TypeError, "`data`"),
        ({"model_kwargs": {"output": "pooled"}}, ValueError, "model_kwargs"),
        ({"model_kwargs": {"name": "x"}}, ValueError, "model_kwargs"),
        (
            {
                "config": {"epochs": 1, "model_kwargs": {"activation": "tanh"}},
                "model_kwargs": {"activation": "relu"},
            },
            ValueError,
            "config.model_kwargs",
        ),
        ({"progress": 1}, TypeError, "progress"),
        ({"members": [(Budget(n=4, m_h=2, m_ff=8, num_heads=2), 0)]}, ValueError, "num_heads=2"),
        ({"members": [(Budget(n=4, m_h=2, m_ff=8, m_readout=3), 0)]}, ValueError, "m_readout=3"),
        ({"initial_weights": [None, None]}, ValueError, "initial_weights"),
        (
            {"validation_data": (np.zeros((4, TAU + 1, 1)), np.zeros((4, TAU + 1, 1)))},
            ValueError,
            "validation_data",
        ),
    ],
)
def test_bad_arguments_raise_naming_the_argument(data, kwargs, error, match):
    arguments = {"members": MEMBERS[:1], "data": data, "config": {"epochs": 1}, **kwargs}
    with pytest.raises(error, match=match):
        train_members(
            arguments.pop("members"), arguments.pop("data"), arguments.pop("config"), **arguments
        )


def test_config_reads_attributes_of_any_object():
    class Config:
        epochs = 3
        batch_size = 16
        restarts = 2  # not the engine's: ignored

    config = training_config(Config())
    assert config["epochs"] == 3 and config["batch_size"] == 16 and config["schedule"] == "cosine"


JAX_SCRIPT = textwrap.dedent(
    """
    import json, sys
    sys.modules["tensorflow"] = None  # TensorFlow absent: importing it fails
    import numpy as np
    import tfapprox.engine
    from tfapprox import Budget
    from tfapprox.engine import train_members
    arrays = np.load(sys.argv[1])
    members = [(Budget.from_dict(json.loads(b)), 0) for b in json.loads(sys.argv[2])]
    weights = [[arrays[f"w{i}_{j}"] for j in range(int(arrays[f"count{i}"]))] for i in range(len(members))]
    result = train_members(members, (arrays["x"], arrays["y"]), json.loads(sys.argv[3]),
                           initial_weights=weights)
    print("RESULT" + json.dumps({"histories": [r["history"] for r in result.records],
                                 "errors": [r["error"] for r in result.records],
                                 "backend": result.records[0]["backend"]}))
    """
)


def test_jax_backend_without_tensorflow_matches_tensorflow(data, ensemble, tmp_path):
    pytest.importorskip("jax")
    x, y = data
    arrays = {"x": x, "y": y}
    for i, weights in enumerate(ensemble_initial_weights()):
        arrays[f"count{i}"] = np.asarray(len(weights))
        arrays.update({f"w{i}_{j}": w for j, w in enumerate(weights)})
    np.savez(tmp_path / "arrays.npz", **arrays)
    budgets = json.dumps([json.dumps(budget.to_dict()) for budget, _ in MEMBERS])
    env = {**os.environ, "KERAS_BACKEND": "jax", "PYTHONPATH": str(ROOT)}
    completed = subprocess.run(
        [
            sys.executable,
            "-c",
            JAX_SCRIPT,
            str(tmp_path / "arrays.npz"),
            budgets,
            json.dumps(CONSTANT),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    line = next(line for line in completed.stdout.splitlines() if line.startswith("RESULT"))
    jax_run = json.loads(line[len("RESULT") :])
    assert jax_run["backend"] == "jax"
    # Same initial weights as `ensemble` (built from the same seeds under TensorFlow).
    # Different backends sum in different orders: rtol 1e-3 over 56 Adam steps.
    for got, want in zip(jax_run["histories"], (r["history"] for r in ensemble.records)):
        np.testing.assert_allclose(got, want, rtol=1e-3)
    np.testing.assert_allclose(jax_run["errors"], [r["error"] for r in ensemble.records], rtol=1e-3)


def ensemble_initial_weights():
    weights = []
    for budget, seed in MEMBERS:
        weights.append(build_transformer(budget, TAU, 1, seed=seed).get_weights())
    return weights


def test_doctests_of_engine_pass():
    import doctest

    import tfapprox.engine

    result = doctest.testmod(tfapprox.engine, verbose=False)
    assert result.failed == 0 and result.attempted >= 2


def test_members_trained_group_by_group_match_the_batched_ensemble(
    data, held_out, ensemble, monkeypatch
):
    import tfapprox.engine

    # On a CPU, Fig. 5-sized members are trained in groups to stay in cache;
    # on a GPU or TPU all at once. Force groups of one here, on any device.
    monkeypatch.setattr(tfapprox.engine, "_on_accelerator", lambda: False)
    assert tfapprox.engine._group_size(16, 64, 16, 128) == 4
    assert tfapprox.engine._group_size(8, 64, 16, 32) == 8
    monkeypatch.setattr(tfapprox.engine, "_GROUP_ELEMENTS", 1)
    assert tfapprox.engine._group_size(3, 8, TAU, 16) == 1
    assert tfapprox.engine._group_size(16, 64, 16, 128) == 1
    monkeypatch.setattr(tfapprox.engine, "_on_accelerator", lambda: True)
    assert tfapprox.engine._group_size(16, 64, 16, 128) == 16
    monkeypatch.setattr(tfapprox.engine, "_on_accelerator", lambda: False)
    grouped = train_members(MEMBERS, data, CONSTANT, validation_data=held_out)
    for got, want in zip(grouped.records, ensemble.records):
        np.testing.assert_allclose(got["history"], want["history"], rtol=1e-4)


def test_config_model_kwargs_shape_the_members(data):
    x, y = data
    config = {**CONSTANT, "epochs": 1, "model_kwargs": {"activation": "tanh"}}
    from_config = train_members(MEMBERS[:1], (x[:16], y[:16]), config)
    given = train_members(
        MEMBERS[:1],
        (x[:16], y[:16]),
        {**CONSTANT, "epochs": 1},
        model_kwargs={"activation": "tanh"},
    )
    stock = train_members(MEMBERS[:1], (x[:16], y[:16]), {**CONSTANT, "epochs": 1})
    assert from_config.records[0]["hyperparameters"]["model_kwargs"] == {"activation": "tanh"}
    np.testing.assert_allclose(from_config.predict(x[:8]), given.predict(x[:8]), rtol=1e-6)
    assert not np.allclose(from_config.predict(x[:8]), stock.predict(x[:8]), rtol=1e-3)


@pytest.mark.parametrize(
    "model_kwargs",
    [
        {"position_encoding": "sinusoidal", "projection_dim": 3, "use_scale": True, "causal": True},
        {"position_encoding": "none", "activation": "tanh"},
        {"position_encoding": "none", "kink_range": [0.0, 1.0]},
    ],
)
def test_model_options_forward_matches_member_models(data, model_kwargs):
    x, y = data
    result = train_members(
        MEMBERS[1:], (x[:16], y[:16]), {**CONSTANT, "epochs": 1}, model_kwargs=model_kwargs
    )
    batched = result.predict(x[:8])
    for index in range(2):
        model = result.member_model(index)
        # float32 sums in a different order: ~1e-7 relative
        np.testing.assert_allclose(
            batched[index], model.predict(x[:8], verbose=0), rtol=1e-5, atol=1e-6
        )


def test_an_interrupted_call_resumes_from_its_checkpoint_to_the_same_result(
    data, held_out, tmp_path, monkeypatch
):
    import tfapprox.engine as engine_module

    monkeypatch.setattr(engine_module, "CHECKPOINT_EVERY", 0.0)  # after every epoch
    config = {**CONSTANT, "finisher_steps": 3}
    plain = train_members(MEMBERS, data, config, validation_data=held_out)
    path = tmp_path / "chunk.npz"
    resumed, epochs_run = interrupted_then_resumed(
        functools.partial(train_members, MEMBERS, data, config, validation_data=held_out), path
    )
    assert epochs_run == [4, 5, 6, 7]  # epochs 1-3 came from the checkpoint
    assert_same_records(plain.records, resumed.records)
    for a, b in zip(plain.weights, resumed.weights):
        for wa, wb in zip(a, b):
            np.testing.assert_array_equal(wa, wb)
    # After the epochs the checkpoint says so: a rerun goes straight to the finisher.
    epochs_run.clear()
    again = train_members(
        MEMBERS, data, config, checkpoint=path, progress=lambda e, s: epochs_run.append(e)
    )
    assert epochs_run == [] and again.records[0]["loss"] == plain.records[0]["loss"]


def test_a_checkpoint_of_another_call_is_not_used(data, tmp_path, monkeypatch):
    import tfapprox.engine as engine_module

    monkeypatch.setattr(engine_module, "CHECKPOINT_EVERY", 0.0)
    path = tmp_path / "chunk.npz"
    train_members(MEMBERS[:1], data, {**CONSTANT, "epochs": 2}, checkpoint=path)
    seen = []
    other = {**CONSTANT, "epochs": 2, "learning_rate": 1e-3}
    result = train_members(
        MEMBERS[:1], data, other, checkpoint=path, progress=lambda e, s: seen.append(e)
    )
    assert seen == [1, 2]  # trained from the start
    fresh = train_members(MEMBERS[:1], data, other)
    assert result.records[0]["history"] == fresh.records[0]["history"]
    for damaged in (b"not an npz file", b"PK\x03\x04 a zip cut short"):
        path.write_bytes(damaged)
        seen.clear()
        train_members(
            MEMBERS[:1], data, other, checkpoint=path, progress=lambda e, s: seen.append(e)
        )
        assert seen == [1, 2]
    with pytest.raises(TypeError, match="checkpoint"):
        train_members(MEMBERS[:1], data, other, checkpoint=3)
