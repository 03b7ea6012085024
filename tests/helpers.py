"""Helpers for tests: run the CLI in-process and parse its output; interrupt a training call."""

import json

import pytest
from click.testing import CliRunner


def run_cli(*args, expect_exit=0):
    """Invoke ``tfapprox ARGS`` in-process; assert the exit code; return the result."""
    from tfapprox_cli.main import main

    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=True)
    assert result.exit_code == expect_exit, (
        f"exit {result.exit_code} != {expect_exit}\noutput:\n{result.output}\n"
        f"exception: {result.exception!r}"
    )
    return result


def run_cli_json(*args):
    """Invoke ``tfapprox ARGS --json`` and return the parsed JSON."""
    return json.loads(run_cli(*args, "--json").stdout)


def assert_one_line_error(result, *fragments):
    """A user error: non-zero exit, no traceback, message naming the problem."""
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    for fragment in fragments:
        assert fragment in result.output, f"{fragment!r} not in {result.output!r}"


def assert_usage_error(result, *fragments):
    """Exit 2, no traceback, and the message on a single ``Error:`` line."""
    assert result.exit_code == 2, result.output
    assert_one_line_error(result, *fragments)
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0]


def running_sums(count, sequence_length):
    """Seeded inputs U[0,1] ``(count, tau, 1)`` and their running sums over tau, float32."""
    import numpy as np

    x = np.random.default_rng(0).uniform(size=(count, sequence_length, 1)).astype("float32")
    return x, (np.cumsum(x, axis=1) / sequence_length).astype("float32")


def running_sums_split(sequence_length, train=64, held_out=16):
    """`running_sums` split into ``(x, y)`` training and held-out pairs (first ``train``, the rest)."""
    x, y = running_sums(train + held_out, sequence_length)
    return (x[:train], y[:train]), (x[train:], y[train:])


class Interrupt(Exception):
    """Raised from a progress callback: the test's stand-in for Ctrl-C."""


def interrupted_then_resumed(train, path, stop_after=3):
    """Run ``train`` with a checkpoint, interrupted after epoch ``stop_after``; then run it again.

    ``train(checkpoint=, progress=)`` is a training call (`train_members`,
    `train_models`). Returns ``(result, epochs)``: the second call's result
    and the epochs it ran, which a checkpoint of the first one shortens.
    """

    def stop(epoch, states):
        if epoch == stop_after:
            raise Interrupt

    with pytest.raises(Interrupt):
        train(checkpoint=path, progress=stop)
    assert path.exists()
    epochs = []
    result = train(checkpoint=path, progress=lambda epoch, states: epochs.append(epoch))
    return result, epochs


def assert_same_records(plain, resumed):
    """Two training calls' records agree bit for bit: histories, losses, errors, finisher."""
    for a, b in zip(plain, resumed, strict=True):
        assert a["history"] == b["history"]
        assert (a["loss"], a["val_loss"], a["error"]) == (b["loss"], b["val_loss"], b["error"])
        assert a["finisher"]["iterations"] == b["finisher"]["iterations"]


def modules_loaded_by(statement, modules):
    """Which of ``modules`` a fresh interpreter has loaded after ``statement`` (as the CLI: lazy)."""
    import os
    import subprocess
    import sys

    code = (
        f"import sys; {statement}; print(sorted(m for m in {tuple(modules)!r} if m in sys.modules))"
    )
    env = {**os.environ, "TFAPPROX_LAZY_IMPORT": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    return out.stdout.strip()
