"""Datasets: the ``.npz`` file format tfapprox reads and writes.

A dataset file is an uncompressed ``.npz`` with

- ``x``: float array ``(N, tau, d)``, the input sequences;
- ``y``: the targets, one of
  - float ``(N, tau, d_out)``: a sequence-to-sequence target H_t(x) (task
    ``"sequence"``),
  - float ``(N, d_out)``: one vector per sequence (task ``"vector"``),
  - integer ``(N,)``: class labels (task ``"labels"``);
- ``metadata``: a JSON string (0-d unicode array) describing where the data
  came from (target parameters, seed, split).

Files are written atomically and byte-for-byte reproducibly. This module
needs only NumPy; scikit-learn is imported by the loaders that use it.
"""

import dataclasses
import json
import os
import zipfile

import numpy as np

from tfapprox import _io
from tfapprox._checks import check_seed


@dataclasses.dataclass
class Dataset:
    """Input sequences ``x`` and targets ``y`` with their metadata.

    Args:
        x: float array ``(N, tau, d)``.
        y: float array ``(N, tau, d_out)`` or ``(N, d_out)``, or int labels
            ``(N,)``.
        metadata: dict. JSON-serialisable description. Defaults to ``{}``.

    Validation happens in the constructor: wrong ranks, mismatched ``N``,
    non-finite values or negative labels raise `ValueError` naming the array.
    """

    x: np.ndarray
    y: np.ndarray
    metadata: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.x, self.y = _validate(self.x, self.y)
        if not isinstance(self.metadata, dict):
            raise TypeError(f"`metadata` must be a dict. Received: {type(self.metadata).__name__}")

    @property
    def task(self):
        """``"sequence"``, ``"vector"`` or ``"labels"`` (from ``y``'s shape)."""
        if self.y.ndim == 3:
            return "sequence"
        if self.y.ndim == 2:
            return "vector"
        return "labels"

    @property
    def num_samples(self):
        return self.x.shape[0]

    @property
    def sequence_length(self):
        """τ, the number of tokens per sequence."""
        return self.x.shape[1]

    @property
    def input_dim(self):
        """d, the token dimension."""
        return self.x.shape[2]

    @property
    def output_dim(self):
        """d_out: target width, or the number of classes for labels."""
        if self.task == "labels":
            return int(self.y.max()) + 1 if self.y.size else 0
        return self.y.shape[-1]

    def save(self, path):
        """Write the dataset to ``path`` (``.npz``) atomically."""
        save_dataset(path, self.x, self.y, self.metadata)

    def subset(self, indices):
        """A new `Dataset` with the rows ``indices`` (same metadata).

        ``indices`` is a slice, or integers in ``[−N, N)`` for N rows.

        >>> Dataset(np.zeros((4, 2, 1)), np.zeros((4, 2, 1))).subset([0, 3]).num_samples
        2
        """
        if not isinstance(indices, slice):
            array = np.asarray(indices)
            if array.size == 0:
                array = array.astype(np.int64)
            if array.dtype == bool or not np.issubdtype(array.dtype, np.integer) or array.ndim != 1:
                raise TypeError(
                    "`indices` must be a slice or a 1-D sequence of integers. "
                    f"Received: {type(indices).__name__} of dtype {array.dtype} and shape {array.shape}"
                )
            rows = self.num_samples
            if array.size and (array.min() < -rows or array.max() >= rows):
                raise ValueError(
                    f"`indices` must lie in [-{rows}, {rows}) for a dataset of {rows} rows. "
                    f"Received: indices from {array.min()} to {array.max()}"
                )
            indices = array
        return Dataset(self.x[indices], self.y[indices], dict(self.metadata))


def as_dataset(data, name="data"):
    """A validated `Dataset` from a Dataset, an ``(x, y)`` pair or a dataset file path.

    Raises `TypeError` naming ``name`` for anything else, and `ValueError`
    (naming ``name``) for arrays that do not form a dataset.

    >>> as_dataset((np.zeros((2, 3, 1)), np.zeros((2, 3, 1)))).sequence_length
    3
    """
    if isinstance(data, Dataset):
        return data
    if isinstance(data, (str, os.PathLike)):
        return load_dataset(data)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        try:
            return Dataset(data[0], data[1])
        except ValueError as err:
            raise ValueError(f"`{name}`: {err}") from None
    raise TypeError(
        f"`{name}` must be a tfapprox Dataset, an (x, y) pair or a dataset file path. "
        f"Received: {type(data).__name__}"
    )


def summary(dataset):
    """The shape of a dataset as a JSON-ready dict.

    >>> summary(Dataset(np.zeros((2, 3, 1)), np.zeros((2, 3, 1))))
    {'sequence_length': 3, 'input_dim': 1, 'output_dim': 1, 'task': 'sequence', 'num_samples': 2}
    """
    return {
        "sequence_length": int(dataset.sequence_length),
        "input_dim": int(dataset.input_dim),
        "output_dim": int(dataset.output_dim),
        "task": dataset.task,
        "num_samples": int(dataset.num_samples),
    }


def _validate(x, y):
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 3 or 0 in x.shape[1:]:
        raise ValueError(
            f"`x` must have shape (N, tau, d) with tau, d >= 1. Received shape {x.shape}"
        )
    if not np.issubdtype(x.dtype, np.floating):
        if np.issubdtype(x.dtype, np.integer):
            x = x.astype(np.float32)
        else:
            raise ValueError(f"`x` must hold floats. Received dtype {x.dtype}")
    if not np.all(np.isfinite(x)):
        bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise ValueError(f"`x` holds {bad} non-finite values (NaN or inf)")
    if y.ndim not in (1, 2, 3):
        raise ValueError(
            f"`y` must have shape (N, tau, d_out), (N, d_out) or (N,). Received shape {y.shape}"
        )
    if y.ndim >= 2 and y.shape[-1] == 0:
        raise ValueError(f"`y` must have an output width d_out >= 1. Received shape {y.shape}")
    if y.shape[0] != x.shape[0]:
        raise ValueError(
            f"`x` and `y` hold different numbers of samples: {x.shape[0]} and {y.shape[0]}"
        )
    if y.ndim == 3 and y.shape[1] != x.shape[1]:
        raise ValueError(
            f"`y` has {y.shape[1]} time steps but `x` has {x.shape[1]}; "
            "a sequence target needs one output per input token"
        )
    if y.ndim == 1:
        if not np.issubdtype(y.dtype, np.integer):
            raise ValueError(f"1-D `y` must hold integer class labels. Received dtype {y.dtype}")
        if y.size and y.min() < 0:
            raise ValueError(f"`y` class labels must be non-negative. Received min {y.min()}")
    else:
        if not (np.issubdtype(y.dtype, np.floating) or np.issubdtype(y.dtype, np.integer)):
            raise ValueError(f"`y` must hold numbers. Received dtype {y.dtype}")
        if not np.all(np.isfinite(y)):
            bad = int(np.size(y) - np.count_nonzero(np.isfinite(y)))
            raise ValueError(f"`y` holds {bad} non-finite values (NaN or inf)")
        y = y.astype(np.float32) if np.issubdtype(y.dtype, np.integer) else y
    return x, y


def save_dataset(path, x, y, metadata=None):
    """Validate and write ``x``, ``y`` and ``metadata`` to ``path`` atomically.

    The same arrays and metadata always give the same bytes.
    """
    dataset = Dataset(x, y, dict(metadata or {}))
    text = json.dumps(dataset.metadata, sort_keys=True, default=_io_default)
    _io.atomic_save_npz(path, x=dataset.x, y=dataset.y, metadata=np.array(text))


def _io_default(value):
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    raise TypeError(f"metadata value of type {type(value).__name__} is not JSON serialisable")


def load_dataset(path):
    """Read a dataset file written by `save_dataset` (or any ``.npz`` with x, y).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not a readable ``.npz``, lacks ``x`` or ``y``,
            or its arrays fail validation (the message names the problem).
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"dataset file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as err:
        raise ValueError(f"{path} is not a readable .npz dataset file ({err})") from None
    missing = [name for name in ("x", "y") if name not in arrays]
    if missing:
        raise ValueError(
            f"{path} lacks the array(s) {missing}; a dataset file holds `x` and `y` "
            f"(found {sorted(arrays)})"
        )
    metadata = {}
    if "metadata" in arrays:
        try:
            metadata = json.loads(str(arrays["metadata"]))
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} has corrupt `metadata` JSON: {err}") from None
        if not isinstance(metadata, dict):
            raise ValueError(
                f"{path} has corrupt `metadata`: a JSON object is expected, "
                f"found {type(metadata).__name__}"
            )
    try:
        return Dataset(arrays["x"], arrays["y"], metadata)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


#: Fraction of `digits_patches`' images held out for testing (stratified).
DIGITS_TEST_FRACTION = 0.25


def digits_patches(patch=2, *, test_fraction=DIGITS_TEST_FRACTION, seed=0):
    """scikit-learn's bundled digits as sequences of image patches (offline).

    The 1797 images of `sklearn.datasets.load_digits` (8×8, 16 grey levels)
    are scaled to ``[0, 1]`` (pixel / 16) and cut into non-overlapping
    ``patch × patch`` squares, taken in row-major order (left to right, top
    to bottom); each patch is flattened row-major into one token:

    - ``patch=2``: ``τ = 16`` tokens of ``d = 4`` values;
    - ``patch=4``: ``τ = 4`` tokens of ``d = 16`` values.

    Token ``t`` of image ``I`` holds ``I[patch·r + a, patch·c + b]`` at index
    ``a·patch + b``, with ``(r, c) = divmod(t, 8 // patch)``.

    The split is fixed: `sklearn.model_selection.train_test_split` with
    ``test_size=test_fraction``, ``stratify=labels`` (every digit in the same
    proportion in both parts) and ``random_state=seed``; the rows of each part
    keep the order of `load_digits`. With the defaults: 1347 training and 450
    test sequences. This is the offline stand-in for CIFAR-10 (paper Fig. 1).

    Args:
        patch: int, 2 or 4. Patch side. Defaults to 2.
        test_fraction: float in (0, 1). Defaults to 0.25.
        seed: int. Seed of the split. Defaults to 0.

    Returns:
        ``(train, test)``: two `Dataset` objects with float32 ``x``
        ``(N, τ, d)`` and int64 labels ``y`` ``(N,)`` in ``0..9``. Their
        metadata records the source, patch, split (``"train"``/``"test"``),
        ``test_fraction``, ``seed``, the rows' ``indices`` into `load_digits`
        and the per-class counts.

    Example:

    >>> train, test = digits_patches(patch=4)
    >>> train.x.shape, test.x.shape
    ((1347, 4, 16), (450, 4, 16))
    """
    if isinstance(patch, bool) or not isinstance(patch, (int, np.integer)) or patch not in (2, 4):
        raise ValueError(f"`patch` must be 2 or 4. Received: patch={patch!r}")
    patch = int(patch)
    if (
        isinstance(test_fraction, bool)
        or not isinstance(test_fraction, (int, float, np.floating))
        or not 0.0 < float(test_fraction) < 1.0
    ):
        raise ValueError(
            f"`test_fraction` must be a number in (0, 1). Received: test_fraction={test_fraction!r}"
        )
    seed = check_seed("seed", seed)
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    digits = load_digits()
    images = digits.images.astype(np.float64) / 16.0  # (N, 8, 8)
    labels = digits.target.astype(np.int64)  # (N,)
    count, grid = images.shape[0], 8 // patch
    tokens = (
        images.reshape(count, grid, patch, grid, patch)  # (N, row, a, col, b)
        .transpose(0, 1, 3, 2, 4)  # (N, row, col, a, b)
        .reshape(count, grid * grid, patch * patch)  # (N, tau, d)
        .astype(np.float32)
    )
    train_rows, test_rows = train_test_split(
        np.arange(count),
        test_size=float(test_fraction),
        stratify=labels,
        random_state=int(seed),
    )
    parts = []
    for split, rows in (("train", np.sort(train_rows)), ("test", np.sort(test_rows))):
        metadata = {
            "source": "sklearn.datasets.load_digits",
            "description": f"8x8 digits as {grid * grid} row-major patches of {patch}x{patch} "
            "pixels, scaled to [0,1]",
            "patch": patch,
            "sequence_length": grid * grid,
            "input_dim": patch * patch,
            "num_classes": 10,
            "split": split,
            "test_fraction": float(test_fraction),
            "seed": int(seed),
            "num_samples": int(rows.size),
            "class_counts": np.bincount(labels[rows], minlength=10).tolist(),
            "indices": rows.tolist(),
            "task": "labels",
        }
        parts.append(Dataset(tokens[rows], labels[rows], metadata))
    return tuple(parts)


# Printable ASCII and the newline: the characters of `python_source_text`.
CHARACTERS = "\n" + "".join(chr(code) for code in range(32, 127))


def python_source_text(max_chars=1_000_000, *, modules=None):
    """Offline real text: the Python standard library's own source files.

    Every Python install carries these files, so a character-level language
    model has a real corpus without downloads (the stand-in for paper B's
    pre-training corpus). The files are the standard library's top-level
    ``*.py`` modules (``sysconfig.get_paths()["stdlib"]``), read in sorted
    order and joined with a newline, until ``max_chars`` characters. Tabs
    become four spaces, every other character outside `CHARACTERS`
    (printable ASCII and the newline) becomes ``"?"``, so the vocabulary is
    fixed at 96 symbols whatever the install.

    Args:
        max_chars: int >= 1. Length of the text. Defaults to 1,000,000.
        modules: list of str or None. File names to read (e.g.
            ``["argparse.py"]``) instead of every top-level module.

    Returns:
        ``(text, sources)``: the text (a str of at most ``max_chars``
        characters) and the file names it came from, in order.

    Example:

    >>> text, sources = python_source_text(200, modules=["json/__init__.py"])
    >>> len(text), sources, set(text) <= set(CHARACTERS)
    (200, ['json/__init__.py'], True)
    """
    import sysconfig

    if isinstance(max_chars, bool) or not isinstance(max_chars, (int, np.integer)) or max_chars < 1:
        raise ValueError(f"`max_chars` must be a positive int. Received: max_chars={max_chars!r}")
    root = sysconfig.get_paths()["stdlib"]
    if modules is None:
        modules = sorted(name for name in os.listdir(root) if name.endswith(".py"))
    elif isinstance(modules, str):
        raise TypeError(f"`modules` must be a list of file names. Received: modules={modules!r}")
    allowed = set(CHARACTERS)
    pieces, sources, length = [], [], 0
    for name in modules:
        path = os.path.join(root, name)
        try:
            with open(path, encoding="utf-8", errors="replace") as f:
                raw = f.read()
        except OSError as err:
            raise ValueError(
                f"cannot read the standard library file {name!r}: {err.strerror}"
            ) from None
        text = "".join(c if c in allowed else "?" for c in raw.replace("\t", "    "))
        pieces.append(text)
        sources.append(name)
        length += len(text) + 1
        if length >= max_chars:
            break
    return "\n".join(pieces)[:max_chars], sources


def character_windows(text, sequence_length, count, *, seed=0):
    """Random windows of ``text`` for next-character prediction.

    Window ``i`` starts at a position drawn uniformly (``numpy`` generator of
    ``seed``); its inputs are one-hot characters ``c_0 … c_{τ−1}`` and its
    targets the next characters ``c_1 … c_τ`` (indices into `CHARACTERS`).

    Args:
        text: str over `CHARACTERS` (e.g. from `python_source_text`).
        sequence_length: int >= 1. τ.
        count: int >= 1. Number of windows.
        seed: int. Defaults to 0.

    Returns:
        ``(x, y)``: float32 one-hot inputs ``(count, τ, 96)`` and int32
        targets ``(count, τ)``.

    Example:

    >>> x, y = character_windows("abcdef", 3, 2, seed=0)
    >>> x.shape, y.shape, bool((x.argmax(-1)[:, 1:] == y[:, :-1]).all())
    ((2, 3, 96), (2, 3), True)
    """
    for name, value in (("sequence_length", sequence_length), ("count", count)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"`{name}` must be a positive int. Received: {name}={value!r}")
    if not isinstance(text, str):
        raise TypeError(f"`text` must be a str. Received: {type(text).__name__}")
    unknown = set(text) - set(CHARACTERS)
    if unknown:
        raise ValueError(f"`text` has characters outside CHARACTERS: {sorted(unknown)[:5]}")
    if len(text) < sequence_length + 1:
        raise ValueError(
            f"`text` ({len(text)} characters) is shorter than sequence_length + 1 "
            f"({sequence_length + 1})"
        )
    index = {c: i for i, c in enumerate(CHARACTERS)}
    codes = np.fromiter((index[c] for c in text), dtype=np.int32, count=len(text))
    starts = np.random.default_rng(check_seed("seed", seed)).integers(
        0, len(text) - sequence_length, size=count
    )
    windows = codes[starts[:, None] + np.arange(sequence_length + 1)]  # (count, τ + 1)
    x = np.eye(len(CHARACTERS), dtype=np.float32)[windows[:, :-1]]  # (count, τ, 96)
    return x, windows[:, 1:]
