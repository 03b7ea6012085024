"""The one-layer Transformer of Jiang & Li (2024) as a Keras model, and its parts.

`build_transformer` wires the layers of `tfapprox.layers` exactly as the
hypothesis space

    Ĥ_t(x) = F̂( Σ_s softmax_s[ (W_Q f̂(x(t)))ᵀ (W_K f̂(x(s))) ] · W_V f̂(x(s)) )

with named layers (``position_encoding``, ``f_hat``, ``attention``,
``F_hat``) so analysis code can reach W_Q, W_K and f̂. `attention_logits`
and `query_key_features` read the learned kernel ρ̂ back out of a model.
"""

import keras
import numpy as np
from keras import ops

from tfapprox._checks import check_choice, check_positive_int, check_seed
from tfapprox.budget import Budget
from tfapprox.layers import FeedForward, PositionEncoding, SingleHeadAttention

OUTPUTS = ("sequence", "pooled")


def build_transformer(
    budget,
    sequence_length,
    input_dim,
    output_dim=1,
    output="sequence",
    position_encoding="learned",
    projection_dim=None,
    activation="relu",
    output_activation=None,
    use_scale=False,
    causal=False,
    name="transformer",
    seed=None,
):
    """Build Ĥ for a `Budget`: position encoding → f̂ → attention → F̂.

    No residual connection and no layer norm, as in the paper. The number of
    trainable parameters is exactly ``budget.parameter_count(sequence_length,
    input_dim, output_dim, position_encoding, projection_dim)``.

    Args:
        budget: `tfapprox.Budget`. Widths n, m_h, m_v, m_FF and depth.
        sequence_length: int. τ.
        input_dim: int. d, the token dimension.
        output_dim: int. d_out (the number of classes for classification).
            Defaults to 1.
        output: str. ``"sequence"`` returns Ĥ_t for every t, shape
            ``(batch, tau, d_out)``; ``"pooled"`` returns the time average
            ``(1/τ) Σ_t Ĥ_t``, shape ``(batch, d_out)``, for classification.
            Defaults to ``"sequence"``.
        position_encoding: str. ``"learned"``, ``"sinusoidal"`` or ``"none"``
            (permutation-equivariant model). Defaults to ``"learned"``.
        projection_dim: int or None. Width of the learned input map A (None:
            A = I). Defaults to None.
        activation: Hidden activation of f̂ and F̂. Defaults to ``"relu"``.
        output_activation: Output activation of F̂. Defaults to None.
        use_scale: bool. Scale ρ̂ by 1/√m_h. Defaults to False.
        causal: bool. Causal attention. Defaults to False.
        name: str. Model name. Defaults to ``"transformer"``.
        seed: int or None. With an int, every initializer is seeded from it
            (distinct seeds for every weight), so the initial weights depend
            on ``seed`` alone, not on the global random state, which other
            threads (a Dask worker's, say) may draw from. None uses Keras'
            global seeding (`keras.utils.set_random_seed`). Defaults to None.

    Returns:
        A functional `keras.Model` mapping ``(batch, tau, d)`` inputs.

    Example:

    >>> from tfapprox import Budget
    >>> model = build_transformer(Budget(n=8, m_h=2, m_ff=16), 6, 1)
    >>> model.output_shape
    (None, 6, 1)
    >>> model.count_params() == Budget(n=8, m_h=2, m_ff=16).parameter_count(6, 1)
    True
    """
    if not isinstance(budget, Budget):
        raise TypeError(f"`budget` must be a tfapprox.Budget. Received: {type(budget).__name__}")
    sequence_length = check_positive_int("sequence_length", sequence_length)
    input_dim = check_positive_int("input_dim", input_dim)
    output_dim = check_positive_int("output_dim", output_dim)
    output = check_choice("output", output, OUTPUTS)
    seeded = _seeded_initializers(None if seed is None else check_seed("seed", seed))

    inputs = keras.Input(shape=(sequence_length, input_dim), name="x")
    hidden = PositionEncoding(
        sequence_length,
        mode=position_encoding,
        projection_dim=projection_dim,
        name="position_encoding",
        **seeded["position_encoding"],
    )(inputs)  # (batch, tau, d')
    hidden = FeedForward(
        budget.m_ff,
        budget.n,
        depth=budget.ff_depth,
        activation=activation,
        name="f_hat",
        **seeded["f_hat"],
    )(hidden)  # (batch, tau, n)
    hidden = SingleHeadAttention(
        budget.m_h,
        budget.m_v,
        use_scale=use_scale,
        causal=causal,
        name="attention",
        **seeded["attention"],
    )(hidden)  # (batch, tau, m_v)
    outputs = FeedForward(
        budget.m_ff,
        output_dim,
        depth=budget.ff_depth,
        activation=activation,
        output_activation=output_activation,
        name="F_hat",
        **seeded["F_hat"],
    )(hidden)  # (batch, tau, d_out)
    if output == "pooled":
        outputs = keras.layers.GlobalAveragePooling1D(name="pool")(outputs)  # (batch, d_out)
    return keras.Model(inputs, outputs, name=name)


def _seeded_initializers(seed):
    """Initializer arguments of each part, seeded from ``seed`` (empty dicts for None).

    Each part gets its own block of seeds (``1000·seed + 100·part``); within
    a part the layers offset them per weight (`tfapprox.layers.fresh_initializer`).
    """
    parts = ("position_encoding", "f_hat", "attention", "F_hat")
    if seed is None:
        return {part: {} for part in parts}
    base = {part: 1000 * seed + 100 * i for i, part in enumerate(parts)}
    glorot = keras.initializers.GlorotUniform
    return {
        "position_encoding": {
            "kernel_initializer": glorot(seed=base["position_encoding"]),
            "embeddings_initializer": keras.initializers.RandomUniform(
                -1.0, 1.0, seed=base["position_encoding"]
            ),
        },
        "f_hat": {"kernel_initializer": glorot(seed=base["f_hat"])},
        "attention": {"kernel_initializer": glorot(seed=base["attention"])},
        "F_hat": {"kernel_initializer": glorot(seed=base["F_hat"])},
    }


def _parts(model):
    """The named parts of a `build_transformer` model, or a clear error."""
    try:
        return {
            name: model.get_layer(name)
            for name in ("position_encoding", "f_hat", "attention", "F_hat")
        }
    except (ValueError, AttributeError):
        raise ValueError(
            "`model` is not a tfapprox Transformer: it needs layers named "
            "'position_encoding', 'f_hat', 'attention' and 'F_hat' (see build_transformer)"
        ) from None


def budget_of(model):
    """The `Budget` a `build_transformer` model was built with.

    >>> from tfapprox import Budget
    >>> budget = Budget(n=8, m_h=2, m_v=3, m_ff=16, ff_depth=2)
    >>> budget_of(build_transformer(budget, 4, 1)) == budget
    True
    """
    return _budget_from_parts(_parts(model))


def _budget_from_parts(parts):
    f_hat, attention = parts["f_hat"], parts["attention"]
    return Budget(
        n=f_hat.output_dim,
        m_h=attention.key_dim,
        m_v=attention.value_kernel.shape[-1],
        m_ff=f_hat.hidden_dim,
        ff_depth=f_hat.depth,
    )


def describe(model):
    """A JSON-ready summary of a `build_transformer` model.

    Keys: ``budget`` (dict), ``sequence_length``, ``input_dim``,
    ``output_dim``, ``output`` (``"sequence"`` or ``"pooled"``),
    ``position_encoding``, ``projection_dim``, ``parameter_count``.
    """
    parts = _parts(model)
    encoding = parts["position_encoding"]
    pooled = any(layer.name == "pool" for layer in model.layers)
    return {
        "budget": _budget_from_parts(parts).to_dict(),
        "sequence_length": encoding.sequence_length,
        "input_dim": int(model.input_shape[-1]),
        "output_dim": int(model.output_shape[-1]),
        "output": "pooled" if pooled else "sequence",
        "position_encoding": encoding.mode,
        "projection_dim": encoding.projection_dim,
        "parameter_count": int(model.count_params()),
    }


def _batches(model, x, batch_size):
    x = np.asarray(x, dtype="float32")
    expected = tuple(model.input_shape[1:])
    if x.ndim != 3 or x.shape[2] != expected[1] or x.shape[1] > expected[0]:
        raise ValueError(
            f"`x` must have shape (N, {expected[0]}, {expected[1]}) for this model. "
            f"Received shape {x.shape}"
        )
    batch_size = check_positive_int("batch_size", batch_size)
    for start in range(0, len(x), batch_size):
        yield x[start : start + batch_size]


def _embedded(model, parts, x, batch_size):
    """``f̂(PE(x))`` batch by batch, each ``(b, tau, n)``."""
    for batch in _batches(model, x, batch_size):
        yield parts["f_hat"](parts["position_encoding"](batch))


def query_key_features(model, x, batch_size=256):
    """Per-token queries and keys ``q = W_Q f̂(PE(x))``, ``k = W_K f̂(PE(x))``.

    The learned kernel between token t of sequence i and token s of sequence
    j is ``ρ̂ = q[i, t] · k[j, s]``, a sum of m_h products φ̂_k(u) ψ̂_k(v).

    Args:
        model: A `build_transformer` model.
        x: array ``(N, tau, d)``.
        batch_size: int. Defaults to 256.

    Returns:
        ``(q, k)``, NumPy arrays of shape ``(N, tau, m_h)``.
    """
    parts = _parts(model)
    queries, keys = [], []
    for hidden in _embedded(model, parts, x, batch_size):
        query, key, _ = parts["attention"].project(hidden)  # (b, tau, m_h) each
        queries.append(ops.convert_to_numpy(query))
        keys.append(ops.convert_to_numpy(key))
    m_h = parts["attention"].key_dim
    if not queries:
        empty = np.zeros((0, model.input_shape[1], m_h), dtype="float32")
        return empty, empty.copy()
    return np.concatenate(queries), np.concatenate(keys)


def attention_logits(model, x, batch_size=256):
    """The pre-softmax attention matrices ρ̂ of a model on inputs ``x``.

    ``ρ̂[i, t, s] = (W_Q f̂(x_i(t)))ᵀ (W_K f̂(x_i(s)))`` (scaled by 1/√m_h if
    the model uses the scale). Its rank is at most m_h.

    Args:
        model: A `build_transformer` model.
        x: array ``(N, tau, d)``.
        batch_size: int. Defaults to 256.

    Returns:
        NumPy array ``(N, tau, tau)``.
    """
    parts = _parts(model)
    logits = []
    for hidden in _embedded(model, parts, x, batch_size):
        _, batch_logits = parts["attention"](hidden, return_attention_logits=True)
        logits.append(ops.convert_to_numpy(batch_logits))  # (b, tau, tau)
    if not logits:
        tau = model.input_shape[1]
        return np.zeros((0, tau, tau), dtype="float32")
    return np.concatenate(logits)
