"""tfapprox sweep: train a grid of budgets and seeds with the batched engine.

Only click and the standard library are imported at module level; the engine
(and Keras) comes in when the command runs.
"""

import os

import click

from tfapprox_cli._common import echo_json, library_errors, resumable
from tfapprox_cli.train import (
    POSITIVE,
    _training_data,
    data_options,
    model_kwargs,
    training_options,
)

# Past these a sweep cannot be built on any machine; refuse them before
# building a list of widths (or a model) that exhausts the memory.
MAX_WIDTH = 2**20
MAX_WIDTHS = 4096


class WidthList(click.ParamType):
    """Positive ints as a list (``1,2,4``), a range (``1:16``, ``2:16:2``) or both (``1,4:6``).

    At most `MAX_WIDTHS` widths, each at most `MAX_WIDTH`.
    """

    name = "WIDTHS"

    def convert(self, value, param, ctx):
        if isinstance(value, list):
            return value
        widths = []
        for part in str(value).split(","):
            part = part.strip()
            try:
                if ":" in part:
                    bounds = [int(v) for v in part.split(":")]
                    if len(bounds) not in (2, 3):
                        raise ValueError
                    start, stop, step = (*bounds, 1)[:3]
                    if step < 1 or stop < start:
                        raise ValueError
                    part_widths = range(start, stop + 1, step)
                else:
                    part_widths = [int(part)]
            except ValueError:
                self.fail(
                    f"{value!r} is not a list of widths (examples: 4, 1,2,4, 1:16, 2:16:2)",
                    param,
                    ctx,
                )
            if len(widths) + len(part_widths) > MAX_WIDTHS or max(part_widths) > MAX_WIDTH:
                self.fail(
                    f"{value!r}: at most {MAX_WIDTHS} widths, each at most {MAX_WIDTH}",
                    param,
                    ctx,
                )
            widths.extend(part_widths)
        if not widths or min(widths) < 1:
            self.fail(f"{value!r}: every width must be a positive int", param, ctx)
        return sorted(set(widths))


WIDTHS = WidthList()


def _flatten(lists):
    return sorted({width for widths in lists for width in widths})


@click.command("sweep")
@click.argument("data")
@click.option(
    "--m-h", "m_h", type=WIDTHS, required=True, help="Query/key widths m_h: 1,2,4 or 1:16."
)
@click.option(
    "--m-ff",
    "m_ff",
    type=WIDTHS,
    multiple=True,
    required=True,
    help="Feed-forward widths m_FF (list or range; repeat the option to add more).",
)
@click.option("--n", "n", type=POSITIVE, default=32, show_default=True, help="Embedding width n.")
@click.option("--m-v", type=POSITIVE, default=None, help="Value width m_v.  [default: n]")
@click.option(
    "--ff-depth", type=POSITIVE, default=3, show_default=True, help="Hidden layers per FFN."
)
@click.option(
    "--seeds", type=POSITIVE, default=1, show_default=True, help="Seeds per budget (0..SEEDS-1)."
)
@data_options
@training_options
@click.option(
    "--chunk-size",
    type=POSITIVE,
    default=16,
    show_default=True,
    help="Members the engine trains together in one compiled step.",
)
@click.option(
    "--scheduler",
    default=None,
    help="Run the chunks on Dask: local:N (a LocalCluster of N workers) or tcp://HOST:8786.",
)
@click.option("--force", is_flag=True, help="Retrain runs already in the results file.")
@click.option(
    "--out",
    type=click.Path(file_okay=False),
    required=True,
    help="Output folder; the runs go to OUT/results.json.",
)
@click.option("json_", "--json", is_flag=True, help="Print the runs as JSON.")
@library_errors
def sweep(
    data,
    m_h,
    m_ff,
    n,
    m_v,
    ff_depth,
    seeds,
    position_encoding,
    kink_range,
    samples,
    data_seed,
    chunk_size,
    scheduler,
    force,
    out,
    json_,
    **settings,
):
    """Train every (m_h, m_FF, seed) on DATA and record each run in OUT/results.json.

    DATA is a dataset .npz or a target preset (`tfapprox target list`). The
    budgets are trained together by the batched engine, a chunk at a time;
    each finished chunk is written at once, so Ctrl-C or a crash loses only
    the chunk in flight, and running the same command again skips the runs
    already done. Runs record the training loss, the error in paper A's norm
    (mean over inputs of Σ_t |H_t − Ĥ_t|) on the training and held-out data,
    the epochs, why training stopped and the settings.

    \b
    Examples:
      tfapprox sweep fig5b-r6 --m-h 1:8 --m-ff 128 --seeds 2 --out runs/fig5b-r6
      tfapprox sweep data.npz --m-h 1,2,4 --m-ff 64,256 --n 16 --out runs/grid
      tfapprox sweep fig5b-rinf --m-h 1:16 --m-ff 128 --out runs/r --scheduler local:2
    """
    from tfapprox import distributed, sweeps
    from tfapprox.config import TrainingConfig

    try:
        distributed.parse_scheduler(scheduler)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint="--scheduler") from None
    if os.path.exists(out) and not os.path.isdir(out):
        raise click.BadParameter(f"{out!r} is a file, not a folder", param_hint="--out")
    train_set, held_out, description = _training_data(data, samples, data_seed)
    settings["model_kwargs"] = model_kwargs(position_encoding, kink_range)
    config = TrainingConfig(**settings)
    members = sweeps.plan_members(
        m_h, _flatten(m_ff), range(seeds), n=n, m_v=m_v, ff_depth=ff_depth
    )
    try:
        os.makedirs(out, exist_ok=True)
    except OSError as err:
        raise click.BadParameter(
            f"cannot create {out!r}: {err.strerror}", param_hint="--out"
        ) from None
    with resumable(out):
        summary = sweeps.run_sweep(
            train_set,
            members,
            os.path.join(out, "results.json"),
            config=config,
            validation_data=held_out,
            metadata={"data": description},
            scheduler=scheduler,
            chunk_size=chunk_size,
            force=force,
            progress=not json_,
        )
    if json_:
        echo_json(summary)
        return
    click.echo(
        f"{summary['trained']} runs trained, {summary['skipped']} already done: "
        f"{summary['results_path']}"
    )
    for run in summary["runs"]:
        budget = run["budget"]
        val = run.get("val_error")
        held = "" if val is None else f", held-out error {val:.4g}"
        click.echo(
            f"  m_h={budget['m_h']:<3} m_ff={budget['m_ff']:<4} seed={run['seed']}: "
            f"loss {run['loss']:.4g}, error {run['error']:.4g}{held}, "
            f"{run['epochs']} epochs ({run['stopped']})"
        )


COMMANDS = [sweep]
