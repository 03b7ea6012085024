"""tfapprox.ffrate: the feed-forward rate α from networks of several widths."""

import numpy as np
import pytest

from tfapprox import ffrate


def test_ff_rate_finds_error_falling_with_width():
    result = ffrate.ff_rate(
        lambda x: np.sin(2 * np.pi * x[:, 0]),
        (1, 4, 16),
        input_dim=1,
        depth=1,
        num_samples=256,
        num_test=256,
        epochs=60,
        batch_size=32,
        learning_rate=2e-2,
    )
    errors = np.asarray(result.errors)
    assert errors.shape == (3, 1)
    assert errors[-1, 0] < errors[0, 0]
    assert result.alpha > 0
    assert result.alpha_ci[0] <= result.alpha_ci[1]
    # α and C_α are the least-squares line through (log width, log error):
    # error ≈ C_α · width^{−α}.
    slope, intercept = np.polyfit(np.log([1, 4, 16]), np.log(errors[:, 0]), 1)
    assert result.alpha == pytest.approx(-slope, rel=1e-9)
    assert result.c_alpha == pytest.approx(np.exp(intercept), rel=1e-9)
    assert result.settings["epochs"] == 60


def test_ff_rate_refuses_a_single_width():
    with pytest.raises(ValueError, match="widths"):
        ffrate.ff_rate(lambda x: x[:, 0], (8, 8), input_dim=1)


def test_ff_rate_needs_the_input_dimension():
    with pytest.raises(ValueError, match="input_dim"):
        ffrate.ff_rate(lambda x: x[:, 0], (2, 8))


def test_ff_rate_is_reproducible_with_a_seed():
    options = dict(input_dim=1, depth=1, num_samples=64, num_test=64, epochs=3, batch_size=32)
    a = ffrate.ff_rate(lambda x: x[:, 0] ** 2, (2, 4), seed=5, **options)
    b = ffrate.ff_rate(lambda x: x[:, 0] ** 2, (2, 4), seed=5, **options)
    assert a.errors == b.errors
