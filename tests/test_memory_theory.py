"""Tests of `tfapprox.memory_theory`: paper B's rates, head allocation, RPE choice."""

import itertools
import math

import numpy as np
import pytest
import sympy as sp

from tfapprox import memory_theory as mt


def brute_force_best(shares, heads, rate):
    """The integer split (each ≥ 1, summing to ``heads``) minimising Σ p^{n+1}/H_k^n."""
    count = len(shares)
    best, best_value = None, math.inf
    for cuts in itertools.combinations(range(1, heads), count - 1):
        edges = (0, *cuts, heads)
        split = [edges[i + 1] - edges[i] for i in range(count)]
        value = sum(p ** (rate + 1) / k**rate for p, k in zip(shares, split))
        if value < best_value:
            best, best_value = split, value
    return best, best_value


def random_cases(seed, count, max_heads=12, max_memories=4, max_lag=1500):
    rng = np.random.default_rng(seed)
    for _ in range(count):
        memories = int(rng.integers(1, max_memories + 1))
        heads = int(rng.integers(memories, max_heads + 1))
        lags = sorted(int(t) for t in rng.choice(np.arange(1, max_lag), memories, replace=False))
        yield lags, heads, str(rng.choice(mt.RPE_TYPES)), int(rng.integers(1, 4))


# --------------------------------------------------------------------------
# symbolic


def test_derived_split_is_proportional_to_the_weights():
    s = mt.symbols()
    derived = mt.derive_allocation()
    assert derived["proportional"] and derived["is_minimum"]
    assert sp.simplify(derived["heads"] - s.H * s.w / s.S) == 0


def test_derived_minimum_is_the_type1_rate():
    s = mt.symbols()
    minimum = mt.derive_allocation()["minimum"]
    assert sp.simplify(minimum - s.c_n * s.S ** (s.n + 1) / s.H**s.n) == 0


@pytest.mark.parametrize("rate", [1, 2, 3])
def test_proportional_split_satisfies_lagrange_and_sums_to_the_minimum(rate):
    # Three memories by hand: at H_k = H w_k/S every ∂cost/∂H_k is the same
    # (the multiplier), the heads sum to H and the costs sum to C S^{n+1}/H^n.
    c, heads = sp.symbols("C H", positive=True)
    w = sp.symbols("w1:4", positive=True)
    total = sum(w)
    split = [heads * wk / total for wk in w]
    x = sp.Symbol("x", positive=True)
    grads = [sp.diff(c * wk ** (rate + 1) / x**rate, x).subs(x, hk) for wk, hk in zip(w, split)]
    assert all(sp.simplify(g - grads[0]) == 0 for g in grads)
    assert sp.simplify(sum(split) - heads) == 0
    cost = sum(c * wk ** (rate + 1) / hk**rate for wk, hk in zip(w, split))
    assert sp.simplify(cost - c * total ** (rate + 1) / heads**rate) == 0


@pytest.mark.parametrize("rpe", mt.RPE_TYPES)
def test_type1_expression_matches_the_hand_formula(rpe):
    s = mt.symbols()
    lags = sp.symbols("T_1:4", positive=True)
    if rpe == "lin":
        total = sum(sp.exp(t / 100) for t in lags)
    else:
        total = sum(t ** sp.Rational(101, 100) for t in lags)
    hand = s.c_n * total ** (s.n + 1) / s.H**s.n
    assert sp.simplify(mt.type1_attention_expression(rpe, 3) - hand) == 0


def test_type3_expression_is_the_hand_formula():
    s = mt.symbols()
    hand = s.c_n * s.M ** (s.n + 1) / s.H**s.n
    assert sp.simplify(mt.type3_attention_expression() - hand) == 0
    total = mt.total_error_expression(mt.type3_attention_expression())
    assert sp.simplify(total - (s.barron / sp.sqrt(s.m) + s.lip * hand)) == 0


def test_crossover_expressions_solve_the_equation():
    s = mt.symbols()
    gap = mt.lag_weight("lin") - mt.lag_weight("log")
    for root in mt.crossover_expressions():
        value = sp.N(root, 30)
        assert abs(sp.N(gap.subs(s.T, value), 30)) < 1e-25  # 30 digits, exact root


# --------------------------------------------------------------------------
# numeric twins against the sympy expressions


@pytest.mark.parametrize("rpe", mt.RPE_TYPES)
@pytest.mark.parametrize("rate", [1, 2, 4])
def test_type1_twin_agrees_with_sympy(rpe, rate):
    s = mt.symbols()
    lags = [3, 48, 250]
    expr = mt.type1_attention_expression(rpe, lags).subs(s.n, rate)
    f = sp.lambdify((s.H, s.c_n), expr, modules="numpy")
    for heads, c_n in [(4, 1.0), (32, 0.3), (500, 7.0)]:
        got = mt.type1_attention_error(lags, heads, rpe=rpe, rate=rate, c_n=c_n)
        assert got == pytest.approx(float(f(heads, c_n)), rel=1e-12)  # log-sum-exp rounding


def test_type3_and_total_twins_agree_with_sympy():
    s = mt.symbols()
    expr = mt.total_error_expression(mt.type3_attention_expression())
    f = sp.lambdify((s.M, s.H, s.n, s.c_n, s.lip, s.barron, s.m), expr, modules="numpy")
    for memories, heads, rate in [(1, 1, 1), (3, 16, 2), (5, 64, 3)]:
        attention = mt.type3_attention_error(memories, heads, rate=rate, c_n=2.0)
        got = mt.total_error(attention, 256, lip=0.5, barron=3.0)
        assert got == pytest.approx(f(memories, heads, rate, 2.0, 0.5, 3.0, 256), rel=1e-14)


def test_crossover_twin_agrees_with_sympy():
    expected = [float(sp.N(root, 20)) for root in mt.crossover_expressions()]
    assert list(mt.crossover_lags()) == pytest.approx(expected, rel=1e-13)


def test_type1_error_is_finite_in_logs_and_inf_past_the_float_range():
    big = mt.type1_attention_error([100_000], 1, rpe="lin")  # e^{2000}
    assert big == math.inf
    # Far lags do not overflow the head split: the short lag gets its one head.
    split = mt.allocate_heads([10, 100_000], 8, rpe="lin")
    assert split.heads == (1, 7)
    assert split.to_dict()["bound"] is None


# --------------------------------------------------------------------------
# head allocation


@pytest.mark.parametrize("case", list(random_cases(0, 60)))
def test_allocation_sums_to_heads_and_is_monotone_in_the_lag(case):
    lags, heads, rpe, rate = case
    split = mt.allocate_heads(lags, heads, rpe=rpe, rate=rate)
    assert sum(split.heads) == heads
    assert min(split.heads) >= 1
    assert list(split.heads) == sorted(split.heads)
    assert math.fsum(split.quotas) == pytest.approx(heads, rel=1e-12)


@pytest.mark.parametrize("case", list(random_cases(1, 60)))
def test_allocation_rounds_each_quota_down_or_up_when_none_is_below_one(case):
    lags, heads, rpe, rate = case
    split = mt.allocate_heads(lags, heads, rpe=rpe, rate=rate)
    if min(split.quotas) < 1:
        return  # memories held at one head: covered by the brute-force test
    for k, q in zip(split.heads, split.quotas):
        assert math.floor(q) <= k <= math.floor(q) + 1  # ⌊q⌋ or ⌈q⌉ (q may be an integer)


@pytest.mark.parametrize("case", list(random_cases(2, 50, max_heads=10)))
def test_allocation_is_within_its_guarantee_of_the_brute_force_optimum(case):
    # The guarantee: continuous bound ≤ best integer bound ≤ rounded bound
    # = ratio · continuous bound, and ratio < 2^n when no memory is held at one head.
    lags, heads, rpe, rate = case
    split = mt.allocate_heads(lags, heads, rpe=rpe, rate=rate)
    shares = mt.lag_weights(lags, rpe)
    _, best = brute_force_best(shares, heads, rate)
    rounded = sum(p ** (rate + 1) / k**rate for p, k in zip(shares, split.heads))
    continuous = 1 / heads**rate
    assert continuous <= best * (1 + 1e-12) and best <= rounded * (1 + 1e-12)
    assert split.ratio == pytest.approx(rounded / continuous, rel=1e-12)
    assert split.bound == pytest.approx(split.ratio * split.continuous_bound, rel=1e-12)
    if min(split.quotas) >= 1:
        assert split.ratio < 2**rate


def test_allocation_bound_is_the_sum_over_memories():
    lags, heads = [48, 56, 99], 32
    split = mt.allocate_heads(lags, heads, rpe="log", rate=2)
    weights = np.array(lags, dtype=float) ** 1.01
    by_hand = np.sum(weights**3 / np.array(split.heads, dtype=float) ** 2)
    assert split.bound == pytest.approx(by_hand, rel=1e-12)
    assert split.continuous_bound == pytest.approx(weights.sum() ** 3 / heads**2, rel=1e-12)


def test_allocation_rejects_fewer_heads_than_memories():
    with pytest.raises(ValueError, match=r"`heads`.*Received: heads=2"):
        mt.allocate_heads([1, 2, 3], 2, rpe="lin")


@pytest.mark.parametrize(
    "lags, fragment",
    [
        ([0, 5], "positive int"),
        ([5, 3], "strictly increasing"),
        ([4, 4], "strictly increasing"),
        ([], "at least one"),
    ],
)
def test_lags_are_validated(lags, fragment):
    with pytest.raises(ValueError, match=fragment):
        mt.check_lags(lags)


def test_rpe_and_rate_are_validated():
    with pytest.raises(ValueError, match="`rpe`"):
        mt.allocate_heads([1, 2], 4, rpe="alibi")
    with pytest.raises(ValueError, match="`rate`"):
        mt.allocate_heads([1, 2], 4, rpe="lin", rate=0)


# --------------------------------------------------------------------------
# which RPE type


@pytest.mark.parametrize(
    "lags, preferred",
    [
        ([1], "log"),
        ([2], "lin"),
        ([654], "lin"),
        ([655], "log"),
        ([48, 56, 99], "lin"),
        ([2, 5000], "log"),
    ],
)
def test_compare_rpe_follows_the_crossover(lags, preferred):
    assert mt.compare_rpe(lags).preferred == preferred


@pytest.mark.parametrize("rate", [1, 3])
@pytest.mark.parametrize("heads", [3, 64])
def test_bound_ratio_is_the_ratio_of_the_two_bounds_for_any_heads(rate, heads):
    lags = [7, 300, 900]
    lin = mt.type1_attention_error(lags, heads, rpe="lin", rate=rate)
    log = mt.type1_attention_error(lags, heads, rpe="log", rate=rate)
    assert mt.compare_rpe(lags).bound_ratio(rate) == pytest.approx(lin / log, rel=1e-12)


# --------------------------------------------------------------------------
# kernels (Type III)


@pytest.mark.parametrize("text", ["foo:1", "exp", "exp:-1", "power:0", "exp:x", "exp:inf"])
def test_parse_kernel_rejects_bad_kernels(text):
    with pytest.raises(ValueError, match="`kernel`"):
        mt.parse_kernel(text)


@pytest.mark.parametrize("kind, beta", [("exp", 5.0), ("exp", 0.3), ("power", 0.5), ("power", 2.0)])
def test_one_head_of_the_chosen_type_is_the_kernel_exactly(kind, beta):
    # DP-free head with slope p = β: weights softmax_s(p φ(s)) with φ(s) = −s
    # (lin, s ≥ 0) or −log s (log, s ≥ 1) are the normalised kernel.
    advice = mt.kernel_rpe(kind, beta)
    s = np.arange(0, 200, dtype=float) if advice.rpe == "lin" else np.arange(1, 200, dtype=float)
    logits = -beta * (s if advice.rpe == "lin" else np.log(s))
    weights = np.exp(logits - logits.max())
    weights /= weights.sum()
    kernel = np.exp(-beta * s) if kind == "exp" else s**-beta
    np.testing.assert_allclose(weights, kernel / kernel.sum(), rtol=1e-12)
    assert {"exp": "lin", "power": "log"}[kind] == advice.rpe


def test_type3_report_splits_heads_and_names_each_type():
    report = mt.type3_report([("exp", 5.0), ("power", 0.5), ("exp", 1.0)], 8, rate=2, width=64)
    assert [k["rpe"] for k in report["kernels"]] == ["lin", "log", "lin"]
    assert sum(k["heads"] for k in report["kernels"]) == 8
    assert report["rpe"] == "mixed"
    assert report["attention"] == pytest.approx(3**3 / 8**2, rel=1e-15)
    assert report["total"] == pytest.approx(1 / 8 + 27 / 64, rel=1e-15)


def test_type1_report_uses_the_preferred_type_by_default():
    report = mt.type1_report([48, 56, 99], 32, width=256)
    assert report["rpe"] == report["preferred"] == "lin" and report["rpe_source"] == "preferred"
    split = mt.allocate_heads([48, 56, 99], 32, rpe="lin")
    assert [a["heads"] for a in report["allocation"]] == list(split.heads)
    assert report["bounds"]["lin"]["total"] == pytest.approx(
        1 / 16 + report["bounds"]["lin"]["attention"], rel=1e-15
    )
