"""The budget of the one-layer hypothesis space: n, m_h, m_v, m_FF and depth.

Jiang & Li (NeurIPS 2024) measure a Transformer by independent widths:

- ``n``: output width of the token-wise feed-forward network f̂ (embedding width);
- ``m_h``: query/key width, the rank budget of the attention kernel ρ̂;
- ``m_v``: value width, the input width of the read-out network F̂;
- ``m_ff``: width of the feed-forward networks f̂ and F̂ (their depth is fixed).

`Budget` holds these numbers, validates them, and counts the exact number of
trainable parameters of the model that `tfapprox.models.build_transformer`
builds from it. This module imports nothing heavy: the CLI and the sympy
theory checker use it without TensorFlow.
"""

import dataclasses

from tfapprox._checks import check_choice, check_positive_int

POSITION_ENCODINGS = ("learned", "sinusoidal", "none")


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
):
    """Exact trainable-parameter count of `build_transformer`'s model.

    ``P = P_pe + P_ff(d', m_FF, n) + (2 m_h + m_v) n + P_ff(m_v, m_FF, d_out)``

    where ``d'`` is ``projection_dim`` (or ``input_dim`` without a projection),
    ``P_pe = τ d'`` for a learned encoding e(t) (0 otherwise) plus ``d d'`` for
    the projection A, and ``P_ff`` is `feedforward_parameter_count`. The
    attention has no biases (W_Q, W_K ∈ R^{m_h×n}, W_V ∈ R^{m_v×n}).

    No validation and pure arithmetic, so every number may be a sympy symbol;
    `Budget.parameter_count` is the validated entry point.
    """
    check_choice("position_encoding", position_encoding, POSITION_ENCODINGS)
    embed_dim = input_dim if projection_dim is None else projection_dim
    count = 0
    if projection_dim is not None:
        count += input_dim * projection_dim
    if position_encoding == "learned":
        count += sequence_length * embed_dim
    count += feedforward_parameter_count(embed_dim, m_ff, n, ff_depth)
    count += (2 * m_h + m_v) * n
    count += feedforward_parameter_count(m_v, m_ff, output_dim, ff_depth)
    return count


@dataclasses.dataclass(frozen=True, kw_only=True)
class Budget:
    """Widths of the one-layer, one-head Transformer of Jiang & Li (2024).

    Args:
        n: int. Embedding width, the output width of f̂.
        m_h: int. Query/key width; ρ̂ = (W_Q f̂)ᵀ W_K f̂ has rank ≤ m_h.
        m_ff: int. Width of the feed-forward networks f̂ and F̂.
        m_v: int. Value width. Defaults to ``n``.
        ff_depth: int. Hidden layers in each feed-forward network. Defaults
            to 3, as in the paper's experiments.

    Example:

    >>> budget = Budget(n=32, m_h=4, m_ff=128)
    >>> budget.m_v
    32
    >>> budget.parameter_count(sequence_length=16, input_dim=1)  # 16 + 37408 + 1280 + 37377
    76081
    """

    n: int
    m_h: int
    m_ff: int
    m_v: int = None
    ff_depth: int = 3

    def __post_init__(self):
        for field in ("n", "m_h", "m_ff", "ff_depth"):
            object.__setattr__(self, field, check_positive_int(field, getattr(self, field)))
        m_v = self.n if self.m_v is None else check_positive_int("m_v", self.m_v)
        object.__setattr__(self, "m_v", m_v)

    def parameter_count(
        self,
        sequence_length,
        input_dim,
        output_dim=1,
        position_encoding="learned",
        projection_dim=None,
    ):
        """Exact number of trainable parameters of the built model.

        Equals ``build_transformer(self, sequence_length, input_dim,
        output_dim, position_encoding=..., projection_dim=...).count_params()``.
        See `count_parameters` for the formula.
        """
        return count_parameters(
            **self.to_dict(),
            sequence_length=check_positive_int("sequence_length", sequence_length),
            input_dim=check_positive_int("input_dim", input_dim),
            output_dim=check_positive_int("output_dim", output_dim),
            position_encoding=position_encoding,
            projection_dim=check_positive_int("projection_dim", projection_dim, allow_none=True),
        )

    def to_dict(self):
        """The budget as a plain dict (JSON-ready)."""
        return dataclasses.asdict(self)

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
