"""POD spectra of attention kernels, power-law decay fits, complexity estimators.

Jiang & Li (NeurIPS 2024), Thm 4.2, measure how hard a target is for the
attention part of a Transformer by the proper orthogonal decomposition (POD)
of its kernel ρ:

    ρ(u, v) = Σ_k σ_k φ_k(u) ψ_k(v),   σ_1 ≥ σ_2 ≥ … ≥ 0,

the singular value decomposition of the integral operator
``(T g)(u) = ∫ ρ(u, v) g(v) dμ(v)`` on ``L²(μ)``. A rank-m_h attention head
can match ρ up to ``Σ_{k>m_h} σ_k²``; with ``σ_k ≤ C_β k^{−β}`` (card
notation, see the README glossary) this is ``O(C_β² m_h^{1−2β})``.

Numerically the operator is replaced by the quadrature-weighted matrix

    K_ij = ρ(u_i, v_j) · √(w_i w_j),

whose singular values converge to the σ_k as the rule (u_i, w_i) is refined:

- d = 1, 2 (and ``method="gauss"``): tensor Gauss–Legendre rules on boxes and
  Gauss–Hermite rules on ``"normal"`` axes (R with the standard Gaussian
  measure); the order is doubled until the leading singular values change by
  less than ``tol`` (relative);
- d ≥ 3 (``method="qmc"``): randomly shifted Halton points with equal
  weights; several independent shifts give a mean and a standard error,
  which is the stated error estimate.

Position-dependent kernels ρ(u, v, t, s) live on ``[0,1]^d × {0, …, τ−1}``
with Lebesgue × uniform counting measure (weight 1/τ per position): the
matrix has one row per (position, node) pair.

Contents:

- `kernel_spectrum`: singular values of a kernel callable on a domain;
- `target_spectrum`, `model_spectrum`: the same for a `tfapprox.targets`
  target and for the learned kernel ρ̂(u, v) = (W_Q f̂(u))ᵀ W_K f̂(v) of a
  `tfapprox.models.build_transformer` model (at most m_h non-zero values);
- `attention_spectrum`: the data-driven estimate used for ViT in the paper,
  singular values of the τ×τ pre-softmax matrices averaged over real inputs;
- `fit_decay`: β and C_β of ``σ_k ≈ C_β k^{−β}`` with bootstrap intervals
  (`tfapprox.fits.power_law`);
- `PODComplexity`: a scikit-learn style estimator wrapping all of the above.
  Its input ``X`` is *a kernel*, in one of three forms: a
  `tfapprox.targets.Target` (its ρ), a `build_transformer` model (its ρ̂)
  or a kernel callable ``rho(u, v)`` with ``domain=``; data enter only as
  ``fit(X, inputs=...)``, which switches to the data-driven spectrum.

The quadrature rules live in `tfapprox.quadrature`, the feed-forward rate
(which trains networks) in `tfapprox.ffrate`; ``pod.gauss_rule``,
``pod.halton``, ``pod.ff_rate`` and ``pod.FFRate`` remain as aliases.

This module imports only NumPy at module level; scikit-learn and Keras are
imported inside the functions that use them.
"""

import dataclasses
import math
import numbers
import warnings

import numpy as np

from tfapprox import fits
from tfapprox._checks import check_bool, check_choice, check_int, check_real
from tfapprox.quadrature import gauss_rule, halton, parse_domain, qmc_rule  # noqa: F401 (halton re-exported)

METHODS = ("auto", "gauss", "qmc")
MASKED = ("zero", "min", "raise")

# First Gauss order tried by the automatic rule, per axis, for d = 1, 2, 3+.
_FIRST_ORDER = {1: 8, 2: 4}
_FIRST_QMC_POINTS = 256


# --------------------------------------------------------------------------
# Kernel evaluation


def _finite_kernel(values, masked, what):
    """Check a kernel matrix: NaN/+inf refused; −inf (masked pairs) handled."""
    values = np.asarray(values, dtype=np.float64)
    if np.any(np.isnan(values)) or np.any(values == np.inf):
        raise ValueError(
            f"{what} returned NaN or +inf values; a kernel must be finite or -inf (masked)"
        )
    masked_pairs = values == -np.inf
    count = int(masked_pairs.sum())
    if count:
        if masked == "raise":
            raise ValueError(
                f"{what} has {count} masked (-inf) entries; pass masked='zero' or 'min' "
                "to replace them"
            )
        finite = values[~masked_pairs]
        fill = 0.0 if masked == "zero" or finite.size == 0 else float(finite.min())
        values = np.where(masked_pairs, fill, values)
    return values, count


def _evaluate_kernel(rho, nodes, positions, masked):
    """The unweighted matrix ``ρ(u_i, v_j[, t, s])``, rows ordered (t, i)."""
    size = len(nodes)
    u, v = nodes[:, None, :], nodes[None, :, :]
    if positions is None:
        blocks = [[_call_rho(rho, u, v, None, None, size)]]
    else:
        blocks = [
            [_call_rho(rho, u, v, t, s, size) for s in range(positions)] for t in range(positions)
        ]
    matrix = np.block(blocks) if positions is not None else blocks[0][0]
    return _finite_kernel(matrix, masked, "`rho`")


def _call_rho(rho, u, v, t, s, size):
    value = rho(u, v) if t is None else rho(u, v, t, s)
    value = np.asarray(value, dtype=np.float64)
    try:
        return np.broadcast_to(value, (size, size))
    except ValueError:
        raise ValueError(
            f"`rho(u, v)` must broadcast over tokens: u of shape {u.shape} and v of shape "
            f"{v.shape} should give shape ({size}, {size}). Received shape {value.shape}"
        ) from None


def _singular_values(matrix):
    """All singular values, decreasing; |eigenvalues| for symmetric matrices.

    A symmetric kernel on a shared grid gives a symmetric matrix, whose
    singular values are the absolute eigenvalues (`eigvalsh` is several
    times faster than an SVD).
    """
    scale = float(np.max(np.abs(matrix))) if matrix.size else 0.0
    if matrix.shape[0] == matrix.shape[1] and np.allclose(
        matrix, matrix.T, rtol=1e-13, atol=1e-15 * scale
    ):
        values = np.abs(np.linalg.eigvalsh((matrix + matrix.T) / 2.0))
        return np.sort(values)[::-1]
    return np.linalg.svd(matrix, compute_uv=False)


def _leading_count(values, check_rtol):
    """How many of the decreasing ``values`` are ≥ check_rtol·σ_1 (at least 1)."""
    if values.size == 0 or values[0] <= 0:
        return 1
    return max(1, int(np.count_nonzero(values >= check_rtol * values[0])))


def _relative_change(old, new, check_rtol):
    """Max relative change of the leading values (those ≥ check_rtol·σ_1)."""
    if new.size == 0 or new[0] <= 0:
        return 0.0, np.zeros(0)
    count = _leading_count(new, check_rtol)
    padded = np.zeros(count)
    padded[: min(count, old.size)] = old[:count]
    diff = np.abs(new[:count] - padded)
    return float(np.max(diff / new[:count])), diff


def _spectrum(
    build,
    axes,
    positions,
    *,
    method,
    order,
    num_points,
    tol,
    check_rtol,
    max_points,
    replicas,
    seed,
):
    """Refine a quadrature until the leading singular values converge.

    ``build(nodes)`` returns ``(matrix, masked_count)`` with the unweighted
    kernel, rows ordered (position, node). Returns ``(values, info)``.
    """
    dim = len(axes)
    tau = 1 if positions is None else positions
    if method == "auto":
        method = "gauss" if dim <= 2 else "qmc"
    info = {"method": method, "positions": positions, "history": []}

    def weighted(nodes, weights):
        matrix, masked_count = build(nodes)
        root = np.sqrt(np.tile(weights / tau, tau))  # rows (t, i)
        values = _singular_values(matrix * root[:, None] * root[None, :])
        return values, masked_count / max(matrix.size, 1)

    if method == "gauss":
        largest = int(math.floor((max_points / tau) ** (1.0 / dim) + 1e-9))
        if order is not None:
            if order**dim * tau > max_points:
                raise ValueError(
                    f"`order`={order} needs {order}^{dim} nodes at each of {tau} position(s), "
                    f"{order**dim * tau} points, more than `max_points`={max_points}: "
                    "lower the order or raise max_points"
                )
            orders = [order]
        else:
            if largest < 1:
                raise ValueError(
                    f"`max_points`={max_points} is smaller than the {tau} positions; raise it"
                )
            orders, current = [], min(_FIRST_ORDER.get(dim, 2), largest)
            while current < largest:
                orders.append(current)
                current *= 2
            orders.append(largest)
        previous, change, errors = None, math.nan, None
        for current in orders:
            nodes, weights = gauss_rule(axes, current)
            values, masked_fraction = weighted(nodes, weights)
            if previous is not None:
                change, errors = _relative_change(previous, values, check_rtol)
                info["history"].append({"order": current, "relative_change": change})
                if change <= tol:
                    break
            previous = values
        if order is None and change > tol and len(orders) > 1 and current - 1 > orders[-2]:
            # Capped after a jump (say 8 → 11): the change over the jump
            # measures the coarser rule's error, not this one's. For these
            # exponentially converging rules the change from order − 1
            # bounds the final error far more tightly, so use it.
            below, _ = weighted(*gauss_rule(axes, current - 1))
            change, errors = _relative_change(below, values, check_rtol)
            info["history"].append(
                {"order": current, "relative_change": change, "compared_with_order": current - 1}
            )
        converged = order is not None or change <= tol
        info.update(
            order=current,
            num_points=len(nodes),
            converged=bool(converged),
            error_estimate=change,
            masked_fraction=masked_fraction,
        )
        info["value_errors"] = errors
        if not converged:
            warnings.warn(
                f"kernel_spectrum: the Gauss rule did not converge to tol={tol} within "
                f"max_points={max_points} (last relative change {change:.3g} at order "
                f"{current}); raise max_points or set the order",
                RuntimeWarning,
                stacklevel=3,
            )
        return values, info

    # Quasi-Monte Carlo: `replicas` random shifts of a Halton set.
    rng = np.random.default_rng(seed)
    largest = max_points // tau
    if num_points is not None:
        if num_points * tau > max_points:
            raise ValueError(
                f"`num_points`={num_points} at each of {tau} position(s) is "
                f"{num_points * tau} points, more than `max_points`={max_points}: "
                "lower num_points or raise max_points"
            )
        sizes = [num_points]
    else:
        if largest < 4:
            raise ValueError(
                f"`max_points`={max_points} leaves fewer than 4 QMC points per position"
            )
        sizes, current = [], min(_FIRST_QMC_POINTS, largest)
        while current < largest:
            sizes.append(current)
            current *= 2
        sizes.append(largest)
    for current in sizes:
        runs = []
        for _ in range(replicas):
            nodes, weights = qmc_rule(axes, current, rng)
            values, masked_fraction = weighted(nodes, weights)
            runs.append(values)
        runs = np.stack(runs)
        values = runs.mean(axis=0)
        errors = runs.std(axis=0, ddof=1) / math.sqrt(replicas)
        count = _leading_count(values, check_rtol)
        scale = np.where(values[:count] > 0, values[:count], 1.0)
        change = float(np.max(errors[:count] / scale))
        info["history"].append({"num_points": current, "relative_error": change})
        if change <= tol:
            break
    converged = change <= tol
    info.update(
        order=None,
        num_points=current,
        replicas=replicas,
        converged=bool(converged),
        error_estimate=change,
        masked_fraction=masked_fraction,
        value_errors=errors,
    )
    return values, info


def kernel_spectrum(
    rho,
    domain,
    *,
    positions=None,
    method="auto",
    order=None,
    num_points=None,
    tol=1e-4,
    check_rtol=1e-3,
    max_points=2048,
    replicas=4,
    masked="zero",
    seed=0,
    return_info=False,
):
    """Singular values σ_k of the integral operator with kernel ρ.

    ``σ_k`` are the singular values of the weighted matrix
    ``K_ij = ρ(u_i, v_j) · √(w_i w_j)`` on a quadrature rule ``(u_i, w_i)``
    of the domain; they converge to the POD spectrum of ρ in ``L²(μ)``
    (paper-notes, "POD of ρ"). With ``positions=τ`` the kernel is
    ``ρ(u, v, t, s)`` on ``domain × {0, …, τ−1}`` with weight ``w_i / τ`` for
    node i at each position.

    Grid choice (``order``/``num_points`` None): Gauss rules start at 8
    nodes per axis (d = 1) or 4 (d = 2) and double until the singular values
    ``σ_k ≥ check_rtol · σ_1`` change by at most ``tol`` (relative), or the
    matrix would exceed ``max_points`` rows; at that cap the error estimate
    compares the last order with the order one below, and a `RuntimeWarning`
    says when it is still above ``tol``. QMC
    starts at 256 points and doubles until the standard error of those
    values over ``replicas`` random shifts is below ``tol`` (relative) or
    the cap is reached; the error estimate is reported either way.

    Args:
        rho: callable. ``rho(u, v)`` (or ``rho(u, v, t, s)`` with integer
            positions) vectorised over tokens ``u, v`` of shape ``(..., d)``
            with NumPy broadcasting, returning ``(...)``. ``-inf`` marks
            masked pairs (see ``masked``).
        domain: The token domain: an int d (``[0, 1]^d``, Lebesgue), a pair
            ``(a, b)``, ``"normal"`` (R with the N(0, 1) measure) or a
            sequence of such axes.
        positions: int or None. τ for a position-dependent kernel. Defaults
            to None.
        method: str. ``"auto"`` (Gauss for d ≤ 2, QMC above), ``"gauss"`` or
            ``"qmc"``. Defaults to ``"auto"``.
        order: int or None. Fixed Gauss nodes per axis. Defaults to None
            (automatic).
        num_points: int or None. Fixed QMC points. Defaults to None.
        tol: float. Relative convergence tolerance. Defaults to 1e-4.
        check_rtol: float. Values ``≥ check_rtol · σ_1`` are checked for
            convergence. Defaults to 1e-3.
        max_points: int. Largest matrix (rows = nodes × positions).
            Defaults to 2048.
        replicas: int. Random shifts for QMC (≥ 2). Defaults to 4.
        masked: str. What replaces ``-inf`` entries: ``"zero"``, ``"min"``
            (the smallest finite value) or ``"raise"``. The POD of a masked
            kernel is not unique (softmax ignores masked pairs); this fixes
            one representative. Defaults to ``"zero"``.
        seed: int. QMC shift seed. Defaults to 0.
        return_info: bool. Also return a dict with ``method``, ``order``,
            ``num_points``, ``positions``, ``converged``, ``error_estimate``
            (relative), ``value_errors``, ``masked_fraction``, ``history``.
            Defaults to False.

    Returns:
        float64 array of all singular values, decreasing (and the info dict
        with ``return_info=True``).

    Example (``min(u, v)`` on [0, 1]: ``σ_k = 1 / ((k − 1/2)² π²)``):

    >>> values = kernel_spectrum(lambda u, v: np.minimum(u, v)[..., 0], 1, order=512)
    >>> bool(abs(values[0] * (0.5 * np.pi) ** 2 - 1) < 1e-3)
    True
    """
    if not callable(rho):
        raise TypeError(f"`rho` must be callable. Received: rho of type {type(rho).__name__}")
    axes = parse_domain(domain)
    options = _check_spectrum_options(
        positions=positions,
        method=method,
        order=order,
        num_points=num_points,
        tol=tol,
        check_rtol=check_rtol,
        max_points=max_points,
        replicas=replicas,
        masked=masked,
    )

    def build(nodes):
        return _evaluate_kernel(rho, nodes, options["positions"], masked)

    values, info = _spectrum(build, axes, options["positions"], seed=seed, **_engine(options))
    return (values, info) if return_info else values


def _check_spectrum_options(
    *, positions, method, order, num_points, tol, check_rtol, max_points, replicas, masked
):
    return dict(
        positions=check_int("positions", positions, allow_none=True),
        method=check_choice("method", method, METHODS),
        order=check_int("order", order, allow_none=True),
        num_points=check_int("num_points", num_points, minimum=2, allow_none=True),
        tol=check_real("tol", tol, low=0, low_open=True),
        check_rtol=check_real("check_rtol", check_rtol, low=0, high=1, low_open=True),
        max_points=check_int("max_points", max_points),
        replicas=check_int("replicas", replicas, minimum=2),
        masked=check_choice("masked", masked, MASKED),
    )


def _engine(options):
    return {
        k: options[k]
        for k in ("method", "order", "num_points", "tol", "check_rtol", "max_points", "replicas")
    }


def _is_target(obj):
    return all(hasattr(obj, name) for name in ("rho", "sequence_length", "input_dim"))


def _is_model(obj):
    return hasattr(obj, "get_layer") and hasattr(obj, "input_shape")


def target_spectrum(target, *, domain=None, return_info=False, **options):
    """`kernel_spectrum` of a `tfapprox.targets` target's own ρ.

    Position-independent ρ: on ``[0, 1]^d``; position-dependent ρ: on
    ``[0, 1]^d × {0, …, τ−1}`` (weight 1/τ per position).

    Args:
        target: A `tfapprox.targets.Target` (anything with ``rho``,
            ``input_dim``, ``sequence_length`` and ``position_dependent``).
        domain: The token domain. Defaults to ``[0, 1]^d``.
        return_info: bool. See `kernel_spectrum`. Defaults to False.
        **options: Passed to `kernel_spectrum` (``order``, ``tol``, ...).
    """
    if not _is_target(target):
        raise TypeError(
            "`target` must be a tfapprox Target (with rho, input_dim, sequence_length). "
            f"Received: {type(target).__name__}"
        )
    positions = target.sequence_length if getattr(target, "position_dependent", False) else None
    return kernel_spectrum(
        target.rho,  # called as rho(u, v) when positions is None
        target.input_dim if domain is None else domain,
        positions=positions,
        return_info=return_info,
        **options,
    )


def _model_parts(model):
    from tfapprox import models

    parts = models._parts(model)
    attention, encoding = parts["attention"], parts["position_encoding"]
    tau, dim = int(model.input_shape[1]), int(model.input_shape[2])
    return tau, dim, getattr(encoding, "mode", "learned") != "none", attention.logit_scale


def model_spectrum(
    model,
    *,
    domain=None,
    method="auto",
    order=None,
    num_points=None,
    tol=1e-4,
    check_rtol=1e-3,
    max_points=2048,
    replicas=4,
    seed=0,
    batch_size=1024,
    return_info=False,
):
    """POD spectrum of a model's learned kernel ρ̂ on a quadrature grid.

    ``ρ̂(u, v, t, s) = (W_Q f̂(PE(u, t)))ᵀ (W_K f̂(PE(v, s)))`` (times 1/√m_h
    if the attention uses the scale): a sum of m_h products, so at most m_h
    singular values are non-zero. Evaluated on the same grid as
    `kernel_spectrum` (tokens on ``[0, 1]^d``, τ positions with weight 1/τ;
    one position if the model has no position encoding). The weighted
    matrix ``diag(√w) Q Kᵀ diag(√w)`` is formed in float64 from the
    float32 features, so its rank is at most m_h up to float64 rounding.
    Causal masks are ignored: this is the kernel before masking.

    Args:
        model: A `tfapprox.models.build_transformer` model.
        domain: Token domain. Defaults to ``[0, 1]^d``.
        method, order, num_points, tol, check_rtol, max_points, replicas,
            seed: Grid options, as in `kernel_spectrum`.
        batch_size: int. Grid sequences per forward pass. Defaults to 1024.
        return_info: bool. See `kernel_spectrum`. Defaults to False.

    Returns:
        float64 array of singular values, decreasing (and the info dict).
    """
    from tfapprox import models

    tau, dim, positional, scale = _model_parts(model)
    axes = parse_domain(dim if domain is None else domain)
    if len(axes) != dim:
        raise ValueError(f"`domain` has {len(axes)} axes but the model's tokens have d={dim}")
    positions = tau if positional else None
    batch_size = check_int("batch_size", batch_size)
    options = _check_spectrum_options(
        positions=positions,
        method=method,
        order=order,
        num_points=num_points,
        tol=tol,
        check_rtol=check_rtol,
        max_points=max_points,
        replicas=replicas,
        masked="zero",
    )

    def build(nodes):
        x = np.broadcast_to(nodes[:, None, :], (len(nodes), tau, dim)).astype("float32")
        queries, keys = models.query_key_features(model, x, batch_size=batch_size)  # (G, tau, m_h)
        if positions is None:
            queries, keys = queries[:, 0], keys[:, 0]  # (G, m_h)
        else:
            queries = np.swapaxes(queries, 0, 1).reshape(tau * len(nodes), -1)  # (tau G, m_h)
            keys = np.swapaxes(keys, 0, 1).reshape(tau * len(nodes), -1)  # rows (t, i)
        matrix = scale * (queries.astype(np.float64) @ keys.astype(np.float64).T)
        return matrix, 0

    values, info = _spectrum(build, axes, positions, seed=seed, **_engine(options))
    return (values, info) if return_info else values


def attention_spectrum(source, x, *, batch_size=256, normalize=True, masked="zero"):
    """Data-driven spectrum: τ×τ pre-softmax matrices averaged over inputs.

    The estimate the paper uses for ViT (Fig. 1): for each input sequence
    ``x_i`` the matrix ``A_i[t, s] = ρ(x_i(t), x_i(s), t, s)`` (or ρ̂ for a
    model), its singular values ``σ_k(A_i)``, and their mean over i:
    ``σ̄_k = (1/N) Σ_i σ_k(A_i) / τ`` with ``normalize=True``. The 1/τ is the
    counting-measure weight, so for a kernel of positions only this equals
    `kernel_spectrum`; β does not depend on it.

    Args:
        source: A `build_transformer` model, a Target, or a kernel callable
            ``rho(u, v, t, s)``.
        x: array ``(N, tau, d)``. Real inputs.
        batch_size: int. For models. Defaults to 256.
        normalize: bool. Divide by τ. Defaults to True.
        masked: str. As in `kernel_spectrum`. Defaults to ``"zero"``.

    Returns:
        float64 array ``(tau,)``, decreasing.
    """
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[0] == 0 or not np.issubdtype(x.dtype, np.number):
        raise ValueError(f"`x` must be a non-empty array (N, tau, d). Received shape {x.shape}")
    masked = check_choice("masked", masked, MASKED)
    n, tau, dim = x.shape
    if _is_model(source):
        from tfapprox import models

        model_tau, model_dim, _, scale = _model_parts(source)
        if (tau, dim) != (model_tau, model_dim):
            raise ValueError(
                f"`x` has tau={tau}, d={dim} but the model expects tau={model_tau}, d={model_dim}"
            )
        queries, keys = models.query_key_features(source, x, batch_size=batch_size)
        logits = scale * np.einsum(
            "ntk,nsk->nts", queries.astype(np.float64), keys.astype(np.float64)
        )  # (N, tau, tau)
    else:
        if _is_target(source):
            if (tau, dim) != (source.sequence_length, source.input_dim):
                raise ValueError(
                    f"`x` has tau={tau}, d={dim} but the target has "
                    f"tau={source.sequence_length}, d={source.input_dim}"
                )
            positional = bool(getattr(source, "position_dependent", False))
            rho = source.rho
        elif callable(source):
            positional, rho = True, source
        else:
            raise TypeError(
                "`source` must be a tfapprox model, a Target or a kernel callable. "
                f"Received: {type(source).__name__}"
            )
        x = x.astype(np.float64)
        if _is_target(source) and hasattr(source, "logits"):  # all pairs at once
            logits = source.logits(x)
        elif positional:
            logits = np.empty((n, tau, tau))
            for t in range(tau):
                for s in range(tau):
                    logits[:, t, s] = np.broadcast_to(rho(x[:, t], x[:, s], t, s), (n,))
        else:
            logits = np.broadcast_to(rho(x[:, :, None, :], x[:, None, :, :]), (n, tau, tau))
        logits, _ = _finite_kernel(logits, masked, "`rho`")
    values = np.linalg.svd(logits, compute_uv=False).mean(axis=0)  # (tau,)
    return values / tau if normalize else values


# --------------------------------------------------------------------------
# Decay fits


@dataclasses.dataclass(frozen=True)
class DecayFit:
    """β and C_β of ``σ_k ≈ C_β k^{−β}`` (see `fit_decay`).

    Attributes:
        beta, c_beta: float. The fit.
        beta_ci, c_beta_ci: tuple. Bootstrap percentile intervals.
        fit_range: tuple ``(start, stop)``. 1-based inclusive k range used.
        num_used: int. ``stop − start + 1``.
        noise_floor: float. ``noise_rtol · σ_1``; values at or below it are
            numerical noise.
        c_envelope: float. ``max_k σ_k k^β`` over the range, the smallest
            C_β with ``σ_k ≤ C_β k^{−β}`` there (the bound's constant).
        residual_std: float. Standard deviation of the log residuals.
        confidence: float. Interval level.
    """

    beta: float
    c_beta: float
    beta_ci: tuple
    c_beta_ci: tuple
    fit_range: tuple
    num_used: int
    noise_floor: float
    c_envelope: float
    residual_std: float
    confidence: float

    def to_dict(self):
        return dataclasses.asdict(self)


def usable_count(singular_values, noise_rtol=1e-8):
    """Number of leading values above the noise floor ``noise_rtol · σ_1``.

    The count stops at the first value at or below the floor.

    >>> usable_count([1.0, 0.5, 0.25, 1e-17, 1e-18])
    3
    """
    values = _check_spectrum(singular_values)
    if values.size == 0 or values[0] <= 0:
        return 0
    below = np.flatnonzero(values <= noise_rtol * values[0])
    return int(below[0]) if below.size else int(values.size)


def numerical_rank(singular_values, rtol=1e-8):
    """Number of singular values above ``rtol · σ_1`` (0 for a zero kernel).

    >>> numerical_rank([2.0, 1.0, 1e-12])
    2
    """
    values = _check_spectrum(singular_values)
    if values.size == 0 or values[0] <= 0:
        return 0
    return int(np.count_nonzero(values > rtol * values[0]))


def _check_spectrum(singular_values):
    values = np.asarray(singular_values, dtype=np.float64)
    if values.ndim != 1:
        raise ValueError(f"`singular_values` must be 1-D. Received shape {values.shape}")
    if not np.all(np.isfinite(values)) or np.any(values < 0):
        raise ValueError("`singular_values` must be finite and non-negative")
    return np.sort(values)[::-1]


def fit_decay(
    singular_values,
    *,
    fit_range=None,
    noise_rtol=1e-8,
    n_bootstrap=1000,
    confidence=0.95,
    seed=0,
):
    """Fit ``σ_k ≈ C_β k^{−β}`` by least squares on ``log σ_k = log C_β − β log k``.

    The values are sorted decreasingly. Usable values are the leading ones
    above the noise floor ``noise_rtol · σ_1`` (beyond it lie rounding and
    quadrature noise, and the exact zeros of finite-rank kernels). The
    automatic range is ``k = 1 + ⌊n/10⌋, …, n`` for n ≥ 10 usable values
    (the tail, where the asymptotic law holds) and ``1, …, n`` otherwise.
    The intervals come from a pairs bootstrap: the points ``(log k,
    log σ_k)`` are resampled with replacement ``n_bootstrap`` times and the
    percentile interval of β and C_β is reported.

    Args:
        singular_values: 1-D array-like, non-negative.
        fit_range: tuple ``(start, stop)`` or None. 1-based inclusive range
            of k (``stop`` None: the last usable value). Defaults to None
            (automatic).
        noise_rtol: float. Relative noise floor. Defaults to 1e-8.
        n_bootstrap: int. Bootstrap resamples. Defaults to 1000.
        confidence: float. Interval level in (0, 1). Defaults to 0.95.
        seed: int or `numpy.random.Generator`. Bootstrap seed. Defaults to 0.

    Returns:
        `DecayFit`.

    Raises:
        ValueError: fewer than 3 usable values in the range (a finite-rank
            spectrum with r ≤ 2, or a range too short).

    Example:

    >>> fit = fit_decay(np.arange(1, 41) ** -0.75)
    >>> round(fit.beta, 6), round(fit.c_beta, 6), fit.fit_range
    (0.75, 1.0, (5, 40))
    """
    values = _check_spectrum(singular_values)
    noise_rtol = check_real("noise_rtol", noise_rtol, low=0, high=1)
    n_bootstrap = check_int("n_bootstrap", n_bootstrap)
    confidence = check_real("confidence", confidence, low=0, high=1, low_open=True, high_open=True)
    usable = usable_count(values, noise_rtol)
    floor = noise_rtol * values[0] if values.size else 0.0
    if fit_range is None:
        start, stop = (1 + usable // 10 if usable >= 10 else 1), usable
    else:
        try:
            start, stop = fit_range
        except (TypeError, ValueError):
            raise TypeError(
                f"`fit_range` must be a pair (start, stop) or None. Received: fit_range={fit_range!r}"
            ) from None
        start = check_int("fit_range[0]", start)
        stop = usable if stop is None else check_int("fit_range[1]", stop)
        if stop < start:
            raise ValueError(f"`fit_range` needs start <= stop. Received: fit_range={fit_range!r}")
        if stop > usable:
            raise ValueError(
                f"`fit_range`={fit_range!r} reaches past the {usable} values above the noise floor "
                f"{floor:.3g} (noise_rtol={noise_rtol:g})"
            )
    count = max(0, stop - start + 1)
    if count < 3:
        head = ", ".join(f"{v:.3g}" for v in values[: min(values.size, 6)])
        raise ValueError(
            f"cannot fit σ_k ≈ C_β k^-β: only {count} usable singular value(s) "
            f"(numerical rank {usable} above the noise floor {floor:.3g}); at least 3 are needed. "
            f"Leading values: [{head}]."
            + (" A finite-rank kernel has no power-law tail." if 0 < usable < 3 else "")
        )
    k = np.arange(start, stop + 1, dtype=np.float64)
    fit = fits.power_law(
        k,
        values[start - 1 : stop],
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        seed=np.random.default_rng(seed),
        fit_range=(int(start), int(stop)),
        noise_floor=floor,
    )
    return DecayFit(
        beta=fit.rate,
        c_beta=fit.constant,
        beta_ci=fit.rate_ci,
        c_beta_ci=fit.constant_ci,
        fit_range=fit.fit_range,
        num_used=fit.num_used,
        noise_floor=fit.noise_floor,
        c_envelope=fit.envelope,
        residual_std=fit.residual_std,
        confidence=fit.confidence,
    )


# --------------------------------------------------------------------------
# The estimator


class PODComplexity:
    """Estimate the POD complexity (β, C_β, rank) of an attention kernel.

    ``fit(X)`` computes the POD spectrum ``σ_k`` of a kernel and fits
    ``σ_k ≈ C_β k^{−β}`` (`fit_decay`). ``X`` may be

    - a `tfapprox.targets.Target`: its own ρ on ``[0, 1]^d`` (× τ positions
      if position-dependent), `target_spectrum`;
    - a kernel callable ``rho(u, v)`` (``rho(u, v, t, s)`` with
      ``positions``) on ``domain``, `kernel_spectrum`;
    - a `tfapprox.models.build_transformer` model: its learned ρ̂ on the same
      grid, `model_spectrum` (at most m_h non-zero values);
    - with ``inputs=`` (an array ``(N, τ, d)``), a model, target or kernel:
      the data-driven estimate `attention_spectrum`.

    Args:
        domain: Token domain for kernel callables (required then), or to
            override ``[0, 1]^d``. Defaults to None.
        positions: int or None. τ for position-dependent kernel callables.
            Defaults to None.
        method, order, num_points, tol, max_points, replicas, masked: Grid
            options of `kernel_spectrum`. Defaults ``"auto"``, None, None,
            1e-4, 2048, 4, ``"zero"``.
        rank_rtol: float. ``rank_`` counts values above ``rank_rtol · σ_1``.
            Defaults to 1e-8.
        noise_rtol: float. Noise floor of the fit. Defaults to 1e-8.
        fit_range: tuple or None. See `fit_decay`. Defaults to None.
        n_bootstrap: int. Defaults to 1000.
        confidence: float. Defaults to 0.95.
        allow_short: bool. If the spectrum has fewer than 3 usable values
            (finite rank ≤ 2), set the fit attributes to NaN instead of
            raising `ValueError`. Defaults to False.
        batch_size: int. Forward-pass batch for models. Defaults to 1024.
        random_state: int or None. Seeds QMC shifts and the bootstrap.
            Defaults to 0.

    Attributes:
        singular_values_: float64 array, decreasing.
        beta_, c_beta_: float. The fitted decay.
        beta_ci_, c_beta_ci_: tuple. Bootstrap intervals.
        rank_: int. Numerical rank.
        decay_: `DecayFit` or None.
        spectrum_info_: dict. Grid details (see `kernel_spectrum`).
        source_: str. ``"target"``, ``"kernel"``, ``"model"`` or ``"data"``.

    Example:

    >>> rho = lambda u, v: (np.sin(np.pi * u) * np.cos(v) + u * v)[..., 0]
    >>> est = PODComplexity(domain=1, allow_short=True).fit(rho)
    >>> est.rank_, est.beta_  # rank 2: no power-law tail to fit
    (2, nan)
    >>> sines = lambda u, v: sum(
    ...     k**-1.0 * 2 * np.sin(2 * k * np.pi * u) * np.sin(2 * k * np.pi * v) for k in range(1, 9)
    ... )[..., 0]
    >>> est = PODComplexity(domain=1).fit(sines)
    >>> est.rank_, round(est.beta_, 6), round(est.c_beta_, 6)
    (8, 1.0, 1.0)
    """

    _PARAMS = (
        "domain",
        "positions",
        "method",
        "order",
        "num_points",
        "tol",
        "max_points",
        "replicas",
        "masked",
        "rank_rtol",
        "noise_rtol",
        "fit_range",
        "n_bootstrap",
        "confidence",
        "allow_short",
        "batch_size",
        "random_state",
    )

    def __init__(
        self,
        *,
        domain=None,
        positions=None,
        method="auto",
        order=None,
        num_points=None,
        tol=1e-4,
        max_points=2048,
        replicas=4,
        masked="zero",
        rank_rtol=1e-8,
        noise_rtol=1e-8,
        fit_range=None,
        n_bootstrap=1000,
        confidence=0.95,
        allow_short=False,
        batch_size=1024,
        random_state=0,
    ):
        self.domain = domain
        self.positions = positions
        self.method = method
        self.order = order
        self.num_points = num_points
        self.tol = tol
        self.max_points = max_points
        self.replicas = replicas
        self.masked = masked
        self.rank_rtol = rank_rtol
        self.noise_rtol = noise_rtol
        self.fit_range = fit_range
        self.n_bootstrap = n_bootstrap
        self.confidence = confidence
        self.allow_short = allow_short
        self.batch_size = batch_size
        self.random_state = random_state

    def get_params(self, deep=True):
        """The constructor arguments (scikit-learn protocol)."""
        return {name: getattr(self, name) for name in self._PARAMS}

    def set_params(self, **params):
        """Set constructor arguments (scikit-learn protocol); returns self."""
        for name, value in params.items():
            if name not in self._PARAMS:
                raise ValueError(
                    f"Invalid parameter {name!r} for PODComplexity; valid: {', '.join(self._PARAMS)}"
                )
            setattr(self, name, value)
        return self

    def __repr__(self):
        defaults = PODComplexity()
        changed = [
            f"{name}={getattr(self, name)!r}"
            for name in self._PARAMS
            if getattr(self, name) != getattr(defaults, name)
        ]
        return f"PODComplexity({', '.join(changed)})"

    def __sklearn_is_fitted__(self):
        return hasattr(self, "singular_values_")

    def __sklearn_tags__(self):
        # Called by scikit-learn >= 1.6 (check_is_fitted); an unsupervised estimator.
        from sklearn.utils import Tags, TargetTags

        return Tags(estimator_type=None, target_tags=TargetTags(required=False))

    def fit(self, X, y=None, *, inputs=None):
        """Compute the spectrum of ``X`` and fit its decay; returns self.

        Args:
            X: A Target, a `build_transformer` model, or a kernel callable.
            y: Ignored (scikit-learn convention).
            inputs: array ``(N, τ, d)`` or None. If given, use the
                data-driven estimate `attention_spectrum` on these inputs.

        Raises:
            TypeError: ``X`` is none of the above.
            ValueError: bad parameters, a kernel callable without
                ``domain``, or (unless ``allow_short``) fewer than 3 usable
                singular values.
        """
        from sklearn.utils import check_random_state
        from sklearn.utils.validation import check_scalar

        # check_real, not sklearn's check_scalar: NaN passes every comparison.
        check_real("rank_rtol", self.rank_rtol, low=0.0, high=1.0)
        check_real("noise_rtol", self.noise_rtol, low=0.0, high=1.0)
        check_scalar(self.n_bootstrap, "n_bootstrap", numbers.Integral, min_val=1)
        check_real("confidence", self.confidence, low=0.0, high=1.0, low_open=True, high_open=True)
        check_scalar(self.batch_size, "batch_size", numbers.Integral, min_val=1)
        check_bool("allow_short", self.allow_short)
        rng = check_random_state(self.random_state)
        seed = int(rng.integers(2**31)) if hasattr(rng, "integers") else int(rng.randint(2**31))
        grid = dict(
            method=self.method,
            order=self.order,
            num_points=self.num_points,
            tol=self.tol,
            max_points=self.max_points,
            replicas=self.replicas,
            seed=seed,
        )

        if not (_is_model(X) or _is_target(X) or callable(X)):
            raise TypeError(
                "`X` must be a tfapprox Target, a build_transformer model or a kernel callable. "
                f"Received: {type(X).__name__}"
            )
        if inputs is not None:
            from sklearn.utils.validation import check_array

            array = np.asarray(inputs)
            if array.ndim != 3:
                raise ValueError(
                    f"`inputs` must have shape (N, tau, d). Received shape {array.shape}"
                )
            check_array(array.reshape(len(array), -1), ensure_min_samples=1)
            values = attention_spectrum(X, array, batch_size=self.batch_size, masked=self.masked)
            info, source = (
                {
                    "method": "data",
                    "num_samples": int(len(array)),
                    "positions": int(array.shape[1]),
                    "converged": True,
                },
                "data",
            )
        elif _is_model(X):
            values, info = model_spectrum(
                X, domain=self.domain, batch_size=self.batch_size, return_info=True, **grid
            )
            source = "model"
        elif _is_target(X):
            values, info = target_spectrum(
                X, domain=self.domain, masked=self.masked, return_info=True, **grid
            )
            source = "target"
        else:  # a kernel callable
            if self.domain is None:
                raise ValueError(
                    "`domain` is required when fitting a kernel callable, e.g. "
                    "PODComplexity(domain=1) for [0, 1]. Received: domain=None"
                )
            values, info = kernel_spectrum(
                X,
                self.domain,
                positions=self.positions,
                masked=self.masked,
                return_info=True,
                **grid,
            )
            source = "kernel"

        rank = numerical_rank(values, self.rank_rtol)
        try:
            decay = fit_decay(
                values,
                fit_range=self.fit_range,
                noise_rtol=self.noise_rtol,
                n_bootstrap=self.n_bootstrap,
                confidence=self.confidence,
                seed=rng,
            )
        except ValueError:
            if not self.allow_short or usable_count(values, self.noise_rtol) >= 3:
                raise
            decay = None
        self.singular_values_ = values
        self.rank_ = rank
        self.decay_ = decay
        self.spectrum_info_ = info
        self.source_ = source
        nan_pair = (math.nan, math.nan)
        self.beta_ = decay.beta if decay else math.nan
        self.c_beta_ = decay.c_beta if decay else math.nan
        self.beta_ci_ = decay.beta_ci if decay else nan_pair
        self.c_beta_ci_ = decay.c_beta_ci if decay else nan_pair
        return self

    def summary(self, max_values=500):
        """A JSON-ready dict of the fitted estimate.

        Keys: ``beta``, ``c_beta``, ``beta_ci``, ``c_beta_ci``, ``c_envelope``,
        ``rank``, ``singular_values`` (those above the noise floor, at most
        ``max_values``), ``fit_range``, ``noise_floor``, ``source``,
        ``method``, ``order``, ``num_points``, ``positions``, ``converged``,
        ``error_estimate``.
        """
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        decay = self.decay_
        usable = max(usable_count(self.singular_values_, self.noise_rtol), 1)
        info = self.spectrum_info_
        return {
            "beta": None if decay is None else decay.beta,
            "c_beta": None if decay is None else decay.c_beta,
            "beta_ci": None if decay is None else list(decay.beta_ci),
            "c_beta_ci": None if decay is None else list(decay.c_beta_ci),
            "c_envelope": None if decay is None else decay.c_envelope,
            "fit_range": None if decay is None else list(decay.fit_range),
            "confidence": self.confidence,
            "noise_floor": float(self.noise_rtol * self.singular_values_[0])
            if self.singular_values_.size
            else 0.0,
            "rank": int(self.rank_),
            "rank_rtol": self.rank_rtol,
            "singular_values": [float(v) for v in self.singular_values_[: min(usable, max_values)]],
            "source": self.source_,
            "method": info.get("method"),
            "order": info.get("order"),
            "num_points": info.get("num_points"),
            "positions": info.get("positions"),
            "converged": info.get("converged"),
            "error_estimate": _plain(info.get("error_estimate")),
        }


def _plain(value):
    if value is None:
        return None
    value = float(value)
    return None if math.isnan(value) else value


def __getattr__(name):
    # Names that moved: the feed-forward rate trains networks, so it has its
    # own module (`tfapprox.ffrate`); the power-law fit is `tfapprox.fits`.
    if name in ("ff_rate", "FFRate"):
        from tfapprox import ffrate

        return getattr(ffrate, name)
    if name == "PowerLawFit":
        return fits.PowerLawFit
    raise AttributeError(f"module 'tfapprox.pod' has no attribute {name!r}")
