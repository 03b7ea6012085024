"""Fits: power laws in log-log space with bootstrap intervals, and small NNLS.

One implementation for every rate tfapprox measures:

- the POD decay ``σ_k ≈ C_β k^{−β}`` (`tfapprox.pod.fit_decay`),
- the feed-forward rate ``e(m_FF) ≈ C_α m_FF^{−α}`` (`tfapprox.ffrate.ff_rate`),
- the slope of measured errors against m_h (`tfapprox.check.check_errors`).

`power_law` fits ``log y = log C − rate · log x`` by ordinary least squares.
Its interval is a bootstrap percentile interval: the points are resampled
with replacement (pairs bootstrap), or, given ``log_y_samples``, each point's
repeats are (one row per resample). Resamples whose x values are all equal
are dropped. The interval always contains the point estimate (a percentile
interval of a skewed bootstrap can miss it; exact data give a zero-width
interval at the estimate), and with no usable resample it is the estimate
itself.

`nnls` solves the non-negative least-squares problems of at most a few
columns exactly (the constants C_β, C_α of the bound).

Only NumPy is needed.

Example:

>>> fit = power_law([1, 2, 4, 8], [3.0, 1.5, 0.75, 0.375], n_bootstrap=100)
>>> round(fit.rate, 12), round(fit.constant, 12), [round(v, 9) for v in fit.rate_ci]
(1.0, 3.0, [1.0, 1.0])
>>> nnls([np.array([1.0, 0.0]), np.array([0.0, 1.0])], np.array([2.0, -1.0])).tolist()
[2.0, 0.0]
"""

import dataclasses
import itertools
import math

import numpy as np

from tfapprox._checks import check_int, check_real, check_seed

__all__ = ["PowerLawFit", "nnls", "ols", "power_law"]


@dataclasses.dataclass(frozen=True)
class PowerLawFit:
    """A fit ``y ≈ C x^{−rate}`` in log-log space with bootstrap intervals.

    Attributes:
        rate: float. The exponent (β for spectra, α for feed-forward errors;
            minus the slope of log y against log x).
        constant: float. C.
        rate_ci: tuple. Bootstrap percentile interval of the rate.
        constant_ci: tuple. Bootstrap percentile interval of C.
        fit_range: tuple ``(start, stop)`` or None. 1-based inclusive indices
            used, when the caller chose a range.
        num_used: int. Number of points in the fit.
        noise_floor: float. Values at or below it were excluded by the caller.
        envelope: float. ``max_k y_k x_k^{rate}``: the smallest C with
            ``y ≤ C x^{−rate}`` at every point.
        residual_std: float. Standard deviation of the log residuals.
        confidence: float. Interval level.
        bootstrap_used: int. Resamples that gave a slope.
    """

    rate: float
    constant: float
    rate_ci: tuple
    constant_ci: tuple
    fit_range: tuple
    num_used: int
    noise_floor: float
    envelope: float
    residual_std: float
    confidence: float
    bootstrap_used: int = 0

    @property
    def slope(self):
        """The slope of log y against log x, ``−rate``."""
        return -self.rate

    @property
    def intercept(self):
        """``log C``."""
        return math.log(self.constant)

    @property
    def slope_ci(self):
        """The interval of the slope, ``[−rate_ci[1], −rate_ci[0]]``."""
        return [-self.rate_ci[1], -self.rate_ci[0]]

    def to_dict(self):
        return dataclasses.asdict(self)


def ols(log_x, log_y, counts=None):
    """Weighted least squares of ``log_y = a − b log_x``, batched over rows of ``counts``.

    Returns ``(b, a, ok)``: arrays with one entry per row of ``counts``
    (the weights of each point; None means one row of ones); ``ok`` is False
    where the weighted x values have no spread (no slope).

    >>> b, a, ok = ols(np.log([1.0, 2.0, 4.0]), np.log([4.0, 2.0, 1.0]))
    >>> b.round(12).tolist(), np.exp(a).round(12).tolist(), ok.tolist()
    ([1.0], [4.0], [True])
    """
    log_x = np.asarray(log_x, dtype=np.float64)
    log_y = np.asarray(log_y, dtype=np.float64)
    if counts is None:
        counts = np.ones((1, log_x.size))
    total = counts.sum(axis=1)
    mean_x = counts @ log_x / total
    mean_y = counts @ log_y / total
    dx = log_x[None, :] - mean_x[:, None]
    sxx = np.sum(counts * dx * dx, axis=1)
    sxy = np.sum(counts * dx * (log_y[None, :] - mean_y[:, None]), axis=1)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = sxy / sxx
    return -slope, mean_y - slope * mean_x, sxx > 1e-12 * max(1.0, float(np.max(sxx, initial=0.0)))


def _interval(draws, estimate, confidence):
    if not draws.size:
        return (estimate, estimate)
    tail = (1.0 - confidence) / 2.0 * 100.0
    low, high = (float(v) for v in np.percentile(draws, [tail, 100.0 - tail]))
    return (min(low, estimate), max(high, estimate))


def power_law(
    x,
    y,
    *,
    n_bootstrap=1000,
    confidence=0.95,
    seed=0,
    log_y_samples=None,
    fit_range=None,
    noise_floor=0.0,
):
    """Fit ``y ≈ C x^{−rate}`` by least squares on the logs, with bootstrap intervals.

    Args:
        x, y: 1-D array-likes of positive numbers, the same length (at
            least 2 distinct x).
        n_bootstrap: int >= 0. Pairs-bootstrap resamples (ignored when
            ``log_y_samples`` is given). Defaults to 1000.
        confidence: float in (0, 1). Interval level. Defaults to 0.95.
        seed: int, `numpy.random.Generator` or None. Bootstrap seed.
            Defaults to 0.
        log_y_samples: array ``(resamples, len(x))`` or None. Resampled
            ``log y`` per point (e.g. means over resampled repeats); each row
            is fitted instead of a pairs resample. Defaults to None.
        fit_range, noise_floor: recorded in the result as they are.

    Returns:
        `PowerLawFit`.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape:
        raise ValueError(
            f"`x` and `y` must be 1-D of the same length. Received shapes {x.shape}, {y.shape}"
        )
    if not (np.all(x > 0) and np.all(y > 0) and np.all(np.isfinite(x)) and np.all(np.isfinite(y))):
        raise ValueError("`x` and `y` must be finite and positive for a log-log fit")
    if np.unique(x).size < 2:
        raise ValueError(f"a power law needs at least 2 distinct x. Received: x={x.tolist()}")
    n_bootstrap = check_int("n_bootstrap", n_bootstrap, minimum=0, maximum=10**7)
    confidence = check_real("confidence", confidence, low=0, high=1, low_open=True, high_open=True)
    if seed is not None and not isinstance(seed, np.random.Generator):
        seed = check_seed("seed", seed)
    if log_y_samples is not None:
        log_y_samples = np.asarray(log_y_samples, dtype=np.float64)
        if log_y_samples.ndim != 2 or log_y_samples.shape[1] != x.size:
            raise ValueError(
                f"`log_y_samples` must have shape (resamples, {x.size}). "
                f"Received shape {log_y_samples.shape}"
            )
    rng = np.random.default_rng(seed)
    log_x, log_y = np.log(x), np.log(y)
    rates, intercepts, _ = ols(log_x, log_y)
    rate, intercept = float(rates[0]), float(intercepts[0])
    residual = log_y - (intercept - rate * log_x)
    if log_y_samples is None:
        counts = rng.multinomial(x.size, np.full(x.size, 1.0 / x.size), size=int(n_bootstrap))
        draws, draw_intercepts, ok = ols(log_x, log_y, counts.astype(np.float64))
    else:
        samples = np.asarray(log_y_samples, dtype=np.float64)
        results = [ols(log_x, row) for row in samples]
        draws = np.array([r[0][0] for r in results])
        draw_intercepts = np.array([r[1][0] for r in results])
        ok = np.array([r[2][0] for r in results], dtype=bool)
    draws, constants = draws[ok], np.exp(draw_intercepts[ok])
    return PowerLawFit(
        rate=rate,
        constant=float(math.exp(intercept)),
        rate_ci=_interval(draws, rate, confidence),
        constant_ci=_interval(constants, float(math.exp(intercept)), confidence),
        fit_range=fit_range,
        num_used=int(x.size),
        noise_floor=float(noise_floor),
        envelope=float(np.max(y * x**rate)),
        residual_std=float(np.std(residual)),
        confidence=float(confidence),
        bootstrap_used=int(draws.size),
    )


def nnls(columns, target):
    """Exact non-negative least squares ``min ‖A c − y‖``, c ≥ 0, for a few columns.

    The solution is the best of the unconstrained least-squares fits on every
    subset of columns whose coefficients are all non-negative (the KKT
    conditions select one of them). Exponential in the number of columns:
    meant for two or three.

    Args:
        columns: sequence of 1-D arrays, the columns of A.
        target: 1-D array y.

    Returns:
        float64 array c.
    """
    matrix = np.column_stack(columns)
    target = np.asarray(target, dtype=np.float64)
    best, best_residual = np.zeros(matrix.shape[1]), float(np.sum(target**2))
    for size in range(1, matrix.shape[1] + 1):
        for subset in itertools.combinations(range(matrix.shape[1]), size):
            coef = np.linalg.lstsq(matrix[:, subset], target, rcond=None)[0]
            if np.any(coef < 0):
                continue
            c = np.zeros(matrix.shape[1])
            c[list(subset)] = coef
            residual = float(np.sum((matrix @ c - target) ** 2))
            if residual < best_residual - 1e-15 * max(best_residual, 1.0):
                best, best_residual = c, residual
    return best
