"""The approximation bound of Jiang & Li (2024) in sympy: optimum, allocation, checks.

Theorem 4.2 of Jiang & Li (NeurIPS 2024), in the card notation of tfapprox
(β: POD decay of the attention kernel ρ, σ_k ≤ C_β k^{−β}; α: feed-forward
rate, error ≤ C_α m_FF^{−α}; the final paper swaps the two letters), bounds
the error of the best one-layer, one-head Transformer with query/key width
m_h and feed-forward width m_FF by

    B(m_h, m_FF) = C_0 · τ² · ( C_β / m_h^{2β−1}  +  C_α · m_h^{α+1} / m_FF^α )

with β > 1/2, α > 0, C_β, C_α > 0 and a constant factor C_0 (default 1). The
first term (the *attention term*) is the POD truncation of ρ at rank m_h; the
second (the *feed-forward term*) is the cost of approximating the m_h POD
basis functions with feed-forward networks.

This module derives, with sympy (`sp.diff`, `sp.solve`), the stationary point

    m_h* = ( (2β−1) C_β m_FF^α / ((α+1) C_α) )^{1/(2β+α)}

and proves it is the unique minimum (∂²B/∂m_h² > 0 for every m_h > 0 when
β > 1/2, α > 0: B is strictly convex in m_h). At the optimum the two terms
are in the ratio ff/attention = (2β−1)/(α+1), so

    B* = C_0 τ² C_β (α+2β)/(α+1) · m_h*^{1−2β}  ∝  m_FF^{−α(2β−1)/(2β+α)}.

Symbolic API (sympy expressions): `error_bound`, `attention_term`,
`ff_term`, `optimal_m_h`, `second_derivative`, `is_minimum`,
`optimal_bound`, `optimal_rate`, `sensitivities`, `parameter_count_expression`,
and `render` / `formulas` (plain text, LaTeX, pretty).

Numeric API (plain floats, no sympy needed): `Bound` (evaluate, optimise,
choose an integer m_h, allocate a parameter budget), returning `BoundValue`
and `Allocation`. Checking measured errors against the bound is
`tfapprox.check` (``theory.check_errors``, ``theory.CheckReport`` and
``theory.load_points`` remain as aliases).

**The derivation cache.** `sp.solve` on B takes seconds and ``import sympy``
alone most of a second, too slow for a command-line tool. The derivation is
therefore run once and stored in a JSON file under the user's cache folder
(`cache_dir`; ``$TFAPPROX_CACHE_DIR`` overrides it), named by a key made of
the tfapprox version, the sympy version and the SHA-256 of this source file,
written atomically with `tfapprox._io`. For every expression the file holds
its `sp.srepr` (parsed back with `sp.sympify` for the symbolic API), its
renderings, and the Python source that `sp.lambdify(..., modules="math")`
generated for it; the numeric twins are that source, executed once per
process against the `math` module, so the numeric path (`Bound`, ``tfapprox
bound``) does not import sympy. Every formula in the file comes out of
sympy; nothing is typed in. A missing, stale or corrupt file is re-derived.

Example:

>>> from tfapprox import theory
>>> theory.error_bound()
C_0*tau**2*(C_alpha*m_h**(alpha + 1)/m_FF**alpha + C_beta*m_h**(1 - 2*beta))
>>> theory.optimal_m_h()
(C_beta*m_FF**alpha*(2*beta - 1)/(C_alpha*(alpha + 1)))**(1/(alpha + 2*beta))
>>> theory.is_minimum()
True
>>> theory.optimal_rate()
alpha*(1 - 2*beta)/(alpha + 2*beta)
>>> bound = theory.Bound(tau=16, alpha=0.5, beta=1.0)
>>> round(bound.optimal_m_h(128), 6)
2.24391
>>> bound.integer_m_h(128)
2
>>> bound(2, 128)  # 16² · (1/2 + 2^1.5/√128)
192.0
"""

import dataclasses
import functools
import hashlib
import json
import math
import os
import re
import sys

from tfapprox._checks import check_choice, check_positive_int, check_real
from tfapprox.budget import count_parameters

__all__ = [
    "Allocation",
    "Bound",
    "BoundValue",
    "attention_term",
    "bundled_path",
    "cache_dir",
    "cache_path",
    "check_parameter",
    "error_bound",
    "ff_term",
    "formulas",
    "is_minimum",
    "optimal_bound",
    "optimal_m_h",
    "optimal_rate",
    "parameter_count_expression",
    "render",
    "second_derivative",
    "sensitivities",
    "symbols",
    "write_bundled_derivation",
]

CACHE_FORMAT = 1
BUNDLED_NAME = "theory-derivation.json"

# The expressions the derivation produces, in order.
EXPRESSIONS = (
    "error_bound",
    "attention_term",
    "ff_term",
    "first_derivative",
    "second_derivative",
    "optimal_m_h",
    "term_ratio",
    "optimal_bound",
    "optimal_rate",
    "dm_h_dbeta",
    "dm_h_dalpha",
)

# ----------------------------------------------------------------------------
# Symbols and parameters


@functools.cache
def symbols():
    """The sympy symbols of the theory, declared once, all positive.

    Returns a namespace with ``tau``, ``m_h``, ``m_ff`` (printed ``m_FF``),
    ``alpha``, ``beta``, ``c_alpha``, ``c_beta``, ``c_0`` and, for parameter
    counts, ``n``, ``m_v``, ``d``.

    >>> s = symbols()
    >>> s.m_ff, s.m_ff.is_positive
    (m_FF, True)
    """
    import types

    import sympy as sp

    tau, m_h, m_ff, alpha, beta, c_alpha, c_beta, c_0 = sp.symbols(
        "tau m_h m_FF alpha beta C_alpha C_beta C_0", positive=True
    )
    n, m_v, d = sp.symbols("n m_v d", positive=True, integer=True)
    return types.SimpleNamespace(
        tau=tau,
        m_h=m_h,
        m_ff=m_ff,
        alpha=alpha,
        beta=beta,
        c_alpha=c_alpha,
        c_beta=c_beta,
        c_0=c_0,
        n=n,
        m_v=m_v,
        d=d,
    )


def check_parameter(name, value):
    """Validate one parameter of the bound by name; return it normalised.

    ``tau`` must be a positive int; ``beta`` a finite number > 1/2 (for
    β ≤ 1/2 the bound diverges); ``alpha``, ``c_alpha``, ``c_beta`` and
    ``c_0`` finite numbers > 0.

    >>> check_parameter("beta", 1)
    1.0
    >>> check_parameter("beta", 0.5)
    Traceback (most recent call last):
    ...
    ValueError: `beta` must be > 1/2: for β ≤ 1/2 the POD tail Σ_{k>m_h} σ_k² does not shrink with m_h and the bound diverges. Received: beta=0.5
    """
    if name == "tau":
        return check_positive_int("tau", value)
    if name not in ("alpha", "beta", "c_alpha", "c_beta", "c_0"):
        raise ValueError(f"unknown parameter {name!r}")
    value = check_real(name, value)
    if name == "beta" and value <= 0.5:
        raise ValueError(
            "`beta` must be > 1/2: for β ≤ 1/2 the POD tail Σ_{k>m_h} σ_k² does not shrink "
            f"with m_h and the bound diverges. Received: beta={value!r}"
        )
    return check_real(name, value, low=0, low_open=True)


# ----------------------------------------------------------------------------
# The derivation (sympy) and its cache


def _bound_parts():
    """``(attention, ff, bound)``: the definition of B, the only typed-in formula."""
    s = symbols()
    attention = s.c_0 * s.tau**2 * s.c_beta / s.m_h ** (2 * s.beta - 1)
    ff = s.c_0 * s.tau**2 * s.c_alpha * s.m_h ** (s.alpha + 1) / s.m_ff**s.alpha
    bound = (
        s.c_0
        * s.tau**2
        * (
            s.c_beta / s.m_h ** (2 * s.beta - 1)
            + s.c_alpha * s.m_h ** (s.alpha + 1) / s.m_ff**s.alpha
        )
    )
    return attention, ff, bound


def _derive():
    """Run the derivation with sympy.

    Returns ``(expressions, facts)``: a dict name → sympy expression (see
    `EXPRESSIONS`) and a dict of proven facts (``is_minimum``,
    ``stationary_points``).
    """
    import sympy as sp

    s = symbols()
    attention, ff, bound = _bound_parts()
    first = sp.diff(bound, s.m_h)
    # ∂B/∂m_h = 0 has the roots of ∂B/∂m_h · m_h^{2β} m_FF^α / (C_0 τ²), a
    # positive factor: the product is a sum of two powers of m_h, which
    # `solve` handles in a fraction of the time it takes on ∂B/∂m_h itself.
    # All symbols are positive, so `solve` returns the positive real roots only.
    stationarity = sp.powsimp(
        sp.expand(first * s.m_h ** (2 * s.beta) * s.m_ff**s.alpha / (s.c_0 * s.tau**2))
    )
    roots = sp.solve(sp.Eq(stationarity, 0), s.m_h)
    if len(roots) != 1:
        raise RuntimeError(
            f"expected one stationary point of the bound in m_h, sympy found {roots}"
        )
    m_star = roots[0]
    second = sp.diff(bound, s.m_h, 2)
    # Strict convexity for every m_h > 0: write β = (1 + δ)/2 with δ > 0.
    delta = sp.Symbol("delta", positive=True)
    convex = sp.simplify(second.subs(s.beta, (1 + delta) / 2)).is_positive is True
    # Term ratio at the optimum. `powdenest(force=True)` treats the bases as
    # positive, which they are when β > 1/2 (the base 2β − 1 included).
    ratio = sp.simplify(sp.powdenest((ff / attention).subs(s.m_h, m_star), force=True))
    b_star = attention.subs(s.m_h, m_star) * sp.together(1 + ratio)
    rate = sp.simplify(s.m_ff * sp.diff(b_star, s.m_ff) / b_star)
    expressions = {
        "error_bound": bound,
        "attention_term": attention,
        "ff_term": ff,
        "first_derivative": first,
        "second_derivative": second,
        "optimal_m_h": m_star,
        "term_ratio": ratio,
        "optimal_bound": b_star,
        "optimal_rate": rate,
        "dm_h_dbeta": sp.factor_terms(sp.diff(m_star, s.beta)),
        "dm_h_dalpha": sp.factor_terms(sp.diff(m_star, s.alpha)),
    }
    facts = {"is_minimum": bool(convex), "stationary_points": len(roots)}
    return expressions, facts


def _twin_source(expr):
    """``(source, namespace)`` of ``sp.lambdify(args, expr, modules="math")``.

    Every twin takes ``(m_h, m_FF, τ, α, β, C_α, C_β, C_0)``.

    ``namespace`` maps each global name the generated code uses to the
    attribute of `math` it is bound to, so `_compile_twin` can rebuild the
    function without sympy.
    """
    import inspect

    import sympy as sp

    s = symbols()
    args = (s.m_h, s.m_ff, s.tau, s.alpha, s.beta, s.c_alpha, s.c_beta, s.c_0)
    function = sp.lambdify(args, expr, modules="math")
    source = inspect.getsource(function)
    namespace = {}
    for name in function.__code__.co_names:
        value = function.__globals__[name]
        matches = [attr for attr, obj in vars(math).items() if obj is value]
        if not matches:
            raise RuntimeError(f"lambdify bound {name!r} to {value!r}, which is not from `math`")
        namespace[name] = matches[0]
    return source, namespace


def _compile_twin(source, namespace):
    scope = {name: getattr(math, attr) for name, attr in namespace.items()}
    code = compile(source, "<tfapprox.theory twin>", "exec")
    exec(code, scope)  # noqa: S102  (source generated by sympy's lambdify, see _twin_source)
    return scope["_lambdifygenerated"]


def _records(expressions, facts):
    """The JSON-ready cache content for a derivation."""
    import sympy as sp

    records = {}
    for name in EXPRESSIONS:
        expr = expressions[name]
        source, namespace = _twin_source(expr)
        records[name] = {
            "srepr": sp.srepr(expr),
            "text": sp.sstr(expr),
            "latex": sp.latex(expr),
            "pretty": sp.pretty(expr, use_unicode=True),
            "python": source,
            "namespace": namespace,
        }
    return {"format": CACHE_FORMAT, **_cache_key(), "facts": facts, "expressions": records}


def _sympy_version():
    import importlib.util

    spec = importlib.util.find_spec("sympy")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("sympy is not installed; tfapprox.theory needs it")
    release = os.path.join(list(spec.submodule_search_locations)[0], "release.py")
    try:
        with open(release, encoding="utf-8") as f:
            match = re.search(r"""__version__\s*=\s*["']([^"']+)["']""", f.read())
        if match:
            return match.group(1)
    except OSError:
        pass
    import importlib.metadata

    return importlib.metadata.version("sympy")


@functools.cache
def _cache_key():
    from tfapprox import __version__

    with open(__file__, "rb") as f:
        source_sha = hashlib.sha256(f.read()).hexdigest()
    return {
        "tfapprox_version": __version__,
        "sympy_version": _sympy_version(),
        "source_sha256": source_sha,
    }


def cache_dir():
    """The folder of tfapprox's caches.

    ``$TFAPPROX_CACHE_DIR`` if set, else the platform's user cache folder:
    ``$XDG_CACHE_HOME/tfapprox`` (default ``~/.cache/tfapprox``) on Linux,
    ``~/Library/Caches/tfapprox`` on macOS, ``%LOCALAPPDATA%\\tfapprox`` on
    Windows.
    """
    folder = os.environ.get("TFAPPROX_CACHE_DIR")
    if folder:
        return os.path.abspath(os.path.expanduser(folder))
    home = os.path.expanduser("~")
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or os.path.join(home, "AppData", "Local")
    elif sys.platform == "darwin":
        base = os.path.join(home, "Library", "Caches")
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(home, ".cache")
    return os.path.join(base, "tfapprox")


def cache_path():
    """The derivation cache file for this tfapprox, sympy and source version."""
    key = _cache_key()
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:16]
    return os.path.join(cache_dir(), f"theory-derivation-{digest}.json")


def bundled_path():
    """The derivation file shipped in tfapprox's bundled data.

    It is the cache file of the release, made by sympy with
    `write_bundled_derivation` (``python -m tfapprox.theory``), so that the
    first ``tfapprox bound`` after installing is as fast as later ones. It
    is used only when its key (tfapprox version, sympy version, SHA-256 of
    this file) matches; otherwise the derivation runs once and is cached in
    `cache_dir`.
    """
    import importlib.util

    spec = importlib.util.find_spec("tfapprox_data")
    if spec is None or not spec.submodule_search_locations:
        return os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", BUNDLED_NAME)
    return os.path.join(list(spec.submodule_search_locations)[0], BUNDLED_NAME)


def write_bundled_derivation(path=None):
    """Derive with sympy and write the bundled derivation file; return its path."""
    from tfapprox import _io

    expressions, facts = _derive()
    path = bundled_path() if path is None else os.fspath(path)
    _io.atomic_write_json(path, _records(expressions, facts))
    return path


def _read_cache(path):
    """The cached records at ``path`` if they are complete and current, else None."""
    try:
        with open(path, encoding="utf-8") as f:
            records = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(records, dict) or records.get("format") != CACHE_FORMAT:
        return None
    if any(records.get(k) != v for k, v in _cache_key().items()):
        return None
    expressions = records.get("expressions")
    fields = ("srepr", "text", "latex", "pretty", "python", "namespace")
    if not isinstance(expressions, dict) or not isinstance(records.get("facts"), dict):
        return None
    for name in EXPRESSIONS:
        record = expressions.get(name)
        if not isinstance(record, dict) or any(field not in record for field in fields):
            return None
    return records


_STATE = {}


def _compile_twins(records):
    """The numeric twin of each expression in ``records``, by name."""
    return {
        name: _compile_twin(rec["python"], rec["namespace"])
        for name, rec in records["expressions"].items()
        if name in EXPRESSIONS
    }


def _load(path=None):
    """The derivation records: from this process, the cache file, or sympy.

    The records are read (or derived and written) once per process. An
    unwritable cache folder is not an error: the derivation is then kept in
    memory only.
    """
    if path is None and "records" in _STATE:
        return _STATE["records"]
    explicit = path is not None
    path = cache_path() if path is None else os.fspath(path)
    records = _read_cache(path)
    if records is None and not explicit:
        # The derivation shipped with tfapprox (`write_bundled_derivation`),
        # current only for the sympy version and source it was made with.
        records = _read_cache(bundled_path())
    twins = None
    if records is not None:
        try:
            twins = _compile_twins(records)
        except (SyntaxError, TypeError, AttributeError, KeyError):
            records = None
    if records is None:
        expressions, facts = _derive()
        records = _records(expressions, facts)
        twins = _compile_twins(records)
        _STATE["expressions"] = expressions
        try:
            from tfapprox import _io

            _io.atomic_write_json(path, records)
        except OSError:
            pass
    _STATE["records"] = records
    _STATE["twins"] = twins
    return records


def _twins():
    if "twins" not in _STATE:
        _load()
    return _STATE["twins"]


def _expressions():
    """The derived sympy expressions (parsed back from `sp.srepr` if cached)."""
    if "expressions" not in _STATE:
        import sympy as sp

        records = _load()
        if "expressions" not in _STATE:
            _STATE["expressions"] = {
                name: sp.sympify(records["expressions"][name]["srepr"]) for name in EXPRESSIONS
            }
    return _STATE["expressions"]


# ----------------------------------------------------------------------------
# Symbolic API


def error_bound(c_0=None):
    """The bound ``C_0 τ² (C_β / m_h^{2β−1} + C_α m_h^{α+1} / m_FF^α)``.

    Args:
        c_0: number or None. The constant factor; None keeps the symbol C_0.

    >>> error_bound(c_0=1)
    tau**2*(C_alpha*m_h**(alpha + 1)/m_FF**alpha + C_beta*m_h**(1 - 2*beta))
    """
    bound = _bound_parts()[2]
    return bound if c_0 is None else bound.subs(symbols().c_0, c_0)


def attention_term():
    """The POD truncation term ``C_0 τ² C_β m_h^{1−2β}``.

    >>> attention_term()
    C_0*C_beta*m_h**(1 - 2*beta)*tau**2
    """
    return _bound_parts()[0]


def ff_term():
    """The feed-forward term ``C_0 τ² C_α m_h^{α+1} m_FF^{−α}``.

    >>> ff_term()
    C_0*C_alpha*m_h**(alpha + 1)*tau**2/m_FF**alpha
    """
    return _bound_parts()[1]


def optimal_m_h():
    """The minimiser m_h* of the bound over real m_h > 0, derived by sympy.

    The unique root of ∂B/∂m_h = 0 (`sp.diff`, `sp.solve`), equal to
    ``((2β−1) C_β m_FF^α / ((α+1) C_α))^{1/(2β+α)}``.

    >>> optimal_m_h()
    (C_beta*m_FF**alpha*(2*beta - 1)/(C_alpha*(alpha + 1)))**(1/(alpha + 2*beta))
    """
    return _expressions()["optimal_m_h"]


def second_derivative():
    """``∂²B/∂m_h²``, positive for every m_h > 0 when β > 1/2, α > 0.

    >>> s = symbols()
    >>> ones = {s.tau: 1, s.alpha: 1, s.beta: 1, s.c_alpha: 1, s.c_beta: 1, s.c_0: 1, s.m_ff: 1}
    >>> second_derivative().subs(ones).expand()  # B = 1/m_h + m_h², B'' = 2/m_h³ + 2
    2 + 2/m_h**3
    """
    return _expressions()["second_derivative"]


def is_minimum():
    """Whether sympy proved the stationary point a minimum.

    True when ``second_derivative()`` with β = (1+δ)/2, δ > 0, simplifies to
    an expression sympy knows is positive: B is then strictly convex in
    m_h > 0 and its only stationary point is the global minimum.

    >>> is_minimum()
    True
    """
    records = _load()
    facts = records["facts"]
    return bool(facts["is_minimum"]) and facts["stationary_points"] == 1


def optimal_bound():
    """The bound at m_h*: ``C_0 τ² C_β (α+2β)/(α+1) · m_h*^{1−2β}``.

    Derived from the term ratio at the optimum, ff/attention = (2β−1)/(α+1).

    >>> optimal_bound()
    C_0*C_beta*tau**2*(alpha + 2*beta)*((C_beta*m_FF**alpha*(2*beta - 1)/(C_alpha*(alpha + 1)))**(1/(alpha + 2*beta)))**(1 - 2*beta)/(alpha + 1)
    """
    return _expressions()["optimal_bound"]


def optimal_rate():
    """The exponent r of m_FF in the optimal bound, B* ∝ m_FF^r.

    Derived as ``m_FF ∂B*/∂m_FF / B*``; equals ``−α(2β−1)/(2β+α)``.

    >>> optimal_rate()
    alpha*(1 - 2*beta)/(alpha + 2*beta)
    """
    return _expressions()["optimal_rate"]


def sensitivities():
    """``{"beta": ∂m_h*/∂β, "alpha": ∂m_h*/∂α}`` as sympy expressions.

    >>> sorted(sensitivities())
    ['alpha', 'beta']
    """
    expressions = _expressions()
    return {"beta": expressions["dm_h_dbeta"], "alpha": expressions["dm_h_dalpha"]}


def parameter_count_expression(
    *, tied=False, ff_depth=3, output_dim=1, position_encoding="learned", projection_dim=None
):
    """The exact parameter count of `build_transformer`'s model, in sympy.

    `tfapprox.budget.count_parameters` evaluated on the symbols n, m_v, m_h,
    m_FF, τ, d; with ``tied=True`` the embedding width is the paper's
    n = 2 m_h + m_v.

    >>> parameter_count_expression(ff_depth=1).expand()
    d*m_FF + d*tau + m_FF*m_v + m_FF*n + 3*m_FF + 2*m_h*n + m_v*n + n + 1
    """
    s = symbols()
    n = 2 * s.m_h + s.m_v if tied else s.n
    return count_parameters(
        n=n,
        m_h=s.m_h,
        m_v=s.m_v,
        m_ff=s.m_ff,
        ff_depth=check_positive_int("ff_depth", ff_depth),
        sequence_length=s.tau,
        input_dim=s.d,
        output_dim=check_positive_int("output_dim", output_dim),
        position_encoding=position_encoding,
        projection_dim=check_positive_int("projection_dim", projection_dim, allow_none=True),
    )


def render(name, style="text"):
    """A derived expression rendered as text, LaTeX or pretty (unicode) text.

    Reads the renderings stored with the derivation, so it needs no sympy.

    Args:
        name: str. One of `EXPRESSIONS`.
        style: str. ``"text"`` (sympy's `sstr`), ``"latex"`` or ``"pretty"``.

    >>> render("optimal_m_h", "latex")
    '\\\\left(\\\\frac{C_{\\\\beta} m_{FF}^{\\\\alpha} \\\\left(2 \\\\beta - 1\\\\right)}{C_{\\\\alpha} \\\\left(\\\\alpha + 1\\\\right)}\\\\right)^{\\\\frac{1}{\\\\alpha + 2 \\\\beta}}'
    >>> print(render("optimal_rate", "pretty"))
    α⋅(1 - 2⋅β)
    ───────────
      α + 2⋅β
    """
    if style not in ("text", "latex", "pretty"):
        raise ValueError(f"`style` must be 'text', 'latex' or 'pretty'. Received: style={style!r}")
    check_choice("name", name, EXPRESSIONS)
    return _load()["expressions"][name][style]


def formulas(style="text"):
    """Every derived expression rendered in ``style`` (see `render`), as a dict."""
    return {name: render(name, style) for name in EXPRESSIONS}


# ----------------------------------------------------------------------------
# Numeric API


# The twins evaluated at a budget (the others ignore m_h, and some m_ff).
_OF_THE_BUDGET = (
    "error_bound",
    "attention_term",
    "ff_term",
    "first_derivative",
    "second_derivative",
)


@dataclasses.dataclass(frozen=True)
class BoundValue:
    """The bound at one (m_h, m_FF): its two terms and their sum."""

    m_h: float
    m_ff: float
    attention_term: float
    ff_term: float
    bound: float

    def to_dict(self):
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Allocation:
    """The best integer (m_h, m_FF) for a parameter budget (see `Bound.allocate`).

    Attributes:
        m_h, m_ff, n, m_v: int. The chosen widths (n = 2 m_h + m_v if tied).
        tied: bool. Whether n was tied to m_h.
        params_used: int. Exact parameter count of the chosen model.
        params_budget: int. The budget P.
        value: `BoundValue`. The bound at the chosen widths.
        m_h_opt: float. The real optimum m_h*(m_FF) at the chosen m_FF.
        candidates: int. Values of m_h examined.
    """

    m_h: int
    m_ff: int
    n: int
    m_v: int
    tied: bool
    params_used: int
    params_budget: int
    value: BoundValue
    m_h_opt: float
    candidates: int

    def to_dict(self):
        return {**dataclasses.asdict(self), "value": self.value.to_dict()}


@dataclasses.dataclass(frozen=True, kw_only=True)
class Bound:
    """The bound with numbers: evaluate, optimise m_h, allocate a budget.

    ``B(m_h, m_FF) = C_0 τ² (C_β m_h^{1−2β} + C_α m_h^{α+1} m_FF^{−α})``,
    evaluated with the sympy-generated numeric twins (no sympy import).

    Args:
        tau: int. Sequence length τ ≥ 1.
        alpha: float. Feed-forward rate α > 0.
        beta: float. POD decay β > 1/2.
        c_alpha: float. C_α > 0. Defaults to 1.
        c_beta: float. C_β > 0. Defaults to 1.
        c_0: float. Constant factor C_0 > 0. Defaults to 1.

    Example:

    >>> bound = Bound(tau=16, alpha=0.5, beta=1.0)
    >>> value = bound.terms(4, 128)
    >>> round(value.attention_term, 4), round(value.ff_term, 4)
    (64.0, 181.0193)
    >>> round(bound.optimal_rate(), 6)
    -0.2
    """

    tau: int
    alpha: float
    beta: float
    c_alpha: float = 1.0
    c_beta: float = 1.0
    c_0: float = 1.0

    def __post_init__(self):
        for field in ("tau", "alpha", "beta", "c_alpha", "c_beta", "c_0"):
            object.__setattr__(self, field, check_parameter(field, getattr(self, field)))

    def _call(self, name, m_h, m_ff):
        try:
            value = float(
                _twins()[name](
                    m_h, m_ff, self.tau, self.alpha, self.beta, self.c_alpha, self.c_beta, self.c_0
                )
            )
        except (OverflowError, ZeroDivisionError):
            value = math.nan
        if not math.isfinite(value):
            # Finite inputs whose result leaves float64 (e.g. α = 400, or
            # C_0 = 1e308 times τ²): no number to report, so say which ones.
            where = f"m_h={m_h!r}, m_ff={m_ff!r}, " if name in _OF_THE_BUDGET else ""
            raise ValueError(
                f"{name} overflows float64 at {where}tau={self.tau}, beta={self.beta!r}, "
                f"alpha={self.alpha!r}, c_beta={self.c_beta!r}, c_alpha={self.c_alpha!r}, "
                f"c_0={self.c_0!r}: use less extreme values"
            )
        return value

    def terms(self, m_h, m_ff):
        """`BoundValue` at real or integer ``m_h, m_ff > 0``."""
        m_h = check_real("m_h", m_h, low=0, low_open=True)
        m_ff = check_real("m_ff", m_ff, low=0, low_open=True)
        attention = self._call("attention_term", m_h, m_ff)
        ff = self._call("ff_term", m_h, m_ff)
        return BoundValue(
            m_h=m_h,
            m_ff=m_ff,
            attention_term=attention,
            ff_term=ff,
            bound=self._call("error_bound", m_h, m_ff),
        )

    def __call__(self, m_h, m_ff):
        """``B(m_h, m_FF)``."""
        return self.terms(m_h, m_ff).bound

    def optimal_m_h(self, m_ff):
        """The real minimiser m_h*(m_FF) (see `optimal_m_h`)."""
        return self._call("optimal_m_h", 1.0, check_real("m_ff", m_ff, low=0, low_open=True))

    def integer_m_h(self, m_ff):
        """The best integer m_h ≥ 1 for ``m_ff``: floor or ceil of m_h*, or 1.

        B is convex in m_h, so the integer minimiser is a neighbour of m_h*.
        Ties go to the smaller m_h.
        """
        m_star = self.optimal_m_h(m_ff)
        low = max(1, math.floor(m_star))
        high = max(1, math.ceil(m_star))
        return low if self(low, m_ff) <= self(high, m_ff) else high

    def optimal_bound(self, m_ff):
        """The bound at the real optimum, ``B(m_h*(m_FF), m_FF)``."""
        return self._call("optimal_bound", 1.0, check_real("m_ff", m_ff, low=0, low_open=True))

    def optimal_rate(self):
        """The exponent of m_FF in the optimal bound, ``−α(2β−1)/(2β+α)``."""
        return self._call("optimal_rate", 1.0, 1.0)

    def sensitivities(self, m_ff):
        """``{"beta": ∂m_h*/∂β, "alpha": ∂m_h*/∂α}`` at ``m_ff``."""
        m_ff = check_real("m_ff", m_ff, low=0, low_open=True)
        return {
            "beta": self._call("dm_h_dbeta", 1.0, m_ff),
            "alpha": self._call("dm_h_dalpha", 1.0, m_ff),
        }

    def allocate(
        self,
        params,
        *,
        input_dim,
        n=None,
        m_v=None,
        ff_depth=3,
        output_dim=1,
        position_encoding="learned",
        projection_dim=None,
        m_h=None,
    ):
        """The integers (m_h, m_FF) minimising the bound with at most ``params`` parameters.

        The count is the exact `tfapprox.budget.count_parameters` of the model
        `build_transformer` builds (τ = ``self.tau``, d = ``input_dim``). It
        is quadratic in m_FF with non-negative coefficients, and B falls as
        m_FF grows, so for each m_h the best m_FF is the largest feasible
        one, found exactly with integer arithmetic (`math.isqrt`). m_h runs
        from 1 upwards while m_FF = 1 still fits, and stops as soon as the
        feed-forward term alone (which only grows with m_h) reaches the best
        bound found: no larger m_h can beat it. The result is exact over
        the integers; ties go to the smaller m_h.

        Args:
            params: int. The parameter budget P.
            input_dim: int. Token dimension d.
            n: int or None. Embedding width; None ties it to m_h as the
                paper's n = 2 m_h + m_v.
            m_v: int or None. Value width. Defaults to ``n`` when n is
                given; required when n is tied.
            ff_depth, output_dim, position_encoding, projection_dim: as in
                `tfapprox.budget.count_parameters`.
            m_h: int or None. Fix m_h and only choose m_FF.

        Returns:
            `Allocation`.

        Raises:
            ValueError: the budget is too small for m_h = 1 (or the given
                m_h) with m_FF = 1; the message gives the minimum.
        """
        params = check_positive_int("params", params)
        fixed = dict(
            ff_depth=check_positive_int("ff_depth", ff_depth),
            output_dim=check_positive_int("output_dim", output_dim),
            position_encoding=position_encoding,
            projection_dim=check_positive_int("projection_dim", projection_dim, allow_none=True),
            input_dim=check_positive_int("input_dim", input_dim),
            sequence_length=self.tau,
        )
        tied = n is None
        if tied:
            if m_v is None:
                raise ValueError("`m_v` is required when `n` is tied to m_h (n = 2 m_h + m_v)")
            m_v = check_positive_int("m_v", m_v)
        else:
            n = check_positive_int("n", n)
            m_v = n if m_v is None else check_positive_int("m_v", m_v)
        if m_h is not None:
            m_h = check_positive_int("m_h", m_h)

        def width(k):
            return 2 * k + m_v if tied else n

        def count(k, m_ff):
            return count_parameters(n=width(k), m_h=k, m_v=m_v, m_ff=m_ff, **fixed)

        def largest_m_ff(k):
            return _largest_feasible(lambda m_ff: count(k, m_ff), params)

        start = 1 if m_h is None else m_h
        if largest_m_ff(start) < 1:
            needed = count(start, 1)
            which = "the smallest model" if m_h is None else "the smallest model with that m_h"
            raise ValueError(
                f"a parameter budget of {params} is too small: {which} (m_h = {start}, "
                f"m_FF = 1) needs at least {needed} parameters"
            )
        if m_h is not None:
            best, candidates = (m_h, largest_m_ff(m_h)), 1
        else:
            best, best_bound, candidates, k = None, math.inf, 0, 1
            while True:
                m_ff = largest_m_ff(k)
                if m_ff < 1:
                    break
                if candidates == _MAX_CANDIDATES:
                    raise ValueError(
                        f"`params`={params} is too large to search m_h exactly (more than "
                        f"{_MAX_CANDIDATES} candidates; m_h* ≈ {self.optimal_m_h(m_ff):.4g} at "
                        f"m_FF = {m_ff}): give m_h, or use optimal_m_h"
                    )
                candidates += 1
                value = self.terms(k, m_ff)
                if value.ff_term >= best_bound:
                    break
                if value.bound < best_bound:
                    best, best_bound = (k, m_ff), value.bound
                k += 1
        k, m_ff = best
        return Allocation(
            m_h=k,
            m_ff=m_ff,
            n=width(k),
            m_v=m_v,
            tied=tied,
            params_used=count(k, m_ff),
            params_budget=params,
            value=self.terms(k, m_ff),
            m_h_opt=self.optimal_m_h(m_ff),
            candidates=candidates,
        )


# `Bound.allocate` tries m_h = 1, 2, ... (exact, about 0.1 ms each); past
# this many it refuses rather than run for minutes.
_MAX_CANDIDATES = 20_000


def _quadratic_coefficients(count):
    """Integer ``(a, b, c)`` with ``count(x) == a x² + b x + c``, checked at x = 3."""
    c0, c1, c2 = count(0), count(1), count(2)
    a2 = c2 - 2 * c1 + c0
    if a2 % 2:
        raise RuntimeError("the parameter count is not an integer quadratic in m_FF")
    a = a2 // 2
    b = c1 - c0 - a
    if count(3) != 9 * a + 3 * b + c0:
        raise RuntimeError("the parameter count is not quadratic in m_FF")
    return a, b, c0


def _largest_feasible(count, params):
    """The largest integer x ≥ 0 with ``count(x) <= params`` (0 if none), exactly.

    ``count`` is an integer quadratic ``a x² + b x + c`` with a ≥ 0, b > 0.
    """
    a, b, c = _quadratic_coefficients(count)
    if a < 0 or b <= 0 and a == 0:
        raise RuntimeError("the parameter count must grow with m_FF")
    slack = params - c
    if slack < 0:
        return 0
    if a == 0:
        x = slack // b
    else:
        x = (math.isqrt(b * b + 4 * a * slack) - b) // (2 * a)

    def value(k):
        return a * k * k + b * k + c

    while value(x + 1) <= params:
        x += 1
    while x > 0 and value(x) > params:
        x -= 1
    return max(x, 0)


_SYMBOL_NAMES = ("tau", "m_h", "m_ff", "alpha", "beta", "c_alpha", "c_beta", "c_0", "n", "m_v", "d")


def __getattr__(name):
    # ``theory.m_h`` and friends: the sympy symbols, created on first use.
    if name in _SYMBOL_NAMES:
        return getattr(symbols(), name)
    # The checker moved to `tfapprox.check` (which imports this module).
    if name in ("check_errors", "CheckReport", "load_points"):
        from tfapprox import check

        return getattr(check, name)
    raise AttributeError(f"module 'tfapprox.theory' has no attribute {name!r}")


if __name__ == "__main__":
    print(f"wrote {write_bundled_derivation()}")
