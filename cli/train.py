"""tfapprox commands: train, export, info.

Thin wrappers over `tfapprox.training` and `tfapprox.export`. Only click and
the standard library are imported here; TensorFlow comes in with the command
that needs it.
"""

import math
import os

import click

from tfapprox.budget import POSITION_ENCODINGS
from tfapprox.config import TrainingConfig, cli_options
from tfapprox_cli._common import echo_json, finite_float_range, library_errors

POSITIVE = click.IntRange(min=1)
EXPORT_FORMATS = ("keras", "saved_model")


def training_options(command):
    """Add one option per `TrainingConfig` setting (help, range, default from the config)."""
    for spec in reversed(cli_options()):
        if spec["kind"] == "choice":
            kind = click.Choice(spec["choices"])
        elif spec["kind"] == "int":
            kind = click.IntRange(min=spec.get("minimum", 1))
        else:
            kind = finite_float_range(
                min=spec.get("low"),
                max=spec.get("high"),
                min_open=spec.get("low_open", False),
                max_open=spec.get("high_open", False),
            )
        command = click.option(
            spec["flag"],
            spec["name"],
            type=kind,
            default=spec["default"],
            show_default=spec["default"] is not None,
            help=spec["help"],
        )(command)
    return command


def _kink_range(ctx, param, value):
    """``LOW,HIGH`` as two finite floats with LOW < HIGH (exit 2 otherwise), or None."""
    if value is None:
        return None
    parts = value.split(",")
    try:
        low, high = (float(part) for part in parts)
    except ValueError:
        low = high = math.nan
    if not (math.isfinite(low) and math.isfinite(high) and low < high):
        raise click.BadParameter(f"{value!r} is not LOW,HIGH with finite LOW < HIGH (e.g. 0,1)")
    return [low, high]


def model_kwargs(position_encoding, kink_range):
    """`build_transformer` options from the model options of `data_options`."""
    options = {"position_encoding": position_encoding}
    if kink_range is not None:
        options["kink_range"] = kink_range
    return options


def data_options(command):
    """The options of DATA shared by train and sweep: encoding, kinks, samples, data seed."""
    options = [
        click.option(
            "--position-encoding",
            type=click.Choice(POSITION_ENCODINGS),
            default="learned",
            show_default=True,
            help="Position encoding e(t).",
        ),
        click.option(
            "--kink-range",
            default=None,
            metavar="LOW,HIGH",
            callback=_kink_range,
            help="Spread the kinks of f̂'s first ReLU layer over [LOW, HIGH] (the tokens' range, "
            "e.g. 0,1 for U[0,1] tokens) instead of zero biases, which with no position "
            "encoding and tokens of one sign start f̂ linear.",
        ),
        click.option(
            "--samples",
            type=POSITIVE,
            default=2000,
            show_default=True,
            help="Training sequences drawn when DATA is a preset (plus a quarter as many held out).",
        ),
        click.option(
            "--data-seed",
            type=click.IntRange(min=0),
            default=0,
            show_default=True,
            help="Sampling seed when DATA is a preset (held-out data: DATA_SEED + 1).",
        ),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _budget_line(budget):
    if budget is None:
        return "budget: (not a tfapprox Transformer)"
    return "budget: " + " ".join(
        f"{key}={budget[key]}" for key in ("n", "m_h", "m_v", "m_ff", "ff_depth")
    )


def _training_data(data, samples, data_seed):
    """``(dataset, validation or None, data description)`` for DATA.

    A file is loaded as it is; a preset name is sampled: ``samples`` training
    sequences with ``data_seed`` and ``samples // 4`` held-out ones with
    ``data_seed + 1``.
    """
    from tfapprox.datasets import load_dataset

    if os.path.exists(data):
        if os.path.isdir(data):
            raise click.BadParameter(f"{data!r} is a folder, not a dataset .npz", param_hint="DATA")
        return load_dataset(data), None, os.path.abspath(data)
    from tfapprox import targets

    if data not in targets.preset_names():
        raise click.BadParameter(
            f"{data!r} is neither a dataset file nor a preset "
            f"(presets: {', '.join(targets.preset_names())})",
            param_hint="DATA",
        )
    target = targets.load_preset(data)
    train_set = target.sample(samples, seed=data_seed)
    held_out = target.sample(max(1, samples // 4), seed=data_seed + 1)
    return train_set, held_out, f"preset {data} ({samples} samples, seed {data_seed})"


@click.command("train")
@click.argument("data")
@click.option(
    "--n", "n", type=POSITIVE, required=True, help="Embedding width n (output width of f̂)."
)
@click.option("--m-h", type=POSITIVE, required=True, help="Query/key width m_h (rank budget of ρ̂).")
@click.option("--m-v", type=POSITIVE, default=None, help="Value width m_v.  [default: n]")
@click.option(
    "--m-ff", type=POSITIVE, required=True, help="Width m_FF of the feed-forward networks."
)
@click.option(
    "--ff-depth",
    type=POSITIVE,
    default=3,
    show_default=True,
    help="Hidden layers per feed-forward network.",
)
@data_options
@training_options
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Seed of the first restart.",
)
@click.option("--no-jit", is_flag=True, help="Do not XLA-compile the training step.")
@click.option(
    "--log-dir", type=click.Path(file_okay=False), default=None, help="TensorBoard log folder."
)
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    required=True,
    help="Output folder for model.keras and result.json.",
)
@click.option("--json", "json_", is_flag=True, help="Print the result as JSON (no progress bar).")
@library_errors
def train(
    data,
    n,
    m_h,
    m_v,
    m_ff,
    ff_depth,
    position_encoding,
    kink_range,
    samples,
    data_seed,
    seed,
    no_jit,
    log_dir,
    out,
    json_,
    **settings,
):
    """Train the one-layer Transformer of budget (n, m_h, m_v, m_FF) on DATA.

    DATA is a dataset .npz (x: (N, tau, d); y: (N, tau, d_out), (N, d_out)
    or integer labels (N,)) or a preset name (`tfapprox target list`), which
    is sampled, with a held-out set to evaluate on. Writes OUT/model.keras
    and OUT/result.json (a results file with one run).

    \b
    Examples:
      tfapprox train default --n 16 --m-h 2 --m-ff 32 --out runs/quickstart
      tfapprox train fig5b.npz --n 32 --m-h 4 --m-ff 128 --out runs/m4
    """
    from tfapprox import _io, export, results, training
    from tfapprox.budget import Budget

    _io.writable_folder(out)  # before training, not after
    config = TrainingConfig(**settings, model_kwargs=model_kwargs(position_encoding, kink_range))
    dataset, held_out, source = _training_data(data, samples, data_seed)
    budget = Budget(n=n, m_h=m_h, m_v=m_v, m_ff=m_ff, ff_depth=ff_depth)
    try:
        result = training.fit(
            budget,
            dataset,
            config=config,
            seed=seed,
            jit_compile=not no_jit,
            log_dir=log_dir,
            validation_data=held_out,
            verbose=0 if json_ else 1,
        )
    except KeyboardInterrupt:
        click.echo(
            f"\nInterrupted: nothing was written to {out} (a single training keeps no "
            "checkpoint; `tfapprox sweep DATA --n N --m-h M --m-ff F` trains the "
            "same budget and continues where it stopped).",
            err=True,
        )
        raise click.exceptions.Exit(130) from None
    model_path = os.path.join(out, "model.keras")
    result_path = os.path.join(out, "result.json")
    export.save_model(result.model, model_path)
    metadata = {**results.metadata_for(dataset), "data": source}
    if held_out is None:
        metadata["data_path"] = source
    results.write(result_path, [result], metadata)
    if json_:
        echo_json({**result.to_dict(), "model_path": model_path, "result_path": result_path})
        return
    click.echo(_budget_line(result.budget.to_dict()))
    click.echo(
        f"loss {result.loss:.6g} after {result.epochs} epochs ({result.stopped}), "
        f"{result.parameter_count:,} parameters, {result.seconds:.1f} s"
    )
    if result.restarts > 1:
        losses = ", ".join(f"{loss:.4g}" for loss in result.restart_losses)
        click.echo(f"restart losses: {losses} (kept restart {result.best_restart})")
    for name, value in sorted(result.metrics.items()):
        click.echo(f"{name} {value:.6g}")
    click.echo(f"wrote {model_path} and {result_path}")


@click.command("export")
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--format",
    "format_",
    type=click.Choice(EXPORT_FORMATS),
    default="saved_model",
    show_default=True,
    help="keras: a .keras file; saved_model: a TensorFlow SavedModel folder.",
)
@click.option(
    "--out",
    type=click.Path(),
    required=True,
    help="Destination (.keras file or SavedModel folder).",
)
@click.option("--json", "json_", is_flag=True, help="Print the verification report as JSON.")
@library_errors
def export_command(model_path, format_, out, json_):
    """Export a .keras MODEL and verify the export in a fresh process.

    A SavedModel is served with tf.saved_model.load(OUT).serve(x) in a
    process that does not import tfapprox; either export must reproduce the
    model's predictions to 1e-5 at two batch sizes.

    \b
    Example:
      tfapprox export runs/m4/model.keras --format saved_model --out runs/m4/saved
    """
    if format_ == "keras" and not out.endswith(".keras"):
        raise click.BadParameter(
            f"must end with '.keras' for --format keras: {out}", param_hint="--out"
        )
    from tfapprox import export

    model = export.load_model(model_path, compile=False)
    if format_ == "keras":
        export.save_model(model, out)
    else:
        export.export_saved_model(model, out)
    report = export.verify_export(model, out)
    if json_:
        echo_json(report)
        return
    diffs = ", ".join(
        f"{diff:.2g} at batch {size}" for size, diff in report["max_abs_diff"].items()
    )
    click.echo(f"wrote {out} ({format_}); verified in a fresh process: max |diff| {diffs}")


@click.command("info")
@click.argument("model_path", metavar="MODEL", type=click.Path(exists=True, dir_okay=False))
@click.option("--json", "json_", is_flag=True, help="Print the description as JSON.")
@library_errors
def info(model_path, json_):
    """Print the budget, parameter count and layers of a .keras MODEL.

    \b
    Example:
      tfapprox info runs/m4/model.keras
    """
    from tfapprox import export, models

    model = export.load_model(model_path, compile=False)
    try:
        description = models.describe(model)
    except ValueError:
        description = {"budget": None, "parameter_count": int(model.count_params())}
    layers = [
        {
            "name": layer.name,
            "type": type(layer).__name__,
            "output_shape": list(layer.output.shape),
            "parameters": int(layer.count_params()),
        }
        for layer in model.layers
    ]
    description = {**description, "path": model_path, "name": model.name, "layers": layers}
    if json_:
        echo_json(description)
        return
    click.echo(f"{model_path}: model '{model.name}'")
    click.echo(_budget_line(description["budget"]))
    if description["budget"] is not None:
        click.echo(
            f"input: tau={description['sequence_length']} d={description['input_dim']}; "
            f"output: {description['output']} d_out={description['output_dim']}; "
            f"position encoding: {description['position_encoding']}"
        )
    click.echo(f"parameters: {description['parameter_count']:,}")
    rows = [
        (row["name"], row["type"], str(tuple(row["output_shape"])), f"{row['parameters']:,}")
        for row in layers
    ]
    header = ("layer", "type", "output shape", "parameters")
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows)]
    for row in (header, *rows):
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())


COMMANDS = [train, export_command, info]
