"""tfapprox.quadrature: domains, Gauss rules and shifted Halton points."""

import numpy as np
import pytest

from tfapprox import quadrature


def test_gauss_rule_integrates_polynomials_exactly():
    nodes, weights = quadrature.gauss_rule([(0, 2), (-1, 1)], 4)
    # ∫_0^2 x^7 dx · ∫_{-1}^1 y^6 dy = 2^8/8 · 2/7
    assert weights @ (nodes[:, 0] ** 7 * nodes[:, 1] ** 6) == pytest.approx(32 * 2 / 7, rel=1e-13)


def test_halton_shift_is_reproducible_and_in_the_unit_cube():
    a, b = quadrature.halton(100, 3, seed=1), quadrature.halton(100, 3, seed=1)
    np.testing.assert_array_equal(a, b)
    assert a.min() >= 0 and a.max() < 1
    # Low discrepancy: every eighth of each axis holds 100/8 ± 2 points.
    counts = np.stack([np.histogram(a[:, j], bins=8, range=(0, 1))[0] for j in range(3)])
    assert np.all(np.abs(counts - 12.5) <= 2)


def test_gauss_hermite_axis_integrates_against_the_normal_measure():
    nodes, weights = quadrature.gauss_rule("normal", 5)
    # E[X²] = 1, E[X⁴] = 3 under N(0, 1).
    assert weights.sum() == pytest.approx(1.0, rel=1e-13)
    assert weights @ nodes[:, 0] ** 4 == pytest.approx(3.0, rel=1e-12)


def test_qmc_rule_scales_to_the_box_with_equal_weights():
    nodes, weights = quadrature.qmc_rule(quadrature.parse_domain([(0, 2), (1, 3), (0, 1)]), 50, 0)
    assert nodes.shape == (50, 3) and np.allclose(weights, 4.0 / 50)
    assert nodes[:, 0].max() < 2 and nodes[:, 1].min() >= 1


def test_qmc_rule_refuses_normal_axes():
    with pytest.raises(ValueError, match="interval axes only"):
        quadrature.qmc_rule(["normal"], 8, 0)


@pytest.mark.parametrize(
    "domain, message",
    [
        (0, "domain"),
        ([(1, 0)], "a < b"),
        (["laplace"], "normal"),
        (object(), "domain"),
        ([], "at least one"),
    ],
)
def test_parse_domain_refuses_bad_domains_naming_them(domain, message):
    with pytest.raises((ValueError, TypeError), match=message):
        quadrature.parse_domain(domain)
