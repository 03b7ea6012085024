"""Results files: the JSON record of trained runs that sweeps write and checks read.

A results file is **strict JSON** (RFC 8259: no ``NaN`` or ``Infinity``), so
any JSON reader can load it::

    {"format": "tfapprox.results/1",
     "runs": [{"budget": {"n", "m_h", "m_v", "m_ff", "ff_depth"},
               "loss": 0.0123, "seed": 0,
               "hyperparameters": {...},          # TrainingConfig.to_dict()
               ...,                               # the rest of FitResult.to_dict()
               "non_finite": {"final_loss": "nan"}},  # only when needed
              ...],
     "metadata": {"sequence_length": 16, "input_dim": 1,
                  "data_sha256": "...", ...}}

Every run holds at least ``budget`` (all five keys), ``loss`` (a number)
and ``seed`` (an int). A non-finite number (a diverged loss) is written as
``null`` and its value recorded in the run's ``"non_finite"`` object under
its path (``"loss"``, ``"history/3"``, ``"metrics/val_loss"``: JSON pointers
without the leading slash); `read` turns them back into floats, so a reader
sees ``math.nan`` where the trainer had it. Files written before the format
key existed (no ``"format"``, literal ``NaN``) are read as well.

This module is the one home of that format:

- `read` / `validate` / `validate_run`: parse and check (``ValueError`` naming the file and
  the run; ``FileNotFoundError`` for a missing file);
- `write` (replace the file) and `append` (merge runs into it, atomically,
  refusing runs on other data);
- `run_key`: a run's identity (budget, seed, training settings), so a
  resumed sweep skips finished runs; `data_fingerprint` and `metadata_for`:
  what a file records about its data;
- `merge`: several files into one results dict;
- `to_strict_json` / `from_strict_json`: the ``null`` + ``non_finite``
  encoding;
- `sequence_length`: τ as the metadata records it.

Only the standard library and NumPy are imported (no TensorFlow), so the
command-line checker reads results quickly.

Example:

>>> run = {"budget": {"n": 4, "m_h": 2, "m_v": 4, "m_ff": 8, "ff_depth": 3},
...        "loss": float("nan"), "seed": 0}
>>> strict = to_strict_json(run)
>>> strict["loss"], strict["non_finite"]
(None, {'loss': 'nan'})
>>> from_strict_json(strict)["loss"]
nan
>>> validate({"runs": [run]})["format"]
'tfapprox.results/1'
"""

import contextlib
import json
import math
import numbers
import os

from tfapprox import _io

__all__ = [
    "BUDGET_KEYS",
    "FORMAT",
    "RUN_KEYS",
    "append",
    "check_same_data",
    "data_fingerprint",
    "from_strict_json",
    "merge",
    "metadata_for",
    "read",
    "run_key",
    "sequence_length",
    "to_strict_json",
    "validate",
    "validate_run",
    "write",
]

FORMAT = "tfapprox.results/1"
RUN_KEYS = ("budget", "loss", "seed")
BUDGET_KEYS = ("n", "m_h", "m_v", "m_ff", "ff_depth")
NON_FINITE = "non_finite"
# Metadata that must agree between runs kept in one file.
CHECKED_METADATA = ("data_sha256", "target_sha256", "sequence_length", "input_dim")

_NAMES = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}


# ----------------------------------------------------------------------------
# Strict JSON


def _escape(key):
    return str(key).replace("~", "~0").replace("/", "~1")


def _unescape(part):
    return part.replace("~1", "/").replace("~0", "~")


def _plain(obj):
    """``obj`` as plain JSON types (NumPy scalars and arrays, ``to_dict`` objects)."""
    return json.loads(_io.to_json(obj))


def to_strict_json(obj):
    """A copy of the JSON-ready dict ``obj`` with every non-finite float made ``null``.

    Their values go to ``obj["non_finite"]``, a dict from the path of each
    (JSON pointer without the leading slash: ``"loss"``, ``"history/3"``) to
    ``"nan"``, ``"inf"`` or ``"-inf"``. An ``obj`` without non-finite values
    comes back unchanged (no ``non_finite`` key). NumPy values become plain
    numbers.

    >>> to_strict_json({"a": [1.0, float("inf")], "b": {"c": float("-inf")}})
    {'a': [1.0, None], 'b': {'c': None}, 'non_finite': {'a/1': 'inf', 'b/c': '-inf'}}
    """
    if not isinstance(obj, dict):
        raise TypeError(f"`obj` must be a dict. Received: {type(obj).__name__}")
    found = {}

    def walk(value, path):
        if isinstance(value, float) and not math.isfinite(value):
            found["/".join(path)] = "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
            return None
        if isinstance(value, dict):
            return {key: walk(item, (*path, _escape(key))) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item, (*path, str(index))) for index, item in enumerate(value)]
        return value

    plain = _plain({key: value for key, value in obj.items() if key != NON_FINITE})
    out = walk(plain, ())
    found = {**dict(obj.get(NON_FINITE) or {}), **found}
    if found:
        out[NON_FINITE] = dict(sorted(found.items()))
    return out


def from_strict_json(obj, source="results"):
    """The inverse of `to_strict_json`: restore the floats listed in ``obj["non_finite"]``.

    Returns a copy without the ``non_finite`` key; an ``obj`` without it is
    returned as it is.

    >>> from_strict_json({"loss": None, "non_finite": {"loss": "inf"}})
    {'loss': inf}
    """
    if not isinstance(obj, dict) or NON_FINITE not in obj:
        return obj
    marks = obj[NON_FINITE]
    if not isinstance(marks, dict):
        raise ValueError(f"{source}: `{NON_FINITE}` must be an object of paths")
    out = json.loads(json.dumps({k: v for k, v in obj.items() if k != NON_FINITE}))
    for path, name in marks.items():
        if name not in _NAMES:
            raise ValueError(
                f"{source}: `{NON_FINITE}` values must be 'nan', 'inf' or '-inf'. "
                f"Received {path!r}: {name!r}"
            )
        parts = [_unescape(part) for part in str(path).split("/")]
        parent = out
        try:
            for part in parts[:-1]:
                parent = parent[int(part)] if isinstance(parent, list) else parent[part]
            last = int(parts[-1]) if isinstance(parent, list) else parts[-1]
            if parent[last] is not None:
                raise KeyError(path)
        except (KeyError, IndexError, ValueError, TypeError):
            raise ValueError(
                f"{source}: `{NON_FINITE}` names {path!r}, which is not a null value"
            ) from None
        parent[last] = _NAMES[name]
    return out


# ----------------------------------------------------------------------------
# Validation and reading


def validate_run(run, where="run"):
    """Check one run (``budget``, ``loss``, ``seed``); return it with non-finite values restored.

    Raises `ValueError` starting with ``where``.
    """
    if not isinstance(run, dict):
        raise ValueError(f"{where} must be a JSON object. Received: {type(run).__name__}")
    run = from_strict_json(run, where)
    missing = [key for key in RUN_KEYS if key not in run]
    if missing:
        raise ValueError(f"{where} lacks the keys {missing}; every run needs {list(RUN_KEYS)}")
    budget = run["budget"]
    if not isinstance(budget, dict):
        raise ValueError(f"{where}: `budget` must be an object with keys {list(BUDGET_KEYS)}")
    missing = [key for key in BUDGET_KEYS if key not in budget]
    if missing:
        raise ValueError(f"{where}: `budget` lacks the keys {missing}")
    from tfapprox.budget import Budget

    try:
        Budget.from_dict(budget)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: bad `budget`: {err}") from None
    loss = run["loss"]
    if isinstance(loss, bool) or not isinstance(loss, numbers.Real):
        raise ValueError(f"{where}: `loss` must be a number. Received: loss={loss!r}")
    seed = run["seed"]
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"{where}: `seed` must be an int. Received: seed={seed!r}")
    return run


def validate(obj, source="results"):
    """Check a results dict; return it normalised.

    Accepts the file form (``null`` + ``non_finite``) and the in-memory form
    (floats). Returns a new dict ``{"format", "runs", "metadata"}`` with
    non-finite values restored as floats and ``metadata`` ``{}`` if absent.

    Raises:
        ValueError: bad structure, an unknown ``format``, or a run without a
            complete ``budget``, a numeric ``loss`` or an int ``seed``; the
            message starts with ``source`` and names the run.
    """
    if not isinstance(obj, dict) or not isinstance(obj.get("runs"), list):
        raise ValueError(f'{source} must be a JSON object {{"runs": [...], "metadata": {{...}}}}')
    fmt = obj.get("format", FORMAT)
    if fmt != FORMAT:
        raise ValueError(f"{source}: unknown format {fmt!r}; this tfapprox reads {FORMAT!r}")
    metadata = obj.get("metadata")
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise ValueError(f"{source}: `metadata` must be a JSON object")
    runs = [validate_run(run, f"{source}: run {index}") for index, run in enumerate(obj["runs"])]
    return {"format": FORMAT, "runs": runs, "metadata": from_strict_json(metadata, source)}


def read(path):
    """Read and validate a results file.

    Returns:
        dict ``{"format": ..., "runs": [...], "metadata": {...}}`` with
        non-finite values as floats (see `validate`).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not JSON or not a valid results file; the
            message names the file (and the run).
    """
    path = os.fspath(path)
    obj = _io.read_json(path, what="results file")
    return validate(obj, source=f"results file {path}")


def sequence_length(results, source="results"):
    """τ as the results' metadata records it (``sequence_length``), or None.

    ``results`` is a results dict or its ``metadata``.

    >>> sequence_length({"runs": [], "metadata": {"sequence_length": 8}})
    8
    """
    from tfapprox._checks import check_positive_int

    metadata = results.get("metadata", {}) if "runs" in results else results
    value = (metadata or {}).get("sequence_length")
    if value is None:
        return None
    try:
        return check_positive_int("sequence_length", value)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: metadata.sequence_length: {err}") from None


# ----------------------------------------------------------------------------
# Identity of runs and data


def run_key(run):
    """The identity of a run: budget, seed, training settings (and start), as a string.

    Two runs with the same key were trained the same way, so a resumed
    sweep skips them. The settings are ``run["hyperparameters"]``, completed
    with the `tfapprox.config.TrainingConfig` defaults (so runs recorded
    before a setting existed keep their keys); settings this version does not
    know are compared as they are. A run that started from another
    budget's weights (``run["start"]``) has that start in its key.

    >>> budget = {"n": 4, "m_h": 2, "m_v": 4, "m_ff": 8, "ff_depth": 3}
    >>> a = {"budget": budget, "seed": 0, "hyperparameters": {"epochs": 5}}
    >>> b = {"budget": budget, "seed": 0, "hyperparameters": {"epochs": 5, "batch_size": 32}}
    >>> run_key(a) == run_key(b)  # 32 is the default batch size
    True
    """
    if not isinstance(run, dict):
        raise TypeError(f"`run` must be a run record (a dict). Received: {type(run).__name__}")
    missing = [field for field in ("budget", "seed") if field not in run]
    if missing:
        raise ValueError(
            f"`run` has no {' or '.join(missing)}: it is not a run record. Received keys: {sorted(run)}"
        )
    hyperparameters = run.get("hyperparameters")
    if hyperparameters:
        from tfapprox.config import TrainingConfig

        with contextlib.suppress(TypeError, ValueError):
            hyperparameters = TrainingConfig.from_dict(hyperparameters).to_dict()
    identity = {
        "budget": run["budget"],
        "seed": run["seed"],
        "hyperparameters": hyperparameters or {},
    }
    if run.get("start") is not None:
        # A warm start (`tfapprox.nesting.warm_start`) is another run than a seeded one.
        identity["start"] = run["start"]
    return json.dumps(_plain(identity), sort_keys=True)


def data_fingerprint(data):
    """SHA-256 of a dataset's arrays (shapes, dtypes and bytes).

    ``data`` is anything `tfapprox.datasets.as_dataset` accepts. A results
    file records it (``metadata.data_sha256``), so runs on other data are
    refused.
    """
    import hashlib

    from tfapprox.datasets import as_dataset

    dataset = as_dataset(data)
    digest = hashlib.sha256()
    for array in (dataset.x, dataset.y):
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes(order="C"))
    return digest.hexdigest()


def metadata_for(data):
    """The metadata a results file records about its training data.

    The data's shapes (`tfapprox.datasets.summary`), ``data_sha256``, the
    dataset's own metadata and the tfapprox version.
    """
    from tfapprox import __version__
    from tfapprox.datasets import as_dataset, summary

    dataset = as_dataset(data)
    return {
        **summary(dataset),
        "data_sha256": data_fingerprint(dataset),
        "data_metadata": dataset.metadata,
        "tfapprox_version": __version__,
    }


def check_same_data(old, new, where):
    """Raise `ValueError` if two metadata dicts describe different data (`CHECKED_METADATA`)."""
    for key in CHECKED_METADATA:
        if old.get(key) is None or new.get(key) is None or old[key] == new[key]:
            continue
        mine, theirs = old[key], new[key]
        if isinstance(mine, str) and len(mine) > 16:
            mine, theirs = f"{mine[:12]}…", f"{str(theirs)[:12]}…"
        raise ValueError(
            f"{where} holds runs on different data ({key} {mine} there, {theirs} here); "
            "use another results file"
        )


# ----------------------------------------------------------------------------
# Writing and merging


def _as_run(run):
    return _plain(run.to_dict() if hasattr(run, "to_dict") else run)


def _merged_runs(runs, new_runs):
    """``runs`` with each of ``new_runs`` replacing the run of the same key, or appended."""
    merged = list(runs)
    index = {run_key(run): i for i, run in enumerate(merged)}
    for run in new_runs:
        key = run_key(run)
        if key in index:
            merged[index[key]] = run
        else:
            index[key] = len(merged)
            merged.append(run)
    return merged


def _write(path, results):
    strict = {
        "format": FORMAT,
        "runs": [to_strict_json(run) for run in results["runs"]],
        "metadata": to_strict_json(results["metadata"]),
    }
    _io.atomic_write_json(path, strict, allow_nan=False)


def _metadata(metadata):
    """``metadata`` (a dict or None) as plain JSON values."""
    if metadata is not None and not isinstance(metadata, dict):
        raise TypeError(f"`metadata` must be a dict or None. Received: {metadata!r}")
    return _plain(dict(metadata or {}))


def write(path, runs, metadata=None):
    """Validate ``runs`` and write them as the results file ``path`` (replacing it).

    ``runs`` are dicts or objects with ``to_dict()`` (`FitResult`). The
    file is written atomically (`tfapprox._io`). Returns the results dict.
    """
    path = os.fspath(path)
    results = validate(
        {"runs": [_as_run(run) for run in runs], "metadata": _metadata(metadata)},
        source=f"results for {path}",
    )
    _write(path, results)
    return results


def append(path, runs, metadata=None):
    """Merge ``runs`` into the results file ``path`` atomically; return its new content.

    A run with the key (`run_key`) of one already in the file replaces it;
    the others are appended in order. The file's metadata keeps its values
    and gains the new keys of ``metadata``. A missing file is created.

    Raises:
        ValueError: the file is not a valid results file, a run is invalid,
            or ``metadata`` disagrees with the file's on the data
            (``data_sha256``, ``target_sha256``, ``sequence_length`` or
            ``input_dim``): the message says the file holds runs on
            different data.
    """
    path = os.fspath(path)
    new = validate(
        {"runs": [_as_run(run) for run in runs], "metadata": _metadata(metadata)},
        source=f"results for {path}",
    )
    if os.path.exists(path):
        old = read(path)
        check_same_data(old["metadata"], new["metadata"], f"results file {path}")
        results = {
            "format": FORMAT,
            "runs": _merged_runs(old["runs"], new["runs"]),
            "metadata": {**new["metadata"], **old["metadata"]},
        }
    else:
        results = {
            "format": FORMAT,
            "runs": _merged_runs([], new["runs"]),
            "metadata": new["metadata"],
        }
    _write(path, results)
    return results


def merge(paths):
    """Read several results files into one results dict.

    Runs are merged in order of ``paths`` (a later run with the key of an
    earlier one replaces it); metadata as in `append`, and files on
    different data are refused with `ValueError`.
    """
    if isinstance(paths, (str, bytes, os.PathLike)):
        raise TypeError(f"`paths` must be a list of results files. Received: paths={paths!r}")
    paths = [os.fspath(path) for path in paths]
    if not paths:
        raise ValueError("`paths` must name at least one results file")
    merged = {"format": FORMAT, "runs": [], "metadata": {}}
    for path in paths:
        results = read(path)
        check_same_data(merged["metadata"], results["metadata"], f"results file {path}")
        merged["runs"] = _merged_runs(merged["runs"], results["runs"])
        merged["metadata"] = {**results["metadata"], **merged["metadata"]}
    return merged
