"""Helpers shared by the tfapprox commands: errors, JSON output, lazy imports."""

import contextlib
import functools
import math
import os
import warnings


@contextlib.contextmanager
def _one_line_warnings():
    """Show tfapprox's warnings (and any RuntimeWarning) once each, as ``Warning: ...`` lines.

    Python's default format prints the file, line and source of the call;
    a command-line user needs the message only.
    """
    import click

    import tfapprox

    package = os.path.dirname(os.path.abspath(tfapprox.__file__)) + os.sep
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            yield
        finally:
            shown = set()
            for warning in caught:
                ours = os.path.abspath(warning.filename).startswith(package)
                if not (ours or issubclass(warning.category, RuntimeWarning)):
                    continue
                message = " ".join(str(warning.message).split())
                if message not in shown:
                    shown.add(message)
                    click.echo(f"Warning: {message}", err=True)


def library_errors(command):
    """Turn the library's `ValueError`/`TypeError`/`OSError` into one-line errors.

    A user's mistake (bad value, missing or corrupt file, a Keras backend
    that is not installed, sizes past the memory) ends with
    ``Error: <message>`` and exit code 1, never a traceback. Bugs (any other
    exception) still show their traceback.
    """
    import click

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            with _one_line_warnings():
                return command(*args, **kwargs)
        except (click.ClickException, BrokenPipeError):
            raise  # click shows the first; the second is a closed pipe (`| head`)
        except FileNotFoundError as err:
            message = str(err) if not err.filename else f"file not found: {err.filename}"
            raise click.ClickException(message) from None
        except OSError as err:
            if err.filename and err.strerror:
                raise click.ClickException(f"{err.strerror}: {err.filename}") from None
            raise click.ClickException(" ".join(str(err).split()) or type(err).__name__) from None
        except (ValueError, TypeError, ImportError) as err:
            message = " ".join(str(err).split()) or type(err).__name__
            backend = os.environ.get("KERAS_BACKEND")
            if backend and (isinstance(err, ImportError) or "backend" in message.lower()):
                # Keras could not load the backend the environment asks for.
                message += f" (KERAS_BACKEND={backend!r}: tensorflow or jax)"
            raise click.ClickException(message) from None
        except MemoryError as err:
            message = " ".join(str(err).split())
            raise click.ClickException(
                f"out of memory{': ' + message if message else ''}; use smaller sizes"
            ) from None

    return wrapper


@contextlib.contextmanager
def resumable(folder):
    """On Ctrl-C, say where the finished work is and how to continue; exit 130.

    The sweep engine keeps every finished chunk in ``folder``'s results file
    and a checkpoint of each chunk in training (`tfapprox.sweeps.run_sweep`),
    so the same command continues.
    """
    import click

    try:
        yield
    except KeyboardInterrupt:
        click.echo(
            f"\nInterrupted. The finished runs and the checkpoints are kept in {folder}; "
            "the same command continues where this one stopped.",
            err=True,
        )
        raise click.exceptions.Exit(130) from None


def echo_json(obj):
    """Print ``obj`` as stable, indented, key-sorted JSON (`tfapprox._io.to_json`)."""
    import click

    from tfapprox import _io

    click.echo(_io.to_json(obj))


EXPLICIT_SOURCES = ("COMMANDLINE", "ENVIRONMENT")


def explicit(ctx, name):
    """Whether the user gave option ``name`` (on the command line or in the environment)."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name in EXPLICIT_SOURCES


def checked_parameter(name):
    """A click callback validating one parameter of paper A's bound (exit 2 on a bad value)."""
    import click

    def callback(ctx, param, value):
        if value is None:
            return None
        from tfapprox import theory

        try:
            return theory.check_parameter(name, value)
        except (TypeError, ValueError) as err:
            raise click.BadParameter(" ".join(str(err).split())) from None

    return callback


def finite_float_range(**bounds):
    """`click.FloatRange` that also refuses NaN and ±inf (NaN passes every comparison)."""
    import click

    class FiniteFloatRange(click.FloatRange):
        def convert(self, value, param, ctx):
            number = super().convert(value, param, ctx)
            if not math.isfinite(number):
                self.fail(f"{value!r} is not a finite number.", param, ctx)
            return number

    return FiniteFloatRange(**bounds)
