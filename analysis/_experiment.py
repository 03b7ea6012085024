"""What every experiment shares: its command line, its outputs, its table.

An experiment's ``main(argv)`` parses ``--quick`` and ``--out`` with
`parser`, does its work, and returns `finish(...)`, which writes into the
output folder

- ``result.json``: every setting, our numbers and the paper's (strict JSON,
  written atomically),
- ``table.md``: the markdown table, also printed unless ``--json``,
- the figure, when the experiment draws one,

and returns the dict it wrote.
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
