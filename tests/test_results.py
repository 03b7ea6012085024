"""tfapprox.results: the results-file format, validation, strict JSON, append and merge."""

import hashlib
import json
import math

import numpy as np
import pytest

from tfapprox import Budget, results
from tfapprox.datasets import Dataset

BUDGET = Budget(n=4, m_h=2, m_ff=8)


def run_dict(**overrides):
    run = {"budget": BUDGET.to_dict(), "loss": 0.5, "seed": 0}
    run.update(overrides)
    return run


def test_read_returns_what_write_wrote(tmp_path):
    path = tmp_path / "results.json"
    results.write(path, [run_dict(), run_dict(seed=1)], {"sequence_length": 6})
    got = results.read(path)
    assert got["format"] == results.FORMAT
    assert [run["seed"] for run in got["runs"]] == [0, 1]
    assert got["metadata"] == {"sequence_length": 6}


def test_files_are_strict_json_and_non_finite_values_round_trip(tmp_path):
    path = tmp_path / "results.json"
    run = run_dict(loss=float("nan"), history=[1.0, float("inf")], metrics={"val_loss": -math.inf})
    results.write(path, [run])
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    # Any strict reader can load it; the reasons are recorded.
    stored = json.loads(text, parse_constant=lambda name: pytest.fail(f"non-strict {name}"))
    assert stored["runs"][0]["loss"] is None
    assert stored["runs"][0]["non_finite"] == {
        "history/1": "inf",
        "loss": "nan",
        "metrics/val_loss": "-inf",
    }
    back = results.read(path)["runs"][0]
    assert math.isnan(back["loss"]) and back["history"] == [1.0, math.inf]
    assert back["metrics"]["val_loss"] == -math.inf and "non_finite" not in back


def test_strict_json_escapes_keys_with_slashes():
    obj = {"a/b": {"~c": float("nan")}}
    strict = results.to_strict_json(obj)
    assert strict["non_finite"] == {"a~1b/~0c": "nan"}
    assert math.isnan(results.from_strict_json(strict)["a/b"]["~c"])


def test_strict_json_converts_numpy_values():
    strict = results.to_strict_json({"x": np.float32(np.nan), "y": np.arange(2)})
    assert strict == {"x": None, "y": [0, 1], "non_finite": {"x": "nan"}}


def test_a_non_finite_mark_on_a_number_is_refused():
    with pytest.raises(ValueError, match="not a null value"):
        results.validate({"runs": [{**run_dict(), "non_finite": {"loss": "nan"}}]})


def test_files_of_the_older_form_with_literal_nan_are_read(tmp_path):
    path = tmp_path / "old.json"
    budget = json.dumps(BUDGET.to_dict())
    path.write_text(f'{{"runs": [{{"budget": {budget}, "loss": NaN, "seed": 0}}]}}')
    got = results.read(path)
    assert math.isnan(got["runs"][0]["loss"]) and got["metadata"] == {}


@pytest.mark.parametrize(
    "content, fragment",
    [
        ("{not json", "is not valid JSON"),
        ('{"metadata": {}}', '{"runs": [...]'),
        ('{"format": "other/9", "runs": []}', "unknown format 'other/9'"),
        (
            json.dumps({"runs": [{"budget": BUDGET.to_dict(), "seed": 0}]}),
            "run 0 lacks the keys ['loss']",
        ),
        (
            json.dumps({"runs": [run_dict(), run_dict(loss="low")]}),
            "run 1: `loss` must be a number",
        ),
        (json.dumps({"runs": [run_dict(seed=1.5)]}), "`seed` must be an int"),
        (
            json.dumps({"runs": [run_dict(budget={"n": 4, "m_h": 2, "m_ff": 8})]}),
            "lacks the keys ['m_v', 'ff_depth']",
        ),
        (
            json.dumps({"runs": [run_dict(budget={**BUDGET.to_dict(), "m_h": 0})]}),
            "`m_h` must be a positive int",
        ),
    ],
)
def test_read_names_the_file_and_the_problem(tmp_path, content, fragment):
    path = tmp_path / "results.json"
    path.write_text(content)
    with pytest.raises(ValueError) as info:
        results.read(path)
    assert fragment in str(info.value) and str(path) in str(info.value)


def test_read_reports_a_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="results file not found"):
        results.read(tmp_path / "nope.json")


def test_append_replaces_a_run_with_the_same_key_and_keeps_the_others(tmp_path):
    path = tmp_path / "results.json"
    results.append(path, [run_dict(seed=0), run_dict(seed=1)], {"sequence_length": 6})
    results.append(path, [run_dict(seed=1, loss=0.25), run_dict(seed=2)], {"input_dim": 1})
    got = results.read(path)
    assert [(run["seed"], run["loss"]) for run in got["runs"]] == [(0, 0.5), (1, 0.25), (2, 0.5)]
    assert got["metadata"] == {"sequence_length": 6, "input_dim": 1}


@pytest.mark.parametrize(
    "old, new",
    [
        ({"data_sha256": "0" * 64}, {"data_sha256": "1" * 64}),
        ({"sequence_length": 6}, {"sequence_length": 8}),
        ({"input_dim": 1}, {"input_dim": 2}),
    ],
)
def test_append_refuses_runs_on_other_data(tmp_path, old, new):
    path = tmp_path / "results.json"
    results.write(path, [run_dict()], old)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="holds runs on different data") as info:
        results.append(path, [run_dict(seed=1)], new)
    assert next(iter(new)) in str(info.value)
    assert path.read_bytes() == before  # untouched


def test_merge_combines_files_and_refuses_other_data(tmp_path):
    a, b, c = tmp_path / "a.json", tmp_path / "b.json", tmp_path / "c.json"
    results.write(a, [run_dict(seed=0), run_dict(seed=1)], {"sequence_length": 6})
    results.write(b, [run_dict(seed=1, loss=0.1)], {"sequence_length": 6, "input_dim": 1})
    merged = results.merge([a, b])
    assert [(run["seed"], run["loss"]) for run in merged["runs"]] == [(0, 0.5), (1, 0.1)]
    assert merged["metadata"] == {"sequence_length": 6, "input_dim": 1}
    results.write(c, [run_dict()], {"sequence_length": 7})
    with pytest.raises(ValueError, match=f"results file {c} holds runs on different data"):
        results.merge([a, c])


def test_run_key_includes_budget_seed_and_settings():
    base = run_dict(hyperparameters={"epochs": 2, "learning_rate": 0.001})
    assert results.run_key(base) == results.run_key(json.loads(json.dumps(base)))
    assert results.run_key(base) != results.run_key(
        {**base, "hyperparameters": {"epochs": 3, "learning_rate": 0.001}}
    )
    assert results.run_key(base) != results.run_key({**base, "seed": 1})
    assert results.run_key(base) != results.run_key(
        {**base, "budget": {**BUDGET.to_dict(), "m_h": 1}}
    )


def test_run_key_fills_settings_missing_from_older_runs_with_defaults():
    from tfapprox.config import TrainingConfig

    full = run_dict(hyperparameters=TrainingConfig(epochs=2).to_dict())
    partial = run_dict(hyperparameters={"epochs": 2})
    assert results.run_key(full) == results.run_key(partial)


def test_data_fingerprint_tells_datasets_apart():
    x = np.zeros((4, 3, 1), dtype="float32")
    same = results.data_fingerprint(Dataset(x, x))
    assert same == results.data_fingerprint((x.copy(), x.copy()))
    assert same != results.data_fingerprint(Dataset(x + 1, x))
    # Same x, other targets y (two presets sampled with one seed) differ too,
    # and so do the same bytes in another shape or dtype.
    assert same != results.data_fingerprint(Dataset(x, x + 1))
    assert same != results.data_fingerprint(Dataset(x.reshape(4, 1, 3), x.reshape(4, 1, 3)))
    assert same != results.data_fingerprint(Dataset(x.astype("float64"), x))
    # The documented recipe: dtype and shape, then the bytes, for x then y.
    expected = hashlib.sha256()
    for array in (x, x):
        expected.update(f"{array.dtype.str}{array.shape}".encode() + array.tobytes())
    assert same == expected.hexdigest()


def test_metadata_for_records_shape_and_fingerprint():
    x = np.zeros((4, 3, 2), dtype="float32")
    meta = results.metadata_for(Dataset(x, x[..., :1], {"target": "zero"}))
    assert meta["sequence_length"] == 3 and meta["input_dim"] == 2
    assert meta["data_sha256"] == results.data_fingerprint((x, x[..., :1]))
    assert meta["data_metadata"] == {"target": "zero"}


def test_sequence_length_reads_the_metadata_once_for_everyone():
    assert results.sequence_length({"runs": [], "metadata": {"sequence_length": 8}}) == 8
    assert results.sequence_length({"runs": [], "metadata": {}}) is None
    with pytest.raises(ValueError, match="metadata.sequence_length"):
        results.sequence_length({"sequence_length": 0}, source="f.json")


def test_results_module_imports_without_tensorflow():
    import subprocess
    import sys

    code = (
        "import os, sys; os.environ['TFAPPROX_LAZY_IMPORT'] = '1'; import tfapprox.results; "
        "print(sorted(m for m in ('tensorflow', 'keras', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
