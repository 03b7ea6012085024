"""Quadrature rules on product domains: the grids POD spectra are computed on.

A *domain* is a product of axes, each an interval ``(a, b)`` with the
Lebesgue measure or ``"normal"`` (the real line with the standard Gaussian
measure); `parse_domain` reads the forms tfapprox accepts. On it:

- `gauss_rule`: tensor Gauss–Legendre / Gauss–Hermite rules, exact for
  polynomials of degree ``2·order − 1`` per variable (d = 1, 2);
- `halton` and `qmc_rule`: randomly shifted Halton points with equal
  weights, for boxes of any dimension (d ≥ 3).

`tfapprox.pod` builds the weighted kernel matrices from these rules. Only
NumPy is needed.
"""

import math
import numbers

import numpy as np

from tfapprox._checks import check_int

__all__ = ["gauss_rule", "halton", "parse_domain", "qmc_rule"]


# Past these no rule fits in memory: axes of a domain, and nodes (or points)
# of one rule times its dimension.
MAX_DIMENSION = 64
MAX_VALUES = 2**28


def parse_domain(domain):
    """A list of axes, each ``(a, b)`` (an interval) or ``"normal"``.

    Accepted forms: an int d (``[0, 1]^d``); a pair ``(a, b)`` (one
    interval); the string ``"normal"`` (R with the N(0, 1) measure); a
    sequence of pairs and/or ``"normal"`` strings (a product domain).

    >>> parse_domain(2)
    [(0.0, 1.0), (0.0, 1.0)]
    >>> parse_domain([(0, 2), "normal"])
    [(0.0, 2.0), 'normal']
    """
    if isinstance(domain, numbers.Integral) and not isinstance(domain, bool):
        if domain < 1 or domain > MAX_DIMENSION:
            raise ValueError(
                f"`domain` as an int is the dimension, 1 <= d <= {MAX_DIMENSION}. "
                f"Received: domain={domain!r}"
            )
        return [(0.0, 1.0)] * int(domain)
    if isinstance(domain, str):
        domain = [domain]
    try:
        items = list(domain)
    except TypeError:
        raise TypeError(
            "`domain` must be an int d ([0,1]^d), a pair (a, b), 'normal', or a sequence of "
            f"pairs / 'normal'. Received: domain={domain!r}"
        ) from None
    if len(items) == 2 and all(
        isinstance(v, numbers.Real) and not isinstance(v, bool) for v in items
    ):
        items = [tuple(items)]
    if not items:
        raise ValueError(f"`domain` must have at least one axis. Received: domain={domain!r}")
    if len(items) > MAX_DIMENSION:
        raise ValueError(
            f"`domain` may have at most {MAX_DIMENSION} axes. Received {len(items)} axes"
        )
    axes = []
    for item in items:
        if isinstance(item, str):
            if item != "normal":
                raise ValueError(
                    f"`domain` axes must be (a, b) pairs or 'normal'. Received axis {item!r} "
                    f"in domain={domain!r}"
                )
            axes.append("normal")
            continue
        try:
            a, b = (float(v) for v in item)
        except (TypeError, ValueError):
            raise ValueError(
                f"`domain` axes must be (a, b) pairs or 'normal'. Received axis {item!r} "
                f"in domain={domain!r}"
            ) from None
        if not (math.isfinite(a) and math.isfinite(b) and a < b):
            raise ValueError(
                f"`domain` intervals need finite a < b. Received axis {item!r} in domain={domain!r}"
            )
        axes.append((a, b))
    return axes


def _axis_rule(axis, order):
    """Gauss–Legendre (interval, Lebesgue) or Gauss–Hermite (normal) nodes, weights."""
    if axis == "normal":
        nodes, weights = np.polynomial.hermite_e.hermegauss(order)
        return nodes, weights / math.sqrt(2.0 * math.pi)  # ∫ dN(0,1) = 1
    a, b = axis
    nodes, weights = np.polynomial.legendre.leggauss(order)
    return a + (b - a) * (nodes + 1.0) / 2.0, weights * (b - a) / 2.0


def gauss_rule(domain, order):
    """Tensor Gauss rule on a product domain: nodes ``(order^d, d)``, weights.

    ``∫ g dμ ≈ Σ_i w_i g(u_i)``, exact for polynomials of degree ``2·order−1``
    in each variable: Gauss–Legendre on intervals (Lebesgue measure),
    Gauss–Hermite on ``"normal"`` axes (standard Gaussian measure).

    Args:
        domain: int, pair, ``"normal"`` or sequence of axes (see
            `parse_domain`).
        order: int. Nodes per axis.

    Returns:
        ``(nodes, weights)``: float64 arrays ``(order^d, d)`` and ``(order^d,)``.

    Example:

    >>> nodes, weights = gauss_rule((0, 1), 3)
    >>> float(round(weights.sum(), 12)), float(round(weights @ nodes[:, 0] ** 5, 12))
    (1.0, 0.166666666667)
    """
    axes = parse_domain(domain)
    order = check_int("order", order)
    if order ** len(axes) * len(axes) > MAX_VALUES:
        raise ValueError(
            f"`order`={order} in {len(axes)} dimensions needs {order}^{len(axes)} nodes, "
            f"more than fit in memory ({MAX_VALUES} values)"
        )
    rules = [_axis_rule(axis, order) for axis in axes]
    grids = np.meshgrid(*[r[0] for r in rules], indexing="ij")
    wgrids = np.meshgrid(*[r[1] for r in rules], indexing="ij")
    nodes = np.stack([g.ravel() for g in grids], axis=-1)
    weights = np.prod(np.stack([g.ravel() for g in wgrids], axis=-1), axis=-1)
    return nodes, weights


def _first_primes(count):
    primes, candidate = [], 2
    while len(primes) < count:
        if all(candidate % p for p in primes if p * p <= candidate):
            primes.append(candidate)
        candidate += 1
    return primes


def halton(num_points, dim, *, seed=None):
    """The Halton sequence in ``[0, 1)^dim``, optionally randomly shifted.

    Point i (from 1) has coordinate j equal to the radical inverse of i in
    the j-th prime base: ``Σ_l a_l p^{−l−1}`` for ``i = Σ_l a_l p^l``. With a
    ``seed``, a uniform shift ``Δ`` is added modulo 1 (Cranley–Patterson
    rotation): every point set is then uniformly distributed, so independent
    shifts give an unbiased error estimate.

    Args:
        num_points: int. Number of points.
        dim: int. Dimension.
        seed: int, `numpy.random.Generator` or None. Shift seed; None means
            no shift. Defaults to None.

    Returns:
        float64 array ``(num_points, dim)``.

    Example:

    >>> halton(4, 2).tolist()
    [[0.5, 0.3333333333333333], [0.25, 0.6666666666666666], [0.75, 0.1111111111111111], [0.125, 0.4444444444444444]]
    """
    num_points = check_int("num_points", num_points)
    dim = check_int("dim", dim, maximum=MAX_DIMENSION)
    if num_points * dim > MAX_VALUES:
        raise ValueError(
            f"`num_points`={num_points} points in {dim} dimensions are more than fit in "
            f"memory ({MAX_VALUES} values)"
        )
    index = np.arange(1, num_points + 1)
    points = np.empty((num_points, dim))
    for j, base in enumerate(_first_primes(dim)):
        value = np.zeros(num_points)
        scale = 1.0 / base
        rest = index.copy()
        while np.any(rest):
            value += (rest % base) * scale
            rest //= base
            scale /= base
        points[:, j] = value
    if seed is not None:
        rng = np.random.default_rng(seed)
        points = (points + rng.random(dim)) % 1.0
    return points


def qmc_rule(axes, num_points, rng):
    """A randomly shifted Halton rule on a box: nodes ``(num_points, d)``, equal weights.

    ``axes`` as `parse_domain` returns them (intervals only); ``rng`` seeds
    the shift.

    >>> nodes, weights = qmc_rule(parse_domain(2), 64, 0)
    >>> nodes.shape, float(weights.sum())
    ((64, 2), 1.0)
    """
    if any(axis == "normal" for axis in axes):
        raise ValueError(
            "`method='qmc'` supports interval axes only; use method='gauss' for 'normal' axes"
        )
    unit = halton(num_points, len(axes), seed=rng)
    low = np.array([a for a, _ in axes])
    width = np.array([b - a for a, b in axes])
    return low + unit * width, np.full(num_points, float(np.prod(width)) / num_points)
