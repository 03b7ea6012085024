"""Tests for tfapprox.pod: spectra against closed forms, decay fits, estimators."""

import math
import types

import numpy as np
import pytest

from tfapprox import pod, quadrature

PRESETS_WITH_BETA = ("fig5a-r6", "fig5a-rinf", "fig5b-r6", "fig5b-rinf")


def sine_kernel(sigmas):
    """ρ(u, v) = Σ_i σ_i √2 sin(2iπu) √2 sin(2iπv): POD values exactly σ_i."""
    sigmas = np.asarray(sigmas, dtype=float)
    i = np.arange(1, sigmas.size + 1)

    def rho(u, v):
        phi = np.sqrt(2) * np.sin(2 * np.pi * u * i)  # (..., K) from u (..., 1)
        psi = np.sqrt(2) * np.sin(2 * np.pi * v * i)
        return np.sum(phi * sigmas * psi, axis=-1)

    return rho


def fake_target(sigmas, tau=4):
    """A stand-in with the Target interface (position-independent)."""
    rho = sine_kernel(sigmas)
    return types.SimpleNamespace(
        name="fake",
        sequence_length=tau,
        input_dim=1,
        output_dim=1,
        position_dependent=False,
        beta=None,
        c_beta=None,
        rank=len(sigmas),
        metadata={},
        rho=lambda u, v, t=None, s=None: rho(u, v),
    )


# ---------------------------------------------------------------- spectra


def test_min_kernel_matches_closed_form_eigenvalues():
    values = pod.kernel_spectrum(lambda u, v: np.minimum(u, v)[..., 0], 1, order=1024)
    k = np.arange(1, 11)
    exact = 1.0 / ((k - 0.5) ** 2 * np.pi**2)
    # Nyström with a kinked kernel converges like order^-2: 1.2e-4 at 1024 nodes.
    assert np.max(np.abs(values[:10] - exact) / exact) <= 1e-3


def test_separable_sines_give_their_sigmas_with_the_automatic_grid():
    sigmas = np.arange(1, 33) ** -1.0
    values, info = pod.kernel_spectrum(sine_kernel(sigmas), 1, return_info=True)
    assert info["converged"] and info["method"] == "gauss"
    # A converged Gauss rule integrates these trigonometric products to rounding.
    np.testing.assert_allclose(values[:32], sigmas, rtol=1e-9)
    assert values[32] < 1e-12


def test_automatic_grid_refines_beyond_the_aliasing_order():
    sigmas = np.arange(1, 65) ** -0.55
    values, info = pod.kernel_spectrum(sine_kernel(sigmas), 1, return_info=True)
    # 64 frequencies need more than 128 Gauss nodes; the first orders alias.
    assert info["order"] > 128
    assert len(info["history"]) >= 4
    np.testing.assert_allclose(values[:64], sigmas, rtol=1e-9)


def test_rank_one_product_has_norm_product_singular_value():
    values = pod.kernel_spectrum(lambda u, v: (np.exp(u) * v**2)[..., 0], 1)
    exact = math.sqrt((math.e**2 - 1) / 2 * (1 / 5))  # ‖e^u‖ ‖v²‖ on [0, 1]
    assert abs(values[0] - exact) / exact <= 1e-3
    assert pod.numerical_rank(values) == 1


def test_rank_one_product_in_two_dimensions():
    values = pod.kernel_spectrum(lambda u, v: np.prod(np.cos(u) * np.exp(v), axis=-1), 2)
    one_axis = math.sqrt((0.5 + math.sin(2) / 4) * (math.e**2 - 1) / 2)
    assert abs(values[0] - one_axis**2) / one_axis**2 <= 1e-3
    assert pod.numerical_rank(values) == 1


def gaussian_kernel_eigenvalues(length, count):
    """Rasmussen & Williams (2006) §4.3.1: exp(−(x−y)²/(2ℓ²)) under N(0, 1)."""
    a, b = 0.25, 1 / (2 * length**2)
    c = math.sqrt(a * a + 2 * a * b)
    big_a = a + b + c
    return math.sqrt(2 * a / big_a) * (b / big_a) ** np.arange(count)


def test_gaussian_kernel_matches_hermite_eigenvalues():
    values = pod.kernel_spectrum(lambda u, v: np.exp(-np.sum((u - v) ** 2, axis=-1) / 2), "normal")
    exact = gaussian_kernel_eigenvalues(1.0, 8)
    assert np.max(np.abs(values[:8] - exact) / exact) <= 1e-3


def test_mehler_kernel_has_geometric_spectrum():
    r = 0.6

    def mehler(x, y):
        x, y = x[..., 0], y[..., 0]
        return np.exp(-(r * r * (x * x + y * y) - 2 * r * x * y) / (2 * (1 - r * r))) / math.sqrt(
            1 - r * r
        )

    values = pod.kernel_spectrum(mehler, "normal")
    exact = r ** np.arange(10)  # Σ r^n He_n(x) He_n(y) / n!
    assert np.max(np.abs(values[:10] - exact) / exact) <= 1e-3


def test_two_dimensional_gaussian_product_spectrum():
    values = pod.kernel_spectrum(
        lambda u, v: np.exp(-np.sum((u - v) ** 2, axis=-1) / 2), ["normal", "normal"]
    )
    one = gaussian_kernel_eigenvalues(1.0, 10)
    exact = np.sort(np.outer(one, one).ravel())[::-1][:6]
    assert np.max(np.abs(values[:6] - exact) / exact) <= 1e-3


def test_qmc_error_estimate_covers_the_true_error():
    values, info = pod.kernel_spectrum(
        lambda u, v: np.prod(np.cos(u) * np.exp(v), axis=-1), 3, num_points=512, return_info=True
    )
    exact = math.sqrt((0.5 + math.sin(2) / 4) * (math.e**2 - 1) / 2) ** 3
    assert info["method"] == "qmc" and info["replicas"] == 4
    stderr = info["value_errors"][0]
    # 4 shifts: the standard error is itself rough, so allow 5 of them.
    assert 0 < stderr < 0.05 * exact
    assert abs(values[0] - exact) <= 5 * stderr


def test_not_converging_warns_and_says_so():
    sigmas = np.arange(1, 65) ** -0.55
    with pytest.warns(RuntimeWarning, match="did not converge"):
        _, info = pod.kernel_spectrum(sine_kernel(sigmas), 1, max_points=64, return_info=True)
    assert info["converged"] is False


def test_capped_grid_estimates_its_error_from_the_order_below():
    sigmas = np.arange(1, 17) ** -1.0
    with pytest.warns(RuntimeWarning, match="did not converge"):
        values, info = pod.kernel_spectrum(sine_kernel(sigmas), 1, max_points=60, return_info=True)
    # Orders 16, 32, then the cap 60: the 32 → 60 jump says nothing about
    # order 60, so the estimate compares 59 with 60.
    assert [h["order"] for h in info["history"]] == [16, 32, 60, 60]
    assert info["history"][-1]["compared_with_order"] == 59
    true_error = np.max(np.abs(values[:16] - sigmas) / sigmas)
    assert true_error <= info["error_estimate"] < 1e-3 < info["history"][-2]["relative_change"]


def test_position_only_kernel_uses_counting_measure_weights():
    tau = 5
    a, b = np.arange(1.0, tau + 1), np.linspace(-1, 1, tau)
    values = pod.kernel_spectrum(lambda u, v, t, s: a[t] * b[s], 1, positions=tau)
    # Rank one on {0..τ−1} with weight 1/τ: σ_1 = ‖a‖ ‖b‖ / τ.
    assert values[0] == pytest.approx(np.linalg.norm(a) * np.linalg.norm(b) / tau, rel=1e-12)
    assert pod.numerical_rank(values) == 1


def test_data_driven_spectrum_equals_grid_for_position_only_kernel(rng):
    tau = 6
    kernel = rng.normal(size=(tau, tau))
    rho = lambda u, v, t, s: np.full(np.broadcast_shapes(u.shape, v.shape)[:-1], kernel[t, s])
    grid = pod.kernel_spectrum(rho, 1, positions=tau, order=2)
    data = pod.attention_spectrum(rho, rng.random((7, tau, 1)))
    np.testing.assert_allclose(data, grid[:tau], rtol=1e-10)
    np.testing.assert_allclose(data, np.linalg.svd(kernel, compute_uv=False) / tau, rtol=1e-10)


def test_masked_entries_are_replaced_by_zero_or_refused():
    tau = 4
    causal = lambda u, v, t, s: np.full(
        np.broadcast_shapes(u.shape, v.shape)[:-1], -float(t - s) if s <= t else -np.inf
    )
    values, info = pod.kernel_spectrum(causal, 1, positions=tau, order=2, return_info=True)
    expected = np.array([[-(t - s) if s <= t else 0.0 for s in range(tau)] for t in range(tau)])
    np.testing.assert_allclose(
        values[:tau], np.linalg.svd(expected, compute_uv=False) / tau, atol=1e-12
    )
    assert info["masked_fraction"] == pytest.approx(6 / 16)
    with pytest.raises(ValueError, match="masked"):
        pod.kernel_spectrum(causal, 1, positions=tau, order=2, masked="raise")


def test_kernel_with_nan_is_refused():
    with pytest.raises(ValueError, match="NaN"):
        pod.kernel_spectrum(lambda u, v: np.full((u * v).shape[:-1], np.nan), 1, order=4)


def test_kernel_with_wrong_shape_is_refused():
    with pytest.raises(ValueError, match="broadcast"):
        pod.kernel_spectrum(lambda u, v: np.ones(3), 1, order=4)


@pytest.mark.parametrize(
    "domain, message",
    [(0, "domain"), ([(1, 0)], "a < b"), (["laplace"], "normal"), (object(), "domain")],
)
def test_bad_domain_is_refused_naming_it(domain, message):
    with pytest.raises((ValueError, TypeError), match=message):
        pod.kernel_spectrum(lambda u, v: u[..., 0] * v[..., 0], domain, order=4)


def test_bad_method_is_refused_naming_it():
    with pytest.raises(ValueError, match="method='svd'"):
        pod.kernel_spectrum(lambda u, v: u[..., 0], 1, method="svd")


# ---------------------------------------------------------------- fit_decay


def test_fit_decay_recovers_an_exact_power_law():
    k = np.arange(1, 51)
    fit = pod.fit_decay(3.0 * k**-0.8)
    assert fit.beta == pytest.approx(0.8, abs=1e-12)
    assert fit.c_beta == pytest.approx(3.0, rel=1e-12)
    assert fit.fit_range == (6, 50)
    assert fit.beta_ci[0] == pytest.approx(0.8) and fit.beta_ci[1] == pytest.approx(0.8)


def test_fit_decay_interval_covers_truth_under_noise(rng):
    k = np.arange(1, 41)
    # 0.5% noise keeps the values decreasing (adjacent ones differ by ≥ 3%).
    values = 2.0 * k**-1.2 * np.exp(0.005 * rng.normal(size=k.size))
    fit = pod.fit_decay(values, n_bootstrap=500)
    assert fit.beta_ci[0] < 1.2 < fit.beta_ci[1]
    assert fit.c_beta_ci[0] < 2.0 < fit.c_beta_ci[1]
    assert fit.beta_ci[1] - fit.beta_ci[0] < 0.02


def test_fit_decay_excludes_the_noise_floor():
    values = np.concatenate([np.arange(1, 9) ** -1.5, 1e-17 * np.ones(20)])
    fit = pod.fit_decay(values)
    assert fit.fit_range == (1, 8)
    assert fit.beta == pytest.approx(1.5)


def test_fit_decay_uses_a_chosen_range():
    k = np.arange(1, 31)
    values = np.where(k <= 10, k**-0.5, 10**0.5 * k**-1.0)  # continuous at k = 10
    fit = pod.fit_decay(values, fit_range=(10, None))
    assert fit.fit_range == (10, 30)
    assert fit.beta == pytest.approx(1.0)


def test_fit_decay_refuses_fewer_than_three_values():
    with pytest.raises(ValueError, match="only 2 usable"):
        pod.fit_decay([1.0, 0.5, 1e-16, 1e-17])


def test_fit_decay_refuses_a_range_past_the_noise_floor():
    with pytest.raises(ValueError, match="fit_range"):
        pod.fit_decay([1.0, 0.5, 0.3, 0.2, 1e-16], fit_range=(1, 5))


def test_fit_decay_refuses_negative_values():
    with pytest.raises(ValueError, match="non-negative"):
        pod.fit_decay([1.0, -0.5, 0.2])


# ---------------------------------------------------------------- estimator


def test_estimator_init_only_stores_arguments():
    estimator = pod.PODComplexity(tol=-1.0, n_bootstrap=0, domain="nonsense")
    assert estimator.get_params()["tol"] == -1.0
    assert estimator.get_params()["domain"] == "nonsense"
    with pytest.raises(TypeError):
        pod.PODComplexity(1)


def test_estimator_reader_before_fit_raises_not_fitted():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        pod.PODComplexity().summary()


def test_estimator_fits_a_kernel_callable():
    estimator = pod.PODComplexity(domain=1).fit(sine_kernel(np.arange(1, 21) ** -0.7))
    assert estimator.beta_ == pytest.approx(0.7, abs=1e-9)
    assert estimator.c_beta_ == pytest.approx(1.0, abs=1e-9)
    assert estimator.rank_ == 20
    assert estimator.source_ == "kernel"
    assert set(estimator.summary()) >= {"beta", "c_beta", "beta_ci", "rank", "singular_values"}


def test_estimator_fits_a_target_like_object():
    estimator = pod.PODComplexity().fit(fake_target(2.0 * np.arange(1, 7) ** -1.0))
    assert estimator.source_ == "target"
    assert estimator.rank_ == 6
    assert estimator.beta_ == pytest.approx(1.0, abs=1e-9)
    assert estimator.c_beta_ == pytest.approx(2.0, rel=1e-9)


def test_estimator_needs_a_domain_for_kernel_callables():
    with pytest.raises(ValueError, match="domain"):
        pod.PODComplexity().fit(lambda u, v: u[..., 0])


def test_estimator_refuses_other_inputs():
    with pytest.raises(TypeError, match="X"):
        pod.PODComplexity(domain=1).fit(np.ones((3, 3)))


def test_estimator_validates_parameters_at_fit():
    with pytest.raises(ValueError, match="n_bootstrap"):
        pod.PODComplexity(domain=1, n_bootstrap=0).fit(lambda u, v: u[..., 0] * v[..., 0])


def test_estimator_short_spectrum_raises_or_reports_nan():
    rank_two = sine_kernel([1.0, 0.5])
    with pytest.raises(ValueError, match="numerical rank 2"):
        pod.PODComplexity(domain=1).fit(rank_two)
    estimator = pod.PODComplexity(domain=1, allow_short=True).fit(rank_two)
    assert estimator.rank_ == 2 and math.isnan(estimator.beta_)
    assert estimator.summary()["beta"] is None


# ---------------------------------------------------------------- presets


@pytest.fixture(scope="module")
def targets():
    from tfapprox import targets

    return targets


@pytest.mark.parametrize("name", PRESETS_WITH_BETA)
def test_preset_fitted_beta_is_within_005_of_truth(targets, name):
    target = targets.load_preset(name)
    estimator = pod.PODComplexity().fit(target)
    assert abs(estimator.beta_ - target.beta) <= 0.05
    if target.c_beta is not None:
        assert estimator.c_beta_ == pytest.approx(target.c_beta, rel=0.05)


def test_positional_preset_fitted_beta_is_within_005_of_truth(targets):
    # d = 2 with 16 positions: a fixed Gauss order keeps the test quick (the
    # automatic grid converges further, see `tfapprox estimate positional-d2`).
    target = targets.load_preset("positional-d2")
    estimator = pod.PODComplexity(order=8).fit(target)
    assert abs(estimator.beta_ - target.beta) <= 0.05
    assert estimator.c_beta_ == pytest.approx(target.c_beta, rel=0.05)
    assert estimator.rank_ == target.rank


@pytest.mark.parametrize("name", ("fig5a-r2", "fig5a-r6", "fig5b-r2", "fig5b-r6", "default"))
def test_finite_rank_preset_has_numerical_rank_r(targets, name):
    target = targets.load_preset(name)
    values = pod.target_spectrum(target)
    assert pod.numerical_rank(values) == target.rank


@pytest.mark.parametrize("name", ("fig5a-r2", "fig5b-r2", "default"))
def test_rank_two_preset_two_point_slope_is_beta(targets, name):
    target = targets.load_preset(name)
    values = pod.target_spectrum(target)
    assert math.log(values[0] / values[1]) / math.log(2) == pytest.approx(target.beta, abs=0.05)
    with pytest.raises(ValueError, match="at least 3"):
        pod.fit_decay(values)


# ---------------------------------------------------------------- models


@pytest.fixture(scope="module")
def tiny_model():
    import keras

    from tfapprox import Budget, models

    keras.utils.set_random_seed(1)
    # tanh: a random ReLU f̂ of a scalar is often affine on [0, 1] (rank 2 features).
    return models.build_transformer(Budget(n=8, m_h=3, m_ff=8, ff_depth=2), 4, 1, activation="tanh")


def test_model_grid_spectrum_has_at_most_m_h_nonzero_values(tiny_model):
    values, info = pod.model_spectrum(tiny_model, order=16, return_info=True)
    assert values.size == 16 * 4 and info["positions"] == 4
    # Three directions carry signal; the fourth value on is float64 rounding.
    assert pod.numerical_rank(values) == 3
    assert values[3] < 1e-12 * values[0]


def test_model_grid_spectrum_matches_a_numpy_reference(tiny_model):
    from tfapprox import models

    nodes, weights = quadrature.gauss_rule(1, 6)
    x = np.repeat(nodes[:, None, :], 4, axis=1).astype("float32")
    q, k = models.query_key_features(tiny_model, x)
    rows_q = np.concatenate([q[:, t] for t in range(4)]).astype(float)  # rows (t, i)
    rows_k = np.concatenate([k[:, t] for t in range(4)]).astype(float)
    root = np.sqrt(np.tile(weights / 4, 4))
    reference = np.linalg.svd(root[:, None] * (rows_q @ rows_k.T) * root, compute_uv=False)
    np.testing.assert_allclose(pod.model_spectrum(tiny_model, order=6), reference, atol=1e-12)


def test_estimator_on_model_reports_rank_at_most_m_h(tiny_model):
    estimator = pod.PODComplexity(order=16).fit(tiny_model)
    assert estimator.source_ == "model" and estimator.rank_ <= 3
    assert np.isfinite(estimator.beta_)


def test_data_driven_model_spectrum_matches_attention_logits(tiny_model, rng):
    from tfapprox import models

    x = rng.random((5, 4, 1)).astype("float32")
    values = pod.attention_spectrum(tiny_model, x)
    logits = models.attention_logits(tiny_model, x).astype(float)
    expected = np.linalg.svd(logits, compute_uv=False).mean(axis=0) / 4
    np.testing.assert_allclose(values, expected, rtol=1e-4, atol=1e-7)
    assert pod.numerical_rank(values) <= 3


def test_data_driven_estimate_refuses_mismatched_inputs(tiny_model, rng):
    with pytest.raises(ValueError, match="tau=5"):
        pod.attention_spectrum(tiny_model, rng.random((2, 5, 1)))


def test_moved_names_stay_importable_from_pod():
    from tfapprox import ffrate, quadrature

    assert pod.ff_rate is ffrate.ff_rate and pod.FFRate is ffrate.FFRate
    assert pod.gauss_rule is quadrature.gauss_rule and pod.halton is quadrature.halton


def test_pod_module_imports_no_heavy_libraries():
    import subprocess
    import sys

    code = (
        "import os, sys; os.environ['TFAPPROX_LAZY_IMPORT'] = '1'; import tfapprox.pod; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_pod_docstring_examples_pass():
    import doctest

    result = doctest.testmod(pod)
    assert result.failed == 0 and result.attempted >= 10
