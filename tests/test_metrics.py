"""Error norms and the truncation error of targets with a known POD."""

import numpy as np
import pytest

from tfapprox import metrics
from tfapprox.targets import fig5_target, load_preset


def test_paper_error_is_the_mean_over_sequences_of_the_sum_over_time():
    rng = np.random.default_rng(0)
    y, y_hat = rng.normal(size=(5, 7, 2)), rng.normal(size=(5, 7, 2))
    brute = np.mean([np.abs(y[i] - y_hat[i]).sum() for i in range(5)])
    assert metrics.paper_error(y, y_hat) == pytest.approx(brute, rel=1e-12)
    assert metrics.mse(y, y_hat) == pytest.approx(np.mean((y - y_hat) ** 2), rel=1e-12)


def test_error_norms_reject_mismatched_shapes():
    with pytest.raises(ValueError, match="same shape"):
        metrics.paper_error(np.zeros((2, 3, 1)), np.zeros((2, 4, 1)))
    with pytest.raises(ValueError, match="sequences"):
        metrics.mse(np.zeros((2, 3)), np.zeros((2, 3)))


def test_truncated_target_keeps_the_leading_singular_values_and_leaves_the_original():
    target = fig5_target(beta=1.0, rank=6)
    before = target.singular_values.copy()
    twin = target.truncated(3)
    np.testing.assert_array_equal(target.singular_values, before)
    np.testing.assert_allclose(twin.singular_values, [1, 1 / 2, 1 / 3, 0, 0, 0])
    x = target.sample(50, seed=1).x.astype(np.float64)  # datasets store float32
    # The truncated kernel is the partial sum of the POD, evaluated directly.
    phi = np.sqrt(2) * np.sin(2 * np.pi * x[..., :1] * np.arange(1, 4))
    logits = np.einsum("ntk,nsk->nts", phi * [1, 1 / 2, 1 / 3], phi)
    np.testing.assert_allclose(twin.logits(x), logits, atol=1e-12)


def test_truncated_rejects_a_negative_rank():
    with pytest.raises(ValueError, match="rank"):
        fig5_target(rank=2).truncated(-1)


def test_truncation_error_falls_with_rank_and_vanishes_at_the_true_rank():
    target = load_preset("fig5b-r6")
    x = target.sample(400, seed=0).x
    errors = metrics.truncation_errors(target, x, range(8))
    mse = [errors[k]["mse"] for k in range(8)]
    assert all(a > b for a, b in zip(mse[:6], mse[1:6]))
    assert mse[6] == mse[7] == 0.0
    assert errors[0]["paper_error"] > errors[1]["paper_error"] > 0


def test_truncation_errors_need_a_target_with_a_known_pod():
    with pytest.raises(TypeError, match="known POD"):
        metrics.truncation_errors(object(), np.zeros((1, 2, 1)), [1])
