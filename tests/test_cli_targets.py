"""Tests of `tfapprox target list` and `tfapprox target make`."""

import json
import math
import os

import numpy as np
import pytest

from tests.helpers import assert_one_line_error, run_cli, run_cli_json
from tfapprox import _io, datasets, targets


def assert_single_error_line(result, *fragments, exit_code=None):
    """No traceback, and the message on exactly one ``Error:`` line naming every fragment."""
    if exit_code is not None:
        assert result.exit_code == exit_code, result.output
    assert_one_line_error(result, *fragments)
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0], (fragment, errors[0])


def make(*args, expect_exit=0):
    return run_cli("target", "make", *args, expect_exit=expect_exit)


# --------------------------------------------------------------- list


def test_list_prints_every_preset_with_its_numbers():
    lines = run_cli("target", "list").output.splitlines()
    assert lines[0].split()[:6] == ["name", "tau", "d", "beta", "C_beta", "rank"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(rows) == set(targets.preset_names())
    for preset in targets.list_presets():
        row = rows[preset["name"]]
        assert int(row[1]) == preset["sequence_length"] and int(row[2]) == preset["input_dim"]
        assert row[3] == ("-" if preset["beta"] is None else format(preset["beta"], "g"))
        assert row[5] == ("-" if preset["rank"] is None else str(preset["rank"]))


def test_list_json_equals_the_library_listing():
    out = run_cli_json("target", "list")
    assert out == json.loads(json.dumps(targets.list_presets()))
    assert [row["name"] for row in out] == list(targets.preset_names())


# ------------------------------------------------------- make a preset


def test_make_preset_writes_the_library_sample(tmp_path):
    path = tmp_path / "fig5b.npz"
    make("fig5b-r6", "--samples", "4", "--seed", "3", "--out", path)
    loaded = datasets.load_dataset(path)
    expected = targets.load_preset("fig5b-r6").sample(4, seed=3)
    np.testing.assert_array_equal(loaded.x, expected.x)
    np.testing.assert_array_equal(loaded.y, expected.y)
    assert loaded.metadata["name"] == loaded.metadata["target"]["name"] == "fig5b-r6"
    assert loaded.metadata["seed"] == 3 and loaded.metadata["num_samples"] == 4
    assert (loaded.metadata["beta"], loaded.metadata["rank"]) == (1.0, 6)


def test_make_preset_text_output_names_the_file_and_target(tmp_path):
    path = tmp_path / "t2.npz"
    output = make("table2-exp", "--samples", "2", "--out", path).output
    assert str(path) in output and "table2-exp" in output and "2 samples" in output


def test_make_json_summary_describes_the_written_file(tmp_path):
    path = tmp_path / "pos.npz"
    out = run_cli_json(
        "target", "make", "positional-d2", "--samples", "3", "--seed", "1", "--out", path
    )
    assert out["path"] == str(path) and out["seed"] == 1 and out["num_samples"] == 3
    assert out["x_shape"] == [3, 16, 2] and out["y_shape"] == [3, 16, 1]
    assert out["target"] == json.loads(json.dumps(targets.load_preset("positional-d2").metadata))


def test_make_twice_gives_identical_bytes(tmp_path):
    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    make("fig5a-rinf", "--samples", "3", "--seed", "9", "--out", first)
    make("fig5a-rinf", "--samples", "3", "--seed", "9", "--out", second)
    assert first.read_bytes() == second.read_bytes()


def test_make_overwrites_with_identical_bytes(tmp_path):
    path = tmp_path / "a.npz"
    make("default", "--samples", "2", "--out", path)
    before = path.read_bytes()
    make("default", "--samples", "2", "--out", path)
    assert path.read_bytes() == before


def test_make_with_another_seed_gives_other_data(tmp_path):
    make("fig5b-r2", "--samples", "3", "--seed", "0", "--out", tmp_path / "0.npz")
    make("fig5b-r2", "--samples", "3", "--seed", "1", "--out", tmp_path / "1.npz")
    zero, one = (datasets.load_dataset(tmp_path / f"{s}.npz") for s in (0, 1))
    assert not np.array_equal(zero.x, one.x)


def test_make_creates_missing_output_folders(tmp_path):
    path = tmp_path / "deep" / "er" / "out.npz"
    make("fig5b-r2", "--samples", "1", "--out", path)
    assert datasets.load_dataset(path).num_samples == 1


# ------------------------------------------------------ make a custom target


def test_make_custom_fig5_records_beta_and_rank(tmp_path):
    path = tmp_path / "custom.npz"
    make(
        "--beta",
        "0.7",
        "--c-beta",
        "2",
        "--rank",
        "3",
        "--tau",
        "5",
        "--samples",
        "4",
        "--seed",
        "2",
        "--out",
        path,
    )
    loaded = datasets.load_dataset(path)
    meta = loaded.metadata
    assert meta["family"] == "fig5"
    assert (meta["beta"], meta["c_beta"], meta["rank"], meta["sequence_length"]) == (0.7, 2.0, 3, 5)
    assert loaded.x.shape == (4, 5, 1) and loaded.y.shape == (4, 5, 1)
    np.testing.assert_allclose(meta["target"]["singular_values"], 2.0 * np.arange(1, 4) ** -0.7)
    expected = targets.fig5_target(beta=0.7, c_beta=2.0, rank=3, tau=5).sample(4, seed=2)
    np.testing.assert_array_equal(loaded.y, expected.y)


def test_make_custom_infinite_rank_records_the_truncation(tmp_path):
    path = tmp_path / "inf.npz"
    make(
        "--beta",
        "0.55",
        "--rank",
        "inf",
        "--truncation",
        "7",
        "--tau",
        "4",
        "--samples",
        "2",
        "--out",
        path,
    )
    meta = datasets.load_dataset(path).metadata
    assert meta["rank"] == "inf" and meta["truncation"] == 7 and meta["beta"] == 0.55
    assert len(meta["target"]["singular_values"]) == 7


def test_make_custom_d2_builds_a_positional_target(tmp_path):
    path = tmp_path / "pos.npz"
    make("--d", "2", "--rank", "4", "--beta", "1.5", "--tau", "6", "--samples", "3", "--out", path)
    loaded = datasets.load_dataset(path)
    meta = loaded.metadata
    assert meta["family"] == "positional" and meta["position_dependent"] is True
    assert (meta["input_dim"], meta["rank"], meta["beta"]) == (2, 4, 1.5)
    assert loaded.x.shape == (3, 6, 2)
    rebuilt = targets.from_dict(meta)
    np.testing.assert_array_equal(loaded.y, rebuilt(loaded.x.astype(np.float64)).astype(np.float32))


def test_make_custom_position_independent_positional_target(tmp_path):
    path = tmp_path / "pi.npz"
    make(
        "--family",
        "positional",
        "--position-independent",
        "--rank",
        "3",
        "--tau",
        "4",
        "--samples",
        "2",
        "--out",
        path,
    )
    meta = datasets.load_dataset(path).metadata
    assert meta["family"] == "positional" and meta["position_dependent"] is False


def test_make_target_seed_changes_the_positional_target(tmp_path):
    for seed in (0, 1):
        make(
            "--d",
            "2",
            "--tau",
            "3",
            "--target-seed",
            seed,
            "--samples",
            "2",
            "--out",
            tmp_path / f"{seed}.npz",
        )
    zero, one = (datasets.load_dataset(tmp_path / f"{s}.npz") for s in (0, 1))
    np.testing.assert_array_equal(zero.x, one.x)  # same sampling seed
    assert not np.array_equal(zero.y, one.y)
    assert (zero.metadata["target"]["seed"], one.metadata["target"]["seed"]) == (0, 1)


# ---------------------------------------------------------------- errors


def test_make_unknown_preset_names_it_and_lists_the_known_ones(tmp_path):
    out = tmp_path / "x.npz"
    result = make("no-such-preset", "--samples", "2", "--out", out, expect_exit=1)
    assert_single_error_line(result, "no-such-preset", *targets.preset_names())
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--beta", "0"], "--beta"),
        (["--beta", "-1"], "--beta"),
        (["--beta", "abc"], "--beta"),
        (["--c-beta", "0"], "--c-beta"),
        (["--rank", "0"], "--rank"),
        (["--rank", "two"], "--rank"),
        (["--truncation", "0", "--rank", "inf"], "--truncation"),
        (["--tau", "0"], "--tau"),
        (["--d", "0"], "--d"),
        (["--target-seed", "-1", "--d", "2"], "--target-seed"),
        (["--family", "table2"], "--family"),
        (["fig5b-r6", "--samples", "0"], "--samples"),
        (["fig5b-r6", "--seed", "-1"], "--seed"),
    ],
)
def test_make_bad_option_value_is_a_usage_error_naming_the_option(tmp_path, args, fragment):
    out = tmp_path / "x.npz"
    result = make(*args, "--out", out, expect_exit=2)
    assert_single_error_line(result, fragment)
    assert not out.exists()


@pytest.mark.parametrize("value", ["nan", "inf"])
def test_make_non_finite_beta_is_a_one_line_error(tmp_path, value):
    out = tmp_path / "x.npz"
    result = make("--beta", value, "--out", out, expect_exit=2)
    assert_single_error_line(result, "--beta", f"'{value}' is not a finite number")
    assert not out.exists()


def test_make_without_preset_or_options_is_a_usage_error(tmp_path):
    out = tmp_path / "x.npz"
    result = make("--out", out, expect_exit=2)
    assert_single_error_line(result, "PRESET", "--beta")
    assert not out.exists()


def test_make_with_preset_and_options_is_a_usage_error(tmp_path):
    out = tmp_path / "x.npz"
    result = make("fig5b-r6", "--beta", "0.5", "--rank", "3", "--out", out, expect_exit=2)
    assert_single_error_line(result, "fig5b-r6", "--beta", "--rank", "not both")
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--family", "fig5", "--d", "2"], "--d"),
        (["--family", "fig5", "--n", "3"], "--n"),
    ],
)
def test_make_fig5_with_positional_options_is_a_usage_error(tmp_path, args, fragment):
    out = tmp_path / "x.npz"
    result = make(*args, "--out", out, expect_exit=2)
    assert_single_error_line(result, "fig5", fragment)
    assert not out.exists()


def test_make_requires_out():
    result = make("fig5b-r6", expect_exit=2)
    assert_single_error_line(result, "--out")


def test_make_out_that_is_a_directory_is_refused(tmp_path):
    result = make("fig5b-r6", "--samples", "2", "--out", tmp_path, expect_exit=2)
    assert_single_error_line(result, "--out", "is a directory")


def test_make_out_below_a_regular_file_is_a_one_line_error(tmp_path):
    blocker = tmp_path / "file.txt"
    blocker.write_text("not a folder")
    out = blocker / "out.npz"
    result = make("fig5b-r6", "--samples", "2", "--out", out, expect_exit=1)
    assert_single_error_line(result, "file.txt")
    assert blocker.read_text() == "not a folder"
    assert os.listdir(tmp_path) == ["file.txt"]


def test_make_failed_write_leaves_no_file(tmp_path, monkeypatch):
    def fail(fd):
        raise OSError("No space left on device")

    monkeypatch.setattr(_io.os, "fsync", fail)
    result = make("fig5b-r6", "--samples", "2", "--out", tmp_path / "x.npz", expect_exit=1)
    assert_single_error_line(result, "No space left on device")
    assert os.listdir(tmp_path) == []


def test_make_interrupted_write_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "x.npz"
    make("fig5b-r6", "--samples", "2", "--seed", "0", "--out", path)
    before = path.read_bytes()

    def interrupt(fd):
        raise KeyboardInterrupt

    monkeypatch.setattr(_io.os, "fsync", interrupt)
    result = make("fig5b-r6", "--samples", "2", "--seed", "1", "--out", path, expect_exit=1)
    assert "Traceback" not in result.output
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["x.npz"]


def test_make_rank_inf_is_case_insensitive(tmp_path):
    path = tmp_path / "x.npz"
    make("--rank", "INF", "--truncation", "3", "--tau", "2", "--samples", "1", "--out", path)
    assert datasets.load_dataset(path).metadata["rank"] == "inf"
    assert math.isinf(targets.from_dict(datasets.load_dataset(path).metadata).rank)
