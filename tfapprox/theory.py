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
choose an integer m_h, allocate a parameter budget) and `check_errors`
(measured errors against the bound), returning `Allocation` and
`CheckReport`.

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
import numbers
import os
import re
import sys

from tfapprox._checks import check_choice, check_positive_int, check_real
from tfapprox.budget import count_parameters

__all__ = [
    "Allocation",
    "Bound",
    "BoundValue",
    "CheckReport",
    "attention_term",
    "bundled_path",
    "cache_dir",
    "cache_path",
    "check_errors",
    "check_parameter",
    "error_bound",
    "ff_term",
    "formulas",
    "is_minimum",
    "load_points",
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

VERDICTS = ("consistent", "faster than predicted", "slower than predicted", "insufficient data")


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
        ff_depth=ff_depth,
        sequence_length=s.tau,
        input_dim=s.d,
        output_dim=output_dim,
        position_encoding=position_encoding,
        projection_dim=projection_dim,
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
        return float(
            _twins()[name](
                m_h, m_ff, self.tau, self.alpha, self.beta, self.c_alpha, self.c_beta, self.c_0
            )
        )

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


# ----------------------------------------------------------------------------
# Checking measured errors against the bound


def _as_int(name, value, where):
    try:
        return check_positive_int(name, value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from None


def load_points(results):
    """Measured errors as ``(points, metadata, skipped)``.

    ``results`` is a results file path written by `tfapprox.training`, its
    parsed dict ``{"runs": [...], "metadata": {...}}``, or a list of runs.
    A run is either a training run (``"budget": {"m_h", "m_ff", ...}``,
    ``"loss"``, ``"seed"``) or a flat dict with ``m_h``, ``m_ff``, ``error``
    and optionally ``seed``. Runs with a non-finite error (diverged training)
    are skipped and counted.

    Returns:
        points: list of dicts ``{"m_h", "m_ff", "errors": [...], "seeds": [...]}``
            sorted by (m_ff, m_h), one per budget.
        metadata: dict (empty for a list).
        skipped: int.

    >>> points, _, _ = load_points([{"m_h": 2, "m_ff": 8, "error": 0.5, "seed": 0},
    ...                             {"m_h": 2, "m_ff": 8, "error": 0.25, "seed": 1}])
    >>> points
    [{'m_h': 2, 'm_ff': 8, 'errors': [0.5, 0.25], 'seeds': [0, 1]}]
    """
    source = "results"
    if isinstance(results, (str, os.PathLike)):
        from tfapprox import _io

        source = f"results file {os.fspath(results)}"
        results = _io.read_json(results, what="results file")
    metadata = {}
    if isinstance(results, dict):
        if not isinstance(results.get("runs"), list):
            raise ValueError(
                f'{source} must be a JSON object {{"runs": [...], "metadata": {{...}}}}'
            )
        metadata = results.get("metadata") or {}
        if not isinstance(metadata, dict):
            raise ValueError(f"{source}: `metadata` must be a JSON object")
        runs = results["runs"]
    elif isinstance(results, (list, tuple)):
        runs = results
    else:
        raise TypeError(
            f"`results` must be a results file path, a results dict or a list of runs. "
            f"Received: {type(results).__name__}"
        )
    groups = {}
    skipped = 0
    for index, run in enumerate(runs):
        where = f"{source}: run {index}"
        if not isinstance(run, dict):
            raise ValueError(f"{where} must be a dict. Received: {type(run).__name__}")
        if "budget" in run:
            budget = run["budget"]
            if not isinstance(budget, dict) or "m_h" not in budget or "m_ff" not in budget:
                raise ValueError(f"{where}: `budget` must be an object with `m_h` and `m_ff`")
            if "loss" not in run:
                raise ValueError(f"{where} lacks `loss`")
            m_h, m_ff, error = budget["m_h"], budget["m_ff"], run["loss"]
        else:
            missing = [key for key in ("m_h", "m_ff", "error") if key not in run]
            if missing:
                raise ValueError(
                    f"{where} lacks {missing}: a run needs `budget` and `loss` (a training "
                    "run) or `m_h`, `m_ff` and `error`"
                )
            m_h, m_ff, error = run["m_h"], run["m_ff"], run["error"]
        m_h = _as_int("m_h", m_h, where)
        m_ff = _as_int("m_ff", m_ff, where)
        if error is None or isinstance(error, bool) or not isinstance(error, numbers.Real):
            raise ValueError(f"{where}: the error must be a number. Received: {error!r}")
        error = float(error)
        if not math.isfinite(error):
            skipped += 1
            continue
        if error < 0:
            raise ValueError(f"{where}: the error must be >= 0. Received: {error!r}")
        group = groups.setdefault(
            (m_ff, m_h), {"m_h": m_h, "m_ff": m_ff, "errors": [], "seeds": []}
        )
        group["errors"].append(error)
        group["seeds"].append(run.get("seed"))
    points = [groups[key] for key in sorted(groups)]
    return points, metadata, skipped


@dataclasses.dataclass
class CheckReport:
    """What `check_errors` found. ``to_dict()`` is JSON-ready.

    Attributes:
        parameters: dict. ``tau``, ``alpha``, ``beta``, ``c_0``.
        points: list of dict. One per budget: ``m_h``, ``m_ff``, ``error``
            (minimum over seeds, the approximation-error proxy),
            ``error_max``, ``seeds``, ``bound`` (with `constants`).
        skipped: int. Runs with a non-finite error, ignored.
        fitted: dict. ``c_beta``, ``c_alpha`` from non-negative least squares
            of the relative residuals (None without positive errors).
        constants: dict. ``c_beta``, ``c_alpha`` used for the bound, and
            ``source``: which were ``"given"`` and which ``"fitted"``.
        given_bound_all: bool or None. Whether the given constants bound
            every point (None unless both were given).
        envelope_scale: float or None. max(error / bound): the factor the
            constants used must be multiplied by to bound every point.
        violations: list of dict. Points above the bound: ``m_h``, ``m_ff``,
            ``error``, ``bound``, ``margin`` (error − bound), ``ratio``.
        rate: dict. The headline slope of log error vs log m_h: ``m_ff``,
            ``m_h_range``, ``points``, ``slope``, ``intercept``, ``ci``,
            ``confidence``, ``predicted`` (−(2β−1)), ``verdict``.
        rate_by_m_ff: list of dict. The same for every m_FF.
        optima: list of dict. Per m_FF: ``empirical_m_h``,
            ``predicted_m_h_opt`` (real), ``predicted_m_h`` (integer),
            ``m_h_range`` tested, ``within_range``.
    """

    parameters: dict
    points: list
    skipped: int
    fitted: dict
    constants: dict
    given_bound_all: object
    envelope_scale: object
    violations: list
    rate: dict
    rate_by_m_ff: list
    optima: list

    def to_dict(self):
        return dataclasses.asdict(self)


def _nnls(columns, target):
    """Exact non-negative least squares ``min ‖A x − y‖``, x ≥ 0, for ≤ 2 columns.

    The solution is the best of the unconstrained fits on every subset of
    columns whose coefficients are all non-negative (the KKT conditions
    select one of them).
    """
    import itertools

    import numpy as np

    matrix = np.column_stack(columns)
    best, best_residual = np.zeros(matrix.shape[1]), float(np.sum(target**2))
    for size in range(1, matrix.shape[1] + 1):
        for subset in itertools.combinations(range(matrix.shape[1]), size):
            coef = np.linalg.lstsq(matrix[:, subset], target, rcond=None)[0]
            if np.any(coef < 0):
                continue
            x = np.zeros(matrix.shape[1])
            x[list(subset)] = coef
            residual = float(np.sum((matrix @ x - target) ** 2))
            if residual < best_residual - 1e-15 * max(best_residual, 1.0):
                best, best_residual = x, residual
    return best


def _slope(log_m, log_e, rng, n_bootstrap, confidence, predicted):
    import numpy as np

    slope, intercept = np.polyfit(log_m, log_e, 1)
    draws = []
    size = len(log_m)
    for _ in range(n_bootstrap):
        idx = rng.integers(0, size, size)
        if np.unique(log_m[idx]).size < 2:
            continue
        draws.append(np.polyfit(log_m[idx], log_e[idx], 1)[0])
    tail = 100 * (1 - confidence) / 2
    if draws:
        low, high = (float(v) for v in np.percentile(draws, [tail, 100 - tail]))
    else:
        low = high = float(slope)
    low, high = min(low, float(slope)), max(high, float(slope))
    # Exact data give a zero-width interval; allow for rounding.
    slack = 1e-9 * max(1.0, abs(predicted))
    if low - slack <= predicted <= high + slack:
        verdict = "consistent"
    elif high + slack < predicted:
        verdict = "faster than predicted"
    else:
        verdict = "slower than predicted"
    return float(slope), float(intercept), [low, high], verdict


def _rate_for(group, predicted, floor_rtol, rng, n_bootstrap, confidence):
    """Slope of log error vs log m_h at one m_FF, before the error floor."""
    import numpy as np

    group = sorted(group, key=lambda p: p["m_h"])
    errors = np.array([p["error"] for p in group])
    m_ff = group[0]["m_ff"]
    result = {
        "m_ff": m_ff,
        "m_h_range": None,
        "points": 0,
        "slope": None,
        "intercept": None,
        "ci": None,
        "confidence": confidence,
        "predicted": predicted,
        "verdict": "insufficient data",
    }
    if errors.size == 0 or errors.max() <= 0:
        return result
    # The range before the floor: up to the smallest error, without the points
    # at the floor (error ≤ floor_rtol · largest error).
    stop = int(np.argmin(errors))
    keep = [i for i in range(stop + 1) if errors[i] > floor_rtol * errors.max()]
    result["points"] = len(keep)
    if len(keep) < 3:
        return result
    log_m = np.log([group[i]["m_h"] for i in keep])
    log_e = np.log(errors[keep])
    slope, intercept, ci, verdict = _slope(log_m, log_e, rng, n_bootstrap, confidence, predicted)
    result.update(
        m_h_range=[group[keep[0]]["m_h"], group[keep[-1]]["m_h"]],
        slope=slope,
        intercept=intercept,
        ci=ci,
        verdict=verdict,
    )
    return result


def check_errors(
    results,
    tau,
    alpha,
    beta,
    c_alpha=None,
    c_beta=None,
    *,
    c_0=1.0,
    floor_rtol=1e-2,
    n_bootstrap=2000,
    confidence=0.95,
    seed=0,
):
    """Check measured errors at budgets (m_h, m_FF) against the bound.

    The error at a budget is the minimum over its seeds (the
    approximation-error proxy). The report has:

    1. **Fitted constants**: the bound is linear in C_β and C_α,
       ``B_i = C_β a_i + C_α b_i`` with ``a_i = C_0 τ² m_h^{1−2β}`` and
       ``b_i = C_0 τ² m_h^{α+1} m_FF^{−α}``; C_β, C_α ≥ 0 minimise
       ``Σ_i (B_i / e_i − 1)²`` (relative residuals, so large and small
       errors weigh alike; points with zero error are left out), solved
       exactly. The bound then uses the given constants, and the fitted
       ones for those not given (refitted with the given one fixed).
    2. **Rate**: the slope of log e vs log m_h at each m_FF, over the m_h
       up to the smallest error, leaving out the floor (e ≤ ``floor_rtol``
       × the largest error at that m_FF), at least 3 points; a bootstrap
       ``confidence`` interval (resampling points) against −(2β−1) gives the
       verdict. The headline is the m_FF with most such points (the largest
       m_FF on ties), where the feed-forward term interferes least.
    3. **Violations**: points above the bound, with margins.
    4. **Optimum**: the best measured m_h at each m_FF against m_h*.

    Args:
        results: a results file path, a results dict or a list of runs (see
            `load_points`).
        tau: int or None. Sequence length; None reads ``sequence_length``
            from the results metadata.
        alpha, beta: float. The rates (α > 0, β > 1/2).
        c_alpha, c_beta: float or None. Constants to check; None fits them.
        c_0: float. Constant factor. Defaults to 1.
        floor_rtol: float. Relative error floor. Defaults to 1e-2.
        n_bootstrap: int. Bootstrap resamples. Defaults to 2000.
        confidence: float. Interval level. Defaults to 0.95.
        seed: int. Seed of the bootstrap.

    Returns:
        `CheckReport`.

    >>> runs = [{"m_h": k, "m_ff": 1024, "error": 256 * (2.0 / k + k**1.5 / 32)}
    ...         for k in (1, 2, 3, 4)]
    >>> report = check_errors(runs, tau=16, alpha=0.5, beta=1.0, n_bootstrap=0)
    >>> {k: round(v, 6) for k, v in sorted(report.fitted.items())}
    {'c_alpha': 1.0, 'c_beta': 2.0}
    >>> report.violations
    []
    """
    import numpy as np

    points, metadata, skipped = load_points(results)
    if tau is None:
        tau = metadata.get("sequence_length")
        if tau is None:
            raise ValueError(
                "`tau` is required: the results record no `sequence_length` in their metadata"
            )
    alpha = check_parameter("alpha", alpha)
    beta = check_parameter("beta", beta)
    given = {
        "c_alpha": None if c_alpha is None else check_parameter("c_alpha", c_alpha),
        "c_beta": None if c_beta is None else check_parameter("c_beta", c_beta),
    }
    unit = Bound(tau=tau, alpha=alpha, beta=beta, c_alpha=1.0, c_beta=1.0, c_0=c_0)
    tau, c_0 = unit.tau, unit.c_0
    floor_rtol = check_real("floor_rtol", floor_rtol)
    confidence = check_real("confidence", confidence, low=0, high=1, low_open=True, high_open=True)
    n_bootstrap = int(n_bootstrap)
    if not points:
        raise ValueError("no measured errors to check (every run was empty or non-finite)")

    error = np.array([min(p["errors"]) for p in points])
    terms = [unit.terms(p["m_h"], p["m_ff"]) for p in points]
    a = np.array([t.attention_term for t in terms])
    b = np.array([t.ff_term for t in terms])

    # Least squares in relative error: each point's terms divided by its error.
    positive = error > 0
    a_rel, b_rel = a[positive] / error[positive], b[positive] / error[positive]
    ones = np.ones(a_rel.size)
    fitted = {"c_alpha": None, "c_beta": None}
    if positive.any():
        beta_alpha = _nnls([a_rel, b_rel], ones)
        fitted = {"c_beta": float(beta_alpha[0]), "c_alpha": float(beta_alpha[1])}
    constants = dict(given)
    source = {key: "given" if given[key] is not None else "fitted" for key in given}
    if given["c_beta"] is not None and given["c_alpha"] is None and positive.any():
        constants["c_alpha"] = float(_nnls([b_rel], ones - given["c_beta"] * a_rel)[0])
    elif given["c_alpha"] is not None and given["c_beta"] is None and positive.any():
        constants["c_beta"] = float(_nnls([a_rel], ones - given["c_alpha"] * b_rel)[0])
    for key in constants:
        if constants[key] is None:
            constants[key] = fitted[key] if fitted[key] is not None else 0.0

    bound = constants["c_beta"] * a + constants["c_alpha"] * b
    violations = []
    rows = []
    for point, e, bnd in zip(points, error, bound):
        rows.append(
            {
                "m_h": point["m_h"],
                "m_ff": point["m_ff"],
                "error": float(e),
                "error_max": float(max(point["errors"])),
                "seeds": len(point["errors"]),
                "errors": [float(v) for v in point["errors"]],
                "bound": float(bnd),
            }
        )
        if e > bnd * (1 + 1e-12):
            violations.append(
                {
                    "m_h": point["m_h"],
                    "m_ff": point["m_ff"],
                    "error": float(e),
                    "bound": float(bnd),
                    "margin": float(e - bnd),
                    "ratio": float(e / bnd) if bnd > 0 else math.inf,
                }
            )
    given_bound_all = None
    if given["c_alpha"] is not None and given["c_beta"] is not None:
        given_bound_all = not violations
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.where(bound > 0, error / bound, np.where(error > 0, np.inf, 0.0))
    envelope = float(ratios.max()) if ratios.size else None

    predicted = -(2 * beta - 1)
    rng = np.random.default_rng(seed)
    by_m_ff = {}
    for row in rows:
        by_m_ff.setdefault(row["m_ff"], []).append(row)
    rate_by_m_ff = [
        _rate_for(group, predicted, floor_rtol, rng, n_bootstrap, confidence)
        for _, group in sorted(by_m_ff.items())
    ]
    headline = max(rate_by_m_ff, key=lambda r: (r["points"] >= 3, r["points"], r["m_ff"]))

    optima = []
    numeric = None
    if constants["c_alpha"] > 0 and constants["c_beta"] > 0:
        numeric = Bound(
            tau=tau,
            alpha=alpha,
            beta=beta,
            c_alpha=constants["c_alpha"],
            c_beta=constants["c_beta"],
            c_0=c_0,
        )
    for m_ff, group in sorted(by_m_ff.items()):
        best = min(group, key=lambda r: (r["error"], r["m_h"]))
        tested = [min(r["m_h"] for r in group), max(r["m_h"] for r in group)]
        m_star = numeric.optimal_m_h(m_ff) if numeric else None
        optima.append(
            {
                "m_ff": m_ff,
                "empirical_m_h": best["m_h"],
                "empirical_error": best["error"],
                "predicted_m_h_opt": m_star,
                "predicted_m_h": numeric.integer_m_h(m_ff) if numeric else None,
                "m_h_range": tested,
                "within_range": None if m_star is None else tested[0] <= m_star <= tested[1],
            }
        )

    return CheckReport(
        parameters={"tau": tau, "alpha": alpha, "beta": beta, "c_0": c_0},
        points=rows,
        skipped=skipped,
        fitted=fitted,
        constants={**constants, "source": source},
        given_bound_all=given_bound_all,
        envelope_scale=envelope,
        violations=violations,
        rate=headline,
        rate_by_m_ff=rate_by_m_ff,
        optima=optima,
    )


_SYMBOL_NAMES = ("tau", "m_h", "m_ff", "alpha", "beta", "c_alpha", "c_beta", "c_0", "n", "m_v", "d")


def __getattr__(name):
    # ``theory.m_h`` and friends: the sympy symbols, created on first use.
    if name in _SYMBOL_NAMES:
        return getattr(symbols(), name)
    raise AttributeError(f"module 'tfapprox.theory' has no attribute {name!r}")


if __name__ == "__main__":
    print(f"wrote {write_bundled_derivation()}")
