"""The root ``tfapprox`` command group."""

import os

# tfapprox's package import stays light (no TensorFlow) inside the CLI;
# commands that need Keras import it themselves.
os.environ.setdefault("TFAPPROX_LAZY_IMPORT", "1")

import click  # noqa: E402

from tfapprox import __version__  # noqa: E402
from tfapprox._quiet import quiet_tensorflow  # noqa: E402
from tfapprox_cli import bound, estimate, experiment, sweep, targets, theory, train  # noqa: E402


class _OneLineError(click.ClickException):
    """A usage error shown as one line, with click's exit code for it (2)."""

    exit_code = 2


class TfapproxGroup(click.Group):
    """The root group: usage errors are one line naming the bad value.

    click prints a usage error as three lines (usage, a hint, the error);
    tfapprox prints ``Error: <what is wrong> (see 'tfapprox CMD --help')``
    and exits with status 2.
    """

    def make_context(self, *args, **kwargs):
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as err:
            raise _one_line(err) from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except click.UsageError as err:
            raise _one_line(err) from None


def _one_line(err):
    if isinstance(err, click.exceptions.NoArgsIsHelpError):
        return err  # a group run bare: click prints its help, as asked
    message = " ".join(err.format_message().split())
    if err.ctx is not None:
        message += f" (see '{err.ctx.command_path} --help')"
    return _OneLineError(message)


@click.group(cls=TfapproxGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tfapprox")
def main():
    """tfapprox: approximation theory of Transformers, as a Keras toolkit.

    \b
    Examples:
      tfapprox bound --tau 16 --beta 1.0 --alpha 0.5 --m-ff 128
      tfapprox bound --memory 48,56,99 --rpe log --heads 32
      tfapprox target list
      tfapprox target make fig5b-r6 --samples 2000 --out fig5b.npz
      tfapprox estimate fig5b-rinf --plot spectrum.png
      tfapprox train fig5b.npz --n 32 --m-h 4 --m-ff 128 --out runs/m4
      tfapprox sweep fig5b-r6 --m-h 1:8 --m-ff 128 --seeds 2 --out runs/fig5b-r6
      tfapprox export runs/m4/model.keras --format saved_model --out runs/m4/saved
      tfapprox check --results runs/fig5b-r6/results.json --beta 1.0 --alpha 0.5
    """
    quiet_tensorflow()


for _module in (bound, theory, targets, estimate, train, sweep, experiment):
    for _command in _module.COMMANDS:
        main.add_command(_command)


if __name__ == "__main__":
    main()
