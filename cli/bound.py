"""tfapprox bound: paper A's error bound and optimal m_h, and paper B's sparse-memory rates.

Only click and the standard library at module level: ``tfapprox bound``
imports neither TensorFlow, Keras, scikit-learn nor (with a warm derivation
cache, or with --memory/--kernel) sympy.
"""

import json

import click

from tfapprox.budget import POSITION_ENCODINGS
from tfapprox_cli._common import checked_parameter, echo_json, explicit, library_errors


def _read_estimate(path):
    """``(beta, c_beta)`` from `tfapprox estimate --json` output, or a one-line BadParameter."""
    from tfapprox import theory

    hint = "--from-estimate"
    try:
        with open(path, encoding="utf-8") as f:
            estimate = json.load(f)
    except OSError as err:
        raise click.BadParameter(f"cannot read {path}: {err.strerror}", param_hint=hint) from None
    except (ValueError, UnicodeDecodeError) as err:
        message = " ".join(str(err).split())
        raise click.BadParameter(f"{path} is not valid JSON ({message})", param_hint=hint) from None
    if not isinstance(estimate, dict):
        raise click.BadParameter(
            f"{path} must hold a JSON object with `beta` and `c_beta`", param_hint=hint
        )
    missing = [key for key in ("beta", "c_beta") if estimate.get(key) is None]
    if missing:
        raise click.BadParameter(
            f"{path} has no fitted {' and '.join(missing)} (missing or null); "
            "it must be the JSON of `tfapprox estimate --json` with a fitted decay",
            param_hint=hint,
        )
    values = []
    for key in ("beta", "c_beta"):
        try:
            values.append(theory.check_parameter(key, estimate[key]))
        except (TypeError, ValueError) as err:
            raise click.BadParameter(
                f"{path}: {' '.join(str(err).split())}", param_hint=hint
            ) from None
    return tuple(values)


def _fmt(value):
    return f"{value:.6g}"


# ----------------------------------------------------------------------------
# Paper B options

# Paper A's options and paper B's own options, by parameter name (for conflicts).
PAPER_A = {
    "tau": "--tau",
    "beta": "--beta",
    "alpha": "--alpha",
    "c_beta": "--c-beta",
    "c_alpha": "--c-alpha",
    "c_0": "--c0",
    "m_ff": "--m-ff",
    "params": "--params",
    "input_dim": "--d",
    "n": "--n",
    "m_v": "--m-v",
    "ff_depth": "--ff-depth",
    "output_dim": "--d-out",
    "position_encoding": "--position-encoding",
    "m_h": "--m-h",
    "from_estimate": "--from-estimate",
    "rows": "--rows",
    "latex": "--latex",
}
PAPER_B = {
    "rpe": "--rpe",
    "heads": "--heads",
    "rate": "--rate",
    "width": "--width",
    "c_n": "--c-n",
    "lip": "--lip",
    "barron": "--barron",
}


def _refuse_options(ctx, options, what, mode):
    """A UsageError naming every given option of ``options`` (they do not apply here)."""
    given = [flag for name, flag in options.items() if explicit(ctx, name)]
    if not given:
        return
    if mode is None:
        raise click.UsageError(f"{', '.join(given)}: {what} apply only with --memory or --kernel")
    raise click.UsageError(
        f"{', '.join(given)}: {what} cannot be combined with {mode} (paper B's rates)"
    )


def _lags(ctx, param, value):
    """``"48,56,99"`` → ``(48, 56, 99)``: positive, strictly increasing ints."""
    if value is None:
        return None
    from tfapprox import memory_theory

    try:
        lags = [int(part) for part in value.split(",")]
    except ValueError:
        raise click.BadParameter(
            f"lags must be comma-separated positive ints, e.g. 48,56,99. Received: {value!r}"
        ) from None
    try:
        return memory_theory.check_lags(lags)
    except (TypeError, ValueError) as err:
        raise click.BadParameter(" ".join(str(err).split())) from None


def _kernels(ctx, param, values):
    """``("exp:5", "power:0.5,exp:1")`` → ``[("exp", 5.0), ("power", 0.5), ("exp", 1.0)]``."""
    from tfapprox import memory_theory

    kernels = []
    for value in values:
        for part in value.split(","):
            try:
                kernels.append(memory_theory.parse_kernel(part))
            except ValueError as err:
                raise click.BadParameter(" ".join(str(err).split())) from None
    return kernels


def _positive(name):
    """A click callback for a finite number > 0 (exit 2 otherwise)."""

    def callback(ctx, param, value):
        from tfapprox._checks import check_real

        try:
            return check_real(name, value, low=0, low_open=True)
        except (TypeError, ValueError) as err:
            raise click.BadParameter(str(err)) from None

    return callback


def _memory_bound(memory, kernels, heads, rpe, constants, json_):
    """``tfapprox bound --memory/--kernel``: `tfapprox.memory_theory`'s reports."""
    from tfapprox import memory_theory

    try:
        if memory is not None:
            report = memory_theory.type1_report(memory, heads, rpe=rpe, **constants)
        else:
            report = memory_theory.type3_report(kernels, heads, **constants)
    except ValueError as err:
        if "`heads`" in str(err):
            raise click.BadParameter(str(err), param_hint="--heads") from None
        raise
    if json_:
        echo_json(report)
    elif memory is not None:
        _print_type1(report)
    else:
        _print_type3(report)


def _count(number, word):
    """``"1 head"``, ``"2 heads"``."""
    return f"{number} {word}{'' if number == 1 else 's'}"


def _error_text(entry):
    if entry["attention"] is not None:
        return _fmt(entry["attention"])
    return f"10^{entry['log10_attention']:.6g}" if entry["log10_attention"] is not None else "inf"


def _print_type1(r):
    echo = click.echo
    lags = ", ".join(map(str, r["lags"]))
    echo(
        f"memory     Type I (fixed sparse): lags {lags}; H = {_count(r['heads'], 'head')}, rate n = "
        f"{r['rate']}, C(n) = {_fmt(r['constants']['c_n'])}"
    )
    source = "given" if r["rpe_source"] == "given" else "the type the theory prefers"
    weight = "e^(0.01 T_k)" if r["rpe"] == "lin" else "T_k^1.01"
    echo(
        f"split      {r['rpe']} RPE ({source}): H_k ∝ {weight}, rounded by largest "
        "remainders to sum to H"
    )
    for entry in r["allocation"]:
        echo(
            f"           lag {entry['lag']:>6}: {_count(entry['heads'], 'head'):>9}  (quota {entry['quota']:.4g})"
        )
    split_ratio = "inf" if r["allocation_ratio"] is None else f"{r['allocation_ratio']:.6g}"
    echo(
        f"           bound at this split = {split_ratio} × the continuous "
        "optimum (a lower bound for every split)"
    )
    for kind in ("lin", "log"):
        entry = r["bounds"][kind]
        line = f"bound {kind:<4} E_Attn = {r['formulas'][kind]} = {_error_text(entry)}"
        if "total" in entry:
            total = "inf" if entry["total"] is None else _fmt(entry["total"])
            line += f"; total = {total}"
        echo(line)
    if r["width"] is not None:
        c = r["constants"]
        echo(
            f"total      {r['formulas']['total']}, E_FFN = {_fmt(r['ffn_error'])} at m = "
            f"{r['width']} (‖f‖_Barron = {_fmt(c['barron'])}, ‖f‖_Lip = {_fmt(c['lip'])})"
        )
    low, high = r["crossover_lags"]
    ratio = (
        "0"
        if r["bound_ratio"] == 0
        else ("inf" if r["bound_ratio"] is None else _fmt(r["bound_ratio"]))
    )
    echo(
        f"prefers    {r['preferred']} RPE: bound lin / bound log = {ratio} (equal C(n) assumed; "
        "independent of H)"
    )
    echo(
        f"           for one lag T, lin wins for {low:.5g} < T < {high:.5g} "
        "(e^(0.01T) < T^1.01), log outside"
    )


def _print_type3(r):
    echo = click.echo
    echo(
        f"memory     Type III (essentially sparse): M = {_count(r['memories'], 'kernel')}, H = "
        f"{_count(r['heads'], 'head')} ({_fmt(r['heads_per_memory'])} per memory), rate n = {r['rate']}"
    )
    for k in r["kernels"]:
        shape = f"e^(-{k['beta']:g} s)" if k["kind"] == "exp" else f"s^(-{k['beta']:g})"
        echo(
            f"kernel     {k['kind']}:{k['beta']:g} (ρ ~ {shape}): {k['rpe']} RPE, {_count(k['heads'], 'head')}"
        )
        echo(f"           why: {k['reason']}")
    if r["rpe"] == "mixed":
        echo(
            "rpe        mixed: each kernel needs its own RPE type (one type needs many heads for the others)"
        )
    line = f"rate       E_Attn = {r['formulas']['type3']} = {_error_text(r)}"
    if r["width"] is not None:
        total = "inf" if r["total"] is None else _fmt(r["total"])
        line += f"; with E_FFN = {_fmt(r['ffn_error'])} at m = {r['width']}, total = {total}"
    echo(line)
    echo(f"           (with each kernel's matching RPE type; C(n) = {_fmt(r['constants']['c_n'])})")


@click.command()
@click.option(
    "--tau",
    type=int,
    default=None,
    callback=checked_parameter("tau"),
    help="Sequence length τ (≥ 1). Required for paper A's bound.",
)
@click.option(
    "--beta",
    type=float,
    default=None,
    callback=checked_parameter("beta"),
    help="POD decay β of the attention kernel ρ (> 1/2).",
)
@click.option(
    "--alpha",
    type=float,
    default=None,
    callback=checked_parameter("alpha"),
    help="Feed-forward rate α (> 0); 0.5 for sigmoidal networks. Required for paper A's bound.",
)
@click.option(
    "--c-beta",
    type=float,
    default=1.0,
    show_default=True,
    callback=checked_parameter("c_beta"),
    help="POD constant C_β (> 0).",
)
@click.option(
    "--c-alpha",
    type=float,
    default=1.0,
    show_default=True,
    callback=checked_parameter("c_alpha"),
    help="Feed-forward constant C_α (> 0).",
)
@click.option(
    "--c0",
    "c_0",
    type=float,
    default=1.0,
    show_default=True,
    callback=checked_parameter("c_0"),
    help="Constant factor C_0 of the bound (> 0).",
)
@click.option(
    "--m-ff",
    type=click.IntRange(min=1),
    default=None,
    help="Feed-forward width m_FF: optimise m_h for it.",
)
@click.option(
    "--params",
    type=click.IntRange(min=1),
    default=None,
    help="Total parameter budget P: choose (m_h, m_FF) for it.",
)
@click.option(
    "--d",
    "input_dim",
    type=click.IntRange(min=1),
    default=None,
    help="Token dimension d (with --params).",
)
@click.option(
    "--n",
    type=click.IntRange(min=1),
    default=None,
    help="Embedding width n (with --params); omitted: tied, n = 2 m_h + m_v.",
)
@click.option(
    "--m-v",
    type=click.IntRange(min=1),
    default=None,
    help="Value width m_v (with --params). Defaults to n, or 32 when n is tied.",
)
@click.option(
    "--ff-depth",
    type=click.IntRange(min=1),
    default=3,
    show_default=True,
    help="Hidden layers of each feed-forward network (with --params).",
)
@click.option(
    "--d-out",
    "output_dim",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Output dimension (with --params).",
)
@click.option(
    "--position-encoding",
    type=click.Choice(POSITION_ENCODINGS),
    default="learned",
    show_default=True,
    help="Position encoding of the model (with --params; a learned one has τ·d weights).",
)
@click.option(
    "--m-h",
    type=click.IntRange(min=1),
    default=None,
    help="Evaluate this m_h instead of optimising it.",
)
@click.option(
    "--from-estimate",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Read β and C_β from `tfapprox estimate --json` output.",
)
@click.option(
    "--rows",
    type=click.IntRange(min=0, max=1000),
    default=3,
    show_default=True,
    help="Table rows on each side of the chosen m_h.",
)
@click.option(
    "--memory",
    default=None,
    callback=_lags,
    metavar="T1,T2,...",
    help="Paper B, Type I: lags 1 ≤ T_1 < … < T_M of a fixed sparse memory (with --heads).",
)
@click.option(
    "--kernel",
    "kernels",
    multiple=True,
    callback=_kernels,
    metavar="exp:BETA|power:BETA",
    help="Paper B, Type III: a memory kernel e^(−βs) or s^(−β); repeat or comma-separate "
    "for M kernels (with --heads).",
)
@click.option(
    "--rpe",
    type=click.Choice(["lin", "log"]),
    default=None,
    help="With --memory: RPE type of the head split.  [default: the type the theory prefers]",
)
@click.option(
    "--heads", type=click.IntRange(min=1), default=None, help="Paper B: heads H (≥ memories)."
)
@click.option(
    "--rate",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="Paper B: the rate n of E_Attn ∝ H^(−n).",
)
@click.option(
    "--width",
    type=click.IntRange(min=1),
    default=None,
    help="Paper B: FFN width m; adds E_FFN = ‖f‖_Barron/√m and the total error.",
)
@click.option(
    "--c-n",
    type=float,
    default=1.0,
    show_default=True,
    callback=_positive("c_n"),
    help="Paper B: the constant C(n) (> 0), the same for both RPE types.",
)
@click.option(
    "--lip",
    type=float,
    default=1.0,
    show_default=True,
    callback=_positive("lip"),
    help="Paper B: ‖f‖_Lip of the readout (> 0).",
)
@click.option(
    "--barron",
    type=float,
    default=1.0,
    show_default=True,
    callback=_positive("barron"),
    help="Paper B: ‖f‖_Barron of the readout (> 0).",
)
@click.option("--latex", is_flag=True, help="Also print the formulas in LaTeX.")
@click.option("--json", "json_", is_flag=True, help="Print machine-readable JSON.")
@click.pass_context
@library_errors
def bound(
    ctx,
    tau,
    beta,
    alpha,
    c_beta,
    c_alpha,
    c_0,
    m_ff,
    params,
    input_dim,
    n,
    m_v,
    ff_depth,
    output_dim,
    position_encoding,
    m_h,
    from_estimate,
    rows,
    memory,
    kernels,
    rpe,
    heads,
    rate,
    width,
    c_n,
    lip,
    barron,
    latex,
    json_,
):
    """Paper A's error bound and optimal m_h; paper B's rates for sparse memory.

    \b
    B(m_h, m_FF) = C_0 τ² (C_β / m_h^(2β−1) + C_α m_h^(α+1) / m_FF^α)
    m_h* = ((2β−1) C_β m_FF^α / ((α+1) C_α))^(1/(2β+α))   (derived by sympy)

    With --m-ff, the best integer m_h for that width. With --params, the
    integers (m_h, m_FF) that minimise B within P parameters (the exact
    count of the model `tfapprox train` builds). JSON keys: m_h_opt, m_h,
    m_ff, bound, attention_term, ff_term, formula (and params_used,
    params_budget with --params; latex with --latex).

    Paper B (one layer, DP-free, H heads, rate n): with --memory T1,T2,...
    the Type I bound C(n)/H^n (Σ w(T_i))^(n+1), w = e^(0.01 T) for linear
    RPE, T^1.01 for log RPE; the split H_k ∝ w(T_k) in integers summing to
    H (JSON key allocation), both bounds, and the RPE type with the smaller
    bound (equal C(n) assumed). With --kernel, the RPE type that suits each
    memory kernel and the Type III rate C(n) M^(n+1)/H^n. Paper A's and
    paper B's options cannot be mixed.

    \b
    Examples:
      tfapprox bound --tau 16 --beta 1.0 --alpha 0.5 --m-ff 128
      tfapprox bound --tau 16 --beta 1.0 --alpha 0.5 --params 50000 --d 1 --json
      tfapprox bound --tau 16 --beta 1.0 --alpha 0.5 --m-ff 128 --m-h 4
      tfapprox bound --from-estimate est.json --tau 16 --alpha 0.5 --m-ff 128
      tfapprox bound --memory 48,56,99 --rpe log --heads 32 --width 256
      tfapprox bound --kernel exp:5 --kernel power:0.5 --heads 8 --json
    """
    if memory is not None or kernels:
        _refuse_options(
            ctx, PAPER_A, "paper A's bound options", "--memory" if memory else "--kernel"
        )
        if memory is not None and kernels:
            raise click.UsageError("give --memory (Type I) or --kernel (Type III), not both")
        if kernels and rpe is not None:
            raise click.UsageError(
                "--rpe applies to --memory; with --kernel each kernel's RPE type is chosen"
            )
        if heads is None:
            raise click.UsageError(f"{'--memory' if memory else '--kernel'} needs --heads")
        constants = dict(rate=rate, width=width, c_n=c_n, lip=lip, barron=barron)
        _memory_bound(memory, kernels, heads, rpe, constants, json_)
        return
    _refuse_options(ctx, PAPER_B, "paper B's options", None)
    for name, value in (("--tau", tau), ("--alpha", alpha)):
        if value is None:
            raise click.UsageError(f"Missing option '{name}'.")
    from tfapprox import theory

    if from_estimate is not None:
        given = [
            opt for opt, name in (("--beta", "beta"), ("--c-beta", "c_beta")) if explicit(ctx, name)
        ]
        if given:
            raise click.UsageError(
                f"--from-estimate supplies β and C_β; drop {' and '.join(given)}"
            )
        beta, c_beta = _read_estimate(from_estimate)
    elif beta is None:
        raise click.UsageError("Missing option '--beta' (or give --from-estimate EST.json).")
    if (m_ff is None) == (params is None):
        raise click.UsageError(
            "give exactly one of --m-ff (optimise m_h for a width) and --params "
            "(allocate a parameter budget)"
        )
    budget_only = [
        f"--{name.replace('_', '-')}"
        for name in ("n", "m_v", "ff_depth", "position_encoding")
        if explicit(ctx, name)
    ]
    budget_only += ["--d"] if explicit(ctx, "input_dim") else []
    budget_only += ["--d-out"] if explicit(ctx, "output_dim") else []
    if m_ff is not None and budget_only:
        raise click.UsageError(f"{', '.join(budget_only)}: only used with --params, not --m-ff")
    if params is not None and input_dim is None:
        raise click.UsageError("--params needs --d (the token dimension) to count parameters")

    model = theory.Bound(tau=tau, alpha=alpha, beta=beta, c_alpha=c_alpha, c_beta=c_beta, c_0=c_0)
    allocation = None
    if params is not None:
        options = dict(
            input_dim=input_dim,
            n=n,
            m_v=m_v if (m_v is not None or n is not None) else 32,
            ff_depth=ff_depth,
            output_dim=output_dim,
            position_encoding=position_encoding,
        )
        try:
            allocation = model.allocate(params, m_h=m_h, **options)
        except ValueError as err:
            raise click.BadParameter(str(err), param_hint="--params") from None
        m_h, m_ff, value = allocation.m_h, allocation.m_ff, allocation.value

        def row(k):
            try:
                return model.allocate(params, m_h=k, **options).value
            except ValueError:
                return None
    else:
        m_h = model.integer_m_h(m_ff) if m_h is None else m_h
        value = model.terms(m_h, m_ff)

        def row(k):
            return model.terms(k, m_ff)

    result = {
        "m_h_opt": model.optimal_m_h(m_ff),
        "m_h": m_h,
        "m_ff": m_ff,
        "bound": value.bound,
        "attention_term": value.attention_term,
        "ff_term": value.ff_term,
        "formula": theory.render("error_bound", "text"),
    }
    if allocation is not None:
        result["params_used"] = allocation.params_used
        result["params_budget"] = allocation.params_budget
    if latex:
        result["latex"] = _latex(theory, model, m_ff)
    if json_:
        echo_json(result)
        return
    table = [
        value_
        for value_ in (row(k) for k in range(max(1, m_h - rows), m_h + rows + 1))
        if value_ is not None
    ]
    _print_bound(theory, model, result, allocation, table)


def _latex(theory, model, m_ff):
    """LaTeX of the bound, of m_h*, and of the bound with these numbers (needs sympy)."""
    import sympy as sp

    s = theory.symbols()
    values = {
        s.tau: model.tau,
        s.alpha: model.alpha,
        s.beta: model.beta,
        s.c_alpha: model.c_alpha,
        s.c_beta: model.c_beta,
        s.c_0: model.c_0,
        s.m_ff: m_ff,
    }
    exact = {key: sp.nsimplify(value, rational=True) for key, value in values.items()}
    return {
        "bound": theory.render("error_bound", "latex"),
        "m_h_opt": theory.render("optimal_m_h", "latex"),
        "bound_here": sp.latex(theory.error_bound().subs(exact)),
    }


def _print_bound(theory, model, result, allocation, table):
    echo = click.echo
    echo(f"bound      B = {result['formula']}")
    echo("           (card notation: β = POD decay of ρ, α = feed-forward rate)")
    echo(
        f"with       tau = {model.tau}, beta = {_fmt(model.beta)}, alpha = {_fmt(model.alpha)}, "
        f"C_beta = {_fmt(model.c_beta)}, C_alpha = {_fmt(model.c_alpha)}, C_0 = {_fmt(model.c_0)}"
    )
    if allocation is not None:
        tie = f"n = 2 m_h + m_v = {allocation.n}" if allocation.tied else f"n = {allocation.n}"
        echo(
            f"budget     {allocation.params_used} of {allocation.params_budget} parameters "
            f"({tie}, m_v = {allocation.m_v}); best m_FF for m_h = {result['m_h']}: "
            f"{result['m_ff']}"
        )
    echo(f"optimum    m_h* = {theory.render('optimal_m_h', 'text')}")
    echo(
        f"           m_h*(m_FF = {result['m_ff']}) = {_fmt(result['m_h_opt'])}  "
        "(derived by sympy; B is convex in m_h, so this is the minimum)"
    )
    echo(f"choice     m_h = {result['m_h']}, m_FF = {result['m_ff']}")
    echo(
        f"bound      B = {_fmt(result['bound'])} = attention term {_fmt(result['attention_term'])}"
        f" + feed-forward term {_fmt(result['ff_term'])}"
    )
    echo(f"rate       at m_h*, B ∝ m_FF^{_fmt(model.optimal_rate())}  (exponent −α(2β−1)/(2β+α))")
    echo("")
    echo(f"{'m_h':>6} {'m_FF':>8} {'attention':>12} {'feed-forward':>13} {'bound':>12}")
    for value in table:
        mark = "  <" if int(value.m_h) == result["m_h"] else ""
        echo(
            f"{int(value.m_h):>6} {int(value.m_ff):>8} {value.attention_term:>12.5g} "
            f"{value.ff_term:>13.5g} {value.bound:>12.5g}{mark}"
        )
    if "latex" in result:
        echo("")
        echo(f"LaTeX bound:      {result['latex']['bound']}")
        echo(f"LaTeX m_h*:       {result['latex']['m_h_opt']}")
        echo(f"LaTeX bound here: {result['latex']['bound_here']}")


COMMANDS = [bound]
