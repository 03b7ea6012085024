"""tfapprox.construction: Jiang & Li's construction as the weights of paper A's model."""

import numpy as np
import pytest
from helpers import modules_loaded_by

from tfapprox import Budget, engine
from tfapprox.config import TrainingConfig
from tfapprox.construction import (
    FittedKernel,
    _kernel_loss,
    construction_model,
    construction_rank,
    construction_width,
    fit_kernel,
    set_piecewise_linear,
)
from tfapprox.datasets import Dataset
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


# The fitted kernel: the rank-m_h ρ̂ whose attention best reproduces the outputs.


def _reduced_model(kernel, x):
    """NumPy reference: Σ_s softmax_s(a(x_t)·b(x_s)) x_s, the fitted model of fig5 (f = F = id)."""
    a, b = kernel.features(x[..., 0])
    logits = np.einsum("ntk,nsk->nts", a, b)
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    weights /= weights.sum(axis=-1, keepdims=True)
    return (weights @ x[..., 0][..., None]).astype("float64")


@pytest.fixture(scope="module")
def fitted(fig5b_r6):
    return fit_kernel(fig5b_r6, 2, fig5b_r6.sample(128, seed=0), steps=60)


def test_the_kernel_gradient_is_the_finite_difference():
    rng = np.random.default_rng(0)
    basis = rng.normal(size=(3, 5, 4))
    values, y = rng.normal(size=(3, 5)), rng.normal(size=(3, 5))
    params = rng.normal(scale=0.5, size=2 * 2 * 4)
    loss, grad = _kernel_loss(params, (2, 4), basis, values, y)
    numeric = np.zeros_like(params)
    for i in range(params.size):
        step = np.zeros_like(params)
        step[i] = 1e-6
        plus = _kernel_loss(params + step, (2, 4), basis, values, y)[0]
        minus = _kernel_loss(params - step, (2, 4), basis, values, y)[0]
        numeric[i] = (plus - minus) / 2e-6
    np.testing.assert_allclose(grad, numeric, rtol=1e-5, atol=1e-8)
    # The loss is the MSE of the attention-weighted values.
    a = basis @ params[:8].reshape(2, 4).T
    b = basis @ params[8:].reshape(2, 4).T
    logits = np.einsum("ntk,nsk->nts", a, b)
    weights = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    assert loss == pytest.approx(np.mean((weights @ values[..., None] - y[..., None]) ** 2))


def test_the_fit_starts_at_the_truncation_and_goes_far_below_it(fig5b_r6, fitted):
    data = fig5b_r6.sample(128, seed=0)
    truncation = np.mean((fig5b_r6.truncated(2)(data.x.astype("float64")) - data.y) ** 2)
    # Started at ρ's rank-2 POD truncation (projected on the Fourier basis) ...
    assert fitted.start_loss == pytest.approx(truncation, rel=0.05)
    # ... it ends well below it: the best rank-2 kernel is not the truncation.
    assert fitted.loss < truncation / 3
    assert isinstance(fitted, FittedKernel) and fitted.rank == 2 and fitted.iterations <= 60


def test_a_fitted_kernel_evaluates_as_its_features(fitted):
    u, v = np.linspace(0, 1, 7), np.linspace(1, 0, 7)
    a, _ = fitted.features(u)
    _, b = fitted.features(v)
    np.testing.assert_allclose(fitted(u, v), np.sum(a * b, axis=-1))


def test_a_fitted_kernel_computes_its_reduced_model(fig5b_r6, held_out, fitted):
    # fig5b's f is the identity: the values are the tokens.
    outputs = fitted.outputs(held_out.x, fig5b_r6.f(held_out.x))
    np.testing.assert_allclose(outputs, _reduced_model(fitted, held_out.x), rtol=1e-12)
    assert outputs.shape == held_out.x.shape


def test_the_model_of_a_fitted_kernel_is_its_reduced_model(fig5b_r6, held_out, fitted):
    model = construction_model(fig5b_r6, Budget(m_h=2, n=8, m_ff=64, ff_depth=2), kernel=fitted)
    predicted = model.predict(held_out.x, verbose=0)
    reference = _reduced_model(fitted, held_out.x)
    # f̂'s kinks carry a_k, b_k and f: the model is the reduced one to ~1e-3.
    assert paper_error(reference, predicted) < 3e-3
    # And far better than the truncation's construction at the same budget.
    truncation = construction_model(fig5b_r6, Budget(m_h=2, n=8, m_ff=64, ff_depth=2))
    errors = [
        paper_error(held_out.y, m.predict(held_out.x, verbose=0)) for m in (model, truncation)
    ]
    assert errors[0] < errors[1] / 1.5


def test_a_kernel_of_lower_rank_is_a_model_of_a_larger_budget(fig5b_r6, held_out, fitted):
    small = construction_model(fig5b_r6, Budget(m_h=2, n=8, m_ff=64, ff_depth=2), kernel=fitted)
    large = construction_model(fig5b_r6, Budget(m_h=5, n=8, m_ff=64, ff_depth=2), kernel=fitted)
    np.testing.assert_allclose(
        large.predict(held_out.x, verbose=0), small.predict(held_out.x, verbose=0), atol=1e-5
    )
    assert int(np.count_nonzero(large.get_layer("attention").get_weights()[0].any(axis=0))) == 2


def test_more_steps_never_raise_the_fitted_loss(fig5b_r6):
    data = fig5b_r6.sample(64, seed=2)
    losses = [fit_kernel(fig5b_r6, 1, data, steps=steps).loss for steps in (1, 5, 25)]
    assert losses[0] >= losses[1] >= losses[2]


def test_a_fit_continues_where_another_ended(fig5b_r6):
    data = fig5b_r6.sample(64, seed=2)
    first = fit_kernel(fig5b_r6, 2, data, steps=5)
    more = fit_kernel(fig5b_r6, 2, data, steps=5, start=first)
    assert more.start_loss == pytest.approx(first.loss, rel=1e-12)
    assert more.loss < first.loss
    # From the end of a finished fit, more steps find (almost) nothing.
    done = fit_kernel(fig5b_r6, 2, data, steps=400)
    again = fit_kernel(fig5b_r6, 2, data, steps=50, start=done)
    assert done.loss - again.loss <= 1e-3 * done.loss


def test_bad_fitted_kernels_are_named(fig5b_r6, fitted):
    with pytest.raises(ValueError, match="rank 2, above the budget's m_h = 1"):
        construction_model(fig5b_r6, Budget(m_h=1, **SMALL), kernel=fitted)
    with pytest.raises(TypeError, match="FittedKernel"):
        construction_model(fig5b_r6, Budget(m_h=2, **SMALL), kernel=np.zeros((2, 33)))
    with pytest.raises(ValueError, match="n = 4"):  # a_1, a_2, b_1, b_2 and f: 5 outputs
        construction_model(fig5b_r6, Budget(m_h=2, n=4, m_ff=8), kernel=fitted)
    with pytest.raises(ValueError, match="m_h"):
        fit_kernel(fig5b_r6, 0)
    with pytest.raises(ValueError, match="steps"):
        fit_kernel(fig5b_r6, 1, steps=0)
    with pytest.raises(TypeError, match="data"):
        fit_kernel(fig5b_r6, 1, (np.zeros((2, 16, 1)), np.zeros((2, 16, 1))))
    with pytest.raises(ValueError, match="sequences of"):
        fit_kernel(fig5b_r6, 1, Dataset(np.zeros((2, 8, 1)), np.zeros((2, 8, 1))))
    with pytest.raises(ValueError, match="no known POD basis"):
        fit_kernel(load_preset("table2-exp"), 1)
    with pytest.raises(TypeError, match="`start` must be a FittedKernel"):
        fit_kernel(fig5b_r6, 2, steps=1, start=fitted.query)
    with pytest.raises(ValueError, match="`start` is a kernel of rank 2"):
        fit_kernel(fig5b_r6, 3, steps=1, start=fitted)


def test_a_readout_other_than_the_identity_is_refused():
    target = load_preset("fig5b-r6")
    target._F = lambda z: 2.0 * z  # this instance only
    with pytest.raises(ValueError, match="readout F other than the identity"):
        fit_kernel(target, 1)


def test_importing_it_loads_no_keras():
    assert (
        modules_loaded_by("import tfapprox.construction", ("keras", "tensorflow", "sklearn"))
        == "[]"
    )
