"""tfapprox check: trained errors against paper A's bound (the main job).

Only click, the standard library and `tfapprox.budget` (no TensorFlow) at module level.
"""

import math

import click

from tfapprox.budget import POSITION_ENCODINGS
from tfapprox_cli._common import (
    checked_parameter,
    echo_json,
    explicit,
    finite_float_range,
    library_errors,
    resumable,
)

# ----------------------------------------------------------------------------
# check


def _alpha_or_measure(ctx, param, value):
    """--alpha: a checked α > 0, or "measure" (fitted by the main job)."""
    if value is None:
        return None
    if value.strip().lower() == "measure":
        return "measure"
    try:
        number = float(value)
    except ValueError:
        raise click.BadParameter(f"must be a number or 'measure'. Received: {value!r}") from None
    return checked_parameter("alpha")(ctx, param, number)


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
    help="Target preset to measure and train on.  "
    "[default: bilinear-rinf, an infinite power-law spectrum]",
)
@click.option(
    "--m-h",
    "m_h",
    default=None,
    help="Query/key widths m_h to train: 1,2,4 or 1:8.  [default: 1:6; --quick 1:4; --thorough 1:8]",
)
@click.option(
    "--m-ff",
    "m_ff",
    default=None,
    help="Feed-forward widths m_FF.  [default: 32; --quick 16; --thorough 32]",
)
@click.option(
    "--n",
    "n",
    type=click.IntRange(min=1),
    default=None,
    help="Embedding width n.  [default: 8; --quick 8; --thorough 8]",
)
@click.option(
    "--ff-depth",
    type=click.IntRange(min=1),
    default=None,
    help="Hidden layers of each feed-forward network (f̂ and F̂).  "
    "[default: 1; --quick 1; --thorough 1]",
)
@click.option(
    "--position-encoding",
    type=click.Choice(POSITION_ENCODINGS),
    default=None,
    help="Position encoding added to the tokens: a target that depends on positions needs "
    "one, and Fig. 5's targets (d = 1) train better with learned.  [default: none]",
)
@click.option(
    "--seeds",
    type=click.IntRange(min=1),
    default=None,
    help="Seeds per budget.  [default: 3; --quick 1; --thorough 4]",
)
@click.option(
    "--epochs",
    type=click.IntRange(min=1),
    default=None,
    help="Maximum epochs per run (the recipe's default otherwise; its warm-up is cut to fit).",
)
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=None,
    help="Training sequences sampled from the target (the recipe's default otherwise).",
)
@click.option(
    "--finisher-steps",
    type=click.IntRange(min=0),
    default=None,
    help="Full-batch L-BFGS iterations after the epochs (the recipe's default otherwise; 0: none).",
)
@click.option(
    "--beta",
    type=float,
    default=None,
    callback=checked_parameter("beta"),
    help="POD decay β (> 1/2). With --results: required; otherwise measured.",
)
@click.option(
    "--alpha",
    default=None,
    callback=_alpha_or_measure,
    help="Feed-forward rate α (> 0), or 'measure': fit it on the target's POD basis "
    "(tfapprox.workflow.measure_alpha).  [default: 0.5, Barron's rate, the reason is printed]",
)
@click.option(
    "--tau",
    type=int,
    default=None,
    callback=checked_parameter("tau"),
    help="Sequence length τ. Defaults to the results' metadata.sequence_length.",
)
@click.option(
    "--c-beta",
    type=float,
    default=None,
    callback=checked_parameter("c_beta"),
    help="C_β to check (default: fitted).",
)
@click.option(
    "--c-alpha",
    type=float,
    default=None,
    callback=checked_parameter("c_alpha"),
    help="C_α to check (default: fitted).",
)
@click.option(
    "--c0",
    "c_0",
    type=float,
    default=1.0,
    show_default=True,
    callback=checked_parameter("c_0"),
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
    type=finite_float_range(min=0, max=1),
    default=1e-2,
    show_default=True,
    help="Errors ≤ FLOOR_RTOL × the largest are the floor.",
)
@click.option(
    "--bootstrap",
    "n_bootstrap",
    type=click.IntRange(min=0, max=1_000_000),
    default=2000,
    show_default=True,
    help="Bootstrap resamples for the slope interval.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed of the bootstrap.",
)
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
@click.option(
    "--thorough",
    is_flag=True,
    help="The default recipe, larger: n 8, m_FF 32, 4 seeds, 2000 samples, 600 epochs, "
    "m_h 1:8 (about ten minutes on 2 cores).",
)
@click.option("--json", "json_", is_flag=True, help="Print machine-readable JSON.")
@library_errors
def check(
    results_path,
    target,
    m_h,
    m_ff,
    n,
    ff_depth,
    position_encoding,
    seeds,
    epochs,
    samples,
    finisher_steps,
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
    thorough,
    json_,
):
    """Check trained errors against the bound: the main job.

    With no --results: measure the target's complexity (POD spectrum, β and
    C_β with intervals), train the hypothesis space at every m_h with
    several seeds (batched; resumable: run it again to continue), and check
    the errors, in paper A's norm, against τ²(C_β m_h^{1−2β} + C_α
    m_h^{α+1} m_FF^{−α}): the smallest constants with which the bound holds,
    the slope before the floor against −(2β−1), m_h* against the best m_h,
    and whether more training (twice the epochs and finisher iterations, and
    one more random start) would change any of it. The best loss cannot rise with m_h (a larger budget
    contains the smaller ones); with --finisher-steps, a budget whose runs
    break that is warm-started from the smaller budget's best weights.
    Writes OUT/report.md, OUT/results.json and OUT/rate.png (and the runs'
    weights under OUT/weights with --finisher-steps), and prints the
    verdict and the m_h to use.

    With --results: check those runs only (β required).

    \b
    Examples:
      tfapprox check
      tfapprox check --quick --out runs/check-quick
      tfapprox check --target fig5a-rinf --position-encoding learned --m-h 1:12 --scheduler local:2
      KERAS_BACKEND=jax tfapprox check --thorough --out runs/check-thorough
      tfapprox check --results runs/sweep/results.json --beta 1.0 --alpha 0.5 --plot rate.png
    """
    training = {
        "--target": target,
        "--m-h": m_h,
        "--m-ff": m_ff,
        "--n": n,
        "--ff-depth": ff_depth,
        "--position-encoding": position_encoding,
        "--seeds": seeds,
        "--epochs": epochs,
        "--samples": samples,
        "--finisher-steps": finisher_steps,
        "--scheduler": scheduler,
    }
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
        if quick and thorough:
            raise click.UsageError("--quick and --thorough cannot be used together")
        preset = "quick" if quick else "thorough" if thorough else "default"
        _main_job(training, alpha, out, preset, json_)
        return
    for name, value in training.items():
        if value is not None:
            raise click.UsageError(f"{name} applies to training; it cannot be used with --results")
    for name, flag in (("--quick", quick), ("--thorough", thorough)):
        if flag:
            raise click.UsageError(f"{name} applies to training; it cannot be used with --results")
    if explicit(click.get_current_context(), "out"):
        raise click.UsageError(
            "--out is the main job's folder; with --results the check prints its report "
            "(--json for JSON) and writes a figure with --plot"
        )
    if beta is None:
        raise click.UsageError("--beta is required with --results")
    if alpha == "measure":
        raise click.UsageError("--alpha measure needs a target: give a number with --results")
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


def _main_job(training, alpha, out, preset, json_):
    """`tfapprox check` without --results: `tfapprox.workflow.run_check`.

    ``training``: the training options by their CLI names (None: not given),
    over the settings of ``preset`` ("default", "quick" or "thorough").
    """
    from tfapprox import distributed, workflow
    from tfapprox_cli.sweep import WIDTHS

    target, m_h, m_ff, scheduler = (
        training[name] for name in ("--target", "--m-h", "--m-ff", "--scheduler")
    )
    epochs, finisher_steps = training["--epochs"], training["--finisher-steps"]

    try:
        distributed.parse_scheduler(scheduler)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--scheduler") from None
    settings = getattr(workflow, f"{preset}_settings")()
    for flag, key, value in (("--m-h", "m_h", m_h), ("--m-ff", "m_ff", m_ff)):
        if value is not None:
            try:
                settings[key] = WIDTHS.convert(value, None, None)
            except click.BadParameter as err:
                err.param_hint = flag
                raise
    for name in ("n", "ff_depth", "seeds", "samples"):
        value = training["--" + name.replace("_", "-")]
        if value is not None:
            settings[name] = value
    if epochs is not None:
        settings["config"] = settings["config"].replace(epochs=epochs)
    if finisher_steps is not None:
        settings["config"] = settings["config"].replace(finisher_steps=finisher_steps)
    encoding = training["--position-encoding"]
    if encoding is not None:
        options = {**settings["config"].model_kwargs, "position_encoding": encoding}
        settings["config"] = settings["config"].replace(model_kwargs=options)
    if alpha is not None:
        settings["alpha"] = alpha
    with resumable(out):
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


COMMANDS = [check]
