"""tfapprox commands: bound (the error bound and the best m_h) and check (errors vs bound).

Only click and the standard library at module level: ``tfapprox bound``
imports neither TensorFlow, Keras, scikit-learn nor (with a warm derivation
cache) sympy.
"""

import json
import math

import click

from tfapprox.budget import POSITION_ENCODINGS
from tfapprox_cli._common import echo_json, library_errors

EXPLICIT = ("COMMANDLINE", "ENVIRONMENT")


def _checked(name):
    """A click callback validating one parameter of the bound (exit 2 on a bad value)."""

    def callback(ctx, param, value):
        if value is None:
            return None
        from tfapprox import theory

        try:
            return theory.check_parameter(name, value)
        except (TypeError, ValueError) as err:
            raise click.BadParameter(" ".join(str(err).split())) from None

    return callback


def _explicit(ctx, name):
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in EXPLICIT


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


@click.command()
@click.option(
    "--tau", type=int, required=True, callback=_checked("tau"), help="Sequence length τ (≥ 1)."
)
@click.option(
    "--beta",
    type=float,
    default=None,
    callback=_checked("beta"),
    help="POD decay β of the attention kernel ρ (> 1/2).",
)
@click.option(
    "--alpha",
    type=float,
    required=True,
    callback=_checked("alpha"),
    help="Feed-forward rate α (> 0); 0.5 for sigmoidal networks.",
)
@click.option(
    "--c-beta",
    type=float,
    default=1.0,
    show_default=True,
    callback=_checked("c_beta"),
    help="POD constant C_β (> 0).",
)
@click.option(
    "--c-alpha",
    type=float,
    default=1.0,
    show_default=True,
    callback=_checked("c_alpha"),
    help="Feed-forward constant C_α (> 0).",
)
@click.option(
    "--c0",
    "c_0",
    type=float,
    default=1.0,
    show_default=True,
    callback=_checked("c_0"),
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
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="Table rows on each side of the chosen m_h.",
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
    latex,
    json_,
):
    """The error bound, its optimal m_h, and the best (m_h, m_FF) for a budget.

    \b
    B(m_h, m_FF) = C_0 τ² (C_β / m_h^(2β−1) + C_α m_h^(α+1) / m_FF^α)
    m_h* = ((2β−1) C_β m_FF^α / ((α+1) C_α))^(1/(2β+α))   (derived by sympy)

    With --m-ff, the best integer m_h for that width. With --params, the
    integers (m_h, m_FF) that minimise B within P parameters (the exact
    count of the model `tfapprox train` builds). JSON keys: m_h_opt, m_h,
    m_ff, bound, attention_term, ff_term, formula (and params_used,
    params_budget with --params; latex with --latex).

    \b
    Examples:
      tfapprox bound --tau 16 --beta 1.0 --alpha 0.5 --m-ff 128
      tfapprox bound --tau 16 --beta 1.0 --alpha 0.5 --params 50000 --d 1 --json
      tfapprox bound --tau 16 --beta 1.0 --alpha 0.5 --m-ff 128 --m-h 4
      tfapprox bound --from-estimate est.json --tau 16 --alpha 0.5 --m-ff 128
    """
    from tfapprox import theory

    if from_estimate is not None:
        given = [
            opt
            for opt, name in (("--beta", "beta"), ("--c-beta", "c_beta"))
            if _explicit(ctx, name)
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
        if _explicit(ctx, name)
    ]
    budget_only += ["--d"] if _explicit(ctx, "input_dim") else []
    budget_only += ["--d-out"] if _explicit(ctx, "output_dim") else []
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


# ----------------------------------------------------------------------------
# check


@click.command()
@click.option(
    "--results",
    "results_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Check an existing results file (as `tfapprox sweep` writes it) instead of training.",
)
@click.option(
    "--target",
    default=None,
    help="Target preset to measure and train on.  [default: fig5b-rinf, a power-law spectrum]",
)
@click.option(
    "--m-h",
    "m_h",
    default=None,
    help="Query/key widths m_h to train: 1,2,4 or 1:8.  [default: 1:8; --quick 1:4]",
)
@click.option(
    "--m-ff", "m_ff", default=None, help="Feed-forward widths m_FF.  [default: 128; --quick 32]"
)
@click.option(
    "--n",
    "n",
    type=click.IntRange(min=1),
    default=None,
    help="Embedding width n.  [default: 32; --quick 16]",
)
@click.option(
    "--seeds", type=click.IntRange(min=1), default=None, help="Seeds per budget.  [default: 2]"
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help="Maximum epochs per run (the recipe's default otherwise).",
)
@click.option(
    "--beta",
    type=float,
    default=None,
    callback=_checked("beta"),
    help="POD decay β (> 1/2). With --results: required; otherwise measured.",
)
@click.option(
    "--alpha",
    type=float,
    default=None,
    callback=_checked("alpha"),
    help="Feed-forward rate α (> 0).  [default: 0.5, Barron's rate, the reason is printed]",
)
@click.option(
    "--tau",
    type=int,
    default=None,
    callback=_checked("tau"),
    help="Sequence length τ. Defaults to the results' metadata.sequence_length.",
)
@click.option(
    "--c-beta",
    type=float,
    default=None,
    callback=_checked("c_beta"),
    help="C_β to check (default: fitted).",
)
@click.option(
    "--c-alpha",
    type=float,
    default=None,
    callback=_checked("c_alpha"),
    help="C_α to check (default: fitted).",
)
@click.option(
    "--c0",
    "c_0",
    type=float,
    default=1.0,
    show_default=True,
    callback=_checked("c_0"),
    help="Constant factor C_0 of the bound.",
)
@click.option(
    "--error",
    "error_key",
    type=click.Choice(["auto", "loss", "error", "val_loss", "val_error"]),
    default="auto",
    show_default=True,
    help="Which number of a run is checked: error = paper A's norm (auto: error when recorded, else loss).",
)
@click.option(
    "--floor-rtol",
    type=click.FloatRange(min=0, max=1),
    default=1e-2,
    show_default=True,
    help="Errors ≤ FLOOR_RTOL × the largest are the floor.",
)
@click.option(
    "--bootstrap",
    "n_bootstrap",
    type=click.IntRange(min=0),
    default=2000,
    show_default=True,
    help="Bootstrap resamples for the slope interval.",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the bootstrap.")
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="With --results: write the log-log plot of errors, bound and fitted slope.",
)
@click.option(
    "--scheduler",
    default=None,
    help="Train on Dask: local:N or tcp://HOST:8786 (see `tfapprox sweep`).",
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    default="tfapprox-check",
    show_default=True,
    help="Output folder for report.md, results.json and rate.png.",
)
@click.option("--quick", is_flag=True, help="A small, fast version of the job (about a minute).")
@click.option("--json", "json_", is_flag=True, help="Print machine-readable JSON.")
@library_errors
def check(
    results_path,
    target,
    m_h,
    m_ff,
    n,
    seeds,
    epochs,
    beta,
    alpha,
    tau,
    c_beta,
    c_alpha,
    c_0,
    error_key,
    floor_rtol,
    n_bootstrap,
    seed,
    plot_path,
    scheduler,
    out,
    quick,
    json_,
):
    """Check trained errors against the bound: the main job.

    With no --results: measure the target's complexity (POD spectrum, β and
    C_β with intervals), train the hypothesis space at every m_h with
    several seeds (batched; resumable: run it again to continue), and check
    the errors, in paper A's norm, against τ²(C_β m_h^{1−2β} + C_α
    m_h^{α+1} m_FF^{−α}): the smallest constants with which the bound holds,
    the slope before the floor against −(2β−1), m_h* against the best m_h,
    and whether twice the epochs would change any of it. Writes
    OUT/report.md, OUT/results.json and OUT/rate.png, and prints the
    verdict and the m_h to use.

    With --results: check those runs only (β required).

    \b
    Examples:
      tfapprox check
      tfapprox check --quick --out runs/check-quick
      tfapprox check --target fig5a-rinf --m-h 1:12 --seeds 3 --scheduler local:2
      tfapprox check --results runs/sweep/results.json --beta 1.0 --alpha 0.5 --plot rate.png
    """
    if results_path is None:
        for name, value in (
            ("--tau", tau),
            ("--c-beta", c_beta),
            ("--c-alpha", c_alpha),
            ("--plot", plot_path),
        ):
            if value is not None:
                raise click.UsageError(f"{name} applies to --results only")
        if beta is not None:
            raise click.UsageError(
                "--beta is measured from the target; give it with --results only"
            )
        _main_job(target, m_h, m_ff, n, seeds, epochs, alpha, scheduler, out, quick, json_)
        return
    for name, value in (
        ("--target", target),
        ("--m-h", m_h),
        ("--m-ff", m_ff),
        ("--n", n),
        ("--seeds", seeds),
        ("--epochs", epochs),
        ("--scheduler", scheduler),
    ):
        if value is not None:
            raise click.UsageError(f"{name} applies to training; it cannot be used with --results")
    if quick:
        raise click.UsageError("--quick applies to training; it cannot be used with --results")
    if beta is None:
        raise click.UsageError("--beta is required with --results")
    if alpha is None:
        alpha = 0.5
    from tfapprox import check as checker
    from tfapprox import results

    runs = results.read(results_path)
    if tau is None:
        tau = results.sequence_length(runs, source=results_path)
        if tau is None:
            raise click.UsageError(
                f"--tau is required: {results_path} records no metadata.sequence_length"
            )
    if error_key == "auto":
        error_key = "error" if all("error" in run for run in runs["runs"]) else "loss"
    try:
        report = checker.check_errors(
            runs,
            tau,
            alpha,
            beta,
            c_alpha=c_alpha,
            c_beta=c_beta,
            c_0=c_0,
            floor_rtol=floor_rtol,
            n_bootstrap=n_bootstrap,
            seed=seed,
            error_key=error_key,
        )
    except (TypeError, ValueError) as err:
        message = str(err).replace("results: ", "", 1)
        raise ValueError(f"{results_path}: {message}") from None
    if plot_path:
        from tfapprox import plots

        plots.rate_plot(plot_path, report)
    output = report.to_dict()
    if plot_path:
        output["plot"] = plot_path
    if json_:
        echo_json(output)
        return
    _print_report(results_path, output)


def _main_job(target, m_h, m_ff, n, seeds, epochs, alpha, scheduler, out, quick, json_):
    """`tfapprox check` without --results: `tfapprox.workflow.run_check`."""
    from tfapprox import distributed, workflow
    from tfapprox_cli.sweep import WIDTHS

    try:
        distributed.parse_scheduler(scheduler)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--scheduler") from None
    settings = workflow.quick_settings() if quick else workflow.default_settings()
    if m_h is not None:
        settings["m_h"] = WIDTHS.convert(m_h, None, None)
    if m_ff is not None:
        settings["m_ff"] = WIDTHS.convert(m_ff, None, None)
    for name, value in (("n", n), ("seeds", seeds)):
        if value is not None:
            settings[name] = value
    if epochs is not None:
        settings["config"] = settings["config"].replace(epochs=epochs)
    if alpha is not None:
        settings["alpha"] = alpha
    summary = workflow.run_check(
        target or workflow.DEFAULT_TARGET,
        out=out,
        scheduler=scheduler,
        progress=not json_,
        **settings,
    )
    if json_:
        echo_json(summary)
        return
    click.echo(f"verdict    {summary['verdict']}: {summary['verdict_text']}")
    c = summary["complexity"]
    click.echo(
        f"target     {summary['target']}: β = {c['beta']:.3g} "
        f"[{c['beta_ci'][0]:.3g}, {c['beta_ci'][1]:.3g}], C_β = {c['c_beta']:.3g}"
    )
    click.echo(f"alpha      {summary['alpha']:g} ({summary['alpha_reason']})")
    lp = summary["check"]["envelope"]
    click.echo(
        f"bound      holds everywhere with C_β = {lp['c_beta']:.3g}, C_α = {lp['c_alpha']:.3g}"
    )
    provisional = summary["verdict"] in ("not converged", "noise-limited")
    for row in summary["recommendation"]:
        note = " (provisional: the errors are not at their floor)" if provisional else ""
        click.echo(f"use        m_h = {row['m_h']} at m_FF = {row['m_ff']}{note}")
    outputs = summary["outputs"]
    click.echo(f"wrote      {outputs['report']}, {outputs['results']}, {outputs['figure']}")


def _print_report(path, report):
    echo = click.echo
    points = report["points"]
    p = report["parameters"]
    m_ffs = sorted({point["m_ff"] for point in points})
    m_hs = sorted({point["m_h"] for point in points})
    runs = sum(point["seeds"] for point in points)
    echo(
        f"results    {path}: {len(points)} budgets from {runs} runs "
        f"(m_h {m_hs[0]}..{m_hs[-1]}, m_FF {', '.join(map(str, m_ffs))})"
        + (f", {report['skipped']} non-finite skipped" if report["skipped"] else "")
    )
    echo(
        f"theory     tau = {p['tau']}, beta = {p['beta']:g}, alpha = {p['alpha']:g}, "
        f"C_0 = {p['c_0']:g}; error = min over seeds"
    )
    fitted = report["fitted"]
    if fitted["c_beta"] is None:
        echo("fitted     no positive errors to fit")
    else:
        echo(
            f"fitted     C_beta = {fitted['c_beta']:.4g}, C_alpha = {fitted['c_alpha']:.4g} "
            "(non-negative least squares, relative residuals)"
        )
    constants = report["constants"]
    echo(
        f"bound with C_beta = {constants['c_beta']:.4g} ({constants['source']['c_beta']}), "
        f"C_alpha = {constants['c_alpha']:.4g} ({constants['source']['c_alpha']})"
    )
    if report["given_bound_all"] is not None:
        verdict = "yes" if report["given_bound_all"] else "NO"
        echo(f"           given constants bound every point: {verdict}")
    if report["envelope_scale"] is not None and math.isfinite(report["envelope_scale"]):
        echo(f"           max error/bound = {report['envelope_scale']:.4g}")
    rate = report["rate"]
    if rate["slope"] is None:
        echo(
            f"rate       insufficient data: fewer than 3 points before the error floor "
            f"(best m_FF = {rate['m_ff']}); predicted slope {rate['predicted']:.4g}"
        )
    else:
        low, high = rate["ci"]
        echo(
            f"rate       slope of log error vs log m_h at m_FF = {rate['m_ff']}, m_h "
            f"{rate['m_h_range'][0]}..{rate['m_h_range'][1]} ({rate['points']} points): "
            f"{rate['slope']:.4g}, {round(100 * rate['confidence'])}% CI [{low:.4g}, {high:.4g}]"
        )
        echo(f"           predicted −(2β−1) = {rate['predicted']:.4g}: {rate['verdict']}")
    violations = report["violations"]
    if not violations:
        echo("violations none: every point is at or below the bound")
    else:
        echo(f"violations {len(violations)} point(s) above the bound:")
        echo(f"{'m_h':>6} {'m_FF':>8} {'error':>12} {'bound':>12} {'margin':>12} {'ratio':>8}")
        for v in violations:
            echo(
                f"{v['m_h']:>6} {v['m_ff']:>8} {v['error']:>12.4g} {v['bound']:>12.4g} "
                f"{v['margin']:>12.4g} {v['ratio']:>8.3g}"
            )
    echo("optimum    best measured m_h per m_FF vs predicted m_h*:")
    for opt in report["optima"]:
        tested = f"tested {opt['m_h_range'][0]}..{opt['m_h_range'][1]}"
        if opt["predicted_m_h_opt"] is None:
            predicted = "m_h* undefined (a fitted constant is 0)"
        else:
            predicted = f"m_h* = {opt['predicted_m_h_opt']:.4g} → {opt['predicted_m_h']}"
        echo(
            f"           m_FF = {opt['m_ff']}: measured {opt['empirical_m_h']} ({tested}); "
            f"{predicted}"
        )
    if report.get("plot"):
        echo(f"plot written to {report['plot']}")


COMMANDS = [bound, check]
