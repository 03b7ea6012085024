"""What every experiment shares: its command line, its outputs, its table.

An experiment's ``main(argv)``, decorated with `entry`, parses ``--quick``
and ``--out`` with `start`, does its work, and returns `finish(...)`, which
writes into the output folder

- ``result.json``: every setting, our numbers and the paper's (strict JSON,
  written atomically),
- ``table.md``: the markdown table, also printed unless ``--json``,
- the figure, when the experiment draws one,

and returns the dict it wrote. Training groups report their progress on
standard error (`progress`), so a long run shows it is alive and a
``--json`` run keeps standard output for the JSON.

Nothing finished is lost on interruption: each `tfapprox.group.train_models`
group of a run keeps its state in ``OUT/checkpoints/`` (`checkpoint`), so
the same command run again continues the interrupted group and skips the
epochs of the finished ones; `finish` removes the folder. (Experiments that
train through `tfapprox.sweeps.run_sweep` keep their finished runs in its
results file instead.)
"""

import argparse
import functools
import math
import os
import shutil
import sys
import time

from tfapprox import _io


def parser(description, default_out, long=None):
    """An `argparse.ArgumentParser` with ``--quick``, ``--out`` and ``--json``.

    ``long``, a str or None: where an experiment has a size beyond its
    default run, the help of a ``--long`` flag that picks it.
    """
    parser = argparse.ArgumentParser(description=description)
    sizes = parser.add_mutually_exclusive_group()
    sizes.add_argument("--quick", action="store_true", help="tiny sizes (≤ 90 s), for the tests")
    if long is not None:
        sizes.add_argument("--long", action="store_true", help=long)
    else:
        parser.set_defaults(long=False)
    parser.add_argument(
        "--out", default=default_out, help=f"output folder (default: {default_out})"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the result as JSON instead of the table"
    )
    return parser


def entry(main):
    """Decorate an experiment's ``main(argv)``: its checkpoints end with it.

    `start` names the run's checkpoint folder for `checkpoint`; whether
    ``main`` returns or raises (Ctrl-C, an error), the folder is forgotten
    when it ends, so training run afterwards in the same process (a test, a
    notebook) keeps no checkpoint in that run's folder.
    """

    @functools.wraps(main)
    def run(argv=None):
        try:
            return main(argv)
        finally:
            _CHECKPOINTS.update(folder=None, count=0)

    return run


def start(argv, doc, default_out, quick, full, long=None, options=None):
    """Parse an experiment's command line; create its output folder; pick its settings.

    Args:
        argv: list of str or None (``sys.argv[1:]``).
        doc: the experiment module's docstring (its first line is the description).
        default_out: str. The default of ``--out``.
        quick, full: dicts. The settings of ``--quick`` and of the full run.
        long: dict or None. The settings of ``--long`` (a size for an
            accelerator); None: the experiment has no ``--long``.
        options: None, or a pair ``(add, check)`` of the experiment's own
            options (for ``python -m``; ``tfapprox experiment`` passes only
            the common ones): ``add(parser)`` adds them, ``check(args,
            settings)`` returns None or the one-line message of a bad value
            (reported as a usage error, before the output folder is made).

    Returns:
        ``(args, out, settings)``: the parsed arguments, the output folder
        (created and writable) and the chosen settings.
    """
    help_long = None if long is None else "beyond the default run: sizes for a GPU"
    command = parser(doc.splitlines()[0], default_out, long=help_long)
    if options is not None:
        options[0](command)
    args = command.parse_args(argv)
    settings = quick if args.quick else long if args.long else full
    if options is not None and (message := options[1](args, settings)) is not None:
        command.error(message)
    out = prepare_out(args.out)
    _CHECKPOINTS.update(folder=os.path.join(out, CHECKPOINTS), count=0)
    return args, out, settings


# The folder of an experiment's training checkpoints, inside its output folder.
CHECKPOINTS = "checkpoints"
_CHECKPOINTS = {"folder": None, "count": 0}


def checkpoint():
    """The checkpoint file of this run's next training group, or None outside a run.

    Groups are numbered in the order the run trains them, so the same
    command run again gives each group the file of the same group; a file
    of another call (other settings, data or models) is not used
    (`tfapprox.group.train_models`' ``checkpoint``).
    """
    folder = _CHECKPOINTS["folder"]
    if folder is None:
        return None
    _CHECKPOINTS["count"] += 1
    os.makedirs(folder, exist_ok=True)
    return os.path.join(folder, f"group-{_CHECKPOINTS['count']:03d}.npz")


def markdown_table(header, rows):
    """A GitHub-style markdown table.

    >>> print(markdown_table(["m_h", "error"], [[1, "0.5"], [2, "0.25"]]))
    | m_h | error |
    |---|---|
    | 1 | 0.5 |
    | 2 | 0.25 |
    """
    lines = ["| " + " | ".join(str(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def prepare_out(path):
    """Create the output folder; a clear `ValueError` if it cannot be written."""
    path = os.fspath(path)
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"`--out` must be a folder; {path!r} is a file")
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create the output folder {path!r}: {err.strerror}") from None
    if not os.access(path, os.W_OK):
        raise ValueError(f"the output folder {path!r} is not writable")
    return path


def finish(result, table, out, *, as_json=False, figure=None):
    """Write ``result.json`` and ``table.md`` (and keep ``figure``'s path); print the table.

    ``result`` is a JSON-ready dict; ``table`` the markdown text; ``figure``
    the path of a figure already written into ``out``, or None.
    """
    result = dict(result)
    result["outputs"] = {
        "result": os.path.join(out, "result.json"),
        "table": os.path.join(out, "table.md"),
        "figure": figure,
    }
    _io.atomic_write_text(result["outputs"]["table"], table + "\n")
    _io.atomic_write_json(result["outputs"]["result"], result)
    shutil.rmtree(os.path.join(out, CHECKPOINTS), ignore_errors=True)  # all kept in the result
    if as_json:
        print(_io.to_json(result))
    else:
        print(table)
        print(f"\nwrote {result['outputs']['result']}, {result['outputs']['table']}", end="")
        print(f", {figure}" if figure else "")
    return result


def progress(label, epochs, every=15.0, stream=None):
    """A `tfapprox.group.train_models` progress callback: one line on stderr at most every ``every`` s.

    The line names the group, the epoch, how many models still train and
    their range of epoch losses; the last epoch is always reported.

    >>> import io
    >>> out = io.StringIO()
    >>> report = progress("ordering: original", 2, stream=out)
    >>> report(1, [{"loss": 0.5}, {"loss": 0.25}]); report(2, [{"loss": 0.4}, {"loss": None}])
    >>> print(out.getvalue().replace("0 s", "T s"), end="")
    ordering: original: epoch 1/2, 2/2 models training, loss 0.25–0.5, T s
    ordering: original: epoch 2/2, 1/2 models training, loss 0.4–0.4, T s
    """
    start, last = time.perf_counter(), [-math.inf]

    def report(epoch, states):
        now = time.perf_counter()
        if now - last[0] < every and epoch < epochs:
            return
        last[0] = now
        losses = [s["loss"] for s in states if s["loss"] is not None]
        spread = f"loss {min(losses):.3g}–{max(losses):.3g}" if losses else "all stopped"
        print(
            f"{label}: epoch {epoch}/{epochs}, {len(losses)}/{len(states)} models training, "
            f"{spread}, {now - start:.0f} s",
            file=stream or sys.stderr,
            flush=True,
        )

    return report
