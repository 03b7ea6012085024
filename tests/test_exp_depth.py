"""analysis/depth.py --quick: L layers at a fixed parameter count, with and without DP (paper B, Type II)."""

import contextlib
import io
import json
import os

import numpy as np
import pytest

from analysis import _paperb, depth


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("depth")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        result = depth.main(["--quick", "--out", str(out), "--json"])
    return result, stdout.getvalue(), out


def test_json_has_one_cell_per_target_depth_and_dp(run):
    result, printed, _ = run
    parsed = json.loads(printed)
    settings = result["settings"]
    keys = {(c["target"], c["layers"], c["dp"]) for c in parsed["cells"]}
    assert keys == {
        (t, n, dp) for t in settings["targets"] for n in settings["layers"] for dp in (False, True)
    }
    for cell in parsed["cells"]:
        assert np.isfinite(cell["sup_error"]) and cell["sup_error"] >= np.sqrt(cell["mse"]) - 1e-9


def test_parameter_counts_sit_near_the_budget(run):
    # The FFN width is an integer: the count can miss the budget by at most
    # half of what one more unit of width costs (2 D + 1 per layer).
    result, _, _ = run
    settings = result["settings"]
    for cell in result["cells"]:
        per_unit = cell["layers"] * (2 * settings["width"] + 1)
        assert abs(cell["parameter_count"] - settings["parameter_budget"]) <= per_unit / 2


def test_the_deciding_cells_are_trained_again_with_twice_the_steps(run):
    result, _, _ = run
    doubled = [c for c in result["cells"] if "doubled" in c]
    assert any(c["layers"] == 1 and not c["dp"] for c in doubled)
    assert all(c["doubled"]["steps"] == 2 * c["steps"] for c in doubled)


def test_one_layer_dp_free_stays_above_two_thirds(run):
    # Paper B's lower bound: no one-layer DP-free model goes below 2/3 (sup norm).
    claims = run[0]["claims"]
    assert claims["dp_free_floor_held"]
    assert min(claims["dp_free_one_layer_sup_error"]) >= 2 / 3


def test_outputs_are_written(run):
    result, _, _ = run
    for key in ("result", "table", "figure"):
        assert os.path.isfile(result["outputs"][key])


def test_parameter_count_matches_keras():
    sizes = depth.sizes(depth.QUICK, 2, True)
    model = _paperb.build_model(16, **sizes)
    assert model.count_params() == _paperb.parameter_count(**sizes)
    free = depth.sizes(depth.QUICK, 2, False)
    assert _paperb.build_model(16, **free).count_params() == _paperb.parameter_count(**free)


def test_sup_error_is_the_largest_absolute_deviation():
    y = np.zeros((2, 3, 1))
    prediction = np.array([[[0.1], [-0.7], [0.2]], [[0.0], [0.3], [0.5]]])
    assert depth.sup_error(prediction, y) == pytest.approx(0.7)
