"""tfapprox.finisher: full-batch L-BFGS after the epochs, in fit, the engine and the group trainer."""

import json
import math

import keras
import numpy as np
import pytest

from tfapprox import Budget, engine
from tfapprox.config import TrainingConfig
from tfapprox.datasets import Dataset
from tfapprox.finisher import finish_model, lbfgs, lbfgs_members
from tfapprox.group import train_models
from tfapprox.models import build_transformer
from tfapprox.training import fit
from tfapprox.workflow import _least_converged

BUDGET = Budget(n=4, m_h=2, m_ff=8)


def quadratic(scale):
    scale = np.asarray(scale, dtype="float64")

    def value_and_grad(w):
        return float(0.5 * np.sum(scale * w**2)), scale * w

    return value_and_grad


def mean_target(num_samples=64, tau=6, seed=0):
    """y_t = the sequence mean of x."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(num_samples, tau, 1)).astype("float32")
    y = np.repeat(x.mean(axis=1, keepdims=True), tau, axis=1)
    return Dataset(x, y, {"target": "mean"})


# -- lbfgs -------------------------------------------------------------------


def test_lbfgs_solves_an_ill_conditioned_quadratic():
    weights, info = lbfgs(quadratic([1.0, 1e2, 1e4]), [1.0, -2.0, 3.0], 100)
    np.testing.assert_allclose(weights, 0.0, atol=1e-6)
    assert info["loss_before"] == pytest.approx(0.5 * (1 + 400 + 9e4))
    assert info["loss_after"] < 1e-10
    assert 1 <= info["iterations"] <= 100
    assert info["evaluations"] >= info["iterations"]
    # loss_half is recorded only by a run that lasts steps // 2 iterations
    if info["iterations"] < 50:
        assert info["loss_half"] is None
    else:
        assert info["loss_half"] >= info["loss_after"]
    json.dumps(info)  # JSON-ready


def test_lbfgs_records_the_loss_at_half_its_steps():
    # 10 iterations cannot solve this quadratic (condition number 1e4), so the
    # run uses all of them and passes the half-way mark at iteration 5.
    _, info = lbfgs(quadratic([1.0, 1e2, 1e4]), [1.0, -2.0, 3.0], 10)
    assert info["iterations"] == 10
    assert info["loss_before"] > info["loss_half"] >= info["loss_after"]


def test_lbfgs_minimises_the_rosenbrock_function():
    def rosenbrock(w):
        a, b = w
        value = (1 - a) ** 2 + 100 * (b - a * a) ** 2
        grad = np.array([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)])
        return value, grad

    weights, info = lbfgs(rosenbrock, [-1.2, 1.0], 200)
    np.testing.assert_allclose(weights, [1.0, 1.0], atol=1e-5)
    assert info["loss_after"] < 1e-10


def test_lbfgs_runs_at_most_the_given_steps():
    calls = []

    def counted(w):
        calls.append(1)
        return quadratic([1.0, 1e4])(w)

    _, info = lbfgs(counted, [1.0, 1.0], 3)
    assert info["iterations"] <= 3
    assert info["evaluations"] == len(calls)


def test_lbfgs_with_no_steps_returns_the_start():
    weights, info = lbfgs(quadratic([1.0]), [2.0], 0)
    assert weights.tolist() == [2.0]
    assert info["iterations"] == 0 and info["loss_after"] == info["loss_before"] == 2.0


def test_lbfgs_keeps_the_start_when_its_loss_is_not_finite():
    weights, info = lbfgs(lambda w: (math.nan, np.zeros_like(w)), [1.0, 2.0], 10)
    assert weights.tolist() == [1.0, 2.0]
    assert info["message"] == "the starting loss is not finite"


def test_lbfgs_never_returns_a_point_worse_than_the_start():
    # Non-finite everywhere but the start: the line search fails, the start is kept.
    def cliff(w):
        if np.allclose(w, [1.0]):
            return 1.0, np.array([1.0])
        return math.inf, np.array([math.nan])

    weights, info = lbfgs(cliff, [1.0], 5)
    assert weights.tolist() == [1.0] and info["loss_after"] == 1.0


@pytest.mark.parametrize(
    "kwargs, error, fragment",
    [
        ({"steps": -1}, ValueError, "steps"),
        ({"steps": 1.5}, TypeError, "steps"),
        ({"steps": 1, "memory": 0}, ValueError, "memory"),
        ({"steps": 1, "value_and_grad": "f"}, TypeError, "value_and_grad"),
    ],
)
def test_lbfgs_bad_arguments(kwargs, error, fragment):
    arguments = {"value_and_grad": quadratic([1.0]), "initial": [1.0], **kwargs}
    with pytest.raises(error, match=fragment):
        lbfgs(**arguments)


# -- finish_model ----------------------------------------------------------


def rosenbrock(w):
    a, b = w
    value = (1 - a) ** 2 + 100 * (b - a * a) ** 2
    grad = np.array([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)])
    return value, grad


def test_lbfgs_members_gives_each_member_the_iterates_of_a_lone_lbfgs():
    # Members that stop at different iterations: two Rosenbrock starts and a quadratic.
    problems = [rosenbrock, rosenbrock, quadratic([1.0, 1e3])]
    starts = np.array([[-1.2, 1.0], [2.0, -1.0], [1.0, 1.0]])
    calls = []

    def batched(points, members):
        calls.append(list(members))
        pairs = [problems[k](point) for k, point in zip(members, points)]
        return np.array([v for v, _ in pairs]), np.stack([g for _, g in pairs])

    weights, infos = lbfgs_members(batched, starts, 200)
    lone = [lbfgs(problem, start, 200) for problem, start in zip(problems, starts)]
    for k, (alone_weights, alone_info) in enumerate(lone):
        np.testing.assert_array_equal(weights[k], alone_weights)
        assert infos[k] == alone_info
    assert len({info["iterations"] for info in infos}) > 1
    # One batched call per round, as many as the member that evaluated most;
    # each member is in exactly as many calls as it made evaluations.
    assert len(calls) == max(info["evaluations"] for info in infos)
    for k, info in enumerate(infos):
        assert sum(k in members for members in calls) == info["evaluations"]
    # Members that stopped leave the batch: it only shrinks.
    assert all(set(b) <= set(a) for a, b in zip(calls, calls[1:]))
    np.testing.assert_allclose(weights[:2], 1.0, atol=1e-4)


def test_lbfgs_members_reports_the_members_that_stopped_before_each_round():
    problems = [quadratic([1.0, 4.0]), rosenbrock]
    starts = np.array([[1.0, 1.0], [-1.2, 1.0]])
    seen = []

    def batched(points, members):
        pairs = [problems[k](point) for k, point in zip(members, points)]
        return np.array([v for v, _ in pairs]), np.stack([g for _, g in pairs])

    weights, infos = lbfgs_members(batched, starts, 200, on_round=seen.append)
    assert len(seen) == max(info["evaluations"] for info in infos)
    assert seen[0] == [None, None]
    # The quadratic stops first; from then on its result is reported, unchanged.
    first = next(r for r, now in enumerate(seen) if now[0] is not None)
    assert first == infos[0]["evaluations"] and all(now[1] is None for now in seen)
    for now in seen[first:]:
        np.testing.assert_array_equal(now[0][0], weights[0])
        assert now[0][1] == infos[0]


def test_lbfgs_members_raises_the_evaluations_error_and_stops_its_threads():
    import threading

    def broken(points, members):
        raise RuntimeError("out of memory")

    before = threading.active_count()
    with pytest.raises(RuntimeError, match="out of memory"):
        lbfgs_members(broken, np.ones((3, 2)), 10)
    assert threading.active_count() == before


@pytest.mark.parametrize(
    "kwargs, error, fragment",
    [
        ({"initial": np.ones(3)}, ValueError, "`initial` must be a \\(K, P\\) array"),
        ({"initial": np.ones((0, 3))}, ValueError, "K >= 1"),
        ({"steps": -1}, ValueError, "steps"),
        ({"value_and_grads": None}, TypeError, "value_and_grads"),
    ],
)
def test_lbfgs_members_bad_arguments(kwargs, error, fragment):
    def both(points, members):
        return 0.5 * np.sum(points**2, axis=1), points

    arguments = {"value_and_grads": both, "initial": np.ones((2, 2)), "steps": 5, **kwargs}
    with pytest.raises(error, match=fragment):
        lbfgs_members(**arguments)


def test_finish_model_reaches_the_least_squares_solution():
    """A linear model's MSE minimum is NumPy's least-squares solution."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3)).astype("float32")
    y = (x @ np.array([[1.5], [-2.0], [0.5]]) + 0.3 + 0.1 * rng.normal(size=(300, 1))).astype(
        "float32"
    )
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    info = finish_model(model, x, y, 100, chunk_size=128)  # three chunks, the last one padded
    design = np.concatenate([x, np.ones((300, 1))], axis=1).astype("float64")
    solution, *_ = np.linalg.lstsq(design, y.astype("float64"), rcond=None)
    kernel, bias = model.get_weights()
    np.testing.assert_allclose(kernel[:, 0], solution[:3, 0], atol=1e-4)
    np.testing.assert_allclose(bias, solution[3], atol=1e-4)
    residual = float(np.mean((design @ solution - y) ** 2))
    assert info["loss_after"] == pytest.approx(residual, rel=1e-4)


def test_finish_model_rejects_mismatched_data():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    with pytest.raises(ValueError, match="same positive number of samples"):
        finish_model(model, np.zeros((4, 3)), np.zeros((5, 1)), 1)


# -- in the trainers -------------------------------------------------------


def test_config_finisher_steps_default_and_validation():
    assert TrainingConfig().finisher_steps == 0
    config = TrainingConfig(finisher_steps=7)
    assert config.to_dict()["finisher_steps"] == 7
    assert TrainingConfig.from_dict(config.to_dict()).to_dict() == config.to_dict()
    with pytest.raises(ValueError, match="finisher_steps"):
        TrainingConfig(finisher_steps=-1)


@pytest.fixture(scope="module")
def engine_runs():
    data = mean_target()
    members = [(BUDGET, 0), (Budget(n=4, m_h=1, m_ff=8), 1)]
    plain = engine.train_members(members, data, {"epochs": 2, "batch_size": 32})
    rounds = []
    finished = engine.train_members(
        members,
        data,
        {"epochs": 2, "batch_size": 32, "finisher_steps": 40},
        finisher_progress=lambda done, running: rounds.append((done, running)),
    )
    finished.rounds = rounds
    return data, plain, finished


def test_engine_finisher_reports_every_batched_evaluation(engine_runs):
    _, _, finished = engine_runs
    rounds = finished.rounds
    assert [done for done, _ in rounds] == list(range(1, len(rounds) + 1))
    # Each round evaluates the members still running: together, every evaluation.
    evaluations = [record["finisher"]["evaluations"] for record in finished.records]
    assert sum(running for _, running in rounds) == sum(evaluations)
    assert len(rounds) == max(evaluations) and rounds[0][1] == 2


def test_engine_finisher_lowers_the_loss_and_records_it(engine_runs):
    data, plain, finished = engine_runs
    for before, after in zip(plain.records, finished.records):
        assert before["finisher"] is None
        info = after["finisher"]
        assert info["iterations"] > 0
        # It starts from the kept Adam weights, and ends at the recorded loss.
        assert info["loss_before"] == pytest.approx(before["loss"], rel=1e-5)
        assert after["loss"] == pytest.approx(info["loss_after"], rel=1e-5)
        assert after["loss"] < 0.5 * before["loss"]
        assert after["hyperparameters"]["finisher_steps"] == 40
        json.dumps(after)


def test_engine_finisher_matches_finish_model_on_each_member_alone(engine_runs):
    # Members of different m_h train padded together; the batched L-BFGS of
    # each must follow the one `finish_model` runs on its own model.
    # Over a few iterations they agree to float32 rounding (further on, the
    # rounding differences of a stacked and a lone forward pass grow, as
    # they would between two machines).
    data, plain, _ = engine_runs
    members = [(BUDGET, 0), (Budget(n=4, m_h=1, m_ff=8), 1)]
    short = engine.train_members(
        members, data, {"epochs": 2, "batch_size": 32, "finisher_steps": 5}
    )
    for index, record in enumerate(short.records):
        alone = finish_model(plain.member_model(index), data.x, data.y, 5)
        batched = record["finisher"]
        assert batched["loss_before"] == pytest.approx(alone["loss_before"], rel=1e-6)
        assert batched["loss_after"] == pytest.approx(alone["loss_after"], rel=1e-5)
        assert batched["iterations"] == alone["iterations"]
        # All 5 iterations, or fewer when the float32 loss stops falling (as under JAX).
        assert batched["iterations"] == 5 or batched["message"].startswith("CONVERGENCE")
        assert batched["loss_after"] < 0.5 * batched["loss_before"]


def test_engine_finisher_pads_the_running_members_to_a_few_sizes(monkeypatch):
    # As members stop, the running ones are padded to the next of
    # `_finisher_sizes`, so the compiled evaluation sees a few shapes; the
    # padding copies do not change any member's iterates.
    assert engine._finisher_sizes(6) == [6, 3, 2, 1]
    data = mean_target()
    members = [(Budget(n=4, m_h=m_h, m_ff=8), seed) for m_h in (1, 2) for seed in (0, 1, 2)]
    config = {"epochs": 2, "batch_size": 32, "finisher_steps": 30}
    value_and_grad, compile_ = engine._backend_tools()
    shapes = []

    def recording_compile(fn):
        compiled = compile_(fn)
        if fn.__name__ != "member_gradients":  # the finisher's evaluation
            return compiled

        def call(params, *args):
            shapes.append(int(params.shape[0]))
            return compiled(params, *args)

        return call

    monkeypatch.setattr(engine, "_backend_tools", lambda: (value_and_grad, recording_compile))
    padded = engine.train_members(members, data, config)
    padded_shapes = sorted(set(shapes))
    shapes.clear()
    monkeypatch.setattr(engine, "_finisher_sizes", lambda size: list(range(size, 0, -1)))
    exact = engine.train_members(members, data, config)
    running = sorted(set(shapes))

    assert set(padded_shapes) <= {6, 3, 2, 1} and 6 in padded_shapes
    assert len(running) > len(padded_shapes)  # members stopped at several rounds
    for a, b in zip(padded.records, exact.records):
        assert a["finisher"]["iterations"] == b["finisher"]["iterations"]
        assert a["finisher"]["evaluations"] == b["finisher"]["evaluations"]
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4)


def test_an_interrupted_finisher_keeps_the_members_that_had_stopped(tmp_path, monkeypatch):
    # Ctrl-C during the L-BFGS rounds. The checkpoint was written again when
    # a member stopped: run again, the Adam epochs are not repeated, that
    # member keeps its result, and the running ones start again from the
    # end of the epochs, taking the steps they took uninterrupted.
    data = mean_target()
    members = [(Budget(n=4, m_h=m_h, m_ff=8), seed) for m_h in (1, 2) for seed in (0, 1)]
    config = {"epochs": 2, "batch_size": 32, "finisher_steps": 40}
    rounds = []
    whole = engine.train_members(
        members, data, config, finisher_progress=lambda r, running: rounds.append(running)
    )
    # Interrupt at the round after the first member stopped.
    stop_at = next(i for i, running in enumerate(rounds, 1) if running < len(members)) + 1
    path = tmp_path / "ckpt.npz"

    def interrupt(done, running):
        if done == stop_at:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        engine.train_members(members, data, config, checkpoint=path, finisher_progress=interrupt)
    epochs, again = [], []
    resumed = engine.train_members(
        members,
        data,
        config,
        checkpoint=path,
        progress=lambda epoch, states: epochs.append(epoch),
        finisher_progress=lambda r, running: again.append(running),
    )
    assert epochs == []  # the Adam epochs came from the checkpoint
    kept = [i for i, r in enumerate(whole.records) if r["finisher"]["evaluations"] < stop_at]
    assert kept and len(kept) < len(members)
    assert again[0] == len(members) - len(kept)  # they are not evaluated again
    for i, (a, b) in enumerate(zip(whole.records, resumed.records)):
        if i in kept:
            assert (b["finisher"], b["loss"]) == (a["finisher"], a["loss"])
        else:
            assert b["finisher"]["iterations"] == a["finisher"]["iterations"]
            assert b["loss"] == pytest.approx(a["loss"], rel=1e-4)


def test_engine_finished_weights_are_the_members_models(engine_runs):
    data, _, finished = engine_runs
    for index, record in enumerate(finished.records):
        model = finished.member_model(index)
        mse = float(np.mean((model.predict(data.x, verbose=0) - data.y) ** 2))
        assert mse == pytest.approx(record["loss"], rel=1e-4)


def test_fit_runs_the_finisher():
    data = mean_target()
    config = {"epochs": 2, "batch_size": 32, "verbose": 0, "jit_compile": False}
    plain = fit(BUDGET, data, **config)
    finished = fit(BUDGET, data, finisher_steps=40, **config)
    assert finished.loss < 0.5 * plain.loss


def test_group_runs_the_finisher_on_mse():
    data = mean_target()
    models = [build_transformer(BUDGET, 6, 1, seed=0)]
    result = train_models(models, data, {"epochs": 2, "batch_size": 32, "finisher_steps": 40})
    record = result.records[0]
    assert record["loss"] == pytest.approx(record["finisher"]["loss_after"], rel=1e-5)
    assert record["finisher"]["loss_after"] < 0.5 * record["finisher"]["loss_before"]


def test_finisher_refuses_class_labels():
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(16, 4, 1)).astype("float32")
    labels = rng.integers(0, 3, size=16)
    classifier = keras.Sequential(
        [keras.Input((4, 1)), keras.layers.Flatten(), keras.layers.Dense(3)]
    )
    with pytest.raises(ValueError, match="finisher_steps"):
        train_models(
            [classifier],
            (x, labels),
            {"epochs": 1, "finisher_steps": 5},
            loss="sparse_categorical_crossentropy",
        )
    with pytest.raises(ValueError, match="finisher_steps"):
        fit(classifier, Dataset(x, labels), epochs=1, finisher_steps=5, verbose=0)


def test_least_converged_ranks_by_the_finishers_last_half():
    def run(m_h, half, after):
        return {
            "budget": {"m_h": m_h, "m_ff": 8},
            "history": [1.0] * 10,
            "stopped": "plateau",
            "finisher": {"loss_half": half, "loss_after": after},
        }

    runs = [run(1, 1.0, 0.99), run(2, 1.0, 0.5), run(3, 1.0, 0.9)]
    assert _least_converged(runs, 2) == [(2, 8), (3, 8)]
