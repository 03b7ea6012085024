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

TASKS = ("sequence", "vector", "labels")


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
        """A new `Dataset` with the rows ``indices`` (same metadata)."""
        return Dataset(self.x[indices], self.y[indices], dict(self.metadata))


def _validate(x, y):
    x = np.asarray(x)
    y = np.asarray(y)
    if x.ndim != 3:
        raise ValueError(f"`x` must have shape (N, tau, d). Received shape {x.shape}")
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
    try:
        return Dataset(arrays["x"], arrays["y"], metadata)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None
