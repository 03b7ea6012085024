"""tfapprox commands: ``target list`` and ``target make`` (synthetic target datasets).

Only click and the standard library at module level; the library (NumPy) is
imported inside the commands.
"""

import click

from tfapprox_cli._common import echo_json, finite_float_range, library_errors


class RankType(click.ParamType):
    """A positive int or ``inf``."""

    name = "RANK"

    def convert(self, value, param, ctx):
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        text = str(value).strip().lower()
        if text in ("inf", "infinity"):
            return "inf"
        try:
            rank = int(text)
        except ValueError:
            rank = 0
        if rank < 1:
            self.fail(f"must be a positive int or 'inf'. Received: {value!r}", param, ctx)
        return rank


def _fmt(value, spec="g"):
    return "-" if value is None else format(value, spec) if isinstance(value, float) else str(value)


@click.group("target")
def target():
    """Synthetic targets: list presets, sample datasets.

    Targets with a known POD spectrum (paper A) and with sparse memory
    (paper B's Types I-III: memory-*, adaptive-*, kernel-* presets).

    \b
    Examples:
      tfapprox target list
      tfapprox target make fig5b-r6 --samples 2000 --out fig5b.npz
      tfapprox target make memory-relu-3 --samples 2000 --out relu3.npz
      tfapprox target make --beta 0.55 --rank inf --tau 16 --out fig5a.npz
      tfapprox target make --d 2 --rank 8 --beta 1 --out positional.npz
    """


@target.command("list")
@click.option("--json", "json_", is_flag=True, help="Print the presets as JSON.")
@library_errors
def list_command(json_):
    """List the bundled presets with τ, d, β, C_β, rank and a description."""
    from tfapprox import targets

    rows = targets.list_presets()
    if json_:
        echo_json(rows)
        return
    width = max([15, *(len(row["name"]) for row in rows)])
    header = (
        f"{'name':<{width}} {'tau':>4} {'d':>3} {'beta':>5} {'C_beta':>6} {'rank':>5}  description"
    )
    click.echo(header)
    for row in rows:
        click.echo(
            f"{row['name']:<{width}} {row['sequence_length']:>4} {row['input_dim']:>3} "
            f"{_fmt(row['beta']):>5} {_fmt(row['c_beta']):>6} {_fmt(row['rank']):>5}  "
            f"{row['description']}"
        )


@target.command("make")
@click.argument("preset", required=False)
@click.option(
    "--family",
    type=click.Choice(["fig5", "positional"]),
    default=None,
    help="Target family for a custom target. Defaults to positional when --d > 1, "
    "--position-dependent, --n, --d-out or --target-seed is given, else fig5.",
)
@click.option(
    "--beta",
    type=finite_float_range(min=0, min_open=True),
    default=None,
    help="POD decay β of ρ: σ_i = C_β i^-β. Library default 1.0.",
)
@click.option(
    "--c-beta",
    "c_beta",
    type=finite_float_range(min=0, min_open=True),
    default=None,
    help="POD constant C_β. Library default 1.0.",
)
@click.option(
    "--rank",
    type=RankType(),
    default=None,
    help="POD rank r of ρ: a positive int or 'inf'. Library default 6 (fig5), 8 (positional).",
)
@click.option(
    "--truncation",
    type=click.IntRange(min=1),
    default=None,
    help="Terms kept for --rank inf. Library default 64.",
)
@click.option(
    "--tau", type=click.IntRange(min=1), default=None, help="Sequence length τ. Library default 16."
)
@click.option(
    "--d",
    "d",
    type=click.IntRange(min=1),
    default=None,
    help="Token dimension d (> 1 selects the positional family). Library default 1 (fig5), 2 (positional).",
)
@click.option(
    "--n",
    "n",
    type=click.IntRange(min=1),
    default=None,
    help="Embedding width n of f (positional family). Library default 4.",
)
@click.option(
    "--d-out",
    "d_out",
    type=click.IntRange(min=1),
    default=None,
    help="Output width (positional family). Library default 1.",
)
@click.option(
    "--position-dependent/--position-independent",
    "position_dependent",
    default=None,
    help="Whether ρ depends on positions (positional family). Library default: dependent.",
)
@click.option(
    "--target-seed",
    type=click.IntRange(min=0),
    default=None,
    help="Seed of the target's random parts (positional family). Library default 0.",
)
@click.option(
    "--samples",
    type=click.IntRange(min=1),
    default=2048,
    show_default=True,
    help="Number of sequences N to draw.",
)
@click.option(
    "--seed",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Sampling seed of the inputs x ~ U[0,1].",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, writable=True),
    required=True,
    help="Output dataset file (.npz), written atomically.",
)
@click.option("--json", "json_", is_flag=True, help="Print a JSON summary.")
@library_errors
def make_command(preset, samples, seed, out, json_, **options):
    """Sample a dataset from PRESET or from a custom target and write it to --out.

    x is drawn i.i.d. from the target's input distribution (U[0,1]; {-1,1},
    U[-1,1] or {-1,0,1} for the sparse-memory presets); y = H(x). The file
    holds x, y and the target's metadata (parameters, seed, true β, C_β,
    rank, or the true lags and kernels); the same PRESET and --seed always
    give the same bytes.
    """
    from tfapprox import targets

    given = {name: value for name, value in options.items() if value is not None}
    if preset is not None and given:
        flags = ", ".join("--" + name.replace("_", "-") for name in sorted(given))
        raise click.UsageError(
            f"give either a PRESET or target options, not both ({preset} and {flags})"
        )
    if preset is None and not given:
        raise click.UsageError(
            "give a PRESET (see `tfapprox target list`) or target options such as --beta, --rank, --tau"
        )
    if "truncation" in given and given.get("rank") != "inf":
        raise click.UsageError(
            "--truncation sets the terms kept of an infinite rank: give it with --rank inf"
        )
    if preset is not None:
        model = targets.load_preset(preset)
    else:
        family = given.pop("family", None)
        if family is None:
            positional = (
                given.get("d", 1) > 1
                or given.get("position_dependent", False)
                or any(name in given for name in ("n", "d_out", "target_seed"))
            )
            family = "positional" if positional else "fig5"
        target_seed = given.pop("target_seed", 0)
        if family == "fig5":
            if given.get("position_dependent") is False:
                given.pop("position_dependent")  # fig5 targets are position independent
            extra = sorted(set(given) - {"beta", "c_beta", "rank", "truncation", "tau", "d"})
            if extra or given.get("d", 1) != 1:
                flags = ", ".join("--" + name.replace("_", "-") for name in extra) or "--d"
                raise click.UsageError(
                    f"the fig5 family has d = 1 and no {flags}; use --family positional"
                )
            given.pop("d", None)
        model = targets.make_target(family, given, seed=target_seed)
    dataset = model.sample(samples, seed=seed)
    dataset.save(out)
    summary = {
        "path": out,
        "num_samples": dataset.num_samples,
        "seed": seed,
        "x_shape": list(dataset.x.shape),
        "y_shape": list(dataset.y.shape),
        "target": model.metadata,
    }
    if json_:
        echo_json(summary)
        return
    memory = summary["target"].get("memory")
    truth = (
        f"memory type {memory['type']}: {memory['formula']}"
        if memory
        else f"beta={_fmt(model.beta)} C_beta={_fmt(model.c_beta)} "
        f"rank={_fmt(model.metadata['rank'])}"
    )
    click.echo(
        f"wrote {out}: {model.name}, {dataset.num_samples} samples (seed {seed}), "
        f"x {tuple(dataset.x.shape)}, y {tuple(dataset.y.shape)}, {truth}"
    )


COMMANDS = [target]
