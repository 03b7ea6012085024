"""The one-layer Transformer of Jiang & Li (2024) as a Keras model, and its parts.

`build_transformer` wires the layers of `tfapprox.layers` exactly as the
hypothesis space

    Ĥ_t(x) = F̂( Σ_s softmax_s[ (W_Q f̂(x(t)))ᵀ (W_K f̂(x(s))) ] · W_V f̂(x(s)) )

with named layers (``position_encoding``, ``f_hat``, ``attention``,
``F_hat``) so analysis code can reach W_Q, W_K and f̂. `attention_logits`
and `query_key_features` read the learned kernel ρ̂ back out of a model.
"""

import dataclasses
import zlib

import keras
import numpy as np
from keras import ops

from tfapprox._checks import check_bool, check_choice, check_positive_int, check_seed
from tfapprox.budget import EMBEDDINGS, RELATIVE_POSITIONS, Budget
from tfapprox.layers import (
    FeedForward,
    MultiHeadAttention,
    PositionEncoding,
    SingleHeadAttention,
)

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
    *,
    num_layers=None,
    num_heads=None,
    residual=False,
    rpe="none",
    use_dot_product=True,
    embedding="ffn",
    num_buckets=32,
    max_distance=128,
    kink_range=None,
):
    """Build Ĥ for a `Budget`: position encoding → f̂ → L × (attention, FFN) → F̂.

    With the defaults this is paper A's one-layer, one-head model (Jiang & Li
    2024) with no residual connection and no layer norm. With more layers or
    heads, a relative position encoding or residual connections it is paper
    B's model (Wang & E 2024):

        X ← E(x);  X ← X + Attn_l(X), X ← X + FFN_l(X)  (l < L);  X ← X + Attn_L(X);  Ĥ = F̂(X)

    with E the embedding (f̂, or ``W_E x + b_E`` with ``embedding="linear"``),
    `tfapprox.layers.MultiHeadAttention` as Attn_l and **no layer norm**; the
    readout F̂ has no residual. Without ``residual`` the ``+ X`` terms are
    dropped and the heads' concatenation (width H·m_v) feeds the next
    network directly (its first layer absorbs W_O); with it W_O maps back to
    width n. A layer with one head, no RPE, the dot product and no residual
    is paper A's `SingleHeadAttention`: ``num_layers=1`` then gives exactly
    today's model. Paper B's setting is ``residual=True,
    embedding="linear", position_encoding="none", causal=True`` with
    ``ff_depth=1`` (two-layer ReLU FFNs of width m_FF) and ``rpe="linear"``
    or ``"log"``. The readout F̂ has width ``budget.readout_width``
    (``m_readout``, or m_FF), every other FFN width m_FF.

    The number of trainable parameters is exactly ``budget.parameter_count(
    sequence_length, input_dim, output_dim, position_encoding,
    projection_dim, residual=..., rpe=..., use_dot_product=...,
    embedding=..., num_buckets=...)``.

    Layer names: ``position_encoding``, ``f_hat`` (or ``embedding``), the
    attention layers ``attention`` (one layer) or ``attention_1`` …
    ``attention_L``, the feed-forward networks ``ffn_1`` … ``ffn_{L−1}``, and
    ``F_hat``.

    Args:
        budget: `tfapprox.Budget`. Widths n, m_h, m_v, m_FF, depth, heads
            and layers.
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
        activation: Hidden activation of the feed-forward networks. Defaults
            to ``"relu"``.
        output_activation: Output activation of F̂. Defaults to None.
        use_scale: bool. Scale ρ̂ by 1/√m_h (one-head layers of paper A
            only). Defaults to False.
        causal: bool. Causal attention. Defaults to False.
        name: str. Model name. Defaults to ``"transformer"``.
        seed: int or None. With an int, every initializer is seeded from it
            (distinct seeds for every weight), so the initial weights depend
            on ``seed`` alone, not on the global random state, which other
            threads (a Dask worker's, say) may draw from. None uses Keras'
            global seeding (`keras.utils.set_random_seed`). Defaults to None.
        num_layers: int or None. L; overrides ``budget.num_layers``.
            Defaults to None (the budget's).
        num_heads: int or None. H; overrides ``budget.num_heads``. Defaults
            to None (the budget's).
        residual: bool. Residual connections around every attention and
            every FFN but the readout. Defaults to False.
        rpe: str. Relative position encoding of every attention layer:
            ``"none"``, ``"linear"``, ``"log"`` or ``"t5"``. Defaults to
            ``"none"``.
        use_dot_product: bool. False makes every attention DP-free (no W_Q,
            W_K). Defaults to True.
        embedding: str. ``"ffn"`` (f̂, paper A) or ``"linear"`` (``W_E x +
            b_E``, paper B). Defaults to ``"ffn"``.
        num_buckets: int. T5 buckets (``rpe="t5"``). Defaults to 32.
        max_distance: int. T5's largest distinguished distance. Defaults to 128.
        kink_range: ``(low, high)`` or None. Where f̂'s inputs lie: the
            kinks of f̂'s first ReLU layer are spread over the box
            ``[low, high]^{d'}`` (``b_j = −w_jᵀ c_j``, c_j uniform in it;
            `FeedForward`'s ``kink_initializer``) instead of all passing
            through 0. With ``position_encoding="none"`` and tokens of one
            sign (U[0, 1] in paper A's Fig. 5) zero biases make f̂ start as
            a linear function of the token; give the tokens' range.
            Defaults to None (zero biases).

    Returns:
        A functional `keras.Model` mapping ``(batch, tau, d)`` inputs.

    Example:

    >>> from tfapprox import Budget
    >>> model = build_transformer(Budget(n=8, m_h=2, m_ff=16), 6, 1)
    >>> model.output_shape
    (None, 6, 1)
    >>> model.count_params() == Budget(n=8, m_h=2, m_ff=16).parameter_count(6, 1)
    True
    >>> paper_b = Budget(n=8, m_h=2, m_ff=16, ff_depth=1, num_heads=2, num_layers=2)
    >>> options = dict(residual=True, rpe="log", embedding="linear", position_encoding="none")
    >>> model = build_transformer(paper_b, 6, 1, causal=True, **options)
    >>> model.count_params() == paper_b.parameter_count(6, 1, **options)
    True
    """
    if not isinstance(budget, Budget):
        raise TypeError(f"`budget` must be a tfapprox.Budget. Received: {type(budget).__name__}")
    overrides = {
        field: check_positive_int(field, value)
        for field, value in (("num_layers", num_layers), ("num_heads", num_heads))
        if value is not None
    }
    budget = dataclasses.replace(budget, **overrides)
    sequence_length = check_positive_int("sequence_length", sequence_length)
    input_dim = check_positive_int("input_dim", input_dim)
    output_dim = check_positive_int("output_dim", output_dim)
    output = check_choice("output", output, OUTPUTS)
    residual = check_bool("residual", residual)
    use_dot_product = check_bool("use_dot_product", use_dot_product)
    rpe = check_choice("rpe", rpe, RELATIVE_POSITIONS)
    embedding = check_choice("embedding", embedding, EMBEDDINGS)
    single_head = budget.num_heads == 1 and rpe == "none" and use_dot_product and not residual
    if use_scale and not single_head:
        raise ValueError(
            "`use_scale` is for paper A's one-head attention (one head, no RPE, the dot "
            f"product, no residual). Received: use_scale={use_scale}"
        )
    # (`argument`, not `name`: `name` is the model's name.)
    for argument, value in (("activation", activation), ("output_activation", output_activation)):
        try:
            keras.activations.get(value)
        except ValueError:
            raise ValueError(
                f"`{argument}` must be a Keras activation (a name such as 'relu', or a "
                f"callable). Received: {argument}={value!r}"
            ) from None
    kink_range = _check_kink_range(kink_range)
    if kink_range is not None and embedding != "ffn":
        raise ValueError(
            "`kink_range` places the kinks of f̂'s first layer; a linear embedding has none. "
            f"Received: kink_range={list(kink_range)}, embedding={embedding!r}"
        )
    layers_count = budget.num_layers
    names = _part_names(layers_count, embedding)
    seed = None if seed is None else check_seed("seed", seed)
    seeded = _seeded_initializers(seed, names)
    if kink_range is not None:
        # Offset 50 within f̂'s block of 100 seeds: clear of its kernels' seeds.
        seeded["f_hat"]["kink_initializer"] = keras.initializers.RandomUniform(
            *kink_range, seed=None if seed is None else 1000 * seed + 150
        )

    inputs = keras.Input(shape=(sequence_length, input_dim), name="x")
    hidden = PositionEncoding(
        sequence_length,
        mode=position_encoding,
        projection_dim=projection_dim,
        name="position_encoding",
        **seeded["position_encoding"],
    )(inputs)  # (batch, tau, d')
    if embedding == "ffn":
        hidden = FeedForward(
            budget.m_ff,
            budget.n,
            depth=budget.ff_depth,
            activation=activation,
            name="f_hat",
            **seeded["f_hat"],
        )(hidden)  # (batch, tau, n)
    else:
        hidden = keras.layers.Dense(budget.n, name="embedding", **seeded["embedding"])(
            hidden
        )  # (batch, tau, n)
    for layer in range(1, layers_count + 1):
        attention_name = names["attention"][layer - 1]
        if single_head:
            initializers = dict(seeded[attention_name])
            initializers.pop("position_initializer", None)
            attention = SingleHeadAttention(
                budget.m_h,
                budget.m_v,
                use_scale=use_scale,
                causal=causal,
                name=attention_name,
                **initializers,
            )
        else:
            attention = MultiHeadAttention(
                budget.num_heads,
                budget.m_h,
                budget.m_v,
                output_projection=residual,
                causal=causal,
                use_dot_product=use_dot_product,
                relative_position=rpe,
                num_buckets=num_buckets,
                max_distance=max_distance,
                name=attention_name,
                **seeded[attention_name],
            )
        mixed = attention(hidden)  # (batch, tau, n) with residual, else (batch, tau, H m_v)
        hidden = (
            keras.layers.Add(name=f"{attention_name}_residual")([hidden, mixed])
            if residual
            else mixed
        )
        if layer == layers_count:
            break
        ffn_name = names["ffn"][layer - 1]
        mixed = FeedForward(
            budget.m_ff,
            budget.n,
            depth=budget.ff_depth,
            activation=activation,
            name=ffn_name,
            **seeded[ffn_name],
        )(hidden)  # (batch, tau, n)
        hidden = (
            keras.layers.Add(name=f"{ffn_name}_residual")([hidden, mixed]) if residual else mixed
        )
    outputs = FeedForward(
        budget.readout_width,
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


def _part_names(num_layers, embedding="ffn"):
    """Layer names of a `build_transformer` model with ``num_layers`` attention layers."""
    if num_layers == 1:
        attention = ["attention"]
    else:
        attention = [f"attention_{layer}" for layer in range(1, num_layers + 1)]
    return {
        "embedding": "f_hat" if embedding == "ffn" else "embedding",
        "attention": attention,
        "ffn": [f"ffn_{layer}" for layer in range(1, num_layers)],
    }


def _check_kink_range(kink_range):
    """``(low, high)`` as two floats with low < high, or None; a clear error otherwise."""
    if kink_range is None:
        return None
    try:
        if isinstance(kink_range, (str, bytes)):
            raise TypeError
        low, high = (float(v) for v in kink_range)
    except (TypeError, ValueError):
        low = high = None
    if low is None or not (np.isfinite(low) and np.isfinite(high) and low < high):
        raise ValueError(
            f"`kink_range` must be (low, high) with finite low < high. Received: {kink_range!r}"
        )
    return low, high


def _seeded_initializers(seed, names):
    """Initializer arguments of each part, seeded from ``seed`` (empty dicts for None).

    Paper A's four parts get their own blocks of seeds (``1000·seed +
    100·part``, unchanged since the first release); the parts of paper B's
    model (``embedding``, ``attention_l``, ``ffn_l``) get ``1000·seed +
    100·part`` hashed with the part's name into [10⁶, 2³⁰). Within a part the
    layers offset them per weight (`tfapprox.layers.fresh_initializer`).
    """
    parts = ["position_encoding", names["embedding"], *names["attention"], *names["ffn"], "F_hat"]
    if seed is None:
        return {part: {} for part in parts}
    paper_a = ("position_encoding", "f_hat", "attention", "F_hat")

    def base(part):
        if part in paper_a:
            return 1000 * seed + 100 * paper_a.index(part)
        digest = zlib.crc32(f"{seed}/{part}".encode())
        return 10**6 + digest % (2**30 - 10**6 - 100)

    glorot = keras.initializers.GlorotUniform
    seeded = {}
    for part in parts:
        start = base(part)
        seeded[part] = {"kernel_initializer": glorot(seed=start)}
        if part == "position_encoding":
            seeded[part]["embeddings_initializer"] = keras.initializers.RandomUniform(
                -1.0, 1.0, seed=start
            )
        elif part.startswith("attention"):
            seeded[part]["position_initializer"] = keras.initializers.RandomUniform(
                -1.0, 1.0, seed=start
            )
    return seeded


def _attention_layers(model):
    """The attention layers of a `build_transformer` model, first to last."""
    layers = []
    for name in ["attention", *(f"attention_{layer}" for layer in range(1, 1000))]:
        try:
            layers.append(model.get_layer(name))
        except ValueError:
            if name != "attention":
                break
    return layers


def _parts(model):
    """The named parts of a `build_transformer` model, or a clear error."""
    try:
        embedding = model.get_layer("f_hat") if _has_layer(model, "f_hat") else None
        parts = {
            "position_encoding": model.get_layer("position_encoding"),
            "f_hat": embedding or model.get_layer("embedding"),
            "F_hat": model.get_layer("F_hat"),
            "attentions": _attention_layers(model),
        }
        parts["ffns"] = [
            model.get_layer(f"ffn_{layer}") for layer in range(1, len(parts["attentions"]))
        ]
    except (ValueError, AttributeError):
        parts = {}
    if not parts or not parts["attentions"]:
        raise ValueError(
            "`model` is not a tfapprox Transformer: it needs layers named "
            "'position_encoding', 'f_hat', 'attention' and 'F_hat' (see build_transformer)"
        ) from None
    parts["attention"] = parts["attentions"][0]
    return parts


def _has_layer(model, name):
    return any(layer.name == name for layer in model.layers)


def _paper_a_parts(model):
    """`_parts` of a one-layer, one-head model (paper A), or a clear error."""
    parts = _parts(model)
    if len(parts["attentions"]) != 1 or not isinstance(parts["attention"], SingleHeadAttention):
        raise ValueError(
            "This read-out needs paper A's one-layer, one-head model (a single "
            "SingleHeadAttention named 'attention'); use attention_logits for "
            "multi-layer or multi-head models"
        )
    return parts


def budget_of(model):
    """The `Budget` a `build_transformer` model was built with.

    >>> from tfapprox import Budget
    >>> budget = Budget(n=8, m_h=2, m_v=3, m_ff=16, ff_depth=2)
    >>> budget_of(build_transformer(budget, 4, 1)) == budget
    True
    >>> budget = Budget(n=8, m_h=2, m_ff=16, num_heads=3, num_layers=2)
    >>> budget_of(build_transformer(budget, 4, 1, rpe="linear")) == budget
    True
    """
    return _budget_from_parts(_parts(model))


def _budget_from_parts(parts):
    f_hat, attention, readout = parts["f_hat"], parts["attention"], parts["F_hat"]
    heads = getattr(attention, "num_heads", 1)
    # m_FF is read off f̂ or the first block FFN; a model with neither (a linear
    # embedding and one layer) has only the readout, whose width is then m_FF.
    blocks = [f_hat] if isinstance(f_hat, FeedForward) else parts["ffns"][:1]
    m_ff = blocks[0].hidden_dim if blocks else readout.hidden_dim
    return Budget(
        n=f_hat.units if isinstance(f_hat, keras.layers.Dense) else f_hat.output_dim,
        m_h=attention.key_dim,
        m_v=attention.value_kernel.shape[-1],
        m_ff=m_ff,
        ff_depth=readout.depth,
        num_heads=heads,
        num_layers=len(parts["attentions"]),
        m_readout=readout.hidden_dim,
    )


def architecture_of(model):
    """Paper B's build options of a `build_transformer` model, as a dict.

    Keys ``residual``, ``rpe``, ``use_dot_product``, ``embedding``,
    ``causal``, ``num_buckets``, ``max_distance``: the `build_transformer`
    arguments beyond the budget.

    >>> from tfapprox import Budget
    >>> model = build_transformer(Budget(n=4, m_h=2, m_ff=8), 4, 1, rpe="t5", num_buckets=8)
    >>> architecture_of(model)["rpe"], architecture_of(model)["num_buckets"]
    ('t5', 8)
    """
    parts = _parts(model)
    attention = parts["attention"]
    multi = isinstance(attention, MultiHeadAttention)
    return {
        "residual": multi and attention.output_projection,
        "rpe": attention.relative_position if multi else "none",
        "use_dot_product": attention.use_dot_product if multi else True,
        "embedding": "linear" if isinstance(parts["f_hat"], keras.layers.Dense) else "ffn",
        "causal": attention.causal,
        "num_buckets": attention.num_buckets if multi else 32,
        "max_distance": attention.max_distance if multi else 128,
    }


def describe(model):
    """A JSON-ready summary of a `build_transformer` model.

    Keys: ``budget`` (dict), ``sequence_length``, ``input_dim``,
    ``output_dim``, ``output`` (``"sequence"`` or ``"pooled"``),
    ``position_encoding``, ``projection_dim``, ``parameter_count``, and for
    models beyond paper A's (more layers or heads, an RPE, residual
    connections, DP-free or a linear embedding) ``architecture``
    (`architecture_of`).
    """
    parts = _parts(model)
    encoding = parts["position_encoding"]
    pooled = any(layer.name == "pool" for layer in model.layers)
    summary = {
        "budget": _budget_from_parts(parts).to_dict(),
        "sequence_length": encoding.sequence_length,
        "input_dim": int(model.input_shape[-1]),
        "output_dim": int(model.output_shape[-1]),
        "output": "pooled" if pooled else "sequence",
        "position_encoding": encoding.mode,
        "projection_dim": encoding.projection_dim,
        "parameter_count": int(model.count_params()),
    }
    if not isinstance(parts["attention"], SingleHeadAttention) or len(parts["attentions"]) > 1:
        summary["architecture"] = architecture_of(model)
    return summary


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
    parts = _paper_a_parts(model)
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

    Paper A's one-layer, one-head model: ``ρ̂[i, t, s] = (W_Q f̂(x_i(t)))ᵀ
    (W_K f̂(x_i(s)))`` (scaled by 1/√m_h if the model uses the scale); its
    rank is at most m_h. Any other model (more layers or heads, an RPE):
    every layer's per-head logits ``⟨W_Q^h x_t, W_K^h x_s⟩ + p_h φ(t − s)``
    (see `tfapprox.layers.MultiHeadAttention`), each layer on its own input.

    Args:
        model: A `build_transformer` model.
        x: array ``(N, tau, d)``.
        batch_size: int. Defaults to 256.

    Returns:
        NumPy array ``(N, tau, tau)`` for paper A's model, else ``(N, L,
        H, tau, tau)``.
    """
    parts = _parts(model)
    attentions = parts["attentions"]
    tau = model.input_shape[1]
    if len(attentions) == 1 and isinstance(attentions[0], SingleHeadAttention):
        logits = [
            ops.convert_to_numpy(parts["attention"](hidden, return_attention_logits=True)[1])
            for hidden in _embedded(model, parts, x, batch_size)
        ]  # each (b, tau, tau)
        return np.concatenate(logits) if logits else np.zeros((0, tau, tau), dtype="float32")
    inputs_of = keras.Model(model.input, [layer.input for layer in attentions])
    logits = []
    for batch in _batches(model, x, batch_size):
        hiddens = inputs_of(batch)
        hiddens = hiddens if isinstance(hiddens, (list, tuple)) else [hiddens]
        per_layer = [
            ops.convert_to_numpy(layer(hidden, return_attention_logits=True)[1])
            for layer, hidden in zip(attentions, hiddens)
        ]  # each (b, H, tau, tau)
        logits.append(np.stack(per_layer, axis=1))  # (b, L, H, tau, tau)
    if not logits:
        heads = getattr(attentions[0], "num_heads", 1)
        return np.zeros((0, len(attentions), heads, tau, tau), dtype="float32")
    return np.concatenate(logits)
