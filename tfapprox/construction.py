"""Jiang & Li's construction, built inside the model: ρ̂ is ρ's POD truncation.

The first term of the bound comes from a construction. With the POD
``ρ = Σ_k σ_k φ_k ⊗ ψ_k`` (σ decreasing), a model of query/key width m_h
takes, for k ≤ m_h,

    W_Q f̂(u) ≈ (√σ_k φ_k(u))_k,   W_K f̂(v) ≈ (√σ_k ψ_k(v))_k,
    W_V f̂(v) ≈ f(v),              F̂ ≈ F,

so that ``ρ̂ = (W_Q f̂)ᵀ W_K f̂ ≈ Σ_{k≤m_h} σ_k φ_k ⊗ ψ_k`` is ρ cut to rank
m_h and Ĥ is the truncated target `Target.truncated` up to the error of the
feed-forward networks (the bound's second term). `construction_model`
builds that model, weight by weight, for a target whose POD is known:

- f̂: a continuous piecewise-linear function with kinks equally spaced on
  the token range, the least-squares fit of ``[√σ φ, √σ ψ, f]`` on a fine
  grid (`set_piecewise_linear`): its first hidden layer holds m_FF − 1
  kinks ``relu(u − c_j)`` and a unit carrying u; each further layer carries
  u and the partial sums so far and spends its other units on new kinks, so
  depth 3 at m_FF = 128 has 363 kinks where one layer has 127.
- W_Q, W_K, W_V: 0/1 matrices that select f̂'s outputs.
- F̂: the same over the range of f (the attention output is a convex
  combination of f's values), least squares to F.

Every weight is a member of the hypothesis space of the budget, so the
model's error is an upper bound on the best error of that budget, reached
without training. On paper A's Fig. 5 targets at their size (n = m_v = 32,
m_FF = 128, depth 3) it reproduces the truncated target to 1e-5 (m_h = 1)
to 1e-3 (m_h = 16, where f̂ must carry sin(32πu)) in paper A's norm, and
at m_h ≥ r its error is 3e-5 to 2.4e-4: about 0.1 % or less of the best
trained error at m_h = 1 (``analysis/RECIPE.md``). Trained models at
m_h < r do much better than the construction (the softmax sees ρ only
through the weighted mean it produces, which the construction does not
exploit), so the construction is one start among the random ones, not a
replacement.

Below the rank the truncation is not the best rank-m_h kernel: the
softmax sees ρ only through the weights it produces, so another rank-m_h
kernel can give outputs much closer to the target's. `fit_kernel` finds
one: ``ρ̂ = Σ_{k≤m_h} a_k ⊗ b_k`` with a_k, b_k in a Fourier basis of the
token range, started at the truncation and fitted to the target's outputs
by L-BFGS (values f and readout F kept), and `construction_model(...,
kernel=...)` builds it in the model the same way (f̂ carries a_k, b_k and
f). On Fig. 5's targets, at every 2 ≤ m_h below the rank, it is 2–55×
below the truncation and 1.1–8× below 3,840 Adam steps
(``analysis/RECIPE.md``).

It applies to separable targets (`Target.pod_basis`: the ``fig5`` and
``bilinear`` families) with one-dimensional tokens and values (d = 1, f
scalar) and no position dependence, in paper A's one-layer, one-head model.

This module imports only NumPy and the standard library at module level
(Keras when called).
"""

import dataclasses

import numpy as np

from tfapprox._checks import check_int, check_seed

__all__ = [
    "GRID_POINTS",
    "FittedKernel",
    "construction_model",
    "construction_rank",
    "construction_width",
    "fit_kernel",
    "set_piecewise_linear",
]

# Points of the least-squares grid over the token range: over 20 per kink at
# m_FF = 128 and depth 3, enough that the fit is that of the functions, not
# the grid's.
GRID_POINTS = 8193

_ENCODINGS = ("none", "learned")


def construction_rank(target, m_h):
    """The number of POD terms the construction keeps at ``m_h``: min(m_h, rank).

    >>> from tfapprox.targets import load_preset
    >>> construction_rank(load_preset("fig5b-r2"), 6), construction_rank(load_preset("fig5b-r6"), 4)
    (2, 4)
    """
    m_h = check_int("m_h", m_h, minimum=1)
    return min(m_h, int(np.count_nonzero(_check_target(target).singular_values)))


def construction_width(target, m_h):
    """The outputs of f̂ the construction uses at ``m_h``: the kept φ_k, the ψ_k where they differ, f.

    A budget needs ``n`` at least this (`construction_model` checks it).

    >>> from tfapprox.targets import load_preset
    >>> construction_width(load_preset("fig5b-r6"), 4)  # φ_1…φ_4 (ψ = φ) and f
    5
    """
    k = construction_rank(target, m_h)
    return (2 * k if target._pairing is not None else k) + 1


def _check_target(target):
    from tfapprox.targets import Target

    if not isinstance(target, Target):
        raise TypeError(f"`target` must be a tfapprox Target. Received: {type(target).__name__}")
    if not hasattr(target, "pod_basis"):
        raise ValueError(
            f"`target` {target.name!r} has no known POD basis: the construction needs a "
            "separable target (the fig5 and bilinear families)"
        )
    problems = []
    if target.input_dim != 1:
        problems.append(f"tokens of dimension d = {target.input_dim}")
    if target.embedding_dim != 1:
        problems.append(f"values f of dimension {target.embedding_dim}")
    if target.position_dependent:
        problems.append("a ρ that depends on positions")
    if problems:
        raise ValueError(
            f"`target` {target.name!r} has {' and '.join(problems)}: the construction "
            "builds f̂ and F̂ from kinks on a line, for d = 1, scalar f and a ρ of values only"
        )
    return target


def _check_budget(budget):
    from tfapprox.budget import Budget

    if not isinstance(budget, Budget):
        raise TypeError(f"`budget` must be a tfapprox Budget. Received: {type(budget).__name__}")
    if budget.num_layers != 1 or budget.num_heads != 1:
        raise ValueError(
            "`budget` must be paper A's one-layer, one-head model. Received: "
            f"num_layers={budget.num_layers}, num_heads={budget.num_heads}"
        )
    return budget


def _check_width(budget, needed, carried="the kept φ_k, the ψ_k where they differ, and f"):
    if needed > budget.n:
        raise ValueError(
            f"`budget` has n = {budget.n}, but the construction needs {needed} outputs of f̂ "
            f"({carried}). Received: n={budget.n}, m_h={budget.m_h}"
        )


def _layer_kinks(width, depth, carried):
    """Kinks per hidden layer: all units of the first, the units not carrying after."""
    later = width - 1 - carried
    if depth == 1 or later < 1:
        return [width]  # one layer of kinks; the others pass them on
    return [width - 1] + [later] * (depth - 1)


def set_piecewise_linear(network, points, values, input_rows):
    """Make ``network`` the least-squares piecewise-linear fit of ``values`` on its input 0.

    With width m and depth L, the first hidden layer has a unit carrying
    ``x − low + margin`` (≥ 0, so every ReLU passes it) and m − 1 kinks
    ``relu(x − c)``; each further layer carries that unit and, for each of
    the p fitted functions, its partial sum so far (plus a constant that
    keeps it non-negative), and spends its other m − 1 − p units on new kinks
    of x. So the depth adds kinks: (m − 1) + (L − 1)(m − 1 − p) in all,
    equally spaced on the points' range, against m − 1 with one layer. (With
    m − 1 − p < 1 the first layer's units, x and m − 1 kinks, are passed on
    unchanged.) The
    output layer adds the last kinks to the carried sums; the coefficients
    are one least-squares fit over all kinks.

    Args:
        network: a built `tfapprox.layers.FeedForward` with ReLU hidden layers.
        points: array ``(G,)``, increasing: where ``values`` are given.
        values: array ``(G, p)`` with ``p ≤`` the network's output width
            (further outputs are set to 0).
        input_rows: int. The network's input width (only input 0 is read).
    """
    from tfapprox.layers import FeedForward

    if not isinstance(network, FeedForward) or not network.built:
        raise TypeError(f"`network` must be a built FeedForward. Received: {network!r}")
    width = network.hidden_dim
    depth = network.depth
    points = np.asarray(points, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if points.ndim != 1 or points.size < 2 or np.any(np.diff(points) <= 0):
        raise ValueError(
            f"`points` must be increasing, of shape (G,) with G >= 2. Received shape {points.shape}"
        )
    if values.ndim != 2 or len(values) != points.size or values.shape[1] > network.output_dim:
        raise ValueError(
            f"`values` must have shape (G, p) with G = {points.size} points and p <= the "
            f"network's {network.output_dim} outputs. Received shape {values.shape}"
        )
    carried = values.shape[1]
    counts = _layer_kinks(width, depth, carried)
    low, high = float(points[0]), float(points[-1])
    margin = high - low
    total = sum(counts) - (len(counts) == 1)  # the carried unit of x is the first kink
    positions = low + (high - low) * np.arange(1, total + 1) / (total + 1)
    design = np.concatenate(
        [
            (points - low)[:, None],
            np.maximum(points[:, None] - positions[None, :], 0.0),
            np.ones((points.size, 1)),
        ],
        axis=1,
    )
    coefficients, *_ = np.linalg.lstsq(design, values, rcond=None)
    linear, per_kink, bias = coefficients[0], coefficients[1:-1], coefficients[-1]

    # Layer 0: unit 0 carries x − low + margin, units 1…m−1 are kinks.
    layers = network.hidden_layers
    kernel = np.zeros((input_rows, width))
    kernel[0] = 1.0
    layers[0].set_weights([kernel, np.concatenate([[margin - low], -positions[: width - 1]])])
    if len(counts) == 1:
        # The other layers pass layer 0's units on (identities).
        for layer in layers[1:]:
            layer.set_weights([np.eye(width), np.zeros(width)])
        out = np.zeros((width, network.output_dim))
        out[0, :carried] = linear
        out[1:, :carried] = per_kink
        offset = np.zeros(network.output_dim)
        offset[:carried] = bias - linear * margin
        network.output_layer.set_weights([out, offset])
        return

    # A constant per function that keeps every carried partial sum (the
    # linear term and the kinks of the layers so far) non-negative on the
    # points, with a margin of 1.
    partial = (points - low)[:, None] * linear
    lowest = partial.min(axis=0)
    used = 0
    for count in counts[:-1]:
        stage = slice(used, used + count)
        partial = partial + design[:, 1:-1][:, stage] @ per_kink[stage]
        lowest = np.minimum(lowest, partial.min(axis=0))
        used += count
    shift = np.maximum(0.0, -lowest) + 1.0
    used = width - 1
    previous = per_kink[:used]  # the kinks the next layer adds to the sums
    kink_rows = np.arange(1, width)  # where the previous layer's kinks are
    for index, layer in enumerate(layers[1:], start=1):
        kernel = np.zeros((width, width))
        bias_l = np.zeros(width)
        kernel[0, 0] = 1.0  # carry x − low + margin
        for i in range(carried):
            if index == 1:
                kernel[0, 1 + i] = linear[i]
                bias_l[1 + i] = shift[i] - linear[i] * margin
            else:
                kernel[1 + i, 1 + i] = 1.0
            kernel[kink_rows, 1 + i] = previous[:, i]
        new = positions[used : used + counts[index]]
        kernel[0, 1 + carried :] = 1.0
        bias_l[1 + carried :] = -(new - low + margin)
        layer.set_weights([kernel, bias_l])
        previous = per_kink[used : used + counts[index]]
        used += counts[index]
        kink_rows = np.arange(1 + carried, width)
    out = np.zeros((width, network.output_dim))
    out[1 : 1 + carried, :carried] = np.eye(carried)
    out[kink_rows, :carried] = previous
    offset = np.zeros(network.output_dim)
    offset[:carried] = bias - shift
    network.output_layer.set_weights([out, offset])


def _truncation_features(target, m_h, u):
    """``(√σ_k φ_k(u), √σ_k ψ_k(u))`` for the k ≤ min(m_h, rank) largest σ_k: two ``(G, k)``."""
    order = np.argsort(-target.singular_values, kind="stable")[: construction_rank(target, m_h)]
    scale = np.sqrt(target.singular_values[order])
    phi = target.pod_basis(u[:, None])  # (G, terms)
    return phi[:, order] * scale, target._pair(phi)[:, order] * scale


def _fourier(u, low, high, terms):
    """The basis ``[1, √2 sin 2πjũ, √2 cos 2πjũ]_{j≤terms}``, ``ũ = (u − low)/(high − low)``.

    Returns an array ``(..., 2·terms + 1)`` for ``u`` ``(...)``.
    """
    scaled = (np.asarray(u, dtype=np.float64) - low) / (high - low)
    angles = 2.0 * np.pi * scaled[..., None] * np.arange(1, terms + 1)
    ones = np.ones(scaled.shape + (1,))
    return np.concatenate([ones, np.sqrt(2) * np.sin(angles), np.sqrt(2) * np.cos(angles)], -1)


@dataclasses.dataclass(frozen=True)
class FittedKernel:
    """A rank-m kernel ``ρ̂(u, v) = Σ_k a_k(u) b_k(v)`` in a Fourier basis (from `fit_kernel`).

    ``a(u) = query · e(u)`` and ``b(v) = key · e(v)`` with ``e`` the basis
    ``[1, √2 sin 2πjũ, √2 cos 2πjũ]_{j ≤ terms}`` of ``ũ = (u − low)/(high − low)``.

    Attributes:
        query, key: arrays ``(m, 2·terms + 1)``: the coefficients of a_k and b_k.
        low, high: floats. The token range the basis is periodic on.
        terms: int. The highest frequency j.
        loss: float. The mean squared error on the fitting data at the end.
        start_loss: float. The same at the start (the POD truncation, or the
            kernel `fit_kernel` continued from).
        iterations: int. L-BFGS iterations run.
        message: str. Why L-BFGS stopped.
    """

    query: np.ndarray
    key: np.ndarray
    low: float
    high: float
    terms: int
    loss: float
    start_loss: float
    iterations: int
    message: str

    @property
    def rank(self):
        """m, the number of terms a_k ⊗ b_k."""
        return self.query.shape[0]

    def features(self, u):
        """``(a(u), b(u))``: two arrays ``(..., m)`` at scalar tokens ``u`` ``(...)``."""
        basis = _fourier(u, self.low, self.high, self.terms)
        return basis @ self.query.T, basis @ self.key.T

    def __call__(self, u, v):
        """``ρ̂(u, v)`` for scalar tokens broadcasting together."""
        a, _ = self.features(u)
        _, b = self.features(v)
        return np.sum(a * b, axis=-1)

    def outputs(self, x, values):
        """``Σ_s softmax_s(ρ̂(x(t), x(s))) values(s)``: the model it fits, F the identity.

        Args:
            x: array ``(N, τ, 1)`` of scalar tokens.
            values: array ``(N, τ, 1)``: f(x), the target's values.

        Returns:
            float64 array ``(N, τ, 1)``, what `construction_model` with this
            kernel computes (up to f̂'s kinks), in NumPy.
        """
        a, b = self.features(np.asarray(x, dtype=np.float64)[..., 0])
        return _attention_weights(a, b) @ np.asarray(values, dtype=np.float64)


def _attention_weights(a, b):
    """``softmax_s(a(x_t)·b(x_s))``: ``(N, τ, τ)`` from features ``(N, τ, m)``.

    Batched matmuls, not einsum: twice as fast at these shapes.
    """
    logits = a @ b.transpose(0, 2, 1)
    weights = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return weights / weights.sum(axis=-1, keepdims=True)


def _kernel_loss(params, shapes, basis, values, y):
    """MSE of ``Σ_s softmax_s(a(x_t)·b(x_s)) f(x_s)`` against ``y``, and its gradient."""
    m, width = shapes
    query = params[: m * width].reshape(m, width)
    key = params[m * width :].reshape(m, width)
    a = basis @ query.T  # (N, τ, m)
    b = basis @ key.T
    weights = _attention_weights(a, b)  # (N, τ, τ)
    out = (weights @ values[..., None])[..., 0]
    residual = out - y
    loss = float(np.mean(residual**2))
    # d loss / d logit_ts = (2/(Nτ)) r_t w_ts (f_s − ŷ_t)
    grad_logits = (2.0 / residual.size) * residual[..., None] * weights
    grad_logits *= values[:, None, :] - out[..., None]
    grad_a = grad_logits @ b
    grad_b = grad_logits.transpose(0, 2, 1) @ a
    flat = basis.reshape(-1, width)
    grad_query = grad_a.reshape(-1, m).T @ flat
    grad_key = grad_b.reshape(-1, m).T @ flat
    return loss, np.concatenate([grad_query.ravel(), grad_key.ravel()])


def fit_kernel(target, m_h, data=None, *, terms=16, steps=500, seed=0, start=None):
    """The rank-``m_h`` kernel whose attention best reproduces ``target``'s outputs.

    Fits ``ρ̂ = Σ_{k≤m_h} a_k ⊗ b_k`` (a_k, b_k in the Fourier basis of
    `FittedKernel`) to minimise the mean squared error of

        ``Ĥ_t = F( Σ_s softmax_s[ρ̂(x(t), x(s))] f(x(s)) )``

    against the target's outputs on ``data``, with f and F the target's
    own: the model `construction_model` builds with ``kernel=``. It starts
    at ρ's POD truncation (the construction, projected on the basis; terms
    past the rank start at 1e-3 random noise) and runs L-BFGS
    (`scipy.optimize.minimize`) with the exact gradient, so it never ends
    above the truncation on ``data``. Below the rank it is often far below:
    the softmax sees ρ̂ only through the weights it produces. With
    ``start`` (an earlier fit) it goes on from there instead: ``steps`` more
    iterations, so a fit continued for ``s`` steps after ``s`` is one of
    twice the steps, at half the cost (L-BFGS keeps no memory across the
    break).

    Args:
        target: as for `construction_model`, with F the identity.
        m_h: int >= 1. The rank m.
        data: `tfapprox.datasets.Dataset` of ``target`` to fit on, or None
            (1,024 sequences sampled with ``seed``).
        terms: int >= 1. Highest frequency of the basis. Defaults to 16.
        steps: int >= 1. Most L-BFGS iterations. Defaults to 500.
        seed: int. Seed of the noise on the terms past the rank (and of the
            sample when ``data`` is None). Defaults to 0.
        start: `FittedKernel` of rank ``m_h`` with ``terms`` and this
            target's token range, to continue from; or None (the POD
            truncation). Defaults to None.

    Returns:
        `FittedKernel`.

    >>> from tfapprox.targets import load_preset
    >>> target = load_preset("fig5b-r6")
    >>> kernel = fit_kernel(target, 2, target.sample(256, seed=1), steps=100)
    >>> kernel.rank, kernel.loss < kernel.start_loss / 2
    (2, True)
    >>> longer = fit_kernel(target, 2, target.sample(256, seed=1), steps=100, start=kernel)
    >>> longer.start_loss == kernel.loss, longer.loss <= kernel.loss
    (True, True)
    """
    from scipy.optimize import minimize
    from threadpoolctl import threadpool_limits

    from tfapprox.datasets import Dataset

    target = _check_target(target)
    m_h = check_int("m_h", m_h, minimum=1)
    terms = check_int("terms", terms, minimum=1)
    steps = check_int("steps", steps, minimum=1)
    seed = check_seed("seed", seed)
    if start is not None and not isinstance(start, FittedKernel):
        raise TypeError(
            f"`start` must be a FittedKernel (from fit_kernel) or None. Received: "
            f"{type(start).__name__}"
        )
    probe = np.linspace(-1.0, 2.0, 7)[:, None]
    if not np.allclose(np.asarray(target.F(probe), dtype=np.float64), probe):
        raise ValueError(
            f"`target` {target.name!r} has a readout F other than the identity; fit_kernel "
            "fits the kernel with F = identity"
        )
    if data is None:
        data = target.sample(1024, seed=seed)
    if not isinstance(data, Dataset):
        raise TypeError(f"`data` must be a tfapprox Dataset. Received: {type(data).__name__}")
    if data.x.shape[1:] != (target.sequence_length, 1) or data.y.shape[1:] != (
        target.sequence_length,
        1,
    ):
        raise ValueError(
            f"`data` must hold sequences of {target.name!r}: x and y of shape (N, "
            f"{target.sequence_length}, 1). Received x {data.x.shape}, y {data.y.shape}"
        )
    tokens = np.asarray(data.x[..., 0], dtype=np.float64)
    low, high = _token_range(target)
    basis = _fourier(tokens, low, high, terms)  # (N, τ, B)
    values = np.asarray(target.f(data.x), dtype=np.float64)[..., 0]
    y = np.asarray(data.y[..., 0], dtype=np.float64)

    if start is None:
        query, key = _truncation_start(target, m_h, low, high, terms, seed)
    elif (start.rank, start.terms, start.low, start.high) != (m_h, terms, low, high):
        raise ValueError(
            f"`start` is a kernel of rank {start.rank} with {start.terms} terms on "
            f"[{start.low:g}, {start.high:g}]; this fit has rank {m_h} with {terms} terms on "
            f"{target.name!r}'s token range [{low:g}, {high:g}]"
        )
    else:
        query, key = start.query, start.key
    width = query.shape[1]
    initial = np.concatenate([query.ravel(), key.ravel()])
    shapes = (m_h, width)
    start_loss = _kernel_loss(initial, shapes, basis, values, y)[0]
    # One BLAS thread: numpy's and scipy's OpenBLAS pools, both awake, fight
    # over the cores on these small products (three times slower on 2 cores).
    with threadpool_limits(limits=1, user_api="blas"):
        result = minimize(
            _kernel_loss,
            initial,
            args=(shapes, basis, values, y),
            jac=True,
            method="L-BFGS-B",
            options={"maxiter": steps, "maxcor": 30, "ftol": 1e-15, "gtol": 1e-12},
        )
    params = result.x if result.fun <= start_loss else initial
    return FittedKernel(
        query=params[: m_h * width].reshape(m_h, width),
        key=params[m_h * width :].reshape(m_h, width),
        low=low,
        high=high,
        terms=terms,
        loss=float(min(result.fun, start_loss)),
        start_loss=float(start_loss),
        iterations=int(result.nit),
        message=str(result.message),
    )


def _truncation_start(target, m_h, low, high, terms, seed):
    """``(query, key)``: ρ's POD truncation projected on the basis; terms past the rank 1e-3 noise."""
    grid = np.linspace(low, high, 2049)
    on_grid = _fourier(grid, low, high, terms)
    phi, psi = _truncation_features(target, m_h, grid)
    k = phi.shape[1]
    width = on_grid.shape[1]
    rng = np.random.default_rng(seed)
    query = 1e-3 * rng.standard_normal((m_h, width))
    key = 1e-3 * rng.standard_normal((m_h, width))
    query[:k] = np.linalg.lstsq(on_grid, phi, rcond=None)[0].T
    key[:k] = np.linalg.lstsq(on_grid, psi, rcond=None)[0].T
    return query, key


def _token_range(target):
    """The range f̂'s kinks and the fitted kernel's basis cover: that of 256 sampled sequences."""
    tokens = target.sample(256, seed=0).x.reshape(-1)
    return float(tokens.min()), float(tokens.max())


def construction_model(
    target,
    budget,
    *,
    kernel=None,
    position_encoding="none",
    seed=0,
    grid_points=GRID_POINTS,
):
    """Paper A's model of ``budget`` with the weights of Jiang & Li's construction.

    The model computes the target with ρ cut to its first
    ``k = min(m_h, rank)`` POD terms (`Target.truncated`), up to the
    piecewise-linear approximation of ``√σ_k φ_k``, ``√σ_k ψ_k``, f and F by
    f̂ and F̂ (the module docstring has the weights). Its error is an upper
    bound on the best error of ``budget``, found without training; its
    weights (``model.get_weights()``) can start training, e.g. through
    `tfapprox.engine.train_members`' ``initial_weights`` or
    `tfapprox.finisher.finish_model` (Adam's first steps, of the size of the
    learning rate in every weight, leave this start; L-BFGS never raises
    the loss).

    Args:
        target: `tfapprox.targets.Target` with a known POD (``pod_basis``),
            d = 1, scalar values f, and a ρ of values only.
        budget: `tfapprox.Budget` of one layer and one head, with
            ``n ≥ k + 1`` (``2k + 1`` when ψ differs from φ, or with a
            ``kernel``).
        kernel: `FittedKernel` of rank k ≤ m_h (from `fit_kernel`) or
            None. With one, f̂ carries its a_k and b_k (and f), ρ̂ is that
            kernel, not the truncation (the other m_h − k columns of W_Q
            and W_K are 0), and ``n ≥ 2k + 1``. Defaults to None.
        position_encoding: ``"none"`` or ``"learned"`` (whose e(t) is set to
            0). Defaults to ``"none"``, paper A's model for these targets.
        seed: int. The seed `build_transformer` gets; the construction sets
            every weight, so it changes nothing but is recorded by the
            model's name. Defaults to 0.
        grid_points: int >= 2. Points of the least-squares grid over the
            token range. Defaults to `GRID_POINTS`.

    Returns:
        a Keras model from `tfapprox.build_transformer`.

    >>> from tfapprox import Budget
    >>> from tfapprox.metrics import paper_error
    >>> from tfapprox.targets import load_preset
    >>> target = load_preset("fig5b-r2")
    >>> model = construction_model(target, Budget(n=4, m_h=2, m_ff=32, ff_depth=1))
    >>> data = target.sample(64, seed=1)
    >>> paper_error(data.y, model.predict(data.x, verbose=0)) < 0.01  # rank 2: m_h = 2 is exact
    True
    """
    from tfapprox._checks import check_choice
    from tfapprox.models import build_transformer

    target = _check_target(target)
    position_encoding = check_choice("position_encoding", position_encoding, _ENCODINGS)
    grid_points = check_int("grid_points", grid_points, minimum=2)
    budget = _check_budget(budget)
    low, high = _token_range(target)
    u = np.linspace(low, high, grid_points)
    if kernel is None:
        k = construction_rank(target, budget.m_h)
        paired = target._pairing is not None
        needed = construction_width(target, budget.m_h)
        _check_width(budget, needed)
        phi, psi = _truncation_features(target, budget.m_h, u)
        features = [phi, psi] if paired else [phi]
    else:
        if not isinstance(kernel, FittedKernel):
            raise TypeError(
                f"`kernel` must be a FittedKernel (fit_kernel). Received: {type(kernel).__name__}"
            )
        if kernel.rank > budget.m_h:
            raise ValueError(
                f"`kernel` has rank {kernel.rank}, above the budget's m_h = {budget.m_h}"
            )
        k, paired, needed = kernel.rank, True, 2 * kernel.rank + 1
        _check_width(budget, needed, "the kernel's a_k and b_k, and f")
        features = list(kernel.features(u))  # a_k, b_k
    values = np.asarray(target.f(u[:, None]), dtype=np.float64).reshape(grid_points, 1)
    features.append(values)
    wanted = np.concatenate(features, axis=1)  # (grid, needed): f̂'s first outputs

    model = build_transformer(
        budget,
        target.sequence_length,
        1,
        output_dim=target.output_dim,
        position_encoding=position_encoding,
        seed=seed,
    )
    if position_encoding == "learned":
        layer = model.get_layer("position_encoding")
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])

    set_piecewise_linear(model.get_layer("f_hat"), u, wanted, 1)

    query = np.zeros((budget.n, budget.m_h))
    key = np.zeros((budget.n, budget.m_h))
    query[np.arange(k), np.arange(k)] = 1.0
    key[np.arange(k) + (k if paired else 0), np.arange(k)] = 1.0
    value = np.zeros((budget.n, budget.m_v))
    value[needed - 1, 0] = 1.0
    model.get_layer("attention").set_weights([query, key, value])

    z = np.linspace(values.min(), values.max(), grid_points)
    readout = np.asarray(target.F(z[:, None]), dtype=np.float64).reshape(grid_points, -1)
    set_piecewise_linear(model.get_layer("F_hat"), z, readout, budget.m_v)
    return model
