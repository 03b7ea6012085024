"""analysis/depth.py --quick: L layers at a fixed parameter count, with and without DP (paper B, Type II)."""

import contextlib
import io
import json
import os

import numpy as np
import pytest

from analysis import _convergence, depth
from tfapprox import Budget


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
    # The FFN width is an integer: the count can miss the budget by at most half
    # of what one more unit of width costs, 2 D + 1 per block FFN (L - 1 of them)
    # plus D + 1 + d_out in the readout.
    result, _, _ = run
    settings = result["settings"]
    width = settings["width"]
    for cell in result["cells"]:
        per_unit = (cell["layers"] - 1) * (2 * width + 1) + width + 2
        assert abs(cell["parameter_count"] - settings["parameter_budget"]) <= per_unit / 2
        assert Budget.from_dict(cell["budget"]).m_ff == cell["ffn_width"]


def test_the_deciding_cells_are_trained_again_with_twice_the_epochs(run):
    result, _, _ = run
    doubled = [c for c in result["cells"] if "doubled" in c]
    assert {(c["layers"], c["dp"]) for c in doubled} >= {(1, False), (1, True)}
    for cell in doubled:
        record = cell["doubled"]
        assert record["epochs"] == 2 * cell["epochs"]
        change = (record["error_2x"] - cell["sup_error"]) / cell["sup_error"]
        assert record["relative_change"] == pytest.approx(change)
        assert record["converged"] == (abs(change) <= result["settings"]["convergence_threshold"])


def test_verdicts_follow_the_convergence_of_their_cells(run):
    result, _, _ = run
    claims = result["claims"]
    floor = [c for c in result["cells"] if c["layers"] == 1 and not c["dp"]][0]
    expected = (
        ("held" if claims["dp_free_floor_held"] else "failed")
        if floor["doubled"]["converged"]
        else "not converged"
    )
    assert claims["verdicts"]["dp_free_floor"] == expected
    # A cell without a doubling record is unchecked: its claims are not converged.
    assert claims["verdicts"]["depth_helps:adaptive-g:dp_free"] == "not converged"
    with open(result["outputs"]["table"]) as handle:
        text = handle.read()
    assert f"stays >= 2/3: {claims['dp_free_floor_held']} ({expected})" in text


def test_one_layer_dp_free_stays_above_two_thirds(run):
    # Paper B's lower bound: no one-layer DP-free model goes below 2/3 (sup norm).
    result = run[0]
    claims = result["claims"]
    assert claims["dp_free_floor_held"]
    assert min(claims["dp_free_one_layer_sup_error"]) >= 2 / 3
    # The errors are those of the one-layer DP-free cell on adaptive-g, and of
    # its doubled run when it has one.
    cell = next(
        c
        for c in result["cells"]
        if c["target"] == "adaptive-g" and c["layers"] == 1 and not c["dp"]
    )
    expected = [cell["sup_error"]] + ([cell["doubled"]["error_2x"]] if "doubled" in cell else [])
    assert claims["dp_free_one_layer_sup_error"] == expected


def test_outputs_are_written(run):
    result, _, _ = run
    for key in ("result", "table", "figure"):
        assert os.path.isfile(result["outputs"][key])


def test_cell_models_have_the_budget_count_and_paper_b_blocks():
    for layers, dp in ((1, False), (3, True)):
        budget = depth.budget_for(depth.QUICK, layers, dp, 16)
        model = depth.build(depth.QUICK, budget, dp, 16)
        assert model.count_params() == depth.parameter_count(budget, dp, 16)
        # L - 1 residual FFNs between the blocks, then the readout.
        ffns = [layer.name for layer in model.layers if layer.name.startswith("ffn_")]
        assert len([n for n in ffns if not n.endswith("residual")]) == layers - 1


def test_convergence_check_and_verdict():
    assert _convergence.check(0.5, 0.54)["converged"]
    assert not _convergence.check(0.5, 0.56)["converged"]
    assert _convergence.check(0.0, 0.0)["converged"]
    assert not _convergence.check(0.0, 1e-9)["converged"]
    good, bad = {"doubled": {"converged": True}}, {"doubled": {"converged": False}}
    assert _convergence.verdict(False, _convergence.doubled([good])) == "failed"
    assert _convergence.verdict(True, _convergence.doubled([good, bad])) == "not converged"
    assert _convergence.verdict(True, _convergence.doubled([good, {}])) == "not converged"


def test_sup_error_is_the_largest_absolute_deviation():
    y = np.zeros((2, 3, 1))
    prediction = np.array([[[0.1], [-0.7], [0.2]], [[0.0], [0.3], [0.5]]])
    assert depth.sup_error(prediction, y) == pytest.approx(0.7)
