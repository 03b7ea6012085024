"""Tests of tfapprox.theory: the sympy derivation, its cache, allocation and check_errors."""

import doctest
import json
import math
import os

import numpy as np
import pytest
import sympy as sp

from tfapprox import _io, theory
from tfapprox.budget import count_parameters


@pytest.fixture(autouse=True)
def _session_cache(tmp_path_factory, monkeypatch):
    """One derivation cache folder for the whole test session (sympy derives once)."""
    monkeypatch.setenv("TFAPPROX_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "tfapprox-cache"))


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    """A derivation run by sympy in this process (not read from any cache).

    It also fills the session's cache file, so sympy derives once per session.
    """
    derived = theory._derive()
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TFAPPROX_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "tfapprox-cache"))
        if theory._read_cache(theory.cache_path()) is None:
            _io.atomic_write_json(theory.cache_path(), theory._records(*derived))
    return derived


def hand_m_star():
    s = theory.symbols()
    return ((2 * s.beta - 1) * s.c_beta * s.m_ff**s.alpha / ((s.alpha + 1) * s.c_alpha)) ** (
        1 / (2 * s.beta + s.alpha)
    )


SETTINGS = [
    dict(tau=16, alpha=0.5, beta=1.0, c_alpha=1.0, c_beta=1.0, c_0=1.0),
    dict(tau=16, alpha=0.5, beta=0.55, c_alpha=0.3, c_beta=2.0, c_0=1.0),
    dict(tau=4, alpha=1.5, beta=2.5, c_alpha=5.0, c_beta=0.1, c_0=3.0),
    dict(tau=32, alpha=0.5 + 1 / 32, beta=0.8, c_alpha=0.01, c_beta=7.0, c_0=1.0),
]


# --------------------------------------------------------------------------
# The derivation


def test_derived_optimal_m_h_equals_hand_formula(fresh):
    expressions, _ = fresh
    assert sp.simplify(expressions["optimal_m_h"] - hand_m_star()) == 0


def test_cached_optimal_m_h_equals_hand_formula():
    assert sp.simplify(theory.optimal_m_h() - hand_m_star()) == 0


def test_derived_stationary_point_zeroes_the_first_derivative(fresh):
    expressions, facts = fresh
    s = theory.symbols()
    first = theory.error_bound().diff(s.m_h).subs(s.m_h, expressions["optimal_m_h"])
    values = {
        s.tau: 3,
        s.alpha: sp.Rational(1, 2),
        s.beta: sp.Rational(7, 10),
        s.c_alpha: 2,
        s.c_beta: 5,
        s.c_0: 1,
        s.m_ff: 64,
    }
    assert abs(float(first.subs(values).evalf(30))) < 1e-20
    assert facts["stationary_points"] == 1


def test_sympy_proves_the_stationary_point_is_a_minimum(fresh):
    _, facts = fresh
    assert facts["is_minimum"] is True
    assert theory.is_minimum() is True


def test_second_derivative_is_positive_at_sample_points():
    s = theory.symbols()
    second = theory.second_derivative()
    rng = np.random.default_rng(0)
    for _ in range(20):
        values = {
            s.tau: 1 + rng.integers(1, 32),
            s.alpha: rng.uniform(0.05, 3),
            s.beta: rng.uniform(0.51, 3),
            s.c_alpha: rng.uniform(0.01, 10),
            s.c_beta: rng.uniform(0.01, 10),
            s.c_0: 1,
            s.m_ff: rng.uniform(1, 1e4),
            s.m_h: rng.uniform(0.1, 100),
        }
        assert float(second.subs(values)) > 0


def test_cached_expressions_equal_a_fresh_derivation(fresh):
    expressions, _ = fresh
    cached = theory._expressions()
    for name in theory.EXPRESSIONS:
        assert sp.simplify(cached[name] - expressions[name]) == 0, name


def test_term_ratio_at_optimum_is_derived():
    s = theory.symbols()
    ratio = theory._expressions()["term_ratio"]
    assert sp.simplify(ratio - (2 * s.beta - 1) / (s.alpha + 1)) == 0


def test_optimal_rate_equals_hand_exponent():
    s = theory.symbols()
    hand = -s.alpha * (2 * s.beta - 1) / (2 * s.beta + s.alpha)
    assert sp.simplify(theory.optimal_rate() - hand) == 0


def test_terms_sum_to_the_bound():
    assert sp.simplify(theory.attention_term() + theory.ff_term() - theory.error_bound()) == 0


def test_error_bound_constant_factor_substitutes():
    s = theory.symbols()
    assert sp.simplify(theory.error_bound(c_0=3) - 3 * theory.error_bound().subs(s.c_0, 1)) == 0


@pytest.mark.parametrize("name", theory.EXPRESSIONS)
def test_numeric_twin_matches_subs_evalf(name):
    s = theory.symbols()
    expr = theory._expressions()[name]
    twin = theory._twins()[name]
    args = (2.7, 96.0, 8, 0.6, 0.9, 1.7, 0.4, 1.3)
    names = (s.m_h, s.m_ff, s.tau, s.alpha, s.beta, s.c_alpha, s.c_beta, s.c_0)
    reference = float(expr.subs(dict(zip(names, args))).evalf(30))
    # 1e-12: double-precision evaluation of a handful of powers and logs.
    assert twin(*args) == pytest.approx(reference, rel=1e-12, abs=1e-300)


def test_numeric_twin_matches_numpy_lambdify():
    s = theory.symbols()
    names = (s.m_h, s.m_ff, s.tau, s.alpha, s.beta, s.c_alpha, s.c_beta, s.c_0)
    numpy_twin = sp.lambdify(names, theory.optimal_m_h(), modules="numpy")
    args = (1.0, 128.0, 16, 0.5, 1.0, 1.0, 1.0, 1.0)
    assert theory._twins()["optimal_m_h"](*args) == pytest.approx(
        float(numpy_twin(*args)), rel=1e-14
    )


def test_render_gives_text_latex_and_pretty():
    assert theory.render("optimal_m_h", "text") == sp.sstr(theory.optimal_m_h())
    assert theory.render("optimal_m_h", "latex") == sp.latex(theory.optimal_m_h())
    assert "α" in theory.render("optimal_m_h", "pretty")
    assert set(theory.formulas("latex")) == set(theory.EXPRESSIONS)


def test_render_rejects_unknown_style():
    with pytest.raises(ValueError, match="style"):
        theory.render("optimal_m_h", "html")


def test_symbols_are_module_attributes():
    assert theory.m_h is theory.symbols().m_h
    assert theory.m_h.is_positive


# --------------------------------------------------------------------------
# The cache


def test_cache_file_round_trips_srepr_and_is_current(fresh):
    records = theory._read_cache(theory.cache_path())
    assert records is not None
    assert records["sympy_version"] == sp.__version__
    expressions, _ = fresh
    for name in theory.EXPRESSIONS:
        # What the file holds is what sympy derives now, not what was read from it.
        parsed = sp.sympify(records["expressions"][name]["srepr"])
        assert sp.simplify(parsed - expressions[name]) == 0, name


def test_corrupt_cache_is_rederived_and_rewritten(tmp_path, monkeypatch, fresh):
    calls = []

    def derive():
        calls.append(1)
        return fresh

    monkeypatch.setattr(theory, "_derive", derive)
    path = tmp_path / "cache.json"
    path.write_text("{not json")
    theory._load(path)
    assert calls == [1]
    assert theory._read_cache(path) is not None
    theory._load(path)
    assert calls == [1]  # read back, not derived again


def test_stale_cache_key_is_rederived(tmp_path, monkeypatch, fresh):
    calls = []
    monkeypatch.setattr(theory, "_derive", lambda: calls.append(1) or fresh)
    path = tmp_path / "cache.json"
    records = json.loads(json.dumps(theory._load()))
    records["sympy_version"] = "0.0.1"
    _io.atomic_write_json(path, records)
    theory._load(path)
    assert calls == [1]
    assert json.loads(path.read_text())["sympy_version"] == sp.__version__


def test_cache_dir_honours_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TFAPPROX_CACHE_DIR", str(tmp_path / "c"))
    assert theory.cache_dir() == str(tmp_path / "c")
    assert os.path.dirname(theory.cache_path()) == str(tmp_path / "c")


def test_unwritable_cache_folder_still_works(tmp_path, monkeypatch, fresh):
    monkeypatch.setattr(theory, "_derive", lambda: fresh)
    blocker = tmp_path / "file"
    blocker.write_text("")
    records = theory._load(blocker / "sub" / "cache.json")  # parent is a file: OSError
    assert set(records["expressions"]) == set(theory.EXPRESSIONS)


# --------------------------------------------------------------------------
# Numeric bound, optimum, integer choice


@pytest.mark.parametrize("setting", SETTINGS)
def test_bound_matches_direct_formula(setting):
    b = theory.Bound(**setting)
    m_h, m_ff = 3.5, 77
    direct = (
        setting["c_0"]
        * setting["tau"] ** 2
        * (
            setting["c_beta"] / m_h ** (2 * setting["beta"] - 1)
            + setting["c_alpha"] * m_h ** (setting["alpha"] + 1) / m_ff ** setting["alpha"]
        )
    )
    assert b(m_h, m_ff) == pytest.approx(direct, rel=1e-13)


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("m_ff", [1, 16, 128, 10_000])
def test_perturbing_the_optimum_never_lowers_the_bound(setting, m_ff):
    b = theory.Bound(**setting)
    m_star = b.optimal_m_h(m_ff)
    best = b(m_star, m_ff)
    perturbed = [m_star * 1.01, m_star * 0.99, m_star + 1]
    if m_star > 1:
        perturbed.append(m_star - 1)
    for m in perturbed:
        assert b(m, m_ff) >= best * (1 - 1e-14)


@pytest.mark.parametrize("setting", SETTINGS)
def test_optimal_bound_is_the_bound_at_the_optimum(setting):
    b = theory.Bound(**setting)
    assert b.optimal_bound(300) == pytest.approx(b(b.optimal_m_h(300), 300), rel=1e-12)


@pytest.mark.parametrize("setting", SETTINGS)
def test_optimal_bound_follows_the_rate_in_m_ff(setting):
    b = theory.Bound(**setting)
    slope = math.log(b.optimal_bound(4000) / b.optimal_bound(40)) / math.log(100)
    assert slope == pytest.approx(b.optimal_rate(), rel=1e-10)


@pytest.mark.parametrize("setting", SETTINGS)
def test_sensitivities_match_finite_differences(setting):
    b = theory.Bound(**setting)
    h = 1e-6
    got = b.sensitivities(200)
    for name in ("beta", "alpha"):
        up = theory.Bound(**{**setting, name: setting[name] + h}).optimal_m_h(200)
        down = theory.Bound(**{**setting, name: setting[name] - h}).optimal_m_h(200)
        # Central difference: error O(h²) plus rounding O(1e-16 / h).
        assert got[name] == pytest.approx((up - down) / (2 * h), rel=1e-6, abs=1e-9)


@pytest.mark.parametrize("setting", SETTINGS)
@pytest.mark.parametrize("m_ff", [1, 3, 16, 128, 5000])
def test_integer_m_h_matches_brute_force(setting, m_ff):
    b = theory.Bound(**setting)
    values = {k: b(k, m_ff) for k in range(1, 400)}
    best = min(values.values())
    assert values[b.integer_m_h(m_ff)] == best


@pytest.mark.parametrize(
    "name, value, fragment",
    [
        ("beta", 0.5, "diverges"),
        ("beta", 0.2, "diverges"),
        ("alpha", 0.0, "`alpha` must be > 0"),
        ("c_beta", -1.0, "`c_beta` must be > 0"),
        ("c_alpha", 0.0, "`c_alpha` must be > 0"),
        ("c_0", 0.0, "`c_0` must be > 0"),
        ("alpha", math.nan, "finite"),
        ("beta", math.inf, "finite"),
        ("tau", 0, "`tau` must be a positive int"),
    ],
)
def test_bound_rejects_bad_parameters(name, value, fragment):
    setting = {**SETTINGS[0], name: value}
    with pytest.raises(ValueError, match=fragment):
        theory.Bound(**setting)


def test_bound_rejects_non_numbers():
    with pytest.raises(TypeError, match="alpha"):
        theory.Bound(tau=4, alpha="0.5", beta=1.0)


# --------------------------------------------------------------------------
# Parameter-budget allocation


def _brute_force(b, params, *, input_dim, n, m_v, ff_depth, tied):
    best = None
    for m_h in range(1, 200):
        width = 2 * m_h + m_v if tied else n
        for m_ff in range(1, 2000):
            count = count_parameters(
                n=width,
                m_h=m_h,
                m_v=m_v,
                m_ff=m_ff,
                ff_depth=ff_depth,
                sequence_length=b.tau,
                input_dim=input_dim,
            )
            if count > params:
                break
            value = b(m_h, m_ff)
            if best is None or value < best[0]:
                best = (value, m_h, m_ff)
    return best


@pytest.mark.parametrize("setting", SETTINGS[:3])
@pytest.mark.parametrize("params", [150, 400, 1111, 3000])
@pytest.mark.parametrize("ff_depth", [1, 2])
def test_allocation_with_fixed_n_matches_brute_force(setting, params, ff_depth):
    b = theory.Bound(**{**setting, "tau": 2})
    kwargs = dict(input_dim=1, n=3, m_v=2, ff_depth=ff_depth)
    expected = _brute_force(b, params, tied=False, **kwargs)
    got = b.allocate(params, **kwargs)
    assert got.value.bound == pytest.approx(expected[0], rel=1e-12)
    assert got.params_used <= params


@pytest.mark.parametrize("setting", SETTINGS[:3])
@pytest.mark.parametrize("params", [120, 500, 2000])
@pytest.mark.parametrize("ff_depth", [1, 3])
def test_allocation_with_tied_n_matches_brute_force(setting, params, ff_depth):
    b = theory.Bound(**{**setting, "tau": 3})
    kwargs = dict(input_dim=2, n=None, m_v=1, ff_depth=ff_depth)
    expected = _brute_force(b, params, tied=True, **kwargs)
    got = b.allocate(params, **kwargs)
    assert got.tied and got.n == 2 * got.m_h + 1
    assert got.value.bound == pytest.approx(expected[0], rel=1e-12)
    assert got.params_used <= params


def test_allocation_params_used_is_the_exact_count():
    b = theory.Bound(tau=16, alpha=0.5, beta=1.0)
    got = b.allocate(50_000, input_dim=1, n=32, m_v=32)
    assert got.params_used == count_parameters(
        n=32, m_h=got.m_h, m_v=32, m_ff=got.m_ff, ff_depth=3, sequence_length=16, input_dim=1
    )
    over = count_parameters(
        n=32, m_h=got.m_h, m_v=32, m_ff=got.m_ff + 1, ff_depth=3, sequence_length=16, input_dim=1
    )
    assert over > 50_000


def test_allocation_with_given_m_h_takes_the_largest_m_ff():
    b = theory.Bound(tau=16, alpha=0.5, beta=1.0)
    got = b.allocate(50_000, input_dim=1, n=32, m_v=32, m_h=7)
    assert got.m_h == 7
    assert got.params_used <= 50_000
    assert (
        count_parameters(
            n=32, m_h=7, m_v=32, m_ff=got.m_ff + 1, ff_depth=3, sequence_length=16, input_dim=1
        )
        > 50_000
    )


def test_allocation_rejects_budget_below_the_minimum_and_names_it():
    b = theory.Bound(tau=16, alpha=0.5, beta=1.0)
    minimum = count_parameters(
        n=32, m_h=1, m_v=32, m_ff=1, ff_depth=3, sequence_length=16, input_dim=1
    )
    with pytest.raises(ValueError, match=f"needs at least {minimum} parameters"):
        b.allocate(minimum - 1, input_dim=1, n=32, m_v=32)
    assert b.allocate(minimum, input_dim=1, n=32, m_v=32).m_ff == 1


def test_tied_allocation_requires_m_v():
    b = theory.Bound(tau=16, alpha=0.5, beta=1.0)
    with pytest.raises(ValueError, match="m_v"):
        b.allocate(50_000, input_dim=1)


def test_largest_feasible_matches_brute_force():
    for a, b, c in [(0, 3, 5), (2, 7, 11), (4, 1, 0), (6, 13, 200)]:
        for params in range(0, 400, 7):
            expected = max([x for x in range(0, 400) if a * x * x + b * x + c <= params], default=0)
            assert theory._largest_feasible(lambda x: a * x * x + b * x + c, params) == expected


@pytest.mark.parametrize("tied", [False, True])
@pytest.mark.parametrize("ff_depth", [1, 3])
def test_count_coefficients_match_the_sympy_polynomial(tied, ff_depth):
    s = theory.symbols()
    expr = theory.parameter_count_expression(tied=tied, ff_depth=ff_depth)
    values = {s.n: 32, s.m_v: 8, s.m_h: 5, s.tau: 16, s.d: 3}
    poly = sp.Poly(expr.subs(values), s.m_ff)
    n = 2 * 5 + 8 if tied else 32

    def count(m_ff):
        return count_parameters(
            n=n, m_h=5, m_v=8, m_ff=m_ff, ff_depth=ff_depth, sequence_length=16, input_dim=3
        )

    a, b, c = theory._quadratic_coefficients(count)
    coeffs = [int(v) for v in poly.all_coeffs()]
    assert [a, b, c][3 - len(coeffs) :] == coeffs and sum([a, b, c][: 3 - len(coeffs)]) == 0


def test_checker_names_stay_importable_from_theory():
    from tfapprox import check

    assert theory.check_errors is check.check_errors
    assert theory.CheckReport is check.CheckReport
    assert theory.load_points is check.load_points


# --------------------------------------------------------------------------
# Doctests


def test_doctests_of_theory_pass():
    result = doctest.testmod(
        theory, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.attempted > 20
    assert result.failed == 0


# --------------------------------------------------------------------------
# The bundled derivation


def test_bundled_derivation_is_current_and_equals_a_fresh_derivation(fresh):
    bundled = theory._read_cache(theory.bundled_path())
    assert bundled is not None, (
        "data/theory-derivation.json is missing or stale for this theory.py and sympy; "
        "regenerate it with `python -m tfapprox.theory`"
    )
    expected = json.loads(_io.to_json(theory._records(*fresh)))
    assert bundled == expected


def test_empty_user_cache_reads_the_bundled_derivation_without_deriving(tmp_path, monkeypatch):
    monkeypatch.setenv("TFAPPROX_CACHE_DIR", str(tmp_path / "empty"))
    monkeypatch.setattr(theory, "_STATE", {})
    monkeypatch.setattr(
        theory, "_derive", lambda: pytest.fail("derived instead of reading the bundle")
    )
    bound = theory.Bound(tau=16, alpha=0.5, beta=1.0)
    assert bound(2, 128) == pytest.approx(16**2 * (1 / 2 + 2**1.5 / math.sqrt(128)))


def test_write_bundled_derivation_writes_a_readable_cache(tmp_path, monkeypatch, fresh):
    monkeypatch.setattr(theory, "_derive", lambda: fresh)
    path = theory.write_bundled_derivation(tmp_path / "bundle.json")
    assert theory._read_cache(path)["expressions"]["optimal_m_h"]["text"] == str(
        fresh[0]["optimal_m_h"]
    )
