"""tfapprox.fits: log-log power-law fits with bootstrap intervals, and NNLS."""

import numpy as np
import pytest

from tfapprox import fits


def test_power_law_recovers_exact_rate_and_constant():
    x = np.arange(1, 21, dtype=float)
    fit = fits.power_law(x, 2.5 * x**-0.75, n_bootstrap=200)
    assert fit.rate == pytest.approx(0.75, rel=1e-12)
    assert fit.constant == pytest.approx(2.5, rel=1e-12)
    assert fit.slope == -fit.rate and fit.intercept == pytest.approx(np.log(2.5))
    # Exact data: every resample gives the same line (up to rounding).
    assert fit.rate_ci == pytest.approx((0.75, 0.75), abs=1e-9)
    assert fit.envelope == pytest.approx(2.5, rel=1e-12)
    assert fit.residual_std == pytest.approx(0.0, abs=1e-12)


def test_power_law_interval_covers_the_truth_on_noisy_data(rng):
    x = np.arange(1, 41, dtype=float)
    y = 3.0 * x**-1.2 * np.exp(0.05 * rng.standard_normal(x.size))
    fit = fits.power_law(x, y, n_bootstrap=500, seed=1)
    assert fit.rate_ci[0] <= 1.2 <= fit.rate_ci[1]
    # 5% log-normal noise over 40 points: the rate is within 0.05.
    assert fit.rate == pytest.approx(1.2, abs=0.05)
    assert fit.bootstrap_used == 500


def test_power_law_interval_always_contains_the_estimate(rng):
    for seed in range(20):
        x = np.array([1.0, 2.0, 3.0, 50.0])
        y = np.exp(rng.standard_normal(4))
        fit = fits.power_law(x, y, n_bootstrap=30, seed=seed)
        assert fit.rate_ci[0] <= fit.rate <= fit.rate_ci[1]
        assert fit.constant_ci[0] <= fit.constant <= fit.constant_ci[1]


def test_power_law_without_resamples_has_a_point_interval():
    fit = fits.power_law([1, 2, 4], [1.0, 0.6, 0.2], n_bootstrap=0)
    assert fit.rate_ci == (fit.rate, fit.rate) and fit.bootstrap_used == 0


def test_power_law_is_reproducible_with_a_seed(rng):
    x = np.arange(1, 11, dtype=float)
    y = x**-1.0 * np.exp(0.1 * rng.standard_normal(10))
    assert fits.power_law(x, y, seed=3) == fits.power_law(x, y, seed=3)


def test_power_law_fits_resampled_repeats_when_given():
    x = np.array([1.0, 2.0, 4.0])
    samples = np.log(np.array([[1.0, 0.5, 0.25], [1.0, 0.25, 0.0625]]))
    fit = fits.power_law(x, [1.0, 0.5, 0.25], log_y_samples=samples)
    assert fit.rate_ci == pytest.approx((1.0, 2.0 - 0.025 * 1.0), abs=1e-9)


@pytest.mark.parametrize(
    "x, y, fragment",
    [
        ([1, 2], [1.0, -1.0], "positive"),
        ([1, 1, 1], [1.0, 2.0, 3.0], "2 distinct x"),
        ([1, 2, 3], [1.0, 2.0], "same length"),
    ],
)
def test_power_law_refuses_data_it_cannot_fit(x, y, fragment):
    with pytest.raises(ValueError, match=fragment):
        fits.power_law(x, y)


def test_nnls_matches_a_grid_search(rng):
    for _ in range(10):
        columns = [rng.normal(size=12), rng.normal(size=12)]
        target = rng.normal(size=12)
        x = fits.nnls(columns, target)
        assert np.all(x >= 0)
        matrix = np.column_stack(columns)
        residual = np.sum((matrix @ x - target) ** 2)
        grid = np.stack(np.meshgrid(np.linspace(0, 3, 301), np.linspace(0, 3, 301)), -1)
        best = np.min(np.sum((grid.reshape(-1, 2) @ matrix.T - target) ** 2, axis=1))
        assert residual <= best + 1e-12
