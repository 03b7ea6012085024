"""Atomic file writing: a reader never sees a half-written results file.

Every file tfapprox writes (results, datasets, estimates) goes through these
helpers: the content is written to a temporary file in the same folder,
flushed to disk, and moved over the destination with `os.replace`, which is
atomic on POSIX and Windows. An interrupted run leaves either the old file or
the new one, never a truncated one.
"""

import contextlib
import io
import json
import os
import shutil
import tempfile
import zipfile

import numpy as np


def _file_mode(path):
    try:
        return os.stat(path).st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def writable_folder(path, what="the output folder"):
    """Create folder ``path`` if needed and check it is writable, before any work.

    Raises:
        ValueError: naming ``what`` and the path, when it cannot be created
            or written.
    """
    path = os.fspath(path)
    try:
        os.makedirs(path or ".", exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot create {what} {path!r}: {err.strerror or err}") from None
    if not os.access(path or ".", os.W_OK):
        raise ValueError(f"{what} {path!r} is not writable")
    return path


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path next to `path`; move it onto `path` on success.

    On an exception the temporary file is removed and `path` is untouched.
    """
    path = os.fspath(path)
    if not path:
        raise ValueError("`path` must name a file. Received: path=''")
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise NotADirectoryError(f"cannot write {path}: a folder on its path is a file") from None
    try:
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=os.path.basename(path))
    except OSError as err:
        # Name the user's path, not the temporary file's.
        raise OSError(f"cannot write {path}: {err.strerror or err}") from None
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        # mkstemp makes the file private (0600); give it the mode a plain
        # open() would: the old file's, or 0666 less the umask.
        os.chmod(tmp, _file_mode(path))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_directory(path):
    """Yield a staging folder next to ``path``; move it onto ``path`` on success.

    An existing folder at ``path`` is replaced (moved aside first, then
    deleted); on an exception ``path`` is untouched.
    """
    path = os.path.abspath(os.fspath(path))
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"`path` exists and is not a folder. Received: path={path!r}")
    parent = os.path.dirname(path)
    try:
        os.makedirs(parent, exist_ok=True)
        work = tempfile.mkdtemp(dir=parent, prefix=".tmp-", suffix=os.path.basename(path))
    except OSError as err:
        raise OSError(f"cannot write {path}: {err.strerror or err}") from None
    try:
        staged = os.path.join(work, "new")
        yield staged
        if os.path.exists(path):
            os.replace(path, os.path.join(work, "old"))
        os.replace(staged, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def atomic_write_bytes(path, data):
    """Write `data` (bytes) to `path` atomically."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)


def atomic_write_text(path, text):
    """Write `text` (UTF-8) to `path` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def to_json(obj, *, allow_nan=True):
    """Serialise `obj` the tfapprox way: indented, sorted keys, NumPy-aware.

    With ``allow_nan=False`` a non-finite float raises `ValueError` instead of
    being written as the non-standard ``NaN``/``Infinity`` (strict JSON).

    >>> print(to_json({"b": 1, "a": [0.5]}))
    {
      "a": [
        0.5
      ],
      "b": 1
    }
    """

    def default(value):
        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, np.generic):
            return value.item()
        if hasattr(value, "to_dict"):
            return value.to_dict()
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serialisable")

    return json.dumps(obj, indent=2, sort_keys=True, default=default, allow_nan=allow_nan)


def atomic_write_json(path, obj, *, allow_nan=True):
    """Write `obj` as JSON to `path` atomically (see `to_json`)."""
    atomic_write_text(path, to_json(obj, allow_nan=allow_nan) + "\n")


def npz_bytes(**arrays):
    """The bytes of an uncompressed ``.npz`` holding `arrays`, reproducibly.

    `numpy.savez` stamps the current time into every zip entry; here each
    entry has a fixed timestamp and the entries are sorted by name, so the
    same arrays always give the same bytes. `numpy.load` reads the result.
    """
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as archive:
        for name in sorted(arrays):
            info = zipfile.ZipInfo(f"{name}.npy", date_time=(1980, 1, 1, 0, 0, 0))
            with archive.open(info, "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(arrays[name]), allow_pickle=False)
    return buffer.getvalue()


def atomic_save_npz(path, **arrays):
    """Save arrays to an uncompressed ``.npz`` atomically and reproducibly."""
    atomic_write_bytes(path, npz_bytes(**arrays))


def read_json(path, what="file"):
    """Read a JSON file, raising `ValueError` naming the file if it is corrupt."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} not found: {path}")
    if os.path.isdir(path):
        raise ValueError(f"{what} {path} is a folder, not a file")
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise ValueError(f"{what} {path} is not valid JSON: {err}") from None
