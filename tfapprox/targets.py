"""Targets: sequence-to-sequence functions with a known attention kernel ρ.

Jiang & Li (NeurIPS 2024, Thm 4.1) write every continuous target on
position-encoded inputs in the *representation form*

    H_t(x) = F( Σ_s softmax_s[ ρ(x(t), x(s), t, s) ] · f(x(s)) )

with a token-wise embedding ``f: R^d → R^n``, a token-wise read-out
``F: R^n → R^{d_out}`` and a kernel ρ. The difficulty of ``H`` for a
Transformer is governed by the POD (singular value decomposition of the
integral operator) of ρ,

    ρ = Σ_k σ_k φ_k ⊗ ψ_k,    σ_k ≈ C_β k^{−β}    (card notation: β, C_β),

and by how hard ``F``, ``f`` and the POD bases are for feed-forward networks.

A `Target` holds ``F``, ``f`` and ρ as vectorised NumPy callables, evaluates
``H`` on a batch (`Target.__call__`) and samples datasets (`Target.sample`).
The generators build targets whose POD is known exactly:

- `fig5_target`: the paper's Fig. 5 family. ``d = 1``, ``F = f = id``,
  ``ρ(u, v) = Σ_{i≤r} σ_i φ_i(u) φ_i(v)``, ``φ_i(u) = √2 sin(2π i u)``,
  ``σ_i = C_β i^{−β}``; the rank ``r`` is finite or ``"inf"`` (truncated at
  ``K = truncation`` terms, recorded in the metadata).
- `bilinear_target`: ``d`` inputs, ``ρ(u, v) = Σ_{k≤r} σ_k φ_k(u) φ_k(v)`` on
  tensor Legendre polynomials whose first d are the centred coordinates
  ``φ_i(u) = √3 (2u_i − 1)``, ``f = (φ_1, …, φ_d)``, ``F = id``: affine
  leading POD bases and one output per term of ρ; the rank r is d, any
  other int or ``"inf"`` (truncated at ``K = truncation`` terms).
- `positional_target`: general ``d``, ρ depending on value *and* position,
  smooth non-identity ``F`` and ``f`` (random Fourier features).
- `linear_memory_target`: ``H_t(x) = Σ_{k≤t} m(k) x(t−k)`` with the
  exponential memory ``m(k) = e^{−k}`` of the paper's Table 2 or a memory
  kernel drawn ``m(k) ~ U[0,1]`` (Table 3).

**POD convention.** For a position-independent target the POD of ρ is taken
over ``[0,1]^d`` with the Lebesgue measure. For a position-dependent target it
is over ``[0,1]^d × {0, …, τ−1}`` with Lebesgue × uniform counting measure
(weight ``1/τ`` per position). ``beta``, ``c_beta``, ``rank`` and
``singular_values`` of a target are exact under this convention; they are
``None`` where no finite-valued POD exists (the masked kernels of the linear
memory targets).

**Presets** are small JSON recipes bundled in ``tfapprox_data`` (the ``data/``
folder): `list_presets`, `load_preset`. A recipe fixes every parameter and the
construction seed, so a preset is one fixed function; `Target.sample` draws
the inputs with its own sampling seed.

This module needs only NumPy (no TensorFlow, Keras or scikit-learn).

Example:

>>> target = load_preset("fig5b-r6")
>>> (target.sequence_length, target.input_dim, target.beta, target.rank)
(16, 1, 1.0, 6)
>>> data = target.sample(8, seed=0)
>>> data.x.shape, data.y.shape
((8, 16, 1), (8, 16, 1))
"""

import collections.abc
import importlib
import importlib.resources
import json
import math
import numbers

import numpy as np

from tfapprox import datasets as _datasets
from tfapprox._checks import (
    check_bool,
    check_choice,
    check_int,
    check_positive_int,
    check_real,
    check_seed,
)

__all__ = [
    "Target",
    "fig5_target",
    "bilinear_target",
    "positional_target",
    "linear_memory_target",
    "make_target",
    "from_dict",
    "list_presets",
    "preset_names",
    "load_preset",
    "FAMILIES",
    "INPUT_DISTRIBUTION",
]

#: How `Target.sample` draws inputs: every coordinate i.i.d. uniform.
INPUT_DISTRIBUTION = "uniform[0,1]"

#: Marker of a preset recipe file in ``tfapprox_data``.
PRESET_FORMAT = "tfapprox-target-preset"

# Float64 elements one evaluation chunk may hold (≈ 32 MiB per array); batches
# are split over N so that N·τ·(τ + widths) stays below this.
_CHUNK_ELEMENTS = 1 << 22


# --------------------------------------------------------------------------
# Validation helpers


# Sizes past which a target cannot be built or sampled in memory: POD terms
# (a finite rank, or the truncation of an infinite one), the widths of the
# positional family, and the float32 values of one sampled array.
MAX_TERMS = 2**16
MAX_WIDTH = 2**12
MAX_SAMPLE_VALUES = 2**28


def _check_rank(value):
    """A positive int, or ``"inf"`` / `math.inf` (returned as `math.inf`)."""
    if isinstance(value, str) and value.strip().lower() in ("inf", "infinity"):
        return math.inf
    if isinstance(value, float) and value == math.inf:
        return math.inf
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"`rank` must be a positive int or 'inf'. Received: rank={value!r} "
            f"of type {type(value).__name__}"
        )
    if value < 1:
        raise ValueError(f"`rank` must be a positive int or 'inf'. Received: rank={value!r}")
    if value > MAX_TERMS:
        raise ValueError(f"`rank` must be at most {MAX_TERMS} (or 'inf'). Received: rank={value!r}")
    return int(value)


def _rank_to_json(rank):
    return "inf" if rank == math.inf else rank


# --------------------------------------------------------------------------
# The Target


def _softmax_last(logits):
    """Softmax over the last axis; ``-inf`` entries get weight 0."""
    top = np.max(logits, axis=-1, keepdims=True)
    if not np.all(np.isfinite(top)):
        raise ValueError(
            "ρ is -inf (or not finite) for every s at some position t; "
            "softmax_s[ρ] is undefined there"
        )
    weights = np.exp(logits - top)
    return weights / np.sum(weights, axis=-1, keepdims=True)


class Target:
    """A target ``H`` in the representation form of Jiang & Li (Thm 4.1).

    ``H_t(x) = F( Σ_s softmax_s[ ρ(x(t), x(s), t, s) ] · f(x(s)) )``

    Build one from vectorised NumPy callables, or use a generator
    (`fig5_target`, `bilinear_target`, `positional_target`,
    `linear_memory_target`) or a preset
    (`load_preset`), whose POD spectrum is known.

    Args:
        rho: callable. ``rho(u, v)`` (or ``rho(u, v, t, s)`` when
            ``position_dependent``) on tokens of shape ``(..., d)`` and integer
            positions, broadcasting, returning the kernel values ``(...)``.
            ``-inf`` masks a pair.
        f: callable. Token-wise embedding ``(..., d) -> (..., n)``.
        F: callable. Token-wise read-out ``(..., n) -> (..., d_out)``.
        sequence_length: int. τ.
        input_dim: int. d.
        output_dim: int. d_out.
        embedding_dim: int. n, the width of ``f``'s output. Defaults to
            ``input_dim``.
        position_dependent: bool. Whether ρ depends on the positions.
            Defaults to False.
        name: str. Defaults to ``"custom"``.
        description: str. One line. Defaults to ``""``.
        beta, c_beta: float or None. The true POD decay
            ``σ_k = c_beta k^{−beta}`` when known. Default None.
        rank: int, ``math.inf`` or None. The true POD rank of ρ when known.
        singular_values: array or None. The true leading σ_k when known.

    Attributes:
        name, description, sequence_length, input_dim, output_dim,
        embedding_dim, position_dependent, beta, c_beta, rank, truncation
        (number of POD terms kept for ``rank = inf``, else None),
        singular_values (NumPy array or None), exact_representation (whether
        ``__call__`` equals the representation form exactly), metadata.
    """

    family = "custom"

    def __init__(
        self,
        rho,
        f,
        F,
        *,
        sequence_length,
        input_dim,
        output_dim,
        embedding_dim=None,
        position_dependent=False,
        name="custom",
        description="",
        beta=None,
        c_beta=None,
        rank=None,
        singular_values=None,
    ):
        for arg, fn in (("rho", rho), ("f", f), ("F", F)):
            if not callable(fn):
                raise TypeError(f"`{arg}` must be callable. Received: {arg}={fn!r}")
        self._rho_fn, self._f_fn, self._F_fn = rho, f, F
        self._init_common(
            name=name,
            description=description,
            sequence_length=sequence_length,
            input_dim=input_dim,
            output_dim=output_dim,
            embedding_dim=input_dim if embedding_dim is None else embedding_dim,
            position_dependent=position_dependent,
            beta=beta,
            c_beta=c_beta,
            rank=rank,
            truncation=None,
            singular_values=singular_values,
            seed=None,
            params={},
        )

    def _init_common(
        self,
        *,
        name,
        description,
        sequence_length,
        input_dim,
        output_dim,
        embedding_dim,
        position_dependent,
        beta,
        c_beta,
        rank,
        truncation,
        singular_values,
        seed,
        params,
    ):
        if not isinstance(name, str) or not name:
            raise TypeError(f"`name` must be a non-empty str. Received: name={name!r}")
        if not isinstance(description, str):
            raise TypeError(f"`description` must be a str. Received: description={description!r}")
        self.name = name
        self.description = description
        self.sequence_length = check_positive_int("sequence_length", sequence_length)
        self.input_dim = check_positive_int("input_dim", input_dim)
        self.output_dim = check_positive_int("output_dim", output_dim)
        self.embedding_dim = check_positive_int("embedding_dim", embedding_dim)
        self.position_dependent = check_bool("position_dependent", position_dependent)
        self.beta = None if beta is None else check_real("beta", beta, low=0, low_open=True)
        self.c_beta = None if c_beta is None else check_real("c_beta", c_beta, low=0, low_open=True)
        self.rank = None if rank is None else _check_rank(rank)
        self.truncation = truncation
        self.singular_values = (
            None if singular_values is None else np.asarray(singular_values, dtype=np.float64)
        )
        if self.singular_values is not None and not (
            np.all(np.isfinite(self.singular_values)) and np.all(self.singular_values >= 0)
        ):
            raise ValueError(
                "`singular_values` must be finite and >= 0. "
                f"Received: singular_values={self.singular_values.tolist()}"
            )
        self.seed = seed
        self._params = dict(params)

    # -- the three parts --------------------------------------------------

    exact_representation = True

    #: How `sample` draws the inputs (recorded in the metadata).
    input_distribution = INPUT_DISTRIBUTION

    def _draw_inputs(self, rng, shape):
        """Inputs of ``shape`` in float64, drawn with ``rng``: i.i.d. U[0,1]."""
        return rng.random(shape)

    def rho(self, u, v, t=None, s=None):
        """The kernel ``ρ(u, v, t, s)``, vectorised with broadcasting.

        Args:
            u, v: array-like ``(..., d)``. Query and key tokens.
            t, s: integer array-like broadcastable to the leading shape, in
                ``[0, τ)``. Required when ``position_dependent``; ignored
                otherwise.

        Returns:
            float64 array of the broadcast leading shape; may hold ``-inf``.
        """
        u = self._check_tokens("u", u)
        v = self._check_tokens("v", v)
        if self.position_dependent:
            if t is None or s is None:
                raise ValueError(
                    f"`t` and `s` are required: the kernel of target {self.name!r} "
                    f"depends on positions. Received: t={t!r}, s={s!r}"
                )
            t = self._check_positions("t", t)
            s = self._check_positions("s", s)
        else:
            t = s = None
        shape = np.broadcast_shapes(
            u.shape[:-1], v.shape[:-1], *(() if t is None else (t.shape, s.shape))
        )
        out = np.asarray(self._rho(u, v, t, s), dtype=np.float64)
        return np.broadcast_to(out, shape).copy() if out.shape != shape else out

    def f(self, u):
        """The token-wise embedding ``f: (..., d) -> (..., n)``."""
        return np.asarray(self._f(self._check_tokens("u", u)), dtype=np.float64)

    def F(self, z):
        """The token-wise read-out ``F: (..., n) -> (..., d_out)``."""
        z = np.asarray(z, dtype=np.float64)
        if z.ndim < 1 or z.shape[-1] != self.embedding_dim:
            raise ValueError(
                f"`z` must have shape (..., {self.embedding_dim}) (the embedding width n). "
                f"Received shape {z.shape}"
            )
        return np.asarray(self._F(z), dtype=np.float64)

    # Overridden by the generators; the callable-built Target uses these.
    def _rho(self, u, v, t, s):
        if self.position_dependent:
            return self._rho_fn(u, v, t, s)
        return self._rho_fn(u, v)

    def _f(self, u):
        return self._f_fn(u)

    def _F(self, z):
        return self._F_fn(z)

    # -- evaluation -------------------------------------------------------

    def __call__(self, x):
        """Evaluate ``H`` on a batch.

        Args:
            x: array-like ``(N, τ, d)``.

        Returns:
            float64 array ``(N, τ, d_out)``: ``H_t(x)`` for every t.
        """
        return self._map_chunks(self._evaluate, x)

    def representation(self, x):
        """``F(Σ_s softmax_s[ρ(x(t), x(s), t, s)] f(x(s)))`` on a batch ``(N, τ, d)``.

        Equals `__call__` when ``exact_representation``; the linear memory
        targets document how the two differ.
        """
        return self._map_chunks(self._represent, x)

    def logits(self, x):
        """The pre-softmax matrices ``ρ(x(t), x(s), t, s)``: ``(N, τ, τ)`` for ``x`` ``(N, τ, d)``."""
        return self._logits(self._check_batch(x))

    def attention(self, x):
        """The weights ``softmax_s[ρ(x(t), x(s), t, s)]``: ``(N, τ, τ)`` for ``x`` ``(N, τ, d)``."""
        return _softmax_last(self.logits(x))

    def _evaluate(self, x):
        return self._represent(x)

    def _represent(self, x):
        weights = _softmax_last(self._logits(x))  # (N, tau, tau)
        values = np.asarray(self._f(x), dtype=np.float64)  # (N, tau, n)
        return np.asarray(self._F(weights @ values), dtype=np.float64)  # (N, tau, d_out)

    def _logits(self, x):
        """``ρ(x(t), x(s), t, s)`` for all pairs: ``(N, τ, τ)``."""
        positions = np.arange(self.sequence_length)
        t, s = (positions[:, None], positions[None, :]) if self.position_dependent else (None, None)
        out = self._rho(x[:, :, None, :], x[:, None, :, :], t, s)
        return np.broadcast_to(
            np.asarray(out, dtype=np.float64), x.shape[:1] + (self.sequence_length,) * 2
        )

    def _chunk_rows(self):
        tau = self.sequence_length
        width = tau + 2 * max(self.embedding_dim, self.output_dim, self._feature_width())
        return max(1, _CHUNK_ELEMENTS // (tau * width))

    def _feature_width(self):
        return 1

    def _map_chunks(self, fn, x):
        x = self._check_batch(x)
        rows = self._chunk_rows()
        out = np.empty(x.shape[:2] + (self.output_dim,), dtype=np.float64)
        for start in range(0, x.shape[0], rows):
            out[start : start + rows] = fn(x[start : start + rows])
        return out

    # -- sampling ---------------------------------------------------------

    def sample(self, num_samples, seed=0):
        """Draw a dataset: ``x`` i.i.d. U[0,1] of shape ``(N, τ, d)``, ``y = H(x)``.

        ``x`` is drawn in float64 with ``numpy.random.default_rng(seed)``
        (from the target's `input_distribution`: U[0,1] here, other
        distributions for the sparse-memory targets of `tfapprox.memory`),
        rounded to float32, and ``y`` is ``H`` evaluated (in float64) on the
        rounded ``x``, then stored as float32. The same target, ``num_samples``
        and ``seed`` always give the same arrays.

        Args:
            num_samples: int. N.
            seed: int. Sampling seed. Defaults to 0.

        Returns:
            `tfapprox.datasets.Dataset` whose metadata holds the target's
            metadata (key ``"target"``), ``seed``, ``num_samples``,
            ``input_distribution`` and, at top level for convenience, the
            target's ``name``, ``family``, ``beta``, ``c_beta``, ``rank``,
            ``truncation``, ``sequence_length``, ``input_dim``,
            ``output_dim`` and ``position_dependent``.
        """
        num_samples = check_positive_int("num_samples", num_samples)
        seed = check_seed("seed", seed)
        shape = (num_samples, self.sequence_length, self.input_dim)
        if self.sequence_length**2 > MAX_SAMPLE_VALUES:
            raise ValueError(
                f"τ = {self.sequence_length} is too long to evaluate: the τ × τ attention "
                f"of one sequence has more than {MAX_SAMPLE_VALUES} values"
            )
        if math.prod(shape) > MAX_SAMPLE_VALUES:
            raise ValueError(
                f"`num_samples` × τ × d must be at most {MAX_SAMPLE_VALUES} values: x of "
                f"shape {shape} does not fit in memory. Received: num_samples={num_samples}"
            )
        rng = np.random.default_rng(seed)
        x = self._draw_inputs(rng, shape).astype(np.float32)
        y = self(x.astype(np.float64)).astype(np.float32)
        return _datasets.Dataset(x, y, self.dataset_metadata(num_samples, seed))

    def dataset_metadata(self, num_samples, seed):
        """The metadata `sample` attaches to a dataset of ``num_samples`` drawn with ``seed``."""
        meta = self.metadata
        summary = {
            key: meta[key]
            for key in (
                "name",
                "family",
                "beta",
                "c_beta",
                "rank",
                "truncation",
                "sequence_length",
                "input_dim",
                "output_dim",
                "position_dependent",
            )
        }
        return {
            **summary,
            "target": meta,
            "seed": seed,
            "num_samples": num_samples,
            "input_distribution": self.input_distribution,
            "task": "sequence",
        }

    # -- metadata and recipes ----------------------------------------------

    @property
    def pod_measure(self):
        """The measure the POD of ρ is taken under (see the module docstring)."""
        if self.position_dependent:
            return (
                f"Lebesgue on [0,1]^{self.input_dim} x uniform counting on "
                f"{{0..{self.sequence_length - 1}}} (weight 1/{self.sequence_length})"
            )
        return f"Lebesgue on [0,1]^{self.input_dim}"

    @property
    def metadata(self):
        """Every parameter of the target, JSON-ready (a new dict on each access).

        ``rank`` is an int, ``"inf"`` or None; for ``"inf"``, ``truncation``
        is the number K of POD terms actually kept. ``params`` and ``seed``
        rebuild the target with `from_dict`.
        """
        return {
            "name": self.name,
            "family": self.family,
            "description": self.description,
            "params": json.loads(json.dumps(self._params)),
            "seed": self.seed,
            "sequence_length": self.sequence_length,
            "input_dim": self.input_dim,
            "output_dim": self.output_dim,
            "embedding_dim": self.embedding_dim,
            "position_dependent": self.position_dependent,
            "beta": self.beta,
            "c_beta": self.c_beta,
            "rank": None if self.rank is None else _rank_to_json(self.rank),
            "truncation": self.truncation,
            "singular_values": (
                None if self.singular_values is None else self.singular_values.tolist()
            ),
            "exact_representation": self.exact_representation,
            "input_distribution": self.input_distribution,
            "pod_measure": self.pod_measure,
            **self._extra_metadata(),
        }

    def _extra_metadata(self):
        return {}

    def to_dict(self):
        """The recipe and description of the target (same as `metadata`)."""
        return self.metadata

    @classmethod
    def from_dict(cls, config):
        """Rebuild a generated target from `to_dict` output or a dataset's metadata."""
        return from_dict(config)

    def __repr__(self):
        rank = None if self.rank is None else _rank_to_json(self.rank)
        return (
            f"<{type(self).__name__} {self.name!r} family={self.family} "
            f"tau={self.sequence_length} d={self.input_dim} beta={self.beta} rank={rank}>"
        )

    # -- input checks -----------------------------------------------------

    def _check_tokens(self, name, u):
        u = np.asarray(u, dtype=np.float64)
        if u.ndim < 1 or u.shape[-1] != self.input_dim:
            raise ValueError(
                f"`{name}` must have shape (..., {self.input_dim}) (tokens of dimension d). "
                f"Received shape {u.shape}"
            )
        return u

    def _check_positions(self, name, t):
        t = np.asarray(t)
        if not np.issubdtype(t.dtype, np.integer):
            raise TypeError(f"`{name}` must hold integer positions. Received dtype {t.dtype}")
        if t.size and (t.min() < 0 or t.max() >= self.sequence_length):
            raise ValueError(
                f"`{name}` must hold positions in [0, {self.sequence_length}). "
                f"Received values in [{t.min()}, {t.max()}]"
            )
        return t

    def _check_batch(self, x):
        x = np.asarray(x, dtype=np.float64)
        expected = (self.sequence_length, self.input_dim)
        if x.ndim != 3 or x.shape[1:] != expected:
            raise ValueError(
                f"`x` must have shape (N, {expected[0]}, {expected[1]}) for target "
                f"{self.name!r} (N, tau, d). Received shape {x.shape}"
            )
        if not np.all(np.isfinite(x)):
            bad = int(x.size - np.count_nonzero(np.isfinite(x)))
            raise ValueError(f"`x` holds {bad} non-finite values (NaN or inf)")
        return x


# --------------------------------------------------------------------------
# Separable kernels with a known POD


def _power_law(c_beta, beta, terms):
    """``σ_i = c_beta · i^{−beta}`` for ``i = 1..terms``."""
    return c_beta * np.arange(1, terms + 1, dtype=np.float64) ** (-beta)


def _check_truncation(rank, truncation):
    if rank != math.inf:
        return int(rank), None
    truncation = check_positive_int("truncation", truncation, maximum=MAX_TERMS)
    return truncation, truncation


class _SeparableTarget(Target):
    """``ρ = Σ_{i≤r} σ_i φ_i ⊗ ψ_i`` with orthonormal families φ_i and ψ_i.

    Because both families are orthonormal under the POD measure, the σ_i are
    exactly the singular values of the integral operator with kernel ρ.
    """

    # Subclasses define ``_phi(u, t)``: ``(..., r)``, and may set ``_pairing``,
    # an index array with ψ_i = φ_{_pairing[i]} (None: ψ = φ).
    _pairing = None

    def pod_basis(self, u, t=None):
        """The left POD basis functions ``φ_i(u[, t])``, i = 1 … r, at tokens ``u``.

        Orthonormal under the POD measure; ``ρ = Σ_i σ_i φ_i ⊗ ψ_i``. These
        are what the feed-forward part of Jiang & Li's construction
        approximates, so `tfapprox.ffrate.ff_rate` measures α on them.

        Args:
            u: array ``(..., d)``. Tokens.
            t: array of positions broadcasting with ``u[..., 0]``, or None
                (needed only for a position-dependent target).

        Returns:
            array ``(..., r)`` (r: the rank, or the truncation of an
            infinite one).

        >>> target = fig5_target(beta=1.0, rank=2)
        >>> target.pod_basis(np.array([[0.25]])).round(4).tolist()  # √2 sin(2π i u)
        [[1.4142, 0.0]]
        """
        u = self._check_tokens("u", u)
        if self.position_dependent and t is None:
            raise ValueError("`t` is required: this target's POD basis depends on positions")
        if t is not None:
            t = self._check_positions("t", t)
        return self._phi(u, t)

    def _pair(self, basis):
        """ψ from φ's values: ``basis[..., _pairing]``."""
        return basis if self._pairing is None else basis[..., self._pairing]

    def _psi(self, v, s):
        return self._pair(self._phi(v, s))

    def _rho(self, u, v, t, s):
        left = self._phi(u, t) * self.singular_values  # (..., r)
        right = self._psi(v, s)  # (..., r)
        return np.einsum("...r,...r->...", left, right)

    def _logits(self, x):
        basis = self._phi(x, np.arange(self.sequence_length))  # (N, tau, r), computed once
        left = basis * self.singular_values
        right = self._pair(basis)  # ψ at the same tokens
        return left @ np.swapaxes(right, -1, -2)  # (N, tau, tau)

    def _feature_width(self):
        return self.singular_values.size

    def truncated(self, rank):
        """This target with ρ cut to its best rank-``rank`` approximation.

        ``ρ_k = Σ_{i≤k} σ_i φ_i ⊗ ψ_i`` (the POD truncation, σ_i decreasing),
        with f and F unchanged: the construction behind Jiang & Li's bound
        at ``m_h = k``. Its error against this target is the *truncation
        error* a model of query/key width k can reach by that construction.
        A rank at or above the target's leaves it unchanged.

        Args:
            rank: int ≥ 0. Number of POD terms kept.

        Returns:
            `Target`, a copy (this target is not changed).

        >>> target = fig5_target(beta=1.0, rank=6)
        >>> target.truncated(2).singular_values.round(3).tolist()
        [1.0, 0.5, 0.0, 0.0, 0.0, 0.0]
        """
        import copy

        rank = check_int("rank", rank, minimum=0)
        order = np.argsort(-self.singular_values, kind="stable")
        kept = np.zeros_like(self.singular_values)
        kept[order[:rank]] = self.singular_values[order[:rank]]
        twin = copy.copy(self)
        twin.singular_values = kept
        twin.name = f"{self.name}|rank<={rank}"
        return twin


class _Fig5Target(_SeparableTarget):
    family = "fig5"

    def __init__(self, *, beta, c_beta, rank, tau, truncation, name, description, seed):
        rank = _check_rank(rank)
        beta = check_real("beta", beta, low=0, low_open=True)
        c_beta = check_real("c_beta", c_beta, low=0, low_open=True)
        tau = check_positive_int("tau", tau)
        terms, truncation = _check_truncation(rank, truncation)
        self._frequencies = np.arange(1, terms + 1, dtype=np.float64)
        self._init_common(
            name=name or f"fig5(beta={beta:g},rank={_rank_to_json(rank)},tau={tau})",
            description=description,
            sequence_length=tau,
            input_dim=1,
            output_dim=1,
            embedding_dim=1,
            position_dependent=False,
            beta=beta,
            c_beta=c_beta,
            rank=rank,
            truncation=truncation,
            singular_values=_power_law(c_beta, beta, terms),
            seed=seed,
            params={
                "beta": beta,
                "c_beta": c_beta,
                "rank": _rank_to_json(rank),
                "tau": tau,
                "truncation": truncation,
            },
        )

    def _phi(self, u, t=None):
        # φ_i(u) = √2 sin(2π i u): orthonormal on [0, 1].
        return math.sqrt(2.0) * np.sin(2.0 * np.pi * u[..., :1] * self._frequencies)  # (..., r)

    def _f(self, u):
        return u

    def _F(self, z):
        return z


def fig5_target(
    beta=1.0, rank=6, *, c_beta=1.0, tau=16, truncation=64, name=None, description="", seed=0
):
    """The synthetic target of the paper's Fig. 5.

    ``d = 1``, ``F = f = id``, inputs ``x(s) ~ U[0,1]`` and

        ``ρ(u, v) = Σ_{i≤r} σ_i φ_i(u) φ_i(v)``,  ``φ_i(u) = √2 sin(2π i u)``,
        ``σ_i = c_beta · i^{−beta}``,

        ``H_t(x) = Σ_s softmax_s[ρ(x(t), x(s))] · x(s)``.

    ``{φ_i}`` is orthonormal in ``L²[0,1]`` (and ``ψ_i = φ_i``), so the σ_i
    are exactly the singular values of ρ's integral operator: the target's
    ``beta``, ``c_beta`` and ``rank`` are the truth. Paper: panel a has
    ``beta = 0.55``, panel b ``beta = 1``, ``c_beta = 1``, ``τ = 16``,
    ``r ∈ {2, 6, ∞}``.

    Args:
        beta: float. Decay exponent β > 0. Defaults to 1.0.
        rank: int or ``"inf"``. The rank r of ρ. Defaults to 6.
        c_beta: float. C_β > 0. Defaults to 1.0.
        tau: int. Sequence length τ. Defaults to 16.
        truncation: int. For ``rank="inf"``, the number K of terms kept (the
            kernel is the K-term partial sum; its metadata says so).
            Ignored for a finite rank. Defaults to 64.
        name: str or None. Defaults to a name built from the parameters.
        description: str. Defaults to ``""``.
        seed: int. Construction seed, recorded only: this family has no
            random parts. Defaults to 0.

    Returns:
        `Target`.
    """
    return _Fig5Target(
        beta=beta,
        c_beta=c_beta,
        rank=rank,
        tau=tau,
        truncation=truncation,
        name=name,
        description=description,
        seed=check_seed("seed", seed),
    )


def _legendre_exponents(d, terms):
    """The first ``terms`` tensor Legendre multi-indices on ``[0,1]^d``, ``(terms, d)``.

    Ordered by total degree, and within a degree as
    `itertools.combinations_with_replacement` lists the coordinates: degree
    1 gives the d coordinates in order, then ``(0, 0), (0, 1), …, (d−1, d−1)``
    for degree 2, and so on.

    >>> _legendre_exponents(2, 5).tolist()
    [[1, 0], [0, 1], [2, 0], [1, 1], [0, 2]]
    """
    import itertools

    rows = []
    degree = 1
    while len(rows) < terms:
        for combo in itertools.combinations_with_replacement(range(d), degree):
            row = [0] * d
            for axis in combo:
                row[axis] += 1
            rows.append(row)
            if len(rows) == terms:
                break
        degree += 1
    return np.array(rows, dtype=np.int64).reshape(terms, d)


def _legendre_table(u, degree):
    """``L_l(u)`` for l = 0 … degree: the orthonormal Legendre polynomials on [0, 1].

    ``L_l(u) = √(2l+1) P_l(2u − 1)`` by the three-term recurrence; shape
    ``u.shape + (degree + 1,)``.
    """
    x = 2.0 * u - 1.0
    table = [np.ones_like(x), x]
    for order in range(1, degree):
        table.append(((2 * order + 1) * x * table[order] - order * table[order - 1]) / (order + 1))
    table = np.stack(table[: degree + 1], axis=-1)
    return table * np.sqrt(2.0 * np.arange(degree + 1) + 1.0)


class _BilinearTarget(_SeparableTarget):
    family = "bilinear"

    def __init__(self, *, d, rank, truncation, beta, c_beta, tau, name, description, seed):
        d = check_positive_int("d", d)
        if d > MAX_TERMS:
            raise ValueError(f"`d` must be at most {MAX_TERMS}. Received: d={d}")
        rank = d if rank is None else _check_rank(rank)
        beta = check_real("beta", beta, low=0, low_open=True)
        c_beta = check_real("c_beta", c_beta, low=0, low_open=True)
        tau = check_positive_int("tau", tau)
        terms, truncation = _check_truncation(rank, truncation)
        self._exponents = _legendre_exponents(d, terms)
        self._degree = int(self._exponents.sum(axis=1).max())
        label = _rank_to_json(rank)
        self._init_common(
            name=name or f"bilinear(d={d},rank={label},beta={beta:g},c_beta={c_beta:g},tau={tau})",
            description=description,
            sequence_length=tau,
            input_dim=d,
            output_dim=d,
            embedding_dim=d,
            position_dependent=False,
            beta=beta,
            c_beta=c_beta,
            rank=rank,
            truncation=truncation,
            singular_values=_power_law(c_beta, beta, terms),
            seed=seed,
            params={
                "d": d,
                "rank": label,
                "truncation": truncation,
                "beta": beta,
                "c_beta": c_beta,
                "tau": tau,
            },
        )

    def _phi(self, u, t=None):
        # φ_k(u) = Π_i L_{a_ki}(u_i), a_k the k-th multi-index: for k ≤ d the
        # centred coordinates √3 (2u_k − 1), then degree 2, 3, …
        if self._degree == 1:
            return self._f(u)[..., : len(self._exponents)]
        table = _legendre_table(u, self._degree)  # (..., d, degree + 1)
        axes = np.arange(self.input_dim)
        return np.prod(table[..., axes, self._exponents], axis=-1)  # (..., terms)

    def _f(self, u):
        # The centred coordinates L_1(u_i) = √3 (2u_i − 1): φ_1 … φ_d.
        return math.sqrt(3.0) * (2.0 * u - 1.0)

    def _F(self, z):
        return z


def bilinear_target(
    d=16,
    *,
    rank=None,
    truncation=64,
    beta=1.0,
    c_beta=2.0,
    tau=8,
    name=None,
    description="",
    seed=0,
):
    """A target whose leading POD basis is the token itself: one output per term of ρ.

    ``x(s) ~ U[0,1]^d``, ``f(u) = (√3 (2u_1 − 1), …, √3 (2u_d − 1))`` (the
    centred coordinates, orthonormal on ``[0,1]^d``), ``F = id``
    (``d_out = d``) and

        ``ρ(u, v) = Σ_{k≤r} σ_k φ_k(u) φ_k(v)``,  ``σ_k = c_beta · k^{−beta}``,

        ``H_t(x) = Σ_s softmax_s[ρ(x(t), x(s))] · f(x(s))``,

    with φ_k the tensor Legendre polynomials ``Π_i L_{a_i}(u_i)``
    (``L_l(u) = √(2l+1) P_l(2u − 1)``, orthonormal on ``[0,1]^d``) ordered
    by degree: ``φ_1 … φ_d`` are the centred coordinates themselves, then
    come the degree-2 products, degree 3, and so on
    (`_legendre_exponents`). The σ_k are exactly ρ's singular values.

    The rank r is d by default (ρ bilinear in the centred coordinates), any
    positive int, or ``"inf"``: an infinite power-law spectrum, kept to
    ``truncation`` terms as `fig5_target` does. To first order in ρ, output
    i is ``σ_i φ_i(x(t))`` times a sample variance, so each of the d
    outputs needs its own term of ρ, and the leading basis functions are
    affine (a ReLU network of width 2d represents them and ``F`` exactly).
    On Fig. 5's targets (d = 1, one scalar value) the output sees ρ to
    first order through one function of x(t) only, and trained errors
    hardly depend on m_h; here they fall with m_h
    (``analysis/RECIPE.md``, "A target whose errors follow m_h").

    Args:
        d: int. Token dimension and output width. Defaults to 16.
        rank: int, ``"inf"`` or None. The rank r of ρ. Defaults to d.
        truncation: int. For ``rank="inf"``, the number K of terms kept.
            Ignored for a finite rank. Defaults to 64.
        beta: float. Decay exponent β > 0. Defaults to 1.0.
        c_beta: float. C_β > 0, which sets how sharp the softmax is.
            Defaults to 2.0.
        tau: int. Sequence length τ. Defaults to 8.
        name: str or None. Defaults to a name built from the parameters.
        description: str. Defaults to ``""``.
        seed: int. Construction seed, recorded only: this family has no
            random parts. Defaults to 0.

    Returns:
        `Target`.

    >>> target = bilinear_target(d=3, tau=4)
    >>> target.singular_values.round(3).tolist(), target.rank, target.output_dim
    ([2.0, 1.0, 0.667], 3, 3)
    >>> target = bilinear_target(d=8, rank="inf")  # the check's default target
    >>> target.rank, target.truncation, target.pod_basis(np.full((1, 8), 0.5)).shape
    (inf, 64, (1, 64))
    """
    return _BilinearTarget(
        d=d,
        rank=rank,
        truncation=truncation,
        beta=beta,
        c_beta=c_beta,
        tau=tau,
        name=name,
        description=description,
        seed=check_seed("seed", seed),
    )


def _half_lattice(dim, norm):
    """Integer vectors of ℓ¹ norm ``norm`` whose first non-zero entry is positive.

    No two of them are equal or opposite, so the functions
    ``cos(2π k·u + θ_k)`` are pairwise orthogonal on ``[0,1]^dim``.
    """

    def all_vectors(dim, norm):
        if dim == 1:
            return [(norm,), (-norm,)] if norm else [(0,)]
        out = []
        for first in range(norm, -norm - 1, -1):
            out.extend((first,) + rest for rest in all_vectors(dim - 1, norm - abs(first)))
        return out

    def leading_positive(k):
        nonzero = [c for c in k if c]
        return not nonzero or nonzero[0] > 0

    return [k for k in all_vectors(dim, norm) if leading_positive(k)]


def _basis_pairs(dim, tau, count, position_dependent):
    """The first ``count`` basis labels ``(k, j)``, by degree ``‖k‖₁ + j`` then j.

    ``k`` is a frequency vector of the half lattice (0 allowed), ``j`` a DCT
    index in ``[0, τ)`` (only 0 when not position dependent); ``(0, 0)``, the
    constant, is left out.
    """
    pairs = []
    degree = 1
    while len(pairs) < count:
        for j in range(0, min(degree, tau - 1) + 1) if position_dependent else (0,):
            pairs.extend((k, j) for k in _half_lattice(dim, degree - j))
        degree += 1
    return pairs[:count]


class _RandomFeatures:
    """``g(u) = √(2/M) · cos(2π·bandwidth·(u W) + b) A``: a smooth random function.

    ``W ~ N(0, I)`` ``(d_in, M)``, ``b ~ U[0, 2π)``, ``A ~ N(0, 1)`` ``(M, d_out)``:
    a draw (M random Fourier features) from the Gaussian process with
    covariance ``exp(−2π² bandwidth² ‖u − u'‖²)``, so each output is C^∞
    with unit variance; larger ``bandwidth`` means faster oscillation.
    """

    def __init__(self, rng, in_dim, out_dim, num_features, bandwidth):
        self.frequencies = 2.0 * np.pi * bandwidth * rng.standard_normal((in_dim, num_features))
        self.phases = rng.uniform(0.0, 2.0 * np.pi, num_features)
        self.weights = math.sqrt(2.0 / num_features) * rng.standard_normal((num_features, out_dim))

    def __call__(self, u):
        return np.cos(u @ self.frequencies + self.phases) @ self.weights


class _PositionalTarget(_SeparableTarget):
    family = "positional"

    def __init__(
        self,
        *,
        d,
        tau,
        beta,
        c_beta,
        rank,
        truncation,
        n,
        d_out,
        position_dependent,
        num_features,
        embed_bandwidth,
        readout_bandwidth,
        name,
        description,
        seed,
    ):
        d = check_positive_int("d", d, maximum=MAX_WIDTH)
        tau = check_positive_int("tau", tau)
        beta = check_real("beta", beta, low=0, low_open=True)
        c_beta = check_real("c_beta", c_beta, low=0, low_open=True)
        rank = _check_rank(rank)
        n = check_positive_int("n", n, maximum=MAX_WIDTH)
        d_out = check_positive_int("d_out", d_out, maximum=MAX_WIDTH)
        position_dependent = check_bool("position_dependent", position_dependent)
        num_features = check_positive_int("num_features", num_features, maximum=MAX_WIDTH)
        embed_bandwidth = check_real("embed_bandwidth", embed_bandwidth, low=0, low_open=True)
        readout_bandwidth = check_real("readout_bandwidth", readout_bandwidth, low=0, low_open=True)
        seed = check_seed("seed", seed)
        terms, truncation = _check_truncation(rank, truncation)

        # Random parts, drawn in this order from one generator.
        rng = np.random.default_rng(seed)
        pairs = _basis_pairs(d, tau, terms, position_dependent)
        frequencies = sorted({k for k, _ in pairs})
        phases = rng.uniform(0.0, 2.0 * np.pi, len(frequencies))
        pairing = rng.permutation(terms)
        self._embed = _RandomFeatures(rng, d, n, num_features, embed_bandwidth)
        self._readout = _RandomFeatures(rng, n, d_out, num_features, readout_bandwidth)

        index = {k: i for i, k in enumerate(frequencies)}
        self._frequencies = np.array(frequencies, dtype=np.float64).reshape(len(frequencies), d)
        self._phases = phases
        self._value_dct = np.array([[index[k], j] for k, j in pairs])  # (r, 2)
        self._pairing = pairing
        self._pairs = pairs
        self._init_common(
            name=name or f"positional(d={d},tau={tau},beta={beta:g},rank={_rank_to_json(rank)})",
            description=description,
            sequence_length=tau,
            input_dim=d,
            output_dim=d_out,
            embedding_dim=n,
            position_dependent=position_dependent,
            beta=beta,
            c_beta=c_beta,
            rank=rank,
            truncation=truncation,
            singular_values=_power_law(c_beta, beta, terms),
            seed=seed,
            params={
                "d": d,
                "tau": tau,
                "beta": beta,
                "c_beta": c_beta,
                "rank": _rank_to_json(rank),
                "truncation": truncation,
                "n": n,
                "d_out": d_out,
                "position_dependent": position_dependent,
                "num_features": num_features,
                "embed_bandwidth": embed_bandwidth,
                "readout_bandwidth": readout_bandwidth,
            },
        )

    def _value_basis(self, u):
        """``a_k(u) = √2 cos(2π k·u + θ_k)`` (``a_0 = 1``): ``(..., #k)``."""
        waves = math.sqrt(2.0) * np.cos(2.0 * np.pi * (u @ self._frequencies.T) + self._phases)
        constant = ~self._frequencies.any(axis=1)
        return np.where(constant, 1.0, waves)

    def _position_basis(self, t):
        """DCT-II ``g_0 = 1``, ``g_j(t) = √2 cos(π j (2t+1) / 2τ)``: ``(..., τ)``."""
        j = np.arange(self.sequence_length)
        waves = math.sqrt(2.0) * np.cos(
            np.pi * j * (2.0 * np.asarray(t)[..., None] + 1.0) / (2.0 * self.sequence_length)
        )
        return np.where(j == 0, 1.0, waves)

    def _phi(self, u, t):
        value = self._value_basis(u)[..., self._value_dct[:, 0]]  # (..., r)
        if not self.position_dependent:
            return value
        position = self._position_basis(t)[..., self._value_dct[:, 1]]  # (..., r)
        return value * position

    def _f(self, u):
        return self._embed(u)

    def _F(self, z):
        return self._readout(z)

    def _extra_metadata(self):
        return {
            "basis": {
                "phi": [[list(map(int, k)), int(j)] for k, j in self._pairs],
                "psi": [
                    [list(map(int, self._pairs[p][0])), int(self._pairs[p][1])]
                    for p in self._pairing
                ],
                "phases": {
                    ",".join(map(str, map(int, k))): float(theta)
                    for k, theta in zip(self._frequencies.tolist(), self._phases)
                    if any(k)
                },
            }
        }


def positional_target(
    d=2,
    tau=16,
    *,
    beta=1.0,
    c_beta=1.0,
    rank=8,
    truncation=64,
    n=4,
    d_out=1,
    position_dependent=True,
    num_features=32,
    embed_bandwidth=1.0,
    readout_bandwidth=0.5,
    name=None,
    description="",
    seed=0,
):
    """A general-d target whose ρ depends on value and position, with a known POD.

    ``ρ((u, t), (v, s)) = Σ_{i≤r} σ_i φ_i(u, t) ψ_i(v, s)``, ``σ_i = c_beta i^{−beta}``,
    with product basis functions ``φ(u, t) = a_k(u) g_j(t)``:

    - ``a_k(u) = √2 cos(2π k·u + θ_k)`` for a non-zero frequency vector
      ``k`` of the half lattice (first non-zero entry positive), ``a_0 = 1``;
      the phases ``θ_k ~ U[0, 2π)`` are seeded; orthonormal on ``[0,1]^d``.
    - ``g_0 = 1``, ``g_j(t) = √2 cos(π j (2t+1) / 2τ)`` (DCT-II), orthonormal
      under the uniform counting measure on ``{0..τ−1}`` (weight ``1/τ``).

    The labels ``(k, j) ≠ (0, 0)`` are taken in order of the degree
    ``‖k‖₁ + j`` (then j, then k); φ_i is the i-th label and ψ_i the
    ``π(i)``-th for a seeded permutation π of ``1..r``. Both families are
    orthonormal under the POD measure, so the σ_i are exactly ρ's singular
    values. With ``position_dependent=False`` only ``j = 0`` is used and ρ is
    a function of the values alone.

    ``f: R^d → R^n`` and ``F: R^n → R^{d_out}`` are random Fourier-feature
    functions (``num_features`` cosines with Gaussian frequencies): draws of
    the Gaussian process with covariance ``exp(−2π² b² ‖u − u'‖²)``, so C^∞,
    with bandwidth ``b = embed_bandwidth`` (f) and ``readout_bandwidth`` (F).

    The random draws (phases, π, f's and F's features) come in that order
    from ``numpy.random.default_rng(seed)``.

    Args:
        d: int. Token dimension. Defaults to 2.
        tau: int. Sequence length τ. Defaults to 16.
        beta, c_beta: float. The POD decay ``σ_i = c_beta i^{−beta}``.
            Default 1.0 and 1.0.
        rank: int or ``"inf"``. Defaults to 8.
        truncation: int. Terms kept for ``rank="inf"``. Defaults to 64.
        n: int. Embedding width (output width of f). Defaults to 4.
        d_out: int. Output width. Defaults to 1.
        position_dependent: bool. Defaults to True.
        num_features: int. Random features per function. Defaults to 32.
        embed_bandwidth, readout_bandwidth: float. Frequency scales of f and
            F. Default 1.0 and 0.5.
        name, description: str. Default a name from the parameters and ``""``.
        seed: int. Construction seed. Defaults to 0.

    Returns:
        `Target`.
    """
    return _PositionalTarget(
        d=d,
        tau=tau,
        beta=beta,
        c_beta=c_beta,
        rank=rank,
        truncation=truncation,
        n=n,
        d_out=d_out,
        position_dependent=position_dependent,
        num_features=num_features,
        embed_bandwidth=embed_bandwidth,
        readout_bandwidth=readout_bandwidth,
        name=name,
        description=description,
        seed=seed,
    )


# --------------------------------------------------------------------------
# Linear memory


class _LinearMemoryTarget(Target):
    family = "linear-memory"
    exact_representation = False

    def __init__(self, *, tau, d, kernel, decay, values, name, description, seed):
        tau = check_positive_int("tau", tau)
        d = check_positive_int("d", d)
        seed = check_seed("seed", seed)
        kernel = check_choice("kernel", kernel, ("exp", "uniform", "values"))
        params = {"tau": tau, "d": d, "kernel": kernel}
        if kernel == "exp":
            decay = check_real("decay", decay, low=0, low_open=True)
            memory = np.exp(-decay * np.arange(tau, dtype=np.float64))
            params["decay"] = decay
        elif kernel == "uniform":
            memory = np.random.default_rng(seed).random(tau)
        else:
            memory = np.asarray(values, dtype=np.float64) if values is not None else None
            if memory is None or memory.shape != (tau,):
                raise ValueError(
                    f"`values` must be a sequence of tau={tau} memory values for kernel='values'. "
                    f"Received: values={values!r}"
                )
            if not np.all(np.isfinite(memory)) or memory.min() < 0 or memory[0] <= 0:
                raise ValueError(
                    "`values` must be finite and non-negative with values[0] > 0 "
                    f"(softmax needs one unmasked s ≤ t). Received: values={memory.tolist()}"
                )
            params["values"] = memory.tolist()
        self.memory = memory
        lags = np.arange(tau)[:, None] - np.arange(tau)[None, :]
        # Lower-triangular Toeplitz matrix T[t, s] = m(t − s) for s ≤ t.
        self._toeplitz = np.where(lags >= 0, memory[np.clip(lags, 0, None)], 0.0)
        with np.errstate(divide="ignore"):
            self._log_memory = np.log(memory)
        self._init_common(
            name=name or f"linear-memory({kernel},tau={tau})",
            description=description,
            sequence_length=tau,
            input_dim=d,
            output_dim=d,
            embedding_dim=d,
            position_dependent=True,
            beta=None,
            c_beta=None,
            rank=None,
            truncation=None,
            singular_values=None,
            seed=seed,
            params=params,
        )

    @property
    def normaliser(self):
        """``Z_t = Σ_{k≤t} m(k)``, shape ``(τ,)``: ``H_t = Z_t · representation_t``."""
        return np.cumsum(self.memory)

    def _rho(self, u, v, t, s):
        # ρ(t, s) = log m(t − s) for s ≤ t, −inf otherwise (values ignored).
        lag = np.asarray(t) - np.asarray(s)
        out = np.where(
            lag >= 0, self._log_memory[np.clip(lag, 0, self.sequence_length - 1)], -np.inf
        )
        return np.broadcast_to(out, np.broadcast_shapes(u.shape[:-1], v.shape[:-1], out.shape))

    def _f(self, u):
        return u

    def _F(self, z):
        return z

    def _evaluate(self, x):
        return np.einsum("ts,nsd->ntd", self._toeplitz, x)  # (N, tau, d)

    def _extra_metadata(self):
        return {"memory_kernel": self.memory.tolist()}


def linear_memory_target(
    tau=32, *, d=1, kernel="exp", decay=1.0, values=None, name=None, description="", seed=0
):
    """The linear memory target ``H_t(x) = Σ_{k=0..t} m(k) x(t−k)`` (paper Tables 2, 3).

    Memory kernels:

    - ``kernel="exp"``: ``m(k) = e^{−decay·k}`` (Table 2 with ``decay = 1``,
      ``τ = 32``);
    - ``kernel="uniform"``: ``m(k) ~ U[0,1]`` i.i.d., drawn with
      ``numpy.random.default_rng(seed).random(τ)`` (Table 3: a kernel with no
      temporal order);
    - ``kernel="values"``: the τ given ``values``.

    ``__call__`` evaluates ``H`` exactly (a causal convolution). The
    representation is exact only up to a per-position factor: with
    ``ρ(t, s) = log m(t−s)`` for ``s ≤ t`` and ``−inf`` otherwise (ρ ignores the
    values; ``ρ(t, s) = −(t−s)`` for Table 2), ``f = F = id``, the attention
    weights ``softmax_s ρ = m(t−s)/Z_t`` are exactly the normalised memory, and

        ``H_t(x) = Z_t · Σ_s softmax_s[ρ(t, s)] x(s)``,  ``Z_t = Σ_{k≤t} m(k)``.

    No token-wise ``F`` can supply ``Z_t`` (it depends on t), which is why
    ``exact_representation`` is False: `Target.representation` returns the
    normalised average, `normaliser` returns ``Z_t``. ρ is masked (``−inf``),
    so it has no finite POD: ``beta``, ``c_beta`` and ``rank`` are None.

    Args:
        tau: int. Sequence length τ. Defaults to 32.
        d: int. Token dimension (``d_out = d``, the kernel acts per
            coordinate). Defaults to 1.
        kernel: ``"exp"``, ``"uniform"`` or ``"values"``. Defaults to ``"exp"``.
        decay: float. Rate of the exponential kernel. Defaults to 1.0.
        values: sequence of τ floats for ``kernel="values"``.
        name, description: str.
        seed: int. Seed of the uniform kernel. Defaults to 0.

    Returns:
        `Target`.
    """
    return _LinearMemoryTarget(
        tau=tau,
        d=d,
        kernel=kernel,
        decay=decay,
        values=values,
        name=name,
        description=description,
        seed=seed,
    )


# --------------------------------------------------------------------------
# Recipes and presets

# Modules that define more families (a module-level ``FAMILIES`` dict of
# their own). They import this module for `Target`, so they are imported on
# the registry's first use, never at import time (no import cycle).
_FAMILY_MODULES = ("tfapprox.memory",)


class _FamilyRegistry(collections.abc.Mapping):
    """``{family: generator}``: this module's families, then those of `_FAMILY_MODULES`.

    A read-only mapping that imports the other family modules on first
    access, so the registry is complete whatever was imported first.
    """

    def __init__(self, builtin, modules):
        self._builtin = dict(builtin)
        self._modules = tuple(modules)
        self._families = None

    def _all(self):
        if self._families is None:
            families = dict(self._builtin)
            for module in self._modules:
                families.update(importlib.import_module(module).FAMILIES)
            self._families = families
        return self._families

    def __getitem__(self, family):
        return self._all()[family]

    def __iter__(self):
        return iter(self._all())

    def __len__(self):
        return len(self._all())

    def __repr__(self):
        return f"FAMILIES({', '.join(self)})"


#: The generator of each family, by the ``family`` key of a recipe
#: (with the sparse-memory families of `tfapprox.memory`).
FAMILIES = _FamilyRegistry(
    {
        "fig5": fig5_target,
        "bilinear": bilinear_target,
        "positional": positional_target,
        "linear-memory": linear_memory_target,
    },
    _FAMILY_MODULES,
)


def make_target(family, params=None, *, seed=0, name=None, description=""):
    """Build a target of ``family`` (a key of `FAMILIES`) from a params dict.

    >>> make_target("fig5", {"beta": 0.55, "rank": "inf"}).truncation
    64
    """
    if not isinstance(family, str) or family not in FAMILIES:
        raise ValueError(f"unknown target family {family!r}. Known families: {', '.join(FAMILIES)}")
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise TypeError(f"`params` must be a dict. Received: params={params!r}")
    params = dict(params)
    if params.get("truncation") is None:
        params.pop("truncation", None)
    try:
        return FAMILIES[family](**params, seed=seed, name=name, description=description)
    except TypeError as err:
        if "unexpected keyword" in str(err):
            raise ValueError(f"bad parameter for target family {family!r}: {err}") from None
        raise


def from_dict(config):
    """Rebuild a target from `Target.to_dict` output, a preset recipe or a dataset's metadata.

    A dataset written by `Target.sample` keeps the target under ``"target"``;
    when that key is present it is used.
    """
    if not isinstance(config, dict):
        raise TypeError(f"`config` must be a dict. Received: {type(config).__name__}")
    if isinstance(config.get("target"), dict):
        config = config["target"]
    family = config.get("family")
    if family == "custom":
        raise ValueError(
            "a Target built from callables (family 'custom') has no recipe and cannot be "
            "rebuilt from its metadata"
        )
    if family is None:
        raise ValueError(f"`config` has no target `family`; found keys {sorted(config)}")
    return make_target(
        family,
        config.get("params", {}),
        seed=config.get("seed") or 0,
        name=config.get("name"),
        description=config.get("description", ""),
    )


def _preset_recipes():
    """``{name: recipe}`` of the bundled presets, sorted by name."""
    recipes = {}
    for entry in importlib.resources.files("tfapprox_data").iterdir():
        if not entry.name.endswith(".json"):
            continue
        try:
            recipe = json.loads(entry.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise ValueError(
                f"bundled data file {entry.name} is corrupt ({err}); reinstall tfapprox"
            ) from None
        if isinstance(recipe, dict) and recipe.get("format") == PRESET_FORMAT:
            recipes[recipe["name"]] = recipe
    return dict(sorted(recipes.items()))


def preset_names():
    """The names of the bundled presets, sorted."""
    return tuple(_preset_recipes())


def load_preset(name):
    """The `Target` of the bundled preset ``name``.

    Raises:
        ValueError: unknown ``name`` (the message lists the known presets).
    """
    if not isinstance(name, str):
        raise TypeError(f"`name` must be a preset name (str). Received: name={name!r}")
    recipes = _preset_recipes()
    if name not in recipes:
        raise ValueError(f"unknown preset {name!r}. Known presets: {', '.join(recipes)}")
    return _build_preset(recipes[name])


def _build_preset(recipe):
    return make_target(
        recipe["family"],
        recipe.get("params", {}),
        seed=recipe.get("seed", 0),
        name=recipe["name"],
        description=recipe.get("description", ""),
    )


def list_presets():
    """One dict per bundled preset: ``name``, ``description`` and the target's key numbers.

    Keys: ``name``, ``description``, ``family``, ``sequence_length``,
    ``input_dim``, ``output_dim``, ``position_dependent``, ``beta``,
    ``c_beta``, ``rank`` (int, ``"inf"`` or None), ``truncation``.
    """
    rows = []
    for recipe in _preset_recipes().values():
        meta = _build_preset(recipe).metadata
        rows.append(
            {
                key: meta[key]
                for key in (
                    "name",
                    "description",
                    "family",
                    "sequence_length",
                    "input_dim",
                    "output_dim",
                    "position_dependent",
                    "beta",
                    "c_beta",
                    "rank",
                    "truncation",
                )
            }
        )
    return rows
