"""tfapprox experiment: list and run the experiments that reproduce the papers.

The experiments live in ``analysis/`` (installed as ``tfapprox_analysis``);
their registry `tfapprox_analysis.EXPERIMENTS` is read without importing
them, so ``tfapprox experiment list`` starts fast.
"""

import importlib

import click

from tfapprox_cli._common import echo_json, library_errors, resumable


def _registry():
    from tfapprox_analysis import EXPERIMENTS

    return EXPERIMENTS


class ExperimentGroup(click.Group):
    """``tfapprox experiment NAME``: NAME is an experiment or ``list``."""

    def list_commands(self, ctx):
        return ["list", *sorted(_registry())]

    def get_command(self, ctx, name):
        if name == "list":
            return list_experiments
        registry = _registry()
        if name not in registry:
            known = ", ".join(sorted(registry))
            raise click.UsageError(
                f"unknown experiment {name!r}; known experiments: {known}", ctx=ctx
            )
        return _run_command(name, *registry[name])


@click.group(cls=ExperimentGroup, name="experiment")
def experiment():
    """Run an experiment of the papers, or list them.

    \b
    Examples:
      tfapprox experiment list
      tfapprox experiment fig5 --quick --out runs/fig5-quick
      KERAS_BACKEND=jax tfapprox experiment fig5 --long   # the paper's sizes, on a GPU
      tfapprox experiment fig5 --json > fig5.json

    Each experiment writes result.json (every setting, our numbers beside the
    paper's), table.md (also printed) and a figure into --out. Interrupted
    (Ctrl-C), the same command continues: finished training is kept in --out.
    """


@click.command(name="list")
@click.option("json_", "--json", is_flag=True, help="Print the list as JSON.")
def list_experiments(json_):
    """List the experiments with a line on each."""
    registry = _registry()
    if json_:
        echo_json({name: description for name, (_, description) in sorted(registry.items())})
        return
    width = max((len(name) for name in registry), default=0)
    for name, (_, description) in sorted(registry.items()):
        click.echo(f"{name:<{width}}  {description}")


def _run_command(name, module_name, description):
    @click.command(name=name, help=description)
    @click.option("--quick", is_flag=True, help="A tiny version (≤ 90 s), as the tests run it.")
    @click.option(
        "--out",
        type=click.Path(file_okay=False),
        default=None,
        help="Output folder for result.json, table.md and the figure. [default: runs/<NAME>]",
    )
    @click.option(
        "--long",
        "long_",
        is_flag=True,
        help="Sizes beyond the default run, for a GPU (only experiments that have them: fig5).",
    )
    @click.option("json_", "--json", is_flag=True, help="Print the result as JSON.")
    @library_errors
    def run(quick, out, long_, json_):
        from tfapprox._quiet import quiet_tensorflow

        if quick and long_:
            raise click.UsageError("--quick and --long exclude each other")
        quiet_tensorflow()
        module = importlib.import_module(f"tfapprox_analysis.{module_name}")
        if long_ and getattr(module, "LONG", None) is None:
            raise click.UsageError(f"experiment {name!r} has no --long size")
        out = out or f"runs/{name}"
        argv = [f"--out={out}"]  # "=": a folder may start with "-"
        if quick:
            argv.append("--quick")
        if long_:
            argv.append("--long")
        if json_:
            argv.append("--json")
        with resumable(out):
            module.main(argv)

    return run


COMMANDS = [experiment]
