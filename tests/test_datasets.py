"""Tests for tfapprox.datasets: the .npz format, its validation, and the digits patches."""

import math
import os

import numpy as np
import pytest

from tfapprox import _io, datasets


def write_raw_npz(path, **arrays):
    """Write arrays with plain `numpy.savez`, bypassing tfapprox's validation."""
    np.savez(path, **arrays)
    return path


@pytest.fixture
def sequence_data(rng):
    x = rng.random((5, 4, 2)).astype(np.float32)
    y = rng.standard_normal((5, 4, 3))
    return x, y


# ------------------------------------------------------------ round trips


def test_sequence_dataset_round_trips_arrays_dtypes_and_metadata(tmp_path, sequence_data):
    x, y = sequence_data
    metadata = {"source": "test", "seed": 3, "nested": {"beta": 0.5, "rank": "inf"}}
    path = tmp_path / "seq.npz"
    datasets.save_dataset(path, x, y, metadata)
    loaded = datasets.load_dataset(path)
    np.testing.assert_array_equal(loaded.x, x)
    np.testing.assert_array_equal(loaded.y, y)
    assert loaded.x.dtype == np.float32 and loaded.y.dtype == np.float64
    assert loaded.metadata == metadata
    assert loaded.task == "sequence"
    assert (loaded.num_samples, loaded.sequence_length, loaded.input_dim, loaded.output_dim) == (
        5,
        4,
        2,
        3,
    )


def test_vector_dataset_round_trips(tmp_path, rng):
    x, y = rng.random((4, 3, 1)), rng.random((4, 2))
    path = tmp_path / "vec.npz"
    datasets.Dataset(x, y, {"task": "vector"}).save(path)
    loaded = datasets.load_dataset(path)
    np.testing.assert_array_equal(loaded.x, x)
    np.testing.assert_array_equal(loaded.y, y)
    assert loaded.task == "vector" and loaded.output_dim == 2


def test_label_dataset_round_trips_integer_labels(tmp_path, rng):
    x, y = rng.random((6, 3, 2)), np.array([0, 2, 1, 2, 0, 4], dtype=np.int64)
    path = tmp_path / "labels.npz"
    datasets.save_dataset(path, x, y)
    loaded = datasets.load_dataset(path)
    np.testing.assert_array_equal(loaded.y, y)
    assert loaded.y.dtype == np.int64
    assert loaded.task == "labels" and loaded.output_dim == 5
    assert loaded.metadata == {}


def test_numpy_values_in_metadata_are_saved_as_plain_json(tmp_path, sequence_data):
    path = tmp_path / "np-meta.npz"
    datasets.save_dataset(
        path, *sequence_data, {"seed": np.int64(4), "sigmas": np.array([1.0, 0.5])}
    )
    assert datasets.load_dataset(path).metadata == {"seed": 4, "sigmas": [1.0, 0.5]}


def test_saving_the_same_dataset_twice_gives_identical_bytes(tmp_path, sequence_data):
    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    datasets.save_dataset(first, *sequence_data, {"b": 1, "a": 2})
    datasets.save_dataset(second, *sequence_data, {"a": 2, "b": 1})
    assert first.read_bytes() == second.read_bytes()


def test_saved_file_is_a_plain_npz_numpy_reads(tmp_path, sequence_data):
    path = tmp_path / "plain.npz"
    datasets.save_dataset(path, *sequence_data, {"k": 1})
    with np.load(path, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["metadata", "x", "y"]
        np.testing.assert_array_equal(archive["x"], sequence_data[0])


def test_loader_accepts_a_foreign_npz_without_metadata(tmp_path, sequence_data):
    path = write_raw_npz(tmp_path / "foreign.npz", x=sequence_data[0], y=sequence_data[1])
    loaded = datasets.load_dataset(path)
    np.testing.assert_array_equal(loaded.y, sequence_data[1])
    assert loaded.metadata == {}


def test_integer_inputs_are_cast_to_float32():
    data = datasets.Dataset(np.ones((2, 3, 1), dtype=np.int64), np.zeros((2, 3, 1), dtype=np.int32))
    assert data.x.dtype == np.float32 and data.y.dtype == np.float32


def test_subset_keeps_rows_and_metadata(rng):
    data = datasets.Dataset(rng.random((5, 2, 1)), rng.random((5, 2, 1)), {"seed": 1})
    part = data.subset([4, 0])
    np.testing.assert_array_equal(part.x, data.x[[4, 0]])
    np.testing.assert_array_equal(part.y, data.y[[4, 0]])
    assert part.metadata == {"seed": 1}


# ------------------------------------------------------ loader validation


def test_missing_file_is_a_file_not_found_error_naming_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="absent.npz"):
        datasets.load_dataset(tmp_path / "absent.npz")


def test_garbage_file_is_a_value_error_naming_it(tmp_path):
    path = tmp_path / "garbage.npz"
    path.write_bytes(b"this is not a zip archive")
    with pytest.raises(ValueError, match="garbage.npz.*not a readable .npz"):
        datasets.load_dataset(path)


def test_truncated_file_is_a_value_error_naming_it(tmp_path, sequence_data):
    path = tmp_path / "cut.npz"
    datasets.save_dataset(path, *sequence_data)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(ValueError, match="cut.npz"):
        datasets.load_dataset(path)


def test_file_without_y_is_a_value_error_naming_the_missing_array(tmp_path, sequence_data):
    path = write_raw_npz(tmp_path / "no-y.npz", x=sequence_data[0])
    with pytest.raises(ValueError, match=r"no-y.npz lacks the array\(s\) \['y'\]"):
        datasets.load_dataset(path)


def test_pickled_object_arrays_are_refused(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, x=np.array([None, 1], dtype=object), y=np.zeros(2, dtype=np.int64))
    with pytest.raises(ValueError, match="objects.npz"):
        datasets.load_dataset(path)


@pytest.mark.parametrize(
    ("x", "y", "fragment"),
    [
        (np.full((2, 3, 1), np.nan), np.zeros((2, 3, 1)), "`x` holds 6 non-finite"),
        (np.zeros((2, 3, 1)), np.array([[[0.0], [np.inf], [0.0]]] * 2), "`y` holds 2 non-finite"),
        (np.zeros((2, 3, 1)), np.zeros((3, 3, 1)), "different numbers of samples: 2 and 3"),
        (np.zeros((2, 3)), np.zeros((2, 3)), r"`x` must have shape \(N, tau, d\)"),
        (np.zeros((2, 3, 1, 1)), np.zeros((2, 3, 1)), r"`x` must have shape \(N, tau, d\)"),
        (np.zeros((2, 3, 1)), np.zeros((2, 3, 1, 1)), "`y` must have shape"),
        (np.zeros((2, 3, 1)), np.zeros((2, 4, 1)), "`y` has 4 time steps but `x` has 3"),
        (np.array([[["a"]]] * 2), np.zeros((2, 1, 1)), "`x` must hold floats"),
        (np.zeros((2, 3, 1)), np.zeros(2), "integer class labels"),
        (np.zeros((2, 3, 1)), np.array([1, -1]), "non-negative"),
        (np.zeros((2, 3, 1)), np.array([[["a"]]] * 2).repeat(3, 1), "`y` must hold numbers"),
    ],
    ids=[
        "nan-x",
        "inf-y",
        "mismatched-n",
        "x-2d",
        "x-4d",
        "y-4d",
        "y-steps",
        "x-strings",
        "float-labels",
        "negative-labels",
        "y-strings",
    ],
)
def test_loader_rejects_invalid_arrays_naming_the_problem(tmp_path, x, y, fragment):
    path = write_raw_npz(tmp_path / "bad.npz", x=x, y=y)
    with pytest.raises(ValueError, match=fragment) as info:
        datasets.load_dataset(path)
    assert "bad.npz" in str(info.value)
    # The constructor applies the same validation.
    with pytest.raises(ValueError, match=fragment):
        datasets.Dataset(x, y)


def test_corrupt_metadata_json_is_a_value_error(tmp_path, sequence_data):
    path = write_raw_npz(
        tmp_path / "meta.npz",
        x=sequence_data[0],
        y=sequence_data[1],
        metadata=np.array("{not json"),
    )
    with pytest.raises(ValueError, match="meta.npz has corrupt `metadata`"):
        datasets.load_dataset(path)


def test_metadata_that_is_not_a_json_object_is_a_value_error(tmp_path, sequence_data):
    path = write_raw_npz(
        tmp_path / "meta.npz", x=sequence_data[0], y=sequence_data[1], metadata=np.array("[1, 2]")
    )
    with pytest.raises(ValueError, match="meta.npz has corrupt `metadata`.*list"):
        datasets.load_dataset(path)


def test_dataset_rejects_non_dict_metadata(sequence_data):
    with pytest.raises(TypeError, match="`metadata`"):
        datasets.Dataset(*sequence_data, metadata=[1])


# ------------------------------------------------------- atomic writing


def test_invalid_data_writes_no_file(tmp_path):
    path = tmp_path / "never.npz"
    with pytest.raises(ValueError, match="`x`"):
        datasets.save_dataset(path, np.full((1, 2, 1), np.nan), np.zeros((1, 2, 1)))
    assert os.listdir(tmp_path) == []


def test_interrupted_write_leaves_no_partial_file(tmp_path, sequence_data, monkeypatch):
    path = tmp_path / "out.npz"

    def interrupt(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(_io.os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        datasets.save_dataset(path, *sequence_data)
    assert os.listdir(tmp_path) == []


def test_interrupted_overwrite_keeps_the_old_file(tmp_path, sequence_data, monkeypatch):
    path = tmp_path / "out.npz"
    datasets.save_dataset(path, *sequence_data, {"version": 1})
    old = path.read_bytes()

    def fail(fd):
        raise OSError("disk full")

    monkeypatch.setattr(_io.os, "fsync", fail)
    with pytest.raises(OSError, match="disk full"):
        datasets.save_dataset(path, *sequence_data, {"version": 2})
    assert path.read_bytes() == old
    assert os.listdir(tmp_path) == ["out.npz"]


# --------------------------------------------------------------- digits


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits

    return load_digits()


@pytest.fixture(scope="module")
def patches():
    return {patch: datasets.digits_patches(patch=patch) for patch in (2, 4)}


def images_from_tokens(tokens, patch):
    """Undo the documented layout: token t, entry a·p + b ↦ pixel (p·r + a, p·c + b)."""
    grid = 8 // patch
    images = np.zeros((tokens.shape[0], 8, 8), dtype=tokens.dtype)
    for t in range(grid * grid):
        r, c = divmod(t, grid)
        for a in range(patch):
            for b in range(patch):
                images[:, patch * r + a, patch * c + b] = tokens[:, t, a * patch + b]
    return images


@pytest.mark.parametrize(("patch", "tau", "d"), [(2, 16, 4), (4, 4, 16)])
def test_digits_patches_have_the_documented_shape_and_dtypes(patches, patch, tau, d):
    for part in patches[patch]:
        assert part.x.shape[1:] == (tau, d)
        assert part.x.dtype == np.float32 and part.y.dtype == np.int64
        assert part.task == "labels"
        assert part.metadata["patch"] == patch
        assert (part.metadata["sequence_length"], part.metadata["input_dim"]) == (tau, d)


@pytest.mark.parametrize("patch", [2, 4])
def test_digits_patches_reassemble_into_the_sklearn_images(digits, patches, patch):
    for part in patches[patch]:
        rows = np.asarray(part.metadata["indices"])
        images = images_from_tokens(part.x, patch)
        # Pixels are integers 0..16 scaled by 1/16: exact in float32.
        np.testing.assert_array_equal(images * 16, digits.images[rows])
        np.testing.assert_array_equal(part.y, digits.target[rows])


def test_digits_first_token_is_the_top_left_patch(digits, patches):
    train, _ = patches[2]
    first = train.metadata["indices"][0]
    np.testing.assert_array_equal(train.x[0, 0] * 16, digits.images[first, :2, :2].ravel())
    np.testing.assert_array_equal(train.x[0, 1] * 16, digits.images[first, :2, 2:4].ravel())
    np.testing.assert_array_equal(train.x[0, 4] * 16, digits.images[first, 2:4, :2].ravel())


@pytest.mark.parametrize("patch", [2, 4])
def test_digits_split_is_disjoint_covers_everything_and_keeps_order(digits, patches, patch):
    train, test = patches[patch]
    train_rows, test_rows = train.metadata["indices"], test.metadata["indices"]
    assert not set(train_rows) & set(test_rows)
    assert sorted(train_rows + test_rows) == list(range(len(digits.target)))
    assert train_rows == sorted(train_rows) and test_rows == sorted(test_rows)
    assert test.num_samples == math.ceil(datasets.DIGITS_TEST_FRACTION * len(digits.target))
    assert (train.metadata["split"], test.metadata["split"]) == ("train", "test")


def test_digits_split_is_stratified(digits, patches):
    train, test = patches[2]
    total = np.bincount(digits.target, minlength=10)
    test_counts = np.bincount(test.y, minlength=10)
    assert test.metadata["class_counts"] == test_counts.tolist()
    assert train.metadata["class_counts"] == np.bincount(train.y, minlength=10).tolist()
    # Stratification: each class's test share is the test fraction up to one image.
    assert np.all(np.abs(test_counts - total * datasets.DIGITS_TEST_FRACTION) <= 1)


def test_digits_split_is_identical_between_calls(patches):
    again = datasets.digits_patches(patch=2)
    for first, second in zip(patches[2], again):
        np.testing.assert_array_equal(first.x, second.x)
        np.testing.assert_array_equal(first.y, second.y)
        assert first.metadata == second.metadata


def test_digits_split_seed_changes_the_split(patches):
    train, _ = datasets.digits_patches(patch=4, seed=1)
    assert train.metadata["indices"] != patches[4][0].metadata["indices"]
    assert train.metadata["seed"] == 1


def test_digits_patch_sizes_share_the_split(patches):
    assert patches[2][1].metadata["indices"] == patches[4][1].metadata["indices"]


def test_digits_round_trip_through_a_dataset_file(tmp_path, patches):
    test = patches[4][1]
    path = tmp_path / "digits.npz"
    test.save(path)
    loaded = datasets.load_dataset(path)
    np.testing.assert_array_equal(loaded.x, test.x)
    np.testing.assert_array_equal(loaded.y, test.y)
    assert loaded.metadata == test.metadata


@pytest.mark.parametrize("patch", [0, 1, 3, 8, -2, 2.0, "2", True, None])
def test_digits_bad_patch_is_a_value_error_naming_patch(patch):
    with pytest.raises(ValueError, match=r"`patch` must be 2 or 4\. Received: patch="):
        datasets.digits_patches(patch=patch)


@pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1, "0.2", True])
def test_digits_bad_test_fraction_is_a_value_error_naming_it(fraction):
    with pytest.raises(ValueError, match="`test_fraction`"):
        datasets.digits_patches(test_fraction=fraction)


@pytest.mark.parametrize(
    "seed, error", [(-1, ValueError), (2**32, ValueError), (1.5, TypeError), (True, TypeError)]
)
def test_digits_bad_seed_is_an_error_naming_it(seed, error):
    with pytest.raises(error, match="`seed`"):
        datasets.digits_patches(seed=seed)


def test_python_source_text_is_deterministic_and_over_the_fixed_alphabet():
    from tfapprox.datasets import CHARACTERS, python_source_text

    text, sources = python_source_text(50_000)
    again, _ = python_source_text(50_000)
    assert text == again and len(text) == 50_000
    assert set(text) <= set(CHARACTERS) and len(CHARACTERS) == 96
    assert sources == sorted(sources) and all(name.endswith(".py") for name in sources)
    first, _ = python_source_text(10**9, modules=[sources[0]])
    assert text.startswith(first[:1000])


def test_character_windows_shift_the_targets_by_one_against_a_loop():
    from tfapprox.datasets import CHARACTERS, character_windows

    text = "def f(x):\n    return x + 1\n" * 3
    x, y = character_windows(text, 7, 5, seed=3)
    starts = np.random.default_rng(3).integers(0, len(text) - 7, size=5)
    for row, start in enumerate(starts):
        window = text[start : start + 8]
        assert "".join(CHARACTERS[i] for i in x[row].argmax(-1)) == window[:-1]
        assert "".join(CHARACTERS[i] for i in y[row]) == window[1:]
    assert np.all(x.sum(-1) == 1.0) and x.dtype == np.float32


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"text": "abc", "sequence_length": 3, "count": 1}, "shorter"),
        ({"text": "abc\u00e9", "sequence_length": 1, "count": 1}, "outside CHARACTERS"),
        ({"text": "abcdef", "sequence_length": 0, "count": 1}, "sequence_length"),
        ({"text": "abcdef", "sequence_length": 2, "count": 0}, "count"),
    ],
)
def test_character_windows_bad_input_names_the_argument(kwargs, match):
    from tfapprox.datasets import character_windows

    with pytest.raises(ValueError, match=match):
        character_windows(**kwargs)
