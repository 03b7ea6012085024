"""The budget of the hypothesis space: n, m_h, m_v, m_FF, depth, heads and layers.

Jiang & Li (NeurIPS 2024) measure a Transformer by independent widths:

- ``n``: output width of the token-wise feed-forward network f̂ (embedding width);
- ``m_h``: query/key width, the rank budget of the attention kernel ρ̂;
- ``m_v``: value width, the input width of the read-out network F̂;
- ``m_ff``: width of the feed-forward networks f̂ and F̂ (their depth is fixed).

Wang & E (NeurIPS 2024) add heads and layers: ``num_heads`` (H, each head
with its own m_h and m_v) and ``num_layers`` (L residual blocks); both are 1
in paper A's model. ``m_readout`` gives the readout F̂ its own width
(paper B's experiments size the blocks' FFNs and the readout apart); it
defaults to m_FF.

`Budget` holds these numbers, validates them, and counts the exact number of
trainable parameters of the model that `tfapprox.models.build_transformer`
builds from it. This module imports nothing heavy: the CLI and the sympy
theory checker use it without TensorFlow.
"""

import dataclasses

from tfapprox._checks import check_bool, check_choice, check_int, check_positive_int

POSITION_ENCODINGS = ("learned", "sinusoidal", "none")
RELATIVE_POSITIONS = ("none", "linear", "log", "t5")
EMBEDDINGS = ("ffn", "linear")


def feedforward_parameter_count(input_dim, hidden_dim, output_dim, depth):
    """Trainable parameters of `tfapprox.layers.FeedForward`.

    ``depth`` hidden `Dense` layers of width ``hidden_dim`` (with biases) and a
    linear output `Dense` layer:
    ``(d_in + 1) m + (depth - 1)(m + 1) m + (m + 1) d_out``.

    Pure arithmetic, so it also accepts sympy symbols.

    >>> feedforward_parameter_count(1, 128, 32, 3)
    37408
    """
    return (
        (input_dim + 1) * hidden_dim
        + (depth - 1) * (hidden_dim + 1) * hidden_dim
        + (hidden_dim + 1) * output_dim
    )


def attention_parameter_count(
    n, num_heads, m_h, m_v, *, output_projection, use_dot_product=True, rpe="none", num_buckets=32
):
    """Trainable parameters of one `tfapprox.layers.MultiHeadAttention` on width n.

    ``H (2 m_h + m_v) n`` (``H m_v n`` DP-free: no W_Q, W_K), plus W_O
    (``H m_v n``) when projecting back to n, plus H scales p_h (linear, log
    RPE) or ``num_buckets · H`` T5 biases. Pure arithmetic.

    >>> attention_parameter_count(16, 4, 4, 4, output_projection=True, rpe="log")
    1028
    """
    count = num_heads * ((2 * m_h if use_dot_product else 0) + m_v) * n
    if output_projection:
        count += num_heads * m_v * n  # W_O
    scales = {"none": 0, "linear": 1, "log": 1, "t5": num_buckets}[rpe]
    return count + scales * num_heads


def count_parameters(
    *,
    n,
    m_h,
    m_v,
    m_ff,
    ff_depth,
    sequence_length,
    input_dim,
    output_dim=1,
    position_encoding="learned",
    projection_dim=None,
    num_heads=1,
    num_layers=1,
    residual=False,
    rpe="none",
    use_dot_product=True,
    embedding="ffn",
    num_buckets=32,
    m_readout=None,
):
    """Exact trainable-parameter count of `build_transformer`'s model.

    Paper A's model (one layer, one head, no residual):
    ``P = P_pe + P_ff(d', m_FF, n) + (2 m_h + m_v) n + P_ff(m_v, m_FF, d_out)``
    where ``d'`` is ``projection_dim`` (or ``input_dim`` without a projection),
    ``P_pe = τ d'`` for a learned encoding e(t) (0 otherwise) plus ``d d'`` for
    the projection A, and ``P_ff`` is `feedforward_parameter_count`. The
    attention has no biases (W_Q, W_K ∈ R^{m_h×n}, W_V ∈ R^{m_v×n}).

    In general (Wang & E 2024) the embedding is f̂ (``"ffn"``, as above) or
    ``W_E x + b_E`` (``"linear"``, ``(d' + 1) n``), and each of the L layers
    has an attention of ``H (2 m_h + m_v) n`` (``H m_v n`` DP-free), plus
    W_O (``H m_v n``) with residual connections, plus H scales p_h (linear,
    log RPE) or ``num_buckets · H`` T5 biases; its output width is ``a = n``
    with residual connections and ``a = H m_v`` without. Layers 1..L−1 end in
    a feed-forward network ``P_ff(a, m_FF, n)``, the last in the readout
    ``P_ff(a, m_r, d_out)``, where ``m_r`` is ``m_readout`` (None: m_FF).

    No validation and pure arithmetic, so every number may be a sympy symbol;
    `Budget.parameter_count` is the validated entry point.
    """
    check_choice("position_encoding", position_encoding, POSITION_ENCODINGS)
    check_choice("rpe", rpe, RELATIVE_POSITIONS)
    check_choice("embedding", embedding, EMBEDDINGS)
    embed_dim = input_dim if projection_dim is None else projection_dim
    count = 0
    if projection_dim is not None:
        count += input_dim * projection_dim
    if position_encoding == "learned":
        count += sequence_length * embed_dim
    if embedding == "ffn":
        count += feedforward_parameter_count(embed_dim, m_ff, n, ff_depth)
    else:
        count += (embed_dim + 1) * n
    attention = attention_parameter_count(
        n,
        num_heads,
        m_h,
        m_v,
        output_projection=residual,
        use_dot_product=use_dot_product,
        rpe=rpe,
        num_buckets=num_buckets,
    )
    width = n if residual else num_heads * m_v
    count += num_layers * attention
    count += (num_layers - 1) * feedforward_parameter_count(width, m_ff, n, ff_depth)
    readout = m_ff if m_readout is None else m_readout
    count += feedforward_parameter_count(width, readout, output_dim, ff_depth)
    return count


@dataclasses.dataclass(frozen=True, kw_only=True)
class Budget:
    """Widths of the Transformer of Jiang & Li (2024), with Wang & E's heads and layers.

    Args:
        n: int. Embedding width, the output width of f̂.
        m_h: int. Query/key width; ρ̂ = (W_Q f̂)ᵀ W_K f̂ has rank ≤ m_h.
        m_ff: int. Width of the feed-forward networks f̂ and F̂.
        m_v: int. Value width. Defaults to ``n``.
        ff_depth: int. Hidden layers in each feed-forward network. Defaults
            to 3, as in the paper's experiments (paper B's FFN has 1).
        num_heads: int. H, attention heads per layer, each with widths m_h
            and m_v. Defaults to 1.
        num_layers: int. L, attention layers. Defaults to 1.
        m_readout: int or None. Width of the readout F̂ alone; None (or
            m_ff) gives it m_ff, as in paper A. Stored as None when it
            equals m_ff, so both spellings are one budget. Defaults to None.

    Example:

    >>> budget = Budget(n=32, m_h=4, m_ff=128)
    >>> budget.m_v
    32
    >>> budget.parameter_count(sequence_length=16, input_dim=1)  # 16 + 37408 + 1280 + 37377
    76081
    >>> Budget(n=8, m_h=2, m_ff=16, ff_depth=1, num_heads=2, num_layers=2).parameter_count(
    ...     16, 1, position_encoding="none", residual=True, rpe="log", embedding="linear"
    ... )  # W_E, b_E: 16; 2 layers of 192 + W_O 128 + p_h 2; FFN 144 + 136; readout 144 + 17
    1101
    """

    n: int
    m_h: int
    m_ff: int
    m_v: int = None
    ff_depth: int = 3
    num_heads: int = 1
    num_layers: int = 1
    m_readout: int = None

    def __post_init__(self):
        for field in ("n", "m_h", "m_ff", "ff_depth", "num_heads", "num_layers"):
            object.__setattr__(self, field, check_positive_int(field, getattr(self, field)))
        m_v = self.n if self.m_v is None else check_positive_int("m_v", self.m_v)
        object.__setattr__(self, "m_v", m_v)
        readout = check_positive_int("m_readout", self.m_readout, allow_none=True)
        object.__setattr__(self, "m_readout", None if readout == self.m_ff else readout)

    @property
    def readout_width(self):
        """The width of the readout F̂: ``m_readout``, or m_FF when it is None.

        >>> Budget(n=8, m_h=2, m_ff=16).readout_width, Budget(n=8, m_h=2, m_ff=16, m_readout=4).readout_width
        (16, 4)
        """
        return self.m_ff if self.m_readout is None else self.m_readout

    def parameter_count(
        self,
        sequence_length,
        input_dim,
        output_dim=1,
        position_encoding="learned",
        projection_dim=None,
        *,
        residual=False,
        rpe="none",
        use_dot_product=True,
        embedding="ffn",
        num_buckets=32,
    ):
        """Exact number of trainable parameters of the built model.

        Equals ``build_transformer(self, sequence_length, input_dim,
        output_dim, position_encoding=..., projection_dim=..., residual=...,
        rpe=..., use_dot_product=..., embedding=...,
        num_buckets=...).count_params()``. See `count_parameters` for the
        formula.
        """
        return count_parameters(
            **dataclasses.asdict(self),
            sequence_length=check_positive_int("sequence_length", sequence_length),
            input_dim=check_positive_int("input_dim", input_dim),
            output_dim=check_positive_int("output_dim", output_dim),
            position_encoding=position_encoding,
            projection_dim=check_positive_int("projection_dim", projection_dim, allow_none=True),
            residual=check_bool("residual", residual),
            rpe=rpe,
            use_dot_product=check_bool("use_dot_product", use_dot_product),
            embedding=embedding,
            num_buckets=check_int("num_buckets", num_buckets, minimum=2),
        )

    def to_dict(self):
        """The budget as a plain dict (JSON-ready).

        ``num_heads`` and ``num_layers`` appear only when not 1, and
        ``m_readout`` only when it is set (differs from m_ff), so paper A's
        budgets keep the dict (and the results-file run keys) they always had.

        >>> Budget(n=8, m_h=2, m_ff=16, m_readout=16).to_dict()
        {'n': 8, 'm_h': 2, 'm_ff': 16, 'm_v': 8, 'ff_depth': 3}
        >>> Budget(n=8, m_h=2, m_ff=16, m_readout=4).to_dict()["m_readout"]
        4
        """
        config = dataclasses.asdict(self)
        for field in ("num_heads", "num_layers"):
            if config[field] == 1:
                del config[field]
        if config["m_readout"] is None:
            del config["m_readout"]
        return config

    @classmethod
    def from_dict(cls, config):
        """Rebuild a budget from `to_dict` output; unknown keys are an error."""
        if not isinstance(config, dict):
            raise TypeError(f"`config` must be a dict. Received: {type(config).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(config) - names)
        if unknown:
            raise ValueError(
                f"Unknown budget fields {unknown}; expected a subset of {sorted(names)}"
            )
        return cls(**config)
