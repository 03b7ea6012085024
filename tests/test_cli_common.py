"""cli/_common.py: one-line errors and warnings for every command."""

import os
import warnings

import click
from click.testing import CliRunner

from tfapprox_cli._common import library_errors


def make_command(action):
    @click.command()
    @library_errors
    def command():
        action()
        click.echo("done")

    return command


def test_library_value_error_is_one_line_with_exit_1():
    def fail():
        raise ValueError("`m_h` must be a positive int.\n Received: m_h=0")

    result = CliRunner().invoke(make_command(fail))
    assert result.exit_code == 1
    assert result.output == "Error: `m_h` must be a positive int. Received: m_h=0\n"


def test_os_error_names_the_file():
    def fail():
        open("/nonexistent-folder/x.json", "w")

    result = CliRunner().invoke(make_command(fail))
    assert result.exit_code == 1
    assert result.output.startswith("Error: ") and "/nonexistent-folder/x.json" in result.output


def test_tfapprox_warnings_are_shown_once_and_foreign_deprecations_are_not():
    import tfapprox.budget

    def warn():
        code = compile(
            "import warnings\nfor _ in range(3): warnings.warn('grid did not converge', RuntimeWarning)",
            tfapprox.budget.__file__,
            "exec",
        )
        exec(code, {})
        # A virtual environment inside the checkout (as CI's .ci/venv) is not tfapprox.
        root = os.path.dirname(os.path.dirname(tfapprox.budget.__file__))
        keras_file = os.path.join(root, ".ci", "venv", "lib", "site-packages", "keras", "core.py")
        warnings.warn_explicit("old API", DeprecationWarning, keras_file, 1)

    result = CliRunner().invoke(make_command(warn))
    assert result.exit_code == 0
    assert result.stdout == "done\n"
    assert result.stderr == "Warning: grid did not converge\n"
