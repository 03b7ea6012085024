"""What every experiment shares: its command line, its outputs, its table.

An experiment's ``main(argv)`` parses ``--quick`` and ``--out`` with
`parser`, does its work, and returns `finish(...)`, which writes into the
output folder

- ``result.json``: every setting, our numbers and the paper's (strict JSON,
  written atomically),
- ``table.md``: the markdown table, also printed unless ``--json``,
- the figure, when the experiment draws one,

and returns the dict it wrote.

An error is evidence only if training reached its floor: every experiment
trains the cells its claims are read from again with twice the epochs and
reports `convergence` per cell; a claim read from a cell that moved by more
than `CONVERGENCE_TOLERANCE` is reported as "not converged" (`verdict`).
"""

import argparse
import os

from tfapprox import _io


def parser(description, default_out):
    """An `argparse.ArgumentParser` with ``--quick``, ``--out`` and ``--json``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true", help="tiny sizes (≤ 90 s), for the tests")
    parser.add_argument(
        "--out", default=default_out, help=f"output folder (default: {default_out})"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the result as JSON instead of the table"
    )
    return parser


def start(argv, doc, default_out, quick, full):
    """Parse an experiment's command line; create its output folder; pick its settings.

    Args:
        argv: list of str or None (``sys.argv[1:]``).
        doc: the experiment module's docstring (its first line is the description).
        default_out: str. The default of ``--out``.
        quick, full: dicts. The settings of ``--quick`` and of the full run.

    Returns:
        ``(args, out, settings)``: the parsed arguments, the output folder
        (created and writable) and the chosen settings.
    """
    args = parser(doc.splitlines()[0], default_out).parse_args(argv)
    return args, prepare_out(args.out), quick if args.quick else full


# A cell is converged when twice the epochs move its error by at most this fraction.
CONVERGENCE_TOLERANCE = 0.10


def convergence(error_1x, error_2x, *, tolerance=CONVERGENCE_TOLERANCE, floor=0.0):
    """Whether a cell reached its floor: its error after ``1x`` and ``2x`` the epochs.

    ``change = (e_2x − e_1x) / e_1x``; the cell is converged when
    ``|change| ≤ tolerance``, or when both errors are at most ``floor`` (an
    error the arithmetic cannot resolve, where relative changes are noise).

    >>> convergence(0.2, 0.19)
    {'errors': [0.2, 0.19], 'change': -0.05, 'converged': True}
    >>> convergence(0.2, 0.1)["converged"]
    False
    >>> convergence(1e-12, 3e-13, floor=1e-10)["converged"]
    True
    """
    change = (error_2x - error_1x) / error_1x if error_1x > 0 else 0.0
    converged = abs(change) <= tolerance or max(error_1x, error_2x) <= floor
    return {
        "errors": [float(error_1x), float(error_2x)],
        "change": round(float(change), 12),
        "converged": bool(converged),
    }


def verdict(holds, converged):
    """A claim's verdict: ``"holds"``, ``"does not hold"``, or ``"not converged"``.

    A claim read from cells that had not converged is no evidence either way.

    >>> verdict(True, True), verdict(False, True), verdict(True, False)
    ('holds', 'does not hold', 'not converged')
    """
    if not converged:
        return "not converged"
    return "holds" if holds else "does not hold"


def training_config(training, factor=1):
    """The `tfapprox.config.TrainingConfig` of the settings ``training``, ``factor`` times as long.

    The epochs, the warm-up and the patience scale together, so a doubled
    run follows the same schedule, stretched.

    >>> training_config({"epochs": 10, "schedule": "cosine", "warmup_epochs": 1}, 2).epochs
    20
    """
    from tfapprox.config import TrainingConfig

    config = TrainingConfig.from_dict(training)
    return config.replace(
        epochs=factor * config.epochs,
        warmup_epochs=factor * config.warmup_epochs,
        patience=factor * config.patience,
    )


def convergence_table(doubled, columns, unit="epochs"):
    """The markdown lines showing `convergence` per retrained cell.

    ``doubled`` holds dicts with ``errors``, ``change``, ``converged``,
    ``epochs`` and the keys of ``columns`` (a dict: key -> header), which
    name the cell.
    """
    if not doubled:
        return []
    body = [
        [
            *[_cell(d[key]) for key in columns],
            f"{d['errors'][0]:.2g}",
            f"{d['errors'][1]:.2g}",
            f"{100 * d['change']:+.0f}%",
            "yes" if d["converged"] else "no",
        ]
        for d in doubled
    ]
    epochs = doubled[0]["epochs"]
    header = [*columns.values(), "error 1×", "error 2×", "change", "converged"]
    return [
        "",
        f"The deciding cells at {epochs[0]} and {epochs[1]} {unit}; converged: |change| ≤ "
        f"{100 * CONVERGENCE_TOLERANCE:.0f}%.",
        "",
        markdown_table(header, body),
    ]


def _cell(value):
    """A table cell: booleans as yes/no."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    return value


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
    if as_json:
        print(_io.to_json(result))
    else:
        print(table)
        print(f"\nwrote {result['outputs']['result']}, {result['outputs']['table']}", end="")
        print(f", {figure}" if figure else "")
    return result
