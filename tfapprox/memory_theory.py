"""Paper B's rates for sparse memory in sympy: head allocation and the RPE type to use.

Wang & E (NeurIPS 2024) bound the error of a one-layer, DP-free Transformer
(W_Q = W_K = 0: the attention weights come from the relative position
encoding alone) with H heads, feed-forward width m and any integer rate
n ≥ 1 by ``E_FFN + ‖f‖_Lip · E_Attn`` with ``E_FFN = ‖f‖_Barron / √m``.

**Type I** (fixed sparse memory, y_t = f(x_t, x_{t−T_1}, …, x_{t−T_M}) with
lags 1 ≤ T_1 < … < T_M):

    E_Attn = C(n) / H^n · ( Σ_i w(T_i) )^{n+1},
    w(T) = e^{0.01 T}  (linear RPE, φ(z) = −z)   or   T^{1.01}  (log RPE, φ(z) = −log z).

*How the heads are split.* Memory k served by H_k heads costs
``C(n) w(T_k)^{n+1} / H_k^n`` (the one-memory rate). Minimising the sum
over k under Σ_k H_k = H with a Lagrange multiplier μ
(`derive_allocation`, by `sp.diff` and `sp.solve`):

    n C(n) w_k^{n+1} / H_k^{n+1} = μ   ⇒   H_k = w_k (n C(n)/μ)^{1/(n+1)} ∝ w_k,

and the constraint fixes the factor: ``H_k = H w_k / Σ_i w_i``. Each term is
convex in H_k, so this is the minimum; its value is
``C(n) (Σ_i w_i)^{n+1} / H^n``, which is the Type I rate above. Heads
needed grow exponentially in the lag with the linear RPE and polynomially
with the log RPE. `allocate_heads` rounds the proportional split to
integers that sum to H exactly.

**Type III** (essentially sparse memory, y_t = f((x∗ρ_1)_t, …, (x∗ρ_M)_t)):
when each memory kernel matches the RPE type, one memory costs what a
Type I memory of weight 1 costs, so the same derivation with w_k = 1 gives
H/M heads per memory and

    E_Attn = C(n) M^{n+1} / H^n.

Linear RPE suits exponential kernels ρ(s) ~ e^{−βs} and log RPE suits
power-law kernels ρ(s) ~ s^{−β} (see `kernel_rpe`).

**Which RPE type for given lags.** With equal constants C(n) for both
types (an assumption: the paper does not compare them), the ratio of the
two Type I bounds is ``(Σ e^{0.01 T_i} / Σ T_i^{1.01})^{n+1}``: the
preference depends on the lags only, not on H or n. For one lag,
e^{0.01T} = T^{1.01} at T = −101 W_0(−1/101) ≈ 1.0101 and
T = −101 W_{−1}(−1/101) ≈ 654.94 (`crossover_lags`, solved by sympy):
linear RPE has the smaller bound for lags between the two, log RPE beyond
(and at lag 1).

Symbolic API (sympy, imported on first use): `symbols`, `lag_weight`,
`memory_error`, `derive_allocation`, `type1_attention_expression`,
`total_error_expression`, `type3_attention_expression`, `crossover_expressions`.

Numeric API (plain Python floats, no sympy: the fast path of ``tfapprox
bound --memory/--kernel``): `lag_weights`, `type1_attention_error`,
`type3_attention_error`, `ffn_error`, `total_error`, `allocate_heads`
(`HeadAllocation`), `compare_rpe` (`RPEComparison`), `crossover_lags`,
`parse_kernel` and `kernel_rpe` (`KernelAdvice`).

Example:

>>> from tfapprox import memory_theory as mt
>>> mt.type1_attention_expression("log", 2)
C_n*(T_1**(101/100) + T_2**(101/100))**(n + 1)/H**n
>>> mt.derive_allocation()["heads"]
H*w_k/S
>>> mt.allocate_heads([48, 56, 99], 32, rpe="log").heads
(7, 9, 16)
>>> mt.compare_rpe([48, 56, 99]).preferred
'lin'
>>> [round(t, 4) for t in mt.crossover_lags()]
[1.0101, 654.9387]
"""

import dataclasses
import functools
import math

from tfapprox._checks import check_choice, check_positive_int, check_real

__all__ = [
    "HeadAllocation",
    "KernelAdvice",
    "RPEComparison",
    "RPE_TYPES",
    "allocate_heads",
    "check_lags",
    "compare_rpe",
    "crossover_expressions",
    "crossover_lags",
    "derive_allocation",
    "ffn_error",
    "kernel_rpe",
    "lag_weight",
    "lag_weights",
    "memory_error",
    "parse_kernel",
    "symbols",
    "total_error",
    "total_error_expression",
    "type1_attention_error",
    "type1_report",
    "type1_attention_expression",
    "type3_attention_error",
    "type3_attention_expression",
    "type3_report",
]

RPE_TYPES = ("lin", "log")
KERNEL_KINDS = ("exp", "power")
# The exponents of the lag weights, as in the paper: e^{0.01 T} and T^{1.01}.
LIN_RATE = 0.01
LOG_POWER = 1.01

# ----------------------------------------------------------------------------
# Symbolic API


@functools.cache
def symbols():
    """The sympy symbols of paper B's rates, declared once, all positive.

    ``n`` (rate, integer), ``H`` (heads), ``H_k`` (heads of memory k),
    ``m`` (FFN width), ``M`` (memories, integer), ``C_n`` (the constant
    C(n)), ``lip`` and ``barron`` (‖f‖_Lip, ‖f‖_Barron), ``T`` (a lag),
    ``w_k`` (a memory's weight), ``S`` (Σ_i w_i), ``mu`` (the multiplier).

    >>> s = symbols()
    >>> s.n.is_integer, s.H.is_positive
    (True, True)
    """
    import types

    import sympy as sp

    n, big_m = sp.symbols("n M", positive=True, integer=True)
    heads, heads_k, width, c_n, lip, barron, lag, w_k, total, mu = sp.symbols(
        "H H_k m C_n L_f B_f T w_k S mu", positive=True
    )
    return types.SimpleNamespace(
        n=n,
        M=big_m,
        H=heads,
        H_k=heads_k,
        m=width,
        c_n=c_n,
        lip=lip,
        barron=barron,
        T=lag,
        w=w_k,
        S=total,
        mu=mu,
    )


def lag_weight(rpe, lag=None):
    """The weight w(T) of a lag: ``exp(T/100)`` (lin) or ``T**(101/100)`` (log).

    Args:
        rpe: str. ``"lin"`` or ``"log"``.
        lag: sympy expression or number, or None for the symbol T.

    >>> lag_weight("lin"), lag_weight("log")
    (exp(T/100), T**(101/100))
    """
    import sympy as sp

    check_choice("rpe", rpe, RPE_TYPES)
    lag = symbols().T if lag is None else sp.sympify(lag)
    if rpe == "lin":
        return sp.exp(sp.Rational(1, 100) * lag)
    return lag ** sp.Rational(101, 100)


def memory_error():
    """The cost of one memory of weight w_k served by H_k heads: ``C(n) w_k^{n+1} / H_k^n``.

    >>> memory_error()
    C_n*w_k**(n + 1)/H_k**n
    """
    s = symbols()
    return s.c_n * s.w ** (s.n + 1) / s.H_k**s.n


@functools.cache
def derive_allocation():
    """The head split minimising Σ_k C(n) w_k^{n+1}/H_k^n under Σ_k H_k = H, by sympy.

    Stationarity of the Lagrangian, ``∂/∂H_k [C(n) w_k^{n+1} H_k^{−n}] + μ = 0``,
    solved for H_k (`sp.solve`) gives ``H_k = w_k (n C(n)/μ)^{1/(n+1)}``; the
    ratio H_k/w_k does not depend on w_k (checked: its derivative in w_k
    simplifies to 0), so H_k ∝ w_k. Summing over k, ``(H_k/w_k) S = H`` with
    S = Σ_i w_i fixes μ and gives ``H_k = H w_k / S``. The second derivative
    in H_k is positive (sympy proves it), so the separable objective is convex
    and the stationary point is its minimum. At the minimum each term is
    linear in w_k (second derivative 0, value 0 at w_k = 0), so the sum over
    k is the term with w_k replaced by S: ``C(n) S^{n+1}/H^n``, the Type I rate.

    Returns:
        dict with ``heads`` (H w_k/S), ``ratio`` (H_k/w_k at a given μ),
        ``multiplier`` (μ at the optimum), ``term`` (one memory's cost at the
        optimum), ``minimum`` (C(n) S^{n+1}/H^n), ``is_minimum`` (bool) and
        ``proportional`` (bool: H_k/w_k free of w_k).

    >>> d = derive_allocation()
    >>> d["minimum"], d["is_minimum"], d["proportional"]
    (C_n*S**(n + 1)/H**n, True, True)
    """
    import sympy as sp

    s = symbols()
    cost = memory_error()
    roots = sp.solve(sp.Eq(sp.diff(cost, s.H_k) + s.mu, 0), s.H_k)
    if len(roots) != 1:
        raise RuntimeError(f"expected one stationary point in H_k, sympy found {roots}")
    ratio = sp.powdenest(sp.expand_power_base(roots[0] / s.w, force=True), force=True)
    proportional = sp.simplify(sp.diff(ratio, s.w)) == 0
    multipliers = sp.solve(sp.Eq(ratio * s.S, s.H), s.mu)
    if len(multipliers) != 1:
        raise RuntimeError(f"expected one multiplier, sympy found {multipliers}")
    heads = sp.simplify(sp.powdenest(roots[0].subs(s.mu, multipliers[0]), force=True))
    term = sp.simplify(sp.powdenest(cost.subs(s.H_k, heads), force=True))
    linear = sp.simplify(sp.diff(term, s.w, 2)) == 0 and sp.simplify(term.subs(s.w, 0)) == 0
    if not linear:
        raise RuntimeError(f"the optimal cost of a memory is not linear in w_k: {term}")
    minimum = sp.powsimp(sp.expand_power_base(term.subs(s.w, s.S), force=True), force=True)
    convex = sp.diff(cost, s.H_k, 2).is_positive is True
    return {
        "heads": heads,
        "ratio": ratio,
        "multiplier": multipliers[0],
        "term": term,
        "minimum": minimum,
        "is_minimum": bool(convex),
        "proportional": bool(proportional),
    }


def _lag_symbols(lags):
    """Sympy lags: ``T_1 … T_M`` symbols for an int M, else the given numbers."""
    import sympy as sp

    if isinstance(lags, int):
        check_positive_int("lags", lags)
        return sp.symbols(f"T_1:{lags + 1}", positive=True)
    return [sp.sympify(lag) for lag in lags]


def type1_attention_expression(rpe, lags):
    """The Type I attention error ``C(n) (Σ_i w(T_i))^{n+1} / H^n`` in sympy.

    The minimum of `derive_allocation` with S = Σ_i w(T_i).

    Args:
        rpe: str. ``"lin"`` or ``"log"``.
        lags: int M (symbols T_1 … T_M) or a sequence of lags (numbers or
            sympy expressions).

    >>> type1_attention_expression("lin", [1, 2])
    C_n*(exp(1/100) + exp(1/50))**(n + 1)/H**n
    """
    s = symbols()
    total = sum(lag_weight(rpe, lag) for lag in _lag_symbols(lags))
    return derive_allocation()["minimum"].subs(s.S, total)


def total_error_expression(attention):
    """``E_FFN + ‖f‖_Lip · E_Attn`` with ``E_FFN = ‖f‖_Barron / √m``.

    >>> total_error_expression(type3_attention_expression())
    B_f/sqrt(m) + C_n*L_f*M**(n + 1)/H**n
    """
    import sympy as sp

    s = symbols()
    return s.barron / sp.sqrt(s.m) + s.lip * attention


def type3_attention_expression():
    """The Type III attention error ``C(n) M^{n+1} / H^n`` in sympy.

    `derive_allocation` with every weight 1 (each memory kernel matched by
    its RPE type costs as much as any other): S = M, H_k = H/M.

    >>> type3_attention_expression()
    C_n*M**(n + 1)/H**n
    """
    s = symbols()
    return derive_allocation()["minimum"].subs(s.S, s.M)


@functools.cache
def crossover_expressions():
    """The lags where e^{0.01T} = T^{1.01}, solved by sympy (Lambert W).

    ``T/100 = (101/100) log T`` has two positive roots: ``−101 W_0(−1/101)``
    ≈ 1.0101 and ``−101 W_{−1}(−1/101)`` ≈ 654.94.

    >>> crossover_expressions()
    (-101*LambertW(-1/101), -101*LambertW(-1/101, -1))
    """
    import sympy as sp

    s = symbols()
    equation = sp.Eq(sp.log(lag_weight("lin")), sp.expand_log(sp.log(lag_weight("log"))))
    roots = sp.solve(equation, s.T)
    return tuple(sorted(roots, key=lambda root: float(sp.N(root))))


# ----------------------------------------------------------------------------
# Numeric API (plain Python: no sympy)


def check_lags(lags):
    """Validate memory lags: positive ints, strictly increasing; return a tuple.

    The log RPE excludes the current token (φ(0) = −∞), so a lag is ≥ 1.

    >>> check_lags([48, 56, 99])
    (48, 56, 99)
    >>> check_lags([56, 48])
    Traceback (most recent call last):
    ...
    ValueError: `lags` must be strictly increasing (T_1 < … < T_M). Received: lags=[56, 48]
    """
    if isinstance(lags, (str, bytes)) or not hasattr(lags, "__iter__"):
        raise TypeError(f"`lags` must be a sequence of positive ints. Received: lags={lags!r}")
    values = tuple(check_positive_int("lags", lag) for lag in lags)
    if not values:
        raise ValueError(f"`lags` must hold at least one lag. Received: lags={list(lags)!r}")
    if any(b <= a for a, b in zip(values, values[1:])):
        raise ValueError(
            f"`lags` must be strictly increasing (T_1 < … < T_M). Received: lags={list(lags)!r}"
        )
    return values


def _log_weight(lag, rpe):
    """``log w(T)``: 0.01 T (lin) or 1.01 log T (log)."""
    return LIN_RATE * lag if rpe == "lin" else LOG_POWER * math.log(lag)


def _log_weight_sum(lags, rpe):
    """``log Σ_i w(T_i)``, computed without overflow (log-sum-exp)."""
    logs = [_log_weight(lag, rpe) for lag in lags]
    top = max(logs)
    return top + math.log(math.fsum(math.exp(value - top) for value in logs))


def lag_weights(lags, rpe):
    """The normalised weights ``w(T_k) / Σ_i w(T_i)`` of the lags (they sum to 1).

    >>> [round(p, 4) for p in lag_weights([10, 20], "lin")]
    [0.475, 0.525]
    """
    lags = check_lags(lags)
    check_choice("rpe", rpe, RPE_TYPES)
    log_total = _log_weight_sum(lags, rpe)
    return [math.exp(_log_weight(lag, rpe) - log_total) for lag in lags]


def _exp_or_inf(log_value):
    return math.exp(log_value) if log_value < 709.0 else math.inf


def _check_rate(rate):
    return check_positive_int("rate", rate)


def type1_attention_error(lags, heads, *, rpe, rate=1, c_n=1.0):
    """The Type I attention error ``C(n) (Σ_i w(T_i))^{n+1} / H^n`` as a float.

    Numeric twin of `type1_attention_expression` (``inf`` past the float range).

    Args:
        lags: sequence of int. Lags 1 ≤ T_1 < … < T_M.
        heads: int. Heads H ≥ 1.
        rpe: str. ``"lin"`` (w = e^{0.01 T}) or ``"log"`` (w = T^{1.01}).
        rate: int. The rate n ≥ 1. Defaults to 1.
        c_n: float. The constant C(n) > 0. Defaults to 1.

    >>> round(type1_attention_error([1, 2], 2, rpe="log"), 6)  # (1 + 2^1.01)² / 2
    4.54183
    """
    lags = check_lags(lags)
    check_choice("rpe", rpe, RPE_TYPES)
    heads = check_positive_int("heads", heads)
    rate = _check_rate(rate)
    c_n = check_real("c_n", c_n, low=0, low_open=True)
    log_value = (rate + 1) * _log_weight_sum(lags, rpe) - rate * math.log(heads)
    return c_n * _exp_or_inf(log_value)


def type3_attention_error(memories, heads, *, rate=1, c_n=1.0):
    """The Type III attention error ``C(n) M^{n+1} / H^n`` as a float.

    Numeric twin of `type3_attention_expression`.

    >>> type3_attention_error(2, 8, rate=2)  # 2³ / 8²
    0.125
    """
    memories = check_positive_int("memories", memories)
    heads = check_positive_int("heads", heads)
    rate = _check_rate(rate)
    c_n = check_real("c_n", c_n, low=0, low_open=True)
    log_value = (rate + 1) * math.log(memories) - rate * math.log(heads)
    if abs(log_value) < 700 and rate < 10_000:
        # Exact integers, one correctly rounded division.
        return c_n * (memories ** (rate + 1) / heads**rate)
    return c_n * (_exp_or_inf(log_value) if log_value >= 0 else math.exp(log_value))


def ffn_error(width, *, barron=1.0):
    """The feed-forward error ``‖f‖_Barron / √m`` of a width-m two-layer ReLU network.

    >>> ffn_error(256, barron=2.0)
    0.125
    """
    width = check_positive_int("width", width)
    barron = check_real("barron", barron, low=0, low_open=True)
    return barron / math.sqrt(width)


def total_error(attention, width, *, lip=1.0, barron=1.0):
    """``E_FFN + ‖f‖_Lip · E_Attn`` (numeric twin of `total_error_expression`).

    >>> total_error(0.5, 256, lip=2.0)  # 1/16 + 2 · 0.5
    1.0625
    """
    lip = check_real("lip", lip, low=0, low_open=True)
    return ffn_error(width, barron=barron) + lip * attention


@dataclasses.dataclass(frozen=True)
class HeadAllocation:
    """Heads per memory for the Type I bound (see `allocate_heads`).

    Attributes:
        lags: tuple of int. The lags T_1 < … < T_M.
        rpe: str. ``"lin"`` or ``"log"``.
        heads: tuple of int. H_k per memory, summing to ``total``.
        quotas: tuple of float. The continuous optimum H w_k / Σ w_i.
        total: int. H.
        rate: int. n.
        bound: float. ``Σ_k w_k^{n+1}/H_k^n`` at ``heads`` (C(n) = 1).
        continuous_bound: float. The same at ``quotas``: ``(Σ w)^{n+1}/H^n``,
            a lower bound for every split (integer or not).
        ratio: float. ``bound / continuous_bound`` ≥ 1: no integer split can
            do better than the rounded one by more than this factor.
    """

    lags: tuple
    rpe: str
    heads: tuple
    quotas: tuple
    total: int
    rate: int
    bound: float
    continuous_bound: float
    ratio: float

    def to_dict(self):
        """A JSON-ready dict; ``allocation`` holds one entry per memory."""
        return {
            "rpe": self.rpe,
            "heads": self.total,
            "rate": self.rate,
            "allocation": [
                {"lag": lag, "heads": k, "quota": q}
                for lag, k, q in zip(self.lags, self.heads, self.quotas)
            ],
            "bound": _finite_or_none(self.bound),
            "continuous_bound": _finite_or_none(self.continuous_bound),
            "ratio": _finite_or_none(self.ratio),
        }


def _finite_or_none(value):
    return value if math.isfinite(value) else None


def _largest_remainder(shares, total):
    """Integers summing to ``total`` by largest remainders, each ≥ 1 (needs total ≥ len).

    ``shares`` are positive and sum to 1. Memories whose quota is below one
    head get one head; the rest share what is left in proportion to their
    shares (repeated until no quota is below one: fixing a memory at one
    head only lowers the others' quotas). Then each remaining memory gets
    the floor of its quota and the heads left over go to the largest
    fractional parts (ties: larger share, then later memory).

    Returns the heads, a tuple of int.
    """
    count = len(shares)
    fixed = set()
    while True:
        free = [k for k in range(count) if k not in fixed]
        left = total - len(fixed)
        mass = math.fsum(shares[k] for k in free)
        quotas = {k: left * shares[k] / mass for k in free}
        low = {k for k in free if quotas[k] < 1}
        if not low:
            break
        fixed |= low
    heads = {k: 1 for k in fixed}
    heads.update({k: math.floor(quotas[k]) for k in free})
    spare = total - sum(heads.values())
    order = sorted(free, key=lambda k: (quotas[k] - heads[k], shares[k], k), reverse=True)
    for k in order[:spare]:
        heads[k] += 1
    return tuple(heads[k] for k in range(count))


def allocate_heads(lags, heads, *, rpe, rate=1):
    """Split H heads among the memories for the Type I bound: integers summing to H.

    The continuous optimum is ``H_k = H w(T_k) / Σ_i w(T_i)`` (derived in
    `derive_allocation`), with w = e^{0.01 T} (lin) or T^{1.01} (log). It is
    rounded by largest remainders: every memory gets at least one head
    (memories whose quota is below one get exactly one, the rest share
    H − #those in proportion), each other memory gets the floor or the
    ceiling of its quota (of those H − # heads, which is q_k when no memory
    is held at one head), and the sum is exactly H. The split is monotone:
    a longer lag never gets fewer heads.

    Guarantee: ``bound = ratio · continuous_bound`` and the continuous
    bound is below every split's bound, so no integer split beats the
    rounded one by more than the factor ``ratio = Σ_k p_k (q_k/H_k)^n``
    (p_k = w_k/Σw, q_k = H p_k the quota). When no memory is held at one
    head, every H_k ≥ ⌊q_k⌋ ≥ 1, so q_k/H_k < 2 and ``ratio < 2^n``.

    Args:
        lags: sequence of int. Lags 1 ≤ T_1 < … < T_M.
        heads: int. H ≥ M (each memory needs a head).
        rpe: str. ``"lin"`` or ``"log"``.
        rate: int. The rate n ≥ 1. Defaults to 1.

    Returns:
        `HeadAllocation`.

    Raises:
        ValueError: H < M (message names ``heads``), bad lags, rpe or rate.

    Example:

    >>> a = allocate_heads([48, 56, 99], 32, rpe="lin")
    >>> a.heads, sum(a.heads)
    ((9, 9, 14), 32)
    >>> [round(q, 3) for q in a.quotas]
    [8.537, 9.248, 14.216]
    """
    lags = check_lags(lags)
    check_choice("rpe", rpe, RPE_TYPES)
    total = check_positive_int("heads", heads)
    rate = _check_rate(rate)
    if total < len(lags):
        raise ValueError(
            f"`heads` must be at least the number of memories ({len(lags)}): each memory "
            f"needs a head. Received: heads={heads!r}"
        )
    shares = lag_weights(lags, rpe)
    split = _largest_remainder(shares, total)
    log_total = _log_weight_sum(lags, rpe)
    # Σ_k w_k^{n+1}/H_k^n = (Σw)^{n+1} Σ_k p_k^{n+1}/H_k^n with p_k = w_k/Σw.
    log_scale = (rate + 1) * log_total
    # In logs, so that a large n neither overflows nor builds huge integers.
    log_terms = [
        (rate + 1) * (_log_weight(lag, rpe) - log_total) - rate * math.log(k)
        for lag, k in zip(lags, split)
    ]
    top = max(log_terms)
    log_relative = top + math.log(math.fsum(math.exp(t - top) for t in log_terms))
    log_continuous = -rate * math.log(total)
    return HeadAllocation(
        lags=lags,
        rpe=rpe,
        heads=split,
        quotas=tuple(total * p for p in shares),
        total=total,
        rate=rate,
        bound=_exp_or_inf(log_scale + log_relative),
        continuous_bound=_exp_or_inf(log_scale + log_continuous),
        ratio=_exp_or_inf(log_relative - log_continuous),
    )


@dataclasses.dataclass(frozen=True)
class RPEComparison:
    """The Type I bounds of the two RPE types at the same H, n and C(n).

    Attributes:
        lags: tuple of int.
        log_sum_lin, log_sum_log: float. ``log Σ e^{0.01 T_i}`` and ``log Σ T_i^{1.01}``.
        preferred: str. The type with the smaller bound (``"lin"`` on a tie).
        log10_ratio_per_rate: float. ``log10(bound_lin/bound_log) / (n+1)``:
            the ratio of the bounds is ``10^((n+1) · this)``.
    """

    lags: tuple
    log_sum_lin: float
    log_sum_log: float
    preferred: str
    log10_ratio_per_rate: float

    def bound_ratio(self, rate=1):
        """``bound_lin / bound_log`` at rate n (``inf`` past the float range)."""
        rate = _check_rate(rate)
        log_ratio = (rate + 1) * (self.log_sum_lin - self.log_sum_log)
        return _exp_or_inf(log_ratio) if log_ratio >= 0 else math.exp(log_ratio)


def compare_rpe(lags):
    """Which RPE type gives the smaller Type I bound for these lags.

    Assumes the same constant C(n) for both types (the paper gives none).
    The ratio of the bounds, ``(Σ e^{0.01 T_i} / Σ T_i^{1.01})^{n+1}``, does
    not depend on H, and its side of 1 does not depend on n: the
    preference depends on the lags only. See `crossover_lags`.

    >>> compare_rpe([48, 56, 99]).preferred, compare_rpe([1000]).preferred
    ('lin', 'log')
    >>> round(compare_rpe([48, 56, 99]).bound_ratio(1), 6)
    0.000818
    """
    lags = check_lags(lags)
    lin = _log_weight_sum(lags, "lin")
    log = _log_weight_sum(lags, "log")
    return RPEComparison(
        lags=lags,
        log_sum_lin=lin,
        log_sum_log=log,
        preferred="lin" if lin <= log else "log",
        log10_ratio_per_rate=(lin - log) / math.log(10),
    )


@functools.cache
def crossover_lags():
    """The two lags where e^{0.01 T} = T^{1.01}, as floats (Newton's method, no sympy).

    Numeric twin of `crossover_expressions` (``−101 W_0(−1/101)`` and
    ``−101 W_{−1}(−1/101)``). For one lag T, linear RPE has the smaller
    Type I bound strictly between the two, log RPE outside.

    >>> [round(t, 6) for t in crossover_lags()]
    [1.010051, 654.938707]
    """

    def g(t):
        return LIN_RATE * t - LOG_POWER * math.log(t)

    def dg(t):
        return LIN_RATE - LOG_POWER / t

    roots = []
    # g is convex with its minimum at T = 101; one root on each side.
    for t in (1.0, 1000.0):
        for _ in range(100):
            step = g(t) / dg(t)
            t -= step
            if abs(step) <= 1e-15 * t:
                break
        roots.append(t)
    return tuple(roots)


def parse_kernel(text):
    """``"exp:5"`` → ``("exp", 5.0)``, ``"power:0.5"`` → ``("power", 0.5)``.

    ``exp:β`` is ρ(s) ~ e^{−βs} and ``power:β`` is ρ(s) ~ s^{−β}, β > 0.

    >>> parse_kernel("power:0.5")
    ('power', 0.5)
    >>> parse_kernel("foo:1")
    Traceback (most recent call last):
    ...
    ValueError: `kernel` must be exp:BETA or power:BETA with BETA > 0. Received: kernel='foo:1'
    """
    usage = f"`kernel` must be exp:BETA or power:BETA with BETA > 0. Received: kernel={text!r}"
    kind, sep, value = str(text).strip().partition(":")
    if not sep or kind not in KERNEL_KINDS:
        raise ValueError(usage)
    try:
        beta = float(value)
    except ValueError:
        raise ValueError(usage) from None
    if not (math.isfinite(beta) and beta > 0):
        raise ValueError(usage)
    return kind, beta


@dataclasses.dataclass(frozen=True)
class KernelAdvice:
    """The RPE type that suits a memory kernel, and why (see `kernel_rpe`)."""

    kind: str
    beta: float
    rpe: str
    reason: str

    def to_dict(self):
        return dataclasses.asdict(self)


def kernel_rpe(kind, beta):
    """The RPE type that represents a memory kernel ρ with one head, and why.

    A DP-free head with slope p puts weight softmax_s(−p φ(s)) on lag s:
    geometric ``e^{−ps}`` for the linear RPE and power-law ``s^{−p}`` for the
    log RPE (the normalisation is a constant the value and output weights
    absorb). So one linear head with p = β is an exponential kernel
    e^{−βs} exactly, and one log head with p = β is a power law s^{−β}
    exactly; the other type must build the kernel from many heads, a sum
    of geometric (or power-law) terms that only approximates it.

    >>> kernel_rpe("exp", 5.0).rpe, kernel_rpe("power", 0.5).rpe
    ('lin', 'log')
    """
    check_choice("kind", kind, KERNEL_KINDS)
    beta = check_real("beta", beta, low=0, low_open=True)
    if kind == "exp":
        reason = (
            f"a linear-RPE head weights lag s by e^(-p s): one head with p = {beta:g} is "
            f"e^(-{beta:g} s) exactly; log-RPE heads weight s^(-p) and need many heads to "
            "build an exponential tail"
        )
        return KernelAdvice(kind=kind, beta=beta, rpe="lin", reason=reason)
    reason = (
        f"a log-RPE head weights lag s by s^(-p): one head with p = {beta:g} is "
        f"s^(-{beta:g}) exactly; linear-RPE heads weight e^(-p s) and need many heads "
        "to build a power-law tail"
    )
    return KernelAdvice(kind=kind, beta=beta, rpe="log", reason=reason)


# ----------------------------------------------------------------------------
# Reports (what ``tfapprox bound --memory/--kernel`` prints)

FORMULAS = {
    "lin": "C(n)/H^n · (Σ_i e^(0.01 T_i))^(n+1)",
    "log": "C(n)/H^n · (Σ_i T_i^1.01)^(n+1)",
    "type3": "C(n) M^(n+1) / H^n",
    "total": "‖f‖_Barron/√m + ‖f‖_Lip · E_Attn",
}


def _log10(value):
    return math.log10(value) if value > 0 and math.isfinite(value) else None


def _errors(attention, *, width, lip, barron):
    """The attention error, its log10, and the total error when ``width`` is given."""
    entry = {"attention": _finite_or_none(attention), "log10_attention": _log10(attention)}
    if width is not None:
        entry["total"] = _finite_or_none(total_error(attention, width, lip=lip, barron=barron))
    return entry


def _check_constants(lip, barron):
    return (
        check_real("lip", lip, low=0, low_open=True),
        check_real("barron", barron, low=0, low_open=True),
    )


def type1_report(lags, heads, *, rpe=None, rate=1, width=None, c_n=1.0, lip=1.0, barron=1.0):
    """Everything about a Type I target: head split, both bounds, the preferred RPE type.

    Args:
        lags: sequence of int. Lags 1 ≤ T_1 < … < T_M.
        heads: int. H ≥ M.
        rpe: str or None. RPE type of the split; None: the type the theory prefers.
        rate: int. n ≥ 1. Defaults to 1.
        width: int or None. FFN width m; given, the total error is reported too.
        c_n, lip, barron: float. C(n), ‖f‖_Lip, ‖f‖_Barron. Default to 1.

    Returns:
        dict with ``lags``, ``heads``, ``rate``, ``rpe``, ``rpe_source``
        (``"given"`` or ``"preferred"``), ``allocation`` (one entry per
        memory: ``lag``, ``heads``, ``quota``), ``allocation_ratio``,
        ``bounds`` (``lin`` and ``log``: ``attention``, ``log10_attention``
        and, with ``width``, ``total``), ``ffn_error``, ``width``,
        ``preferred``, ``bound_ratio`` (lin/log), ``crossover_lags``,
        ``constants`` and ``formulas``.

    >>> r = type1_report([48, 56, 99], 32, rpe="log")
    >>> [entry["heads"] for entry in r["allocation"]], r["preferred"]
    ([7, 9, 16], 'lin')
    """
    lags = check_lags(lags)
    lip, barron = _check_constants(lip, barron)
    comparison = compare_rpe(lags)
    source = "preferred" if rpe is None else "given"
    rpe = comparison.preferred if rpe is None else check_choice("rpe", rpe, RPE_TYPES)
    split = allocate_heads(lags, heads, rpe=rpe, rate=rate)
    c_n = check_real("c_n", c_n, low=0, low_open=True)
    width = check_positive_int("width", width, allow_none=True)
    bounds = {
        kind: _errors(
            type1_attention_error(lags, heads, rpe=kind, rate=rate, c_n=c_n),
            width=width,
            lip=lip,
            barron=barron,
        )
        for kind in RPE_TYPES
    }
    return {
        "target": "type1",
        "lags": list(lags),
        "heads": split.total,
        "rate": split.rate,
        "rpe": rpe,
        "rpe_source": source,
        "allocation": split.to_dict()["allocation"],
        "allocation_ratio": _finite_or_none(split.ratio),
        "bounds": bounds,
        "ffn_error": None if width is None else ffn_error(width, barron=barron),
        "width": width,
        "preferred": comparison.preferred,
        "bound_ratio": _finite_or_none(comparison.bound_ratio(split.rate)),
        "crossover_lags": list(crossover_lags()),
        "constants": {"c_n": c_n, "lip": lip, "barron": barron},
        "formulas": {"lin": FORMULAS["lin"], "log": FORMULAS["log"], "total": FORMULAS["total"]},
    }


def type3_report(kernels, heads, *, rate=1, width=None, c_n=1.0, lip=1.0, barron=1.0):
    """Everything about a Type III target: the RPE type per kernel, why, and the rate.

    Args:
        kernels: sequence of ``(kind, beta)`` (see `parse_kernel`), one per memory.
        heads: int. H ≥ M; H/M heads per memory (rounded by largest
            remainders to integers summing to H).
        rate, width, c_n, lip, barron: as in `type1_report`.

    Returns:
        dict with ``kernels`` (``kind``, ``beta``, ``rpe``, ``reason``,
        ``heads`` per memory), ``memories``, ``heads``, ``heads_per_memory``,
        ``rate``, ``rpe`` (``"lin"``, ``"log"`` or ``"mixed"``), ``attention``,
        ``log10_attention``, ``total`` (with ``width``), ``ffn_error``,
        ``width``, ``constants`` and ``formulas``.

    >>> r = type3_report([("exp", 5.0), ("exp", 1.0)], 8, rate=2)
    >>> r["rpe"], r["heads_per_memory"], r["attention"]  # 2³ / 8²
    ('lin', 4.0, 0.125)
    """
    if isinstance(kernels, (str, bytes)) or not kernels:
        raise ValueError(f"`kernels` must hold at least one kernel. Received: kernels={kernels!r}")
    advice = [kernel_rpe(kind, beta) for kind, beta in kernels]
    lip, barron = _check_constants(lip, barron)
    c_n = check_real("c_n", c_n, low=0, low_open=True)
    memories = len(advice)
    total = check_positive_int("heads", heads)
    if total < memories:
        raise ValueError(
            f"`heads` must be at least the number of memory kernels ({memories}): each "
            f"memory needs a head. Received: heads={heads!r}"
        )
    rate = _check_rate(rate)
    width = check_positive_int("width", width, allow_none=True)
    split = _largest_remainder([1.0 / memories] * memories, total)
    types_ = {item.rpe for item in advice}
    attention = type3_attention_error(memories, total, rate=rate, c_n=c_n)
    return {
        "target": "type3",
        "kernels": [{**item.to_dict(), "heads": k} for item, k in zip(advice, split)],
        "memories": memories,
        "heads": total,
        "heads_per_memory": total / memories,
        "rate": rate,
        "rpe": types_.pop() if len(types_) == 1 else "mixed",
        **_errors(attention, width=width, lip=lip, barron=barron),
        "ffn_error": None if width is None else ffn_error(width, barron=barron),
        "width": width,
        "constants": {"c_n": c_n, "lip": lip, "barron": barron},
        "formulas": {"type3": FORMULAS["type3"], "total": FORMULAS["total"]},
    }
