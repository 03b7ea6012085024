"""Tests of tfapprox._io: atomic, reproducible writes."""

import os
import zipfile

import numpy as np
import pytest

from tfapprox import _io


def test_atomic_write_json_round_trips_numpy_values(tmp_path):
    path = tmp_path / "sub" / "results.json"
    _io.atomic_write_json(path, {"b": np.float32(0.5), "a": np.arange(3), "c": [np.int64(2)]})
    assert _io.read_json(path) == {"a": [0, 1, 2], "b": 0.5, "c": [2]}
    assert path.read_text().index('"a"') < path.read_text().index('"b"')  # sorted keys


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "results.json"
    _io.atomic_write_json(path, {"runs": [1]})
    with pytest.raises(RuntimeError), _io.atomic_path(path) as tmp:
        with open(tmp, "w") as f:
            f.write('{"runs": [')
        raise RuntimeError("interrupted")
    assert _io.read_json(path) == {"runs": [1]}
    assert os.listdir(tmp_path) == ["results.json"]


def test_new_file_gets_the_umask_mode_and_an_old_file_keeps_its_mode(tmp_path):
    umask = os.umask(0o022)
    try:
        new = tmp_path / "new.json"
        _io.atomic_write_text(new, "{}")
        assert os.stat(new).st_mode & 0o777 == 0o644
        old = tmp_path / "old.json"
        old.write_text("{}")
        os.chmod(old, 0o600)
        _io.atomic_write_text(old, "[]")
        assert os.stat(old).st_mode & 0o777 == 0o600
        assert old.read_text() == "[]"
    finally:
        os.umask(umask)


def test_npz_bytes_are_reproducible_and_load_with_numpy(tmp_path):
    arrays = {"y": np.linspace(0, 1, 5), "x": np.arange(6, dtype=np.float32).reshape(2, 3)}
    first = _io.npz_bytes(**arrays)
    assert _io.npz_bytes(**dict(reversed(list(arrays.items())))) == first
    path = tmp_path / "d.npz"
    _io.atomic_save_npz(path, **arrays)
    assert path.read_bytes() == first
    with np.load(path) as loaded:
        for name, value in arrays.items():
            np.testing.assert_array_equal(loaded[name], value)
            assert loaded[name].dtype == value.dtype
    with zipfile.ZipFile(path) as archive:
        assert [info.date_time for info in archive.infolist()] == [(1980, 1, 1, 0, 0, 0)] * 2


def test_read_json_names_missing_and_corrupt_files(tmp_path):
    with pytest.raises(FileNotFoundError, match="results not found"):
        _io.read_json(tmp_path / "none.json", what="results")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json is not valid JSON"):
        _io.read_json(bad)
