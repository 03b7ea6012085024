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

- f̂: its first hidden layer has one ReLU kink per unit at m_FF equally
  spaced points ``c_j`` of the token range, ``relu(u − c_j)``; the further
  hidden layers pass those values on unchanged (identity kernels: a ReLU of a
  non-negative value is the value); the output layer is the least-squares
  fit of ``[√σ φ, √σ ψ, f]`` on a fine grid. So f̂'s outputs are the best
  continuous piecewise-linear functions with those kinks.
- W_Q, W_K, W_V: 0/1 matrices that select f̂'s outputs.
- F̂: the same kinks over the range of f (the attention output is a convex
  combination of f's values), least squares to F.

Every weight is a member of the hypothesis space of the budget, so the
model's error is an upper bound on the best error of that budget, reached
without training. On paper A's Fig. 5 targets at their size (n = m_v = 32,
m_FF = 128, depth 3) it reproduces the truncated target to 1e-4-8e-3 in
paper A's norm, and at m_h ≥ r its error is 0.0002-0.002: below 1 % of
the best trained error at m_h = 1 (``analysis/fig5.py``). Trained models at
m_h < r do much better than the construction (the softmax sees ρ only up
to a shift per row, which the construction does not use), so the
construction is one start among the random ones, not a replacement.

It applies to separable targets (`Target.pod_basis`: the ``fig5`` and
``bilinear`` families) with one-dimensional tokens and values (d = 1, f
scalar) and no position dependence, in paper A's one-layer, one-head model.

This module imports only NumPy and the standard library at module level
(Keras when called).
"""

import numpy as np

from tfapprox._checks import check_int

__all__ = ["GRID_POINTS", "construction_model", "construction_rank"]

# Points of the least-squares grid over the token range: 64 per kink at
# m_FF = 128, enough that the fit is that of the functions, not the grid's.
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


def _check_width(budget, needed):
    if needed > budget.n:
        raise ValueError(
            f"`budget` has n = {budget.n}, but the construction needs {needed} outputs of f̂ "
            "(the kept φ_k, the ψ_k where they differ, and f). Received: "
            f"n={budget.n}, m_h={budget.m_h}"
        )


def _kinks(low, high, width):
    """``width`` equally spaced kinks from ``low`` (included) towards ``high``."""
    return low + (high - low) * np.arange(width) / width


def _fit(points, values, kinks):
    """Least squares of ``values`` on ``[relu(points − kinks), 1]``: (coefficients, bias)."""
    design = np.concatenate(
        [np.maximum(points[:, None] - kinks[None, :], 0.0), np.ones((points.size, 1))], axis=1
    )
    coefficients, *_ = np.linalg.lstsq(design, values, rcond=None)
    return coefficients[:-1], coefficients[-1]


def _set_kinked_network(network, kinks, input_rows, coefficients, bias):
    """Kinks on input 0 in the first hidden layer, identities after, the fit out."""
    width = kinks.size
    kernel = np.zeros((input_rows, width))
    kernel[0] = 1.0
    network.hidden_layers[0].set_weights([kernel, -kinks])
    for layer in network.hidden_layers[1:]:
        layer.set_weights([np.eye(width), np.zeros(width)])
    network.output_layer.set_weights([coefficients, bias])


def construction_model(
    target, budget, *, position_encoding="none", seed=0, grid_points=GRID_POINTS
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
            ``n ≥ k + 1`` (``2k + 1`` when ψ differs from φ).
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
    k = construction_rank(target, budget.m_h)
    paired = target._pairing is not None
    needed = (2 * k if paired else k) + 1
    _check_width(budget, needed)

    order = np.argsort(-target.singular_values, kind="stable")[:k]
    scale = np.sqrt(target.singular_values[order])
    tokens = target.sample(256, seed=0).x.reshape(-1)
    low, high = float(tokens.min()), float(tokens.max())
    u = np.linspace(low, high, grid_points)
    basis = target.pod_basis(u[:, None])  # (grid, terms): φ
    features = [basis[:, order] * scale]
    if paired:
        features.append(target._pair(basis)[:, order] * scale)  # ψ
    values = np.asarray(target.f(u[:, None]), dtype=np.float64).reshape(grid_points, 1)
    features.append(values)
    wanted = np.zeros((grid_points, budget.n))
    wanted[:, :needed] = np.concatenate(features, axis=1)

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

    kinks = _kinks(low, high, budget.m_ff)
    coefficients, bias = _fit(u, wanted, kinks)
    _set_kinked_network(model.get_layer("f_hat"), kinks, 1, coefficients, bias)

    query = np.zeros((budget.n, budget.m_h))
    key = np.zeros((budget.n, budget.m_h))
    query[np.arange(k), np.arange(k)] = 1.0
    key[np.arange(k) + (k if paired else 0), np.arange(k)] = 1.0
    value = np.zeros((budget.n, budget.m_v))
    value[needed - 1, 0] = 1.0
    model.get_layer("attention").set_weights([query, key, value])

    z = np.linspace(values.min(), values.max(), grid_points)
    readout = np.asarray(target.F(z[:, None]), dtype=np.float64).reshape(grid_points, -1)
    z_kinks = _kinks(float(z[0]), float(z[-1]), budget.readout_width)
    coefficients, bias = _fit(z, readout, z_kinks)
    _set_kinked_network(model.get_layer("F_hat"), z_kinks, budget.m_v, coefficients, bias)
    return model
