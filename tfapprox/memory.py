"""Targets with sparse memory: paper B's Types I, II and III.

Wang & E (NeurIPS 2024) measure what a Transformer's layers, heads,
dot-product attention (DP) and relative position encoding (RPE) buy on
causal sequence-to-sequence targets whose output at time t reads a few
tokens of the past:

- **Type I, fixed sparse memory** (`fixed_memory_target`):
  ``y_t = f(x_{t−T_1}, …, x_{t−T_M})`` with fixed lags ``T_1 < … < T_M``
  (lag 0 is the current token).
- **Type II, adaptive sparse memory** (`adaptive_memory_target`): the lags
  depend on the tokens, ``t_1 = g_1(x_t)``, ``t_2 = g_2(x_t, x_{t−t_1})``, …
  (K nested levels); the smallest case ``y_t = x_{t−g(x_t)}``.
- **Type III, essentially sparse memory** (`kernel_memory_target`):
  ``y_t = f((x∗ρ_1)_t, …, (x∗ρ_M)_t)``, ``(x∗ρ)_t = Σ_{s≥0} x_{t−s} ρ(s)``
  with exponentially or polynomially decaying kernels ρ.

Conventions shared by the three types:

- Inputs ``x`` have shape ``(N, τ, d)``, outputs ``(N, τ, d_out)``; the map is
  causal and tokens before the start of the sequence count as 0
  (``x_{t−T} = 0`` for ``t < T``).
- Lags are counted in steps, ``0 ≤ T < τ``.
- `Target.sample` draws inputs from the target's own distribution: ``"sign"``
  (x ∈ {±1} i.i.d. uniform, paper B's experiments), ``"uniform"`` (U[−1,1]:
  ‖x_t‖ ≤ 1 as in paper B's theory) or ``"ternary"`` ({−1, 0, 1}, Type II).
- Random parts (ReLU readout weights) come from
  ``numpy.random.default_rng(seed)``; the true lags, lag maps, kernels and
  weights are in ``metadata["memory"]`` (JSON-ready), and ``params`` with
  ``seed`` rebuild the target (`tfapprox.targets.from_dict`).

These targets are evaluated directly. Thm 4.1 of paper A gives each of
them a representation form, but not a closed-form one, so `MemoryTarget`
has no kernel ρ: ``rho``, ``logits``, ``attention`` and ``representation``
raise `ValueError`, and ``beta``, ``c_beta`` and ``rank`` are None.

**Registry.** The families ``"fixed-memory"``, ``"adaptive-memory"`` and
``"kernel-memory"`` (`FAMILIES` here) are part of
`tfapprox.targets.FAMILIES`, which imports this module on first use; so
`tfapprox.targets.make_target`, `~tfapprox.targets.load_preset`,
`~tfapprox.targets.from_dict` and ``tfapprox target list/make`` know them.
This module imports `tfapprox.targets` (for `Target`), never the reverse at
import time.

This module needs only NumPy.

Example:

>>> from tfapprox import targets
>>> target = targets.load_preset("memory-relu-3")
>>> target.metadata["memory"]["lags"], target.input_distribution
([12, 28, 57], 'uniform{-1,1}')
>>> data = target.sample(4, seed=0)
>>> data.x.shape, data.y.shape, sorted(set(data.x.ravel().tolist()))
((4, 64, 1), (4, 64, 1), [-1.0, 1.0])
"""

import numbers

import numpy as np

from tfapprox._checks import check_choice, check_int, check_positive_int, check_real, check_seed
from tfapprox.targets import Target

__all__ = [
    "MemoryTarget",
    "fixed_memory_target",
    "adaptive_memory_target",
    "kernel_memory_target",
    "FAMILIES",
    "INPUTS",
]

#: Input distributions of `MemoryTarget.sample`, by name, and how the
#: metadata records them.
INPUTS = {
    "sign": "uniform{-1,1}",
    "uniform": "uniform[-1,1]",
    "ternary": "uniform{-1,0,1}",
}


def _draw(inputs, rng, shape):
    """Float64 inputs of ``shape`` from the distribution named ``inputs``."""
    if inputs == "sign":
        return 2.0 * rng.integers(0, 2, size=shape) - 1.0
    if inputs == "ternary":
        return rng.integers(-1, 2, size=shape).astype(np.float64)
    return rng.uniform(-1.0, 1.0, size=shape)


class MemoryTarget(Target):
    """A causal target given by its memory (paper B), evaluated directly.

    The base of the three sparse-memory families; build one with
    `fixed_memory_target`, `adaptive_memory_target` or
    `kernel_memory_target`. It has no closed-form kernel ρ (see the module
    docstring); everything else (``__call__``, `sample`, ``metadata``,
    ``to_dict``) is `Target`'s.
    """

    exact_representation = False

    def _init_memory(self, *, name, description, tau, d, d_out, inputs, seed, params):
        self.inputs = check_choice("inputs", inputs, tuple(INPUTS))
        self._init_common(
            name=name,
            description=description,
            sequence_length=tau,
            input_dim=d,
            output_dim=d_out,
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
    def input_distribution(self):
        """How `sample` draws the inputs (`INPUTS`)."""
        return INPUTS[self.inputs]

    def _draw_inputs(self, rng, shape):
        return _draw(self.inputs, rng, shape)

    @property
    def pod_measure(self):
        """None: a sparse-memory target has no closed-form kernel ρ."""
        return None

    def _no_kernel(self, *args, **kwargs):
        raise ValueError(
            f"target {self.name!r} ({self.family}) has sparse memory and no closed-form "
            "kernel rho; evaluate it with target(x) or sample it"
        )

    rho = logits = attention = representation = _no_kernel

    def _extra_metadata(self):
        return {"memory": self._memory_metadata()}

    def _feature_width(self):
        weights = getattr(self, "weights", None)
        return self.input_dim * self.sequence_length if weights is None else weights.shape[0]


# --------------------------------------------------------------------------
# Shared parts


def _check_lag(name, value, tau):
    """An int lag in ``[0, τ)``."""
    lag = check_int(name, value, minimum=0)
    if lag >= tau:
        raise ValueError(
            f"`{name}` must hold lags in [0, tau) = [0, {tau}). Received: {name}={value!r}"
        )
    return lag


def _check_lag_list(name, values, tau, *, length=None):
    """A list of int lags in ``[0, τ)`` (of ``length`` entries when given)."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise TypeError(f"`{name}` must be a sequence of int lags. Received: {name}={values!r}")
    values = list(values)
    if not values or (length is not None and len(values) != length):
        what = f"{length} int lags" if length is not None else "a non-empty sequence of int lags"
        raise ValueError(f"`{name}` must be {what}. Received: {name}={values!r}")
    for value in values:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral):
            raise TypeError(
                f"`{name}` must hold ints. Received: {name}={values!r} "
                f"(an entry of type {type(value).__name__})"
            )
        if value < 0 or value >= tau:
            raise ValueError(
                f"`{name}` must hold lags in [0, tau) = [0, {tau}). Received: {name}={values!r}"
            )
    return [int(v) for v in values]


def _lagged(x, lag):
    """``x_{t−lag}`` for every t, zero before the start: ``(N, τ, d)``."""
    out = np.zeros_like(x)
    out[:, lag:] = x[:, : x.shape[1] - lag]
    return out


def _relu_weights(seed, width, fan_in):
    """``w_k ~ N(0, I)``: ``(width, fan_in)`` from ``default_rng(seed)``."""
    return np.random.default_rng(seed).standard_normal((width, fan_in))


def _relu_readout(weights, z):
    """``Σ_k ReLU(w_k · z_t)``: ``(N, τ, 1)`` for ``z`` ``(N, τ, fan_in)``."""
    return np.maximum(z @ weights.T, 0.0).sum(axis=-1, keepdims=True)  # (N, tau, 1)


def _check_width(readout, width):
    """The ReLU count K: default 64 for ``readout="relu"``, None otherwise."""
    if readout != "relu":
        if width is not None:
            raise ValueError(
                f"`width` applies to readout='relu' only. Received: width={width!r} "
                f"with readout={readout!r}"
            )
        return None
    return 64 if width is None else check_positive_int("width", width)


class _ReadoutTarget(MemoryTarget):
    """Types I and III: a readout of M memories per step, ``(N, τ, M, d) -> (N, τ, d_out)``."""

    def _init_readout(self, *, readout, width, memories, seed, **common):
        """Set ``readout`` and the ReLU ``weights`` (``width`` rows), then `_init_memory`."""
        self.readout = readout
        self.weights = None if width is None else _relu_weights(seed, width, memories * common["d"])
        params = dict(common.pop("params"))
        if width is not None:
            params["width"] = width
        d_out = common["d"] if readout in ("sum", "linear") else 1
        self._init_memory(d_out=d_out, seed=seed, params=params, **common)

    def _read(self, memories):
        """Apply the readout to ``memories`` ``(N, τ, M, d)``."""
        if self.readout == "relu":
            return _relu_readout(self.weights, memories.reshape(memories.shape[:2] + (-1,)))
        if self.readout == "parity":
            return np.prod(np.sign(memories), axis=2)  # (N, tau, 1)
        return memories.sum(axis=2)  # (N, tau, d)

    def _readout_metadata(self):
        return {} if self.weights is None else {"relu_weights": self.weights.tolist()}


# --------------------------------------------------------------------------
# Type I: fixed sparse memory


class _FixedMemoryTarget(_ReadoutTarget):
    family = "fixed-memory"

    def __init__(self, *, tau, lags, readout, width, inputs, d, name, description, seed):
        tau = check_positive_int("tau", tau)
        d = check_positive_int("d", d)
        seed = check_seed("seed", seed)
        lags = _check_lag_list("lags", lags, tau)
        if any(b <= a for a, b in zip(lags, lags[1:])):
            raise ValueError(f"`lags` must be strictly increasing. Received: lags={lags!r}")
        readout = check_choice("readout", readout, ("relu", "sum", "parity"))
        width = _check_width(readout, width)
        inputs = check_choice("inputs", inputs, ("sign", "uniform"))
        if readout == "parity" and (inputs != "sign" or d != 1):
            raise ValueError(
                "readout='parity' is a Boolean function of inputs in {-1, 1}: it needs "
                f"inputs='sign' and d=1. Received: inputs={inputs!r}, d={d!r}"
            )
        self.lags = lags
        self._init_readout(
            readout=readout,
            width=width,
            memories=len(lags),
            seed=seed,
            name=name or f"fixed-memory({readout},lags={','.join(map(str, lags))},tau={tau})",
            description=description,
            tau=tau,
            d=d,
            inputs=inputs,
            params={"tau": tau, "lags": lags, "readout": readout, "inputs": inputs, "d": d},
        )

    def memories(self, x):
        """The memories ``(x_{t−T_1}, …, x_{t−T_M})``: ``(N, τ, M, d)`` for ``x`` ``(N, τ, d)``."""
        x = self._check_batch(x)
        return np.stack([_lagged(x, lag) for lag in self.lags], axis=2)  # (N, tau, M, d)

    def _evaluate(self, x):
        return self._read(np.stack([_lagged(x, lag) for lag in self.lags], axis=2))

    def _memory_metadata(self):
        formula = {
            "relu": "y_t = sum_k relu(w_k . (x_{t-T_1}, ..., x_{t-T_M})), w_k ~ N(0, I)",
            "sum": "y_t = sum_i x_{t-T_i}",
            "parity": "y_t = prod_i sign(x_{t-T_i})",
        }[self.readout]
        return {
            "type": "I",
            "lags": list(self.lags),
            "readout": self.readout,
            "formula": formula,
            **self._readout_metadata(),
        }


def fixed_memory_target(
    tau=64,
    lags=(12, 28, 57),
    *,
    readout="relu",
    width=None,
    inputs="sign",
    d=1,
    name=None,
    description="",
    seed=0,
):
    """Paper B's Type I target: fixed sparse memory, ``y_t = f(x_{t−T_1}, …, x_{t−T_M})``.

    Readouts ``f`` (``M`` = ``len(lags)``; ``x_{t−T} = 0`` for ``t < T``):

    - ``"relu"``: ``y_t = Σ_{k≤K} ReLU(w_k · (x_{t−T_1}, …, x_{t−T_M}))`` with
      ``w_k ~ N(0, I_{M·d})`` drawn from ``default_rng(seed)`` (K = ``width``
      rows, memories concatenated in lag order); ``d_out = 1``. Paper B's
      Tables 3, 4 and 6 (K = 64).
    - ``"sum"``: ``y_t = Σ_i x_{t−T_i}``; ``d_out = d``. Table 5.
    - ``"parity"``: ``y_t = Π_i sign(x_{t−T_i})`` (0 while a lag reaches
      before the start), a sparse Boolean function; needs ``inputs="sign"``
      and ``d = 1``.

    Put 0 in ``lags`` to include the current token ``x_t``. Paper B uses
    ``τ = 1000`` and lags 48, 56, 99; the defaults scale that to ``τ = 64``
    with lags 12, 28, 57 (far apart relative to τ).

    Args:
        tau: int. Sequence length τ. Defaults to 64.
        lags: sequence of ints, strictly increasing, in ``[0, τ)``. Defaults
            to ``(12, 28, 57)``.
        readout: ``"relu"``, ``"sum"`` or ``"parity"``. Defaults to ``"relu"``.
        width: int. The number K of ReLUs (``readout="relu"`` only).
            Defaults to 64.
        inputs: ``"sign"`` (x ∈ {±1}) or ``"uniform"`` (U[−1,1]), the
            distribution `Target.sample` draws. Defaults to ``"sign"``.
        d: int. Token dimension. Defaults to 1.
        name, description: str. Default a name from the parameters and ``""``.
        seed: int. Seed of the ReLU weights. Defaults to 0.

    Returns:
        `MemoryTarget`.

    Example:

    >>> target = fixed_memory_target(tau=6, lags=[0, 2], readout="sum")
    >>> x = np.arange(1.0, 7.0).reshape(1, 6, 1)
    >>> target(x)[0, :, 0].tolist()  # x_t + x_{t-2}
    [1.0, 2.0, 4.0, 6.0, 8.0, 10.0]
    """
    return _FixedMemoryTarget(
        tau=tau,
        lags=lags,
        readout=readout,
        width=width,
        inputs=inputs,
        d=d,
        name=name,
        description=description,
        seed=seed,
    )


# --------------------------------------------------------------------------
# Type II: adaptive sparse memory


class _AdaptiveMemoryTarget(MemoryTarget):
    family = "adaptive-memory"

    def __init__(self, *, tau, lag_map, hops, readout, name, description, seed):
        tau = check_positive_int("tau", tau)
        seed = check_seed("seed", seed)
        lag_map = _check_lag_list("lag_map", lag_map, tau, length=3)
        if isinstance(hops, (str, bytes)) or not hasattr(hops, "__iter__"):
            raise TypeError(f"`hops` must be a sequence of hop tables. Received: hops={hops!r}")
        hops = [_check_lag_list("hops", hop, tau, length=3) for hop in hops]
        longest = max(lag_map) + sum(max(hop) for hop in hops)
        if longest >= tau:
            raise ValueError(
                f"`hops` reach lag {longest} >= tau={tau} (max(lag_map) + the largest hops). "
                f"Received: lag_map={lag_map!r}, hops={hops!r}"
            )
        self.lag_map = lag_map
        self.hops = hops
        self.readout = check_choice("readout", readout, ("last", "sum"))
        self._init_memory(
            name=name or f"adaptive-memory(levels={len(hops)},tau={tau})",
            description=description,
            tau=tau,
            d=1,
            d_out=1,
            inputs="ternary",
            seed=seed,
            params={"tau": tau, "lag_map": lag_map, "hops": hops, "readout": self.readout},
        )

    @property
    def levels(self):
        """K, the number of nested levels (``len(hops)``)."""
        return len(self.hops)

    def _chase(self, x):
        """``(lags, values)``, each ``(N, τ, K+1)``: the lags ``t_k`` and tokens ``x_{t−t_k}``."""
        tokens = x[..., 0]  # (N, tau)
        if not np.all(np.isin(tokens, (-1.0, 0.0, 1.0))):
            raise ValueError(
                f"`x` must hold tokens in {{-1, 0, 1}} for the adaptive target {self.name!r}; "
                f"found values in [{tokens.min()}, {tokens.max()}]"
            )
        table = np.asarray(self.lag_map)
        positions = np.arange(self.sequence_length)
        lag = table[tokens.astype(np.int64) + 1]  # (N, tau): t_1 = g_1(x_t)
        lags, values = [], []
        for level in range(self.levels + 1):
            if level:
                hop = np.asarray(self.hops[level - 1])
                lag = lag + hop[values[-1].astype(np.int64) + 1]  # t_k = t_{k-1} + δ(x_{t-t_{k-1}})
            source = positions - lag  # (N, tau)
            value = np.take_along_axis(tokens, np.clip(source, 0, None), axis=1)
            lags.append(lag)
            values.append(np.where(source >= 0, value, 0.0))
        return np.stack(lags, axis=-1), np.stack(values, axis=-1)  # (N, tau, K+1)

    def memory_lags(self, x):
        """The adaptive lags ``t_1, …, t_{K+1}`` at every t: int ``(N, τ, K+1)``."""
        return self._chase(self._check_batch(x))[0]

    def _evaluate(self, x):
        values = self._chase(x)[1]  # (N, tau, K+1)
        if self.readout == "last":
            return values[..., -1:]
        return values.sum(axis=-1, keepdims=True)  # (N, tau, 1)

    def _memory_metadata(self):
        return {
            "type": "II",
            "levels": self.levels,
            "lag_map": list(self.lag_map),
            "hops": [list(hop) for hop in self.hops],
            "readout": self.readout,
            "formula": (
                "t_1 = lag_map[x_t + 1]; t_{k+1} = t_k + hops[k-1][x_{t-t_k} + 1]; "
                + ("y_t = x_{t-t_{K+1}}" if self.readout == "last" else "y_t = sum_k x_{t-t_k}")
            ),
        }


def adaptive_memory_target(
    tau=32, *, lag_map=(0, 1, 2), hops=(), readout="last", name=None, description="", seed=0
):
    """Paper B's Type II target: adaptive sparse memory with K nested levels.

    Tokens are ``x_t ∈ {−1, 0, 1}`` (``d = 1``; `Target.sample` draws them
    i.i.d. uniform). The lags depend on the tokens:

        ``t_1 = g_1(x_t) = lag_map[x_t + 1]``,
        ``t_{k+1} = g_{k+1}(x_t, x_{t−t_k}) = t_k + hops[k−1][x_{t−t_k} + 1]``
        for ``k = 1..K``, ``K = len(hops)``,

    and ``y_t = x_{t−t_{K+1}}`` (``readout="last"``) or
    ``y_t = Σ_{k≤K+1} x_{t−t_k}`` (``readout="sum"``), with ``x_s = 0`` for
    ``s < 0``. ``t_1`` is a function of ``x_t`` alone (K = 0 is paper B's
    non-nested case); each further level is a function of ``x_t`` and the
    token just read, so K counts the nested levels of paper B's
    ``t_2 = g_2(x_t, x_{t−t_1})``, …. The lag maps are additive hops (three
    numbers per level), a simple special case of paper B's arbitrary g_k.

    The defaults are paper B's smallest example, ``y_t = x_{t−g(x_t)}`` with
    ``g(−1) = 0``, ``g(0) = 1``, ``g(1) = 2``: no one-layer DP-free model
    gets its error below 2/3.

    Args:
        tau: int. Sequence length τ. Defaults to 32.
        lag_map: three ints in ``[0, τ)``: ``g_1`` at ``x_t = −1, 0, 1``.
            Defaults to ``(0, 1, 2)``.
        hops: K sequences of three non-negative ints, the hop of level k
            after reading −1, 0, 1. Every chain must stay below τ:
            ``max(lag_map) + Σ_k max(hops[k]) < τ``. Defaults to ``()``.
        readout: ``"last"`` or ``"sum"``. Defaults to ``"last"``.
        name, description: str. Default a name from the parameters and ``""``.
        seed: int. Recorded only: this family has no random parts.
            Defaults to 0.

    Returns:
        `MemoryTarget` with `memory_lags` (the lags at each t).

    Example:

    >>> target = adaptive_memory_target(tau=5)
    >>> x = np.array([1.0, 0.0, -1.0, 1.0, 0.0]).reshape(1, 5, 1)
    >>> target(x)[0, :, 0].tolist()  # x_{t - g(x_t)}
    [0.0, 1.0, -1.0, 0.0, 1.0]
    >>> target.memory_lags(x)[0, :, 0].tolist()
    [2, 1, 0, 2, 1]
    """
    return _AdaptiveMemoryTarget(
        tau=tau,
        lag_map=lag_map,
        hops=hops,
        readout=readout,
        name=name,
        description=description,
        seed=seed,
    )


# --------------------------------------------------------------------------
# Type III: essentially sparse memory


def _kernel_values(kind, decay, tau):
    """``ρ(s)`` for ``s = 0..τ−1``: ``e^{−decay·s}`` or ``(s+1)^{−decay}``."""
    lags = np.arange(tau, dtype=np.float64)
    return np.exp(-decay * lags) if kind == "exp" else (lags + 1.0) ** (-decay)


def _check_kernels(kernels):
    """A non-empty list of ``{"kind": "exp"|"power", "decay": float > 0}``."""
    if isinstance(kernels, dict) or not isinstance(kernels, (list, tuple)) or not kernels:
        raise ValueError(
            "`kernels` must be a non-empty list of {'kind': 'exp' or 'power', 'decay': > 0}. "
            f"Received: kernels={kernels!r}"
        )
    out = []
    for kernel in kernels:
        if not isinstance(kernel, dict) or set(kernel) != {"kind", "decay"}:
            raise ValueError(
                "`kernels` entries must be dicts with keys 'kind' and 'decay'. "
                f"Received: kernels={kernels!r}"
            )
        kind = check_choice("kernels[].kind", kernel["kind"], ("exp", "power"))
        decay = check_real("kernels[].decay", kernel["decay"], low=0, low_open=True)
        out.append({"kind": kind, "decay": decay})
    return out


class _KernelMemoryTarget(_ReadoutTarget):
    family = "kernel-memory"

    def __init__(self, *, tau, kernels, readout, width, inputs, d, name, description, seed):
        tau = check_positive_int("tau", tau)
        d = check_positive_int("d", d)
        seed = check_seed("seed", seed)
        kernels = _check_kernels(kernels)
        readout = check_choice("readout", readout, ("linear", "relu"))
        width = _check_width(readout, width)
        inputs = check_choice("inputs", inputs, ("uniform", "sign"))
        self.kernels = kernels
        self.kernel_values = np.stack(
            [_kernel_values(k["kind"], k["decay"], tau) for k in kernels]
        )  # (M, tau)
        lag = np.arange(tau)[:, None] - np.arange(tau)[None, :]
        # Lower-triangular Toeplitz matrices T_i[t, s] = ρ_i(t − s) for s ≤ t.
        self._toeplitz = np.where(
            lag >= 0, self.kernel_values[:, np.clip(lag, 0, None)], 0.0
        )  # (M, tau, tau)
        kinds = ",".join(f"{k['kind']}:{k['decay']:g}" for k in kernels)
        self._init_readout(
            readout=readout,
            width=width,
            memories=len(kernels),
            seed=seed,
            name=name or f"kernel-memory({readout},{kinds},tau={tau})",
            description=description,
            tau=tau,
            d=d,
            inputs=inputs,
            params={"tau": tau, "kernels": kernels, "readout": readout, "inputs": inputs, "d": d},
        )

    def convolutions(self, x):
        """``(x∗ρ_i)_t`` for every kernel: ``(N, τ, M, d)`` for ``x`` ``(N, τ, d)``."""
        return self._convolve(self._check_batch(x))

    def _convolve(self, x):
        return np.einsum("mts,nsd->ntmd", self._toeplitz, x)  # (N, tau, M, d)

    def _evaluate(self, x):
        return self._read(self._convolve(x))

    def _memory_metadata(self):
        return {
            "type": "III",
            "kernels": [
                {**kernel, "values": values.tolist()}
                for kernel, values in zip(self.kernels, self.kernel_values)
            ],
            "readout": self.readout,
            "formula": (
                "(x*rho)_t = sum_{s=0..t} x_{t-s} rho(s), rho(s) = exp(-decay s) (exp) or "
                "(s+1)^(-decay) (power); "
                + (
                    "y_t = sum_i (x*rho_i)_t"
                    if self.readout == "linear"
                    else "y_t = sum_k relu(w_k . ((x*rho_1)_t, ..., (x*rho_M)_t)), w_k ~ N(0, I)"
                )
            ),
            **self._readout_metadata(),
        }


def kernel_memory_target(
    tau=64,
    *,
    kernels=({"kind": "power", "decay": 0.5},),
    readout="linear",
    width=None,
    inputs="uniform",
    d=1,
    name=None,
    description="",
    seed=0,
):
    """Paper B's Type III target: essentially sparse memory through decaying kernels.

    ``y_t = f((x∗ρ_1)_t, …, (x∗ρ_M)_t)``, ``(x∗ρ)_t = Σ_{s=0..t} x_{t−s} ρ(s)``
    (tokens before the start count as 0), with the lag ``s`` counted in steps
    and the kernels

    - ``"exp"``: ``ρ(s) = e^{−decay·s}`` (light tail; lin RPE in paper B),
    - ``"power"``: ``ρ(s) = (s + 1)^{−decay}`` (heavy tail; log RPE).

    Both have ``ρ(0) = 1``: the current token has weight 1. Discretisation:
    paper B's Tables 8–9 use ``y = Σ_s x_s ρ(τ − s)`` with ``ρ(t) = t^{−0.5}``
    and ``e^{−5t}``, time ``t`` in steps and the output read one step after
    the last token, so its lags are ``t = s + 1``: the power law here is
    exactly ``t^{−decay}`` at ``t = s + 1`` (finite at ``s = 0``), and the
    exponential is ``e^{−decay·t}`` at ``t = s + 1`` divided by the constant
    ``e^{−decay}``, so that ``ρ(0) = 1`` as well.

    Readouts:

    - ``"linear"``: ``y_t = Σ_i (x∗ρ_i)_t`` (with one kernel, ``f`` = identity:
      Tables 8–9's target); ``d_out = d``.
    - ``"relu"``: ``y_t = Σ_{k≤K} ReLU(w_k · ((x∗ρ_1)_t, …, (x∗ρ_M)_t))``,
      ``w_k ~ N(0, I_{M·d})`` from ``default_rng(seed)``; ``d_out = 1``.

    Args:
        tau: int. Sequence length τ. Defaults to 64.
        kernels: list of dicts ``{"kind": "exp" or "power", "decay": float > 0}``.
            Defaults to one power law with decay 0.5.
        readout: ``"linear"`` or ``"relu"``. Defaults to ``"linear"``.
        width: int. The number K of ReLUs (``readout="relu"`` only).
            Defaults to 64.
        inputs: ``"uniform"`` (U[−1,1]) or ``"sign"`` (x ∈ {±1}). Defaults
            to ``"uniform"``.
        d: int. Token dimension. Defaults to 1.
        name, description: str. Default a name from the parameters and ``""``.
        seed: int. Seed of the ReLU weights. Defaults to 0.

    Returns:
        `MemoryTarget` with ``kernel_values`` ``(M, τ)`` and `convolutions`.

    Example:

    >>> target = kernel_memory_target(tau=4, kernels=[{"kind": "power", "decay": 1.0}])
    >>> target.kernel_values.round(3).tolist()
    [[1.0, 0.5, 0.333, 0.25]]
    >>> target(np.ones((1, 4, 1)))[0, :, 0].round(3).tolist()  # partial sums of ρ
    [1.0, 1.5, 1.833, 2.083]
    """
    return _KernelMemoryTarget(
        tau=tau,
        kernels=kernels,
        readout=readout,
        width=width,
        inputs=inputs,
        d=d,
        name=name,
        description=description,
        seed=seed,
    )


#: The sparse-memory families, merged into `tfapprox.targets.FAMILIES`.
FAMILIES = {
    "fixed-memory": fixed_memory_target,
    "adaptive-memory": adaptive_memory_target,
    "kernel-memory": kernel_memory_target,
}
