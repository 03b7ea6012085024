"""tfapprox.construction: Jiang & Li's construction as the weights of paper A's model."""

import numpy as np
import pytest
from helpers import modules_loaded_by

from tfapprox import Budget, engine
from tfapprox.config import TrainingConfig
from tfapprox.construction import (
    construction_model,
    construction_rank,
    construction_width,
    set_piecewise_linear,
)
from tfapprox.finisher import finish_model
from tfapprox.layers import FeedForward
from tfapprox.metrics import paper_error
from tfapprox.models import attention_logits, build_transformer
from tfapprox.targets import load_preset, make_target

SMALL = dict(n=8, m_ff=32, ff_depth=2)


@pytest.fixture(scope="module")
def fig5b_r6():
    return load_preset("fig5b-r6")


@pytest.fixture(scope="module")
def held_out(fig5b_r6):
    return fig5b_r6.sample(200, seed=1)


@pytest.mark.parametrize("m_h", [1, 3, 6, 7])
def test_the_model_is_the_truncated_target(fig5b_r6, held_out, m_h):
    model = construction_model(fig5b_r6, Budget(m_h=m_h, **SMALL))
    truncated = fig5b_r6.truncated(m_h)
    predicted = model.predict(held_out.x, verbose=0)
    # Ĥ is H with ρ cut to rank min(m_h, 6), up to 32 kinks per function ...
    gap = paper_error(truncated(held_out.x.astype("float64")), predicted)
    assert gap < 0.05
    # ... so its error against the target is the truncation error, to that gap.
    error = paper_error(held_out.y, predicted)
    truncation = paper_error(held_out.y, truncated(held_out.x.astype("float64")))
    assert abs(error - truncation) <= gap + 1e-6
    if m_h >= 6:
        assert truncation < 1e-6  # rank 6: nothing is cut
        assert error < 0.05 * paper_error(held_out.y, truncated.truncated(1)(held_out.x))


def test_the_logits_are_the_truncated_kernel(fig5b_r6, held_out):
    model = construction_model(fig5b_r6, Budget(m_h=2, n=8, m_ff=128, ff_depth=1))
    x = held_out.x[:20]
    expected = fig5b_r6.truncated(2).logits(x.astype("float64"))  # Σ_{k≤2} σ_k φ_k(x_t) φ_k(x_s)
    np.testing.assert_allclose(attention_logits(model, x), expected, atol=0.01)


def test_more_kinks_fit_better(fig5b_r6, held_out):
    errors = [
        paper_error(
            held_out.y,
            construction_model(fig5b_r6, Budget(m_h=6, n=8, m_ff=m_ff, ff_depth=1)).predict(
                held_out.x, verbose=0
            ),
        )
        for m_ff in (16, 64)
    ]
    # Piecewise-linear interpolation error falls as (kink spacing)²: 16× here.
    assert errors[1] < errors[0] / 4


def _numpy_fit(points, values, count):
    """The least-squares continuous piecewise-linear fit with ``count`` equal kinks."""
    kinks = points[0] + (points[-1] - points[0]) * np.arange(1, count + 1) / (count + 1)
    design = np.concatenate(
        [points[:, None], np.maximum(points[:, None] - kinks, 0), np.ones((points.size, 1))], 1
    )
    return design @ np.linalg.lstsq(design, values, rcond=None)[0]


@pytest.mark.parametrize(
    "depth, kinks",
    [
        (1, 11),  # all 12 units of one layer: the carried x and 11 kinks
        (3, 11 + 2 * (12 - 1 - 2)),  # 11, then 9 per further layer (two sums carried)
    ],
)
def test_a_network_is_the_least_squares_piecewise_linear_fit(depth, kinks):
    points = np.linspace(-0.5, 2.0, 501)
    values = np.stack([np.sin(3 * points), points**2], axis=1)
    network = FeedForward(hidden_dim=12, output_dim=4, depth=depth)
    network.build((None, 3))
    set_piecewise_linear(network, points, values, input_rows=3)
    x = np.zeros((points.size, 3), "float32")
    x[:, 0] = points  # only input 0 is read
    out = np.asarray(network(x))
    np.testing.assert_allclose(out[:, :2], _numpy_fit(points, values, kinks), atol=2e-5)
    assert not out[:, 2:].any()  # further outputs are 0


def test_bad_fits_are_named():
    network = FeedForward(hidden_dim=8, output_dim=2, depth=2)
    points = np.linspace(0, 1, 20)
    with pytest.raises(TypeError, match="built FeedForward"):
        set_piecewise_linear(network, points, np.zeros((20, 1)), 1)
    network.build((None, 1))
    with pytest.raises(ValueError, match="points"):
        set_piecewise_linear(network, points[::-1], np.zeros((20, 1)), 1)
    with pytest.raises(ValueError, match=r"p <= the network's 2 outputs"):
        set_piecewise_linear(network, points, np.zeros((20, 3)), 1)


def test_depth_buys_kinks(fig5b_r6, held_out):
    errors = [
        paper_error(
            held_out.y,
            construction_model(fig5b_r6, Budget(m_h=6, n=8, m_ff=32, ff_depth=depth)).predict(
                held_out.x, verbose=0
            ),
        )
        for depth in (1, 3)
    ]
    # 31 kinks against 31 + 2 × 24 = 79: the error falls with the spacing squared.
    assert errors[1] < errors[0] / 3


def test_a_learned_encoding_starts_at_zero(fig5b_r6, held_out):
    budget = Budget(m_h=2, **SMALL)
    plain = construction_model(fig5b_r6, budget).predict(held_out.x, verbose=0)
    model = construction_model(fig5b_r6, budget, position_encoding="learned")
    (embeddings,) = model.get_layer("position_encoding").get_weights()
    assert not embeddings.any()
    np.testing.assert_allclose(model.predict(held_out.x, verbose=0), plain, atol=1e-6)


def test_other_values_and_readouts():
    # bilinear with d = 1: f(u) = √3 (2u − 1) takes negative values, φ_k are Legendre
    # polynomials; F̂ must fit F = id on [−√3, √3].
    target = make_target("bilinear", {"d": 1, "rank": 3, "tau": 8})
    data = target.sample(200, seed=1)
    model = construction_model(target, Budget(m_h=3, **SMALL))
    error = paper_error(data.y, model.predict(data.x, verbose=0))
    assert error < 0.01 * paper_error(data.y, target.truncated(1)(data.x))


def test_the_weights_are_a_start_for_training(fig5b_r6):
    budget = Budget(m_h=6, **SMALL)
    model = construction_model(fig5b_r6, budget)
    data = fig5b_r6.sample(128, seed=0)
    start = paper_error(data.y, model.predict(data.x, verbose=0))
    # Same architecture: the weights load into build_transformer's model.
    twin = build_transformer(budget, 16, 1, position_encoding="none")
    twin.set_weights(model.get_weights())
    np.testing.assert_allclose(twin.predict(data.x, verbose=0), model.predict(data.x, verbose=0))
    # L-BFGS never raises the loss.
    finish_model(model, data.x, data.y, 20)
    assert paper_error(data.y, model.predict(data.x, verbose=0)) <= start * (1 + 1e-3)
    # The engine keeps the start when its epochs do not beat it.
    config = TrainingConfig(epochs=1, batch_size=64, learning_rate=1e-9, schedule="constant")
    result = engine.train_members(
        [(budget, 0)],
        data,
        config,
        model_kwargs={"position_encoding": "none"},
        initial_weights=[construction_model(fig5b_r6, budget).get_weights()],
    )
    assert result.to_dicts()[0]["error"] == pytest.approx(start, rel=1e-3)


def test_rank():
    assert construction_rank(load_preset("fig5b-r2"), 5) == 2
    assert construction_rank(load_preset("fig5b-rinf"), 5) == 5
    # ψ = φ: the kept φ_k and f.
    assert construction_width(load_preset("fig5b-r6"), 6) == 7
    with pytest.raises(ValueError, match="m_h"):
        construction_rank(load_preset("fig5b-r2"), 0)


@pytest.mark.parametrize(
    "target, budget, kwargs, match",
    [
        ("table2-exp", Budget(m_h=2, **SMALL), {}, "no known POD basis"),
        ("bilinear-d16", Budget(m_h=2, **SMALL), {}, "d = 16"),
        ("positional-d2", Budget(m_h=2, **SMALL), {}, "depends on positions"),
        ("fig5b-r6", Budget(m_h=6, n=6, m_ff=8), {}, "n = 6"),
        ("fig5b-r6", Budget(m_h=2, num_layers=2, **SMALL), {}, "num_layers=2"),
        ("fig5b-r6", Budget(m_h=2, **SMALL), {"position_encoding": "sinusoidal"}, "sinusoidal"),
        ("fig5b-r6", Budget(m_h=2, **SMALL), {"grid_points": 1}, "grid_points"),
    ],
)
def test_bad_input_is_named(target, budget, kwargs, match):
    with pytest.raises(ValueError, match=match):
        construction_model(load_preset(target), budget, **kwargs)


def test_bad_types_are_named(fig5b_r6):
    with pytest.raises(TypeError, match="target"):
        construction_model("fig5b-r6", Budget(m_h=2, **SMALL))
    with pytest.raises(TypeError, match="budget"):
        construction_model(fig5b_r6, {"m_h": 2})


def test_importing_it_loads_no_keras():
    assert (
        modules_loaded_by("import tfapprox.construction", ("keras", "tensorflow", "sklearn"))
        == "[]"
    )
