"""Checking measured errors against the bound of Jiang & Li (2024).

`check_errors` takes the errors of trained models at budgets (m_h, m_FF),
from a results file (`tfapprox.results`) or a list of points, and reports
how they sit against ``B(m_h, m_FF) = C_0 τ² (C_β m_h^{1−2β} + C_α m_h^{α+1}
m_FF^{−α})`` (`tfapprox.theory.Bound`): fitted constants (`tfapprox.fits.nnls`),
the measured rate in m_h with a bootstrap interval (`tfapprox.fits.power_law`)
against the predicted −(2β−1), points above the bound, and the best m_h
against m_h*. The result is a `CheckReport`.

Only NumPy is needed (no sympy with a warm derivation cache, no TensorFlow).
"""

import dataclasses
import math
import numbers
import os

from tfapprox import fits, theory
from tfapprox import results as _results
from tfapprox._checks import check_int, check_positive_int, check_real, check_seed

__all__ = [
    "ERROR_KEYS",
    "VERDICTS",
    "CheckReport",
    "check_errors",
    "envelope_constants",
    "load_points",
]

# How a measured rate compares with the predicted one.
VERDICTS = ("consistent", "faster than predicted", "slower than predicted", "insufficient data")


def _as_int(name, value, where):
    try:
        return check_positive_int(name, value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from None


ERROR_KEYS = ("loss", "error", "val_loss", "val_error")


def _point_of(run, where, error_key="loss"):
    """``(m_h, m_ff, error)`` of a training run (budget and ``error_key``) or a flat point."""
    if "budget" in run:
        if error_key not in run:
            raise ValueError(
                f"{where} records no `{error_key}` (runs of `tfapprox sweep` record "
                "`error` and `val_error` in paper A's norm)"
            )
        return run["budget"]["m_h"], run["budget"]["m_ff"], run[error_key]
    missing = [key for key in ("m_h", "m_ff", "error") if key not in run]
    if missing:
        raise ValueError(
            f"{where} lacks {missing}: a run needs `budget` and `loss` (a training "
            "run) or `m_h`, `m_ff` and `error`"
        )
    m_h = _as_int("m_h", run["m_h"], where)
    m_ff = _as_int("m_ff", run["m_ff"], where)
    error = run["error"]
    if error is None or isinstance(error, bool) or not isinstance(error, numbers.Real):
        raise ValueError(f"{where}: the error must be a number. Received: {error!r}")
    return m_h, m_ff, error


def load_points(results, error_key="loss"):
    """Measured errors as ``(points, metadata, skipped)``.

    ``results`` is a results file path, a results dict (both read and
    validated by `tfapprox.results`: every run a training run with
    ``budget``, ``loss`` and ``seed``), or a list of runs, each a training
    run or a flat point ``{"m_h", "m_ff", "error"}`` (optionally ``seed``).
    Runs with a non-finite error (diverged training) are skipped and counted.
    ``error_key`` says which number of a training run is its error:
    ``"loss"`` (the training MSE, the default), ``"error"`` (paper A's norm,
    mean Σ_t |H_t − Ĥ_t|, on the training data), ``"val_loss"`` or
    ``"val_error"`` (on held-out data).

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
    if error_key not in ERROR_KEYS:
        raise ValueError(
            f"`error_key` must be one of {', '.join(ERROR_KEYS)}. Received: error_key={error_key!r}"
        )
    metadata = {}
    if isinstance(results, (str, os.PathLike)):
        checked = _results.read(results)
        runs, metadata = checked["runs"], checked["metadata"]
    elif isinstance(results, dict):
        checked = _results.validate(results)
        runs, metadata = checked["runs"], checked["metadata"]
    elif isinstance(results, (list, tuple)):
        runs = list(results)
    else:
        raise TypeError(
            f"`results` must be a results file path, a results dict or a list of runs. "
            f"Received: {type(results).__name__}"
        )
    groups = {}
    skipped = 0
    for index, run in enumerate(runs):
        where = f"results: run {index}"
        if not isinstance(run, dict):
            raise ValueError(f"{where} must be a dict. Received: {type(run).__name__}")
        if "budget" in run:
            run = _results.validate_run(run, where)
        m_h, m_ff, error = _point_of(run, where, error_key)
        error = math.nan if error is None else float(error)
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
            ``m_h_range`` tested, ``within_range``; and
            ``envelope_m_h_opt``, ``envelope_m_h`` from the envelope
            constants.
        envelope: dict. The smallest constants with which the bound holds
            at every point (`envelope_constants`): ``c_beta``, ``c_alpha``,
            ``mean_ratio`` (mean bound/error), ``tight`` (the points where
            it touches, as ``[m_h, m_ff]``).
        error_key: str. Which number of the runs was checked.
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
    envelope: dict = None
    error_key: str = "loss"

    def to_dict(self):
        return dataclasses.asdict(self)


def _verdict(ci, predicted):
    """Where the predicted slope lies relative to the interval ``ci``."""
    low, high = ci
    # Exact data give a zero-width interval; allow for rounding.
    slack = 1e-9 * max(1.0, abs(predicted))
    if low - slack <= predicted <= high + slack:
        return VERDICTS[0]
    return VERDICTS[1] if high + slack < predicted else VERDICTS[2]


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
        "verdict": VERDICTS[3],
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
    fit = fits.power_law(
        [group[i]["m_h"] for i in keep],
        errors[keep],
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        seed=rng,
    )
    result.update(
        m_h_range=[group[keep[0]]["m_h"], group[keep[-1]]["m_h"]],
        slope=fit.slope,
        intercept=fit.intercept,
        ci=fit.slope_ci,
        verdict=_verdict(fit.slope_ci, predicted),
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
    error_key="loss",
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
    5. **Envelope constants**: the smallest C_β, C_α ≥ 0 with which the
       bound holds at every point (`envelope_constants`, a linear program),
       so a report can say "the bound holds with C_β = …, C_α = …"; and
       m_h* at each m_FF from them.

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
        error_key: str. Which number of a training run is its error (see
            `load_points`). Defaults to ``"loss"``.

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

    points, metadata, skipped = load_points(results, error_key)
    if tau is None:
        tau = _results.sequence_length(metadata)
        if tau is None:
            raise ValueError(
                "`tau` is required: the results record no `sequence_length` in their metadata"
            )
    alpha = theory.check_parameter("alpha", alpha)
    beta = theory.check_parameter("beta", beta)
    given = {
        "c_alpha": None if c_alpha is None else theory.check_parameter("c_alpha", c_alpha),
        "c_beta": None if c_beta is None else theory.check_parameter("c_beta", c_beta),
    }
    unit = theory.Bound(tau=tau, alpha=alpha, beta=beta, c_alpha=1.0, c_beta=1.0, c_0=c_0)
    tau, c_0 = unit.tau, unit.c_0
    floor_rtol = check_real("floor_rtol", floor_rtol, low=0, high=1)
    confidence = check_real("confidence", confidence, low=0, high=1, low_open=True, high_open=True)
    n_bootstrap = check_int("n_bootstrap", n_bootstrap, minimum=0, maximum=10**7)
    seed = check_seed("seed", seed)
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
        beta_alpha = fits.nnls([a_rel, b_rel], ones)
        fitted = {"c_beta": float(beta_alpha[0]), "c_alpha": float(beta_alpha[1])}
    constants = dict(given)
    source = {key: "given" if given[key] is not None else "fitted" for key in given}
    if given["c_beta"] is not None and given["c_alpha"] is None and positive.any():
        constants["c_alpha"] = float(fits.nnls([b_rel], ones - given["c_beta"] * a_rel)[0])
    elif given["c_alpha"] is not None and given["c_beta"] is None and positive.any():
        constants["c_beta"] = float(fits.nnls([a_rel], ones - given["c_alpha"] * b_rel)[0])
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
        numeric = theory.Bound(
            tau=tau,
            alpha=alpha,
            beta=beta,
            c_alpha=constants["c_alpha"],
            c_beta=constants["c_beta"],
            c_0=c_0,
        )
    lp = envelope_constants(a, b, error)
    lp["tight"] = [[points[i]["m_h"], points[i]["m_ff"]] for i in lp["tight"]]
    enveloped = None
    if lp["c_beta"] > 0 and lp["c_alpha"] > 0:
        enveloped = theory.Bound(
            tau=tau, alpha=alpha, beta=beta, c_alpha=lp["c_alpha"], c_beta=lp["c_beta"], c_0=c_0
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
                "envelope_m_h_opt": enveloped.optimal_m_h(m_ff) if enveloped else None,
                "envelope_m_h": enveloped.integer_m_h(m_ff) if enveloped else None,
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
        envelope=lp,
        error_key=error_key,
    )


def envelope_constants(attention_terms, ff_terms, errors):
    """The smallest constants (C_β, C_α) ≥ 0 for which the bound holds at every point.

    The bound is linear in its constants, ``B_i = C_β a_i + C_α b_i`` with
    ``a_i = C_0 τ² m_h^{1−2β}`` and ``b_i = C_0 τ² m_h^{α+1} m_FF^{−α}``
    (``attention_terms``, ``ff_terms``), so the constants that make it hold
    everywhere and hug the data best solve the linear program

        minimise  Σ_i (C_β a_i + C_α b_i) / e_i   (the mean ratio bound/error)
        subject to  C_β a_i + C_α b_i ≥ e_i  for every i,   C_β, C_α ≥ 0,

    over the points with e_i > 0 (a zero error is bounded by any constants).
    Solved with `scipy.optimize.linprog` (HiGHS).

    Returns:
        dict ``{"c_beta", "c_alpha", "mean_ratio", "tight": [indices where the bound equals the error]}``.

    >>> import numpy as np
    >>> m = np.array([1.0, 2.0, 4.0])
    >>> out = envelope_constants(m ** -1.0, m ** 1.5 / 64, 2.0 / m + 0.5 * m ** 1.5 / 64)
    >>> round(out["c_beta"], 6), round(out["c_alpha"], 6)
    (2.0, 0.5)
    """
    import numpy as np
    from scipy.optimize import linprog

    a = np.asarray(attention_terms, dtype=np.float64)
    b = np.asarray(ff_terms, dtype=np.float64)
    e = np.asarray(errors, dtype=np.float64)
    keep = e > 0
    if not keep.any():
        return {"c_beta": 0.0, "c_alpha": 0.0, "mean_ratio": None, "tight": []}
    a, b, e = a[keep], b[keep], e[keep]
    # Scale the columns so HiGHS sees numbers near 1.
    sa, sb = np.max(a / e), np.max(b / e)
    sa = sa if sa > 0 else 1.0
    sb = sb if sb > 0 else 1.0
    res = linprog(
        c=[np.sum(a / e) / sa, np.sum(b / e) / sb],
        A_ub=-np.column_stack([a / e / sa, b / e / sb]),
        b_ub=-np.ones(e.size),
        bounds=[(0, None), (0, None)],
        method="highs",
    )
    if not res.success:
        raise ValueError(f"the envelope linear program failed: {res.message}")
    c_beta, c_alpha = float(res.x[0] / sa), float(res.x[1] / sb)
    ratio = (c_beta * a + c_alpha * b) / e
    indices = np.flatnonzero(keep)
    return {
        "c_beta": c_beta,
        "c_alpha": c_alpha,
        "mean_ratio": float(np.mean(ratio)),
        "tight": [int(i) for i in indices[np.isclose(ratio, 1.0, rtol=1e-7)]],
    }
