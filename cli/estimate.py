"""tfapprox commands: estimate (POD spectrum, β, C_β and rank of a kernel)."""

import math
import os

import click

from tfapprox_cli._common import echo_json, finite_float_range, library_errors

MODEL_SUFFIX = ".keras"
DATA_SUFFIX = ".npz"


def _load_model(path):
    """A `build_transformer` model from a ``.keras`` file, or a clear error."""
    from tfapprox import export, models

    model = export.load_model(path, compile=False)
    try:
        models.budget_of(model)
    except (ValueError, AttributeError):
        raise ValueError(
            f"{path} is not a tfapprox Transformer: it needs layers named 'position_encoding', "
            "'f_hat', 'attention' and 'F_hat' (see tfapprox.models.build_transformer)"
        ) from None
    return model


def _targets_module():
    try:
        from tfapprox import targets
    except ImportError as err:
        raise ValueError(f"tfapprox.targets is not available ({err})") from None
    return targets


def _load_preset(name):
    """The preset's Target; an unknown name lists the known presets."""
    return _targets_module().load_preset(name)


def _target_from_dataset(path):
    """Rebuild the Target recorded in a dataset file's metadata."""
    from tfapprox import datasets

    dataset = datasets.load_dataset(path)
    metadata = dataset.metadata
    targets = _targets_module()
    if "family" not in metadata and not isinstance(metadata.get("target"), dict):
        raise ValueError(
            f"{path} records no target in its metadata, so its kernel ρ cannot be rebuilt "
            f"(metadata keys: {', '.join(sorted(metadata)) or 'none'}); pass a preset or a model, "
            "or run `tfapprox estimate MODEL.keras --data FILE` for the data-driven estimate"
        )
    try:
        target = targets.from_dict(metadata)
    except (KeyError, TypeError, ValueError) as err:
        message = " ".join(str(err).split())
        raise ValueError(f"{path} has target metadata that cannot be rebuilt: {message}") from None
    shape = (target.sequence_length, target.input_dim)
    if tuple(dataset.x.shape[1:]) != shape:
        raise ValueError(
            f"{path} is mismatched: its x has tau={dataset.x.shape[1]}, d={dataset.x.shape[2]} "
            f"but its metadata describes a target with tau={shape[0]}, d={shape[1]}"
        )
    return target


def _load_inputs(path):
    from tfapprox import datasets

    return datasets.load_dataset(path).x


def _resolve(source):
    """``(kind, object, description)`` for a SOURCE argument."""
    lower = source.lower()
    if lower.endswith(MODEL_SUFFIX):
        return "model", _load_model(source), f"model {source}"
    if lower.endswith(DATA_SUFFIX):
        return "target", _target_from_dataset(source), f"dataset {source}"
    if os.path.exists(source):
        raise ValueError(
            f"{source}: expected a dataset ({DATA_SUFFIX}), a model ({MODEL_SUFFIX}) or a preset name"
        )
    return "target", _load_preset(source), f"preset {source}"


def _plain(value):
    if value is None:
        return None
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return value


def _truth(target):
    """The target's known β, C_β and rank (None where unknown)."""
    return {
        "beta": _plain(getattr(target, "beta", None)),
        "c_beta": _plain(getattr(target, "c_beta", None)),
        "rank": _plain(getattr(target, "rank", None)),
    }


@click.command()
@click.argument("source")
@click.option(
    "--data",
    "data_path",
    type=click.Path(exists=True, dir_okay=False),
    default=None,
    help="Dataset .npz of real inputs: use the data-driven estimate (τ×τ pre-softmax "
    "matrices averaged over its x) instead of the quadrature grid.",
)
@click.option(
    "--order",
    type=click.IntRange(min=1),
    default=None,
    help="Gauss nodes per axis (default: refine automatically).",
)
@click.option(
    "--max-points",
    type=click.IntRange(min=1),
    default=2048,
    show_default=True,
    help="Largest kernel matrix (nodes × positions) for the automatic grid.",
)
@click.option(
    "--tol",
    type=finite_float_range(min=0, min_open=True),
    default=1e-4,
    show_default=True,
    help="Relative convergence tolerance of the leading values.",
)
@click.option(
    "--rank-rtol",
    type=finite_float_range(min=0, max=1),
    default=1e-8,
    show_default=True,
    help="Numerical rank: values above RANK_RTOL·σ_1.",
)
@click.option(
    "--fit-range",
    type=(click.IntRange(min=1), click.IntRange(min=1)),
    default=None,
    help="1-based inclusive k range START STOP of the fit (default: automatic tail).",
)
@click.option(
    "--allow-short",
    is_flag=True,
    help="Report rank and spectrum even if fewer than 3 values can be fitted.",
)
@click.option(
    "--head",
    type=click.IntRange(min=1),
    default=10,
    show_default=True,
    help="Singular values printed.",
)
@click.option(
    "--plot",
    "plot_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="Write a log-log spectrum plot (png, pdf or svg).",
)
@click.option("--json", "json_", is_flag=True, help="Print machine-readable JSON.")
@library_errors
def estimate(
    source,
    data_path,
    order,
    max_points,
    tol,
    rank_rtol,
    fit_range,
    allow_short,
    head,
    plot_path,
    json_,
):
    """POD spectrum, β, C_β and numerical rank of a kernel.

    SOURCE is a preset name (`tfapprox target list`), a dataset TARGET.npz
    made by `tfapprox target make` (its target is rebuilt from the
    metadata), or a trained MODEL.keras (its learned kernel
    ρ̂(u,v) = (W_Q f̂(u))ᵀ W_K f̂(v)). The fit is σ_k ≈ C_β k^-β.

    \b
    Examples:
      tfapprox estimate fig5b-rinf --plot spectrum.png
      tfapprox estimate runs/m4/model.keras --json
      tfapprox estimate runs/m4/model.keras --data fig5b.npz
    """
    from tfapprox.pod import PODComplexity

    kind, obj, description = _resolve(source)
    inputs = _load_inputs(data_path) if data_path else None
    estimator = PODComplexity(
        order=order,
        max_points=max_points,
        tol=tol,
        rank_rtol=rank_rtol,
        fit_range=fit_range,
        allow_short=allow_short,
    )
    estimator.fit(obj, inputs=inputs)
    summary = estimator.summary()
    summary["input"] = source
    summary["kind"] = kind
    if kind == "target":
        summary["target"] = _truth(obj)
    if plot_path:
        from tfapprox import plots

        plots.spectrum_plot(
            plot_path,
            {**summary, "all_values": estimator.singular_values_},
            f"POD spectrum: {description}",
        )
        summary["plot"] = plot_path
    if json_:
        echo_json(summary)
        return
    _print_summary(summary, description, head)


def _interval(pair):
    return f"[{pair[0]:.4g}, {pair[1]:.4g}]"


def _print_summary(summary, description, head):
    info = summary["method"]
    grid = {
        "gauss": f"Gauss order {summary['order']}, {summary['num_points']} nodes",
        "qmc": f"QMC, {summary['num_points']} points",
        "data": "data-driven, τ×τ matrices averaged",
    }.get(info, info)
    if summary["positions"]:
        grid += f" × {summary['positions']} positions"
    status = "converged" if summary["converged"] else "NOT converged"
    error = summary["error_estimate"]
    if error is not None:
        status += f", est. rel. error {error:.2g}"
    click.echo(f"source: {description} ({summary['source']}; {grid}; {status})")
    values = summary["singular_values"]
    shown = " ".join(f"{v:.4g}" for v in values[:head])
    click.echo(
        f"singular values (first {min(head, len(values))} of {len(values)} above "
        f"noise floor {summary['noise_floor']:.3g}): {shown}"
    )
    level = f"{round(100 * summary['confidence'])}%"
    if summary["beta"] is None:
        click.echo("beta, C_beta: not fitted (fewer than 3 values above the noise floor)")
    else:
        start, stop = summary["fit_range"]
        click.echo(
            f"beta   = {summary['beta']:.4g}  {level} CI {_interval(summary['beta_ci'])}  "
            f"(fit on k = {start}..{stop})"
        )
        click.echo(
            f"C_beta = {summary['c_beta']:.4g}  {level} CI {_interval(summary['c_beta_ci'])}"
            f"  (envelope max σ_k k^β = {summary['c_envelope']:.4g})"
        )
    click.echo(f"numerical rank = {summary['rank']} (rtol {summary['rank_rtol']:g})")
    truth = summary.get("target")
    if truth and any(v is not None for v in truth.values()):
        parts = [f"{key} = {value}" for key, value in truth.items() if value is not None]
        click.echo("target's true values: " + ", ".join(parts))
    if summary.get("plot"):
        click.echo(f"plot written to {summary['plot']}")


COMMANDS = [estimate]
