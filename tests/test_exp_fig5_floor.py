"""analysis/fig5_floor.py: rounds of continued training and the doubling test."""

import json
import os

import numpy as np
import pytest
from helpers import run_cli

from analysis import fig5_floor
from tfapprox import results


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return str(tmp_path_factory.mktemp("fig5-floor"))


@pytest.fixture(scope="module")
def result(out):
    return fig5_floor.main(["--quick", "--out", out, "--json"])


def test_doubling_drops_compare_k_rounds_with_half_as_many():
    errors = [1.0, 0.5, 0.45, 0.4, 0.4, 0.39, 0.38, 0.38]
    drops = fig5_floor.doubling_drops(errors)
    assert drops == pytest.approx({2: 0.5, 4: 0.2, 8: 0.05})
    # Each drop is the best error's: a round ending higher moves nothing.
    assert fig5_floor.doubling_drops([0.4, 0.8, 0.6, 0.5]) == {2: 0.0, 4: 0.0}
    assert fig5_floor.doubling_drops([0.3]) == {}


@pytest.mark.parametrize(
    ("errors", "state"),
    [
        ([1.0], "training"),  # before the first test
        ([1.0, 0.99], "training"),
        ([1.0, 0.99, 0.98, 0.95], "floor"),  # 4 rounds: −4 % from 2 rounds
        ([1.0, 0.9, 0.8, 0.7], "training"),  # −22 %: doubles to 8 rounds
        ([1.0, 0.9, 0.8, 0.7, 0.69, 0.68, 0.67], "training"),
        ([1.0, 0.9, 0.8, 0.7, 0.69, 0.68, 0.67, 0.66], "floor"),  # −5.7 % from 4 to 8
        ([1.0, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3], "still falling"),  # max_rounds reached
        ([0.5, 0.8, 0.9, 0.47], "floor"),  # later rounds ended higher: best −6 %
        ([0.5, 0.8, 0.9, 0.4], "training"),  # best −20 %
    ],
)
def test_a_cell_trains_until_a_doubling_is_not_material(errors, state):
    assert fig5_floor._state(errors, fig5_floor.FULL) == state


def test_cells_are_the_budgets_below_each_rank():
    chosen = fig5_floor.cells(fig5_floor.FULL)
    assert len(chosen) == 18  # 3 + 6 m_h per panel: the rank-6 and rank-inf targets
    for name, m_h, seed in chosen:
        assert m_h < fig5_floor.fig5._rank(name) and m_h > 1 and seed == 0
    assert fig5_floor.cells(fig5_floor.FULL, ["fig5b-r6"], [2, 6], [0, 1]) == [
        ("fig5b-r6", 2, 0),
        ("fig5b-r6", 2, 1),
    ]


def test_every_round_continues_the_last_from_its_weights(result, out):
    (cell,) = result["cells"]
    assert (cell["target"], cell["m_h"], cell["seed"]) == ("fig5b-r6", 2, 0)
    k = len(cell["val_errors"])
    assert k in (2, 4) and cell["epochs"] == [2 * (i + 1) for i in range(k)]
    assert cell["error"] == min(cell["val_errors"]) == cell["val_errors"][cell["best_round"] - 1]
    previous = None
    for i in range(1, k + 1):
        (run,) = results.read(os.path.join(out, f"fig5b-r6-round-{i}.json"))["runs"]
        assert run["val_error"] == pytest.approx(cell["val_errors"][i - 1])
        if previous is None:
            assert run.get("start") is None
        else:
            assert run["start"] == {"continues": results.run_key(previous), "round": i}
        previous = run
    drops = fig5_floor.doubling_drops(cell["val_errors"])
    assert cell["doubling_drops"] == {str(key): value for key, value in drops.items()}
    assert cell["state"] == fig5_floor._state(cell["val_errors"], fig5_floor.QUICK)


def test_rerun_trains_nothing_again(result, out, capsys):
    again = fig5_floor.main(["--quick", "--out", out, "--json"])
    assert again["cells"] == result["cells"]
    assert "sweep [" not in capsys.readouterr().err  # no training progress line
    with open(os.path.join(out, "result.json")) as f:
        assert json.load(f)["cells"] == result["cells"]


def test_missing_weights_of_a_finished_round_are_named(out, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    shutil.rmtree(copy / "weights" / "fig5b-r6-round-1")
    os.remove(copy / "fig5b-r6-round-2.json")
    with pytest.raises(ValueError, match="weights of round 1 of fig5b-r6 at m_h = 2"):
        fig5_floor.main(["--quick", "--out", str(copy)])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--rounds", "3"], "--rounds must be a power of 2 of at least 2, got 3"),
        (["--rounds", "4", "--max-rounds", "2"], "--max-rounds must be at least --rounds (4)"),
        (["--m-h", "0"], "--m-h must be positive, got 0"),
        (["--seed", "-1"], "--seed must be at least 0, got -1"),
        (["--m-h", "6"], "no cell below the rank"),
        (["--report", "no-such-folder"], "--report: 'no-such-folder' is not a folder"),
    ],
)
def test_bad_options_are_usage_errors(args, message, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        fig5_floor.main(["--quick", "--out", str(tmp_path / "o"), *args])
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()  # rejected before the folder is made


def test_the_experiment_runs_from_the_cli(tmp_path):
    result = run_cli("experiment", "fig5-floor", "--quick", "--out", tmp_path / "f")
    assert "| fig5b-r6 | 2 | 0 |" in result.output
    bad = run_cli("experiment", "fig5-floor", "--long", expect_exit=2)
    assert "experiment 'fig5-floor' has no --long size" in bad.output


def _cell(target, m_h, errors, seed=0):
    """A cell as `fig5_floor.run_target` reports it, from its errors per round."""
    return {
        "target": target,
        "m_h": m_h,
        "seed": seed,
        "val_errors": errors,
        "error": min(errors),
        "state": fig5_floor._state(errors, fig5_floor.FULL),
    }


def test_budgets_and_claims_from_the_cells_alone():
    at_floor = [0.2, 0.11, 0.105, 0.1]  # −9 % from 2 to 4 rounds
    found = [
        _cell("fig5b-r6", 2, [0.3, 0.2, 0.1, 0.08]),  # −60 %: still falling
        _cell("fig5b-r6", 3, [x / 2 for x in at_floor]),
        _cell("fig5b-rinf", 2, at_floor),
        _cell("fig5b-rinf", 3, [x * 0.6 for x in at_floor]),
        _cell("fig5b-rinf", 4, [x * 0.5 for x in at_floor]),
        _cell("fig5b-rinf", 4, [x * 0.3 for x in at_floor], seed=1),  # 40 % lower
    ]
    targets = fig5_floor.budgets(found, fig5_floor.FULL)
    assert [t["target"] for t in targets] == ["fig5b-r6", "fig5b-rinf"]
    r6, rinf = ({p["m_h"]: p for p in t["points"]} for t in targets)
    assert r6[2]["best_error"] == 0.08 and not r6[2]["settled"]
    assert r6[3]["best_error"] == 0.05 and r6[3]["settled"]
    assert rinf[4]["best_error"] == pytest.approx(0.03)
    assert rinf[4]["restart_drop"] == pytest.approx(0.4) and not rinf[4]["settled"]
    assert rinf[2]["restart_drop"] is None and rinf[2]["settled"]
    claimed = fig5_floor.claims(targets, fig5_floor.FULL)
    (slope,) = claimed["b"]
    # log-log least squares through (2, 0.1), (3, 0.06), (4, 0.03)
    x, y = np.log([2, 3, 4]), np.log([0.1, 0.06, 0.03])
    assert slope["slope"] == pytest.approx(np.polyfit(x, y, 1)[0], rel=1e-6)
    assert slope["expected"] == -1.0 and slope["unsettled"] == [4]
    assert slope["verdict"] == "not converged"
    order = claimed["c"]
    assert [(c["m_h"], c["errors"]) for c in order["comparisons"]] == [
        (2, [0.08, 0.1]),
        (3, [0.05, pytest.approx(0.06)]),
    ]
    assert order["held"] == 2 and order["unsettled"] == ["fig5b m_h = 2"]
    assert order["verdict"] == "not converged"


def test_fig5_file_that_is_not_a_fig5_run_is_a_usage_error(tmp_path, capsys):
    other = tmp_path / "result.json"
    other.write_text(json.dumps({"experiment": "ordering"}))
    bad = tmp_path / "other-size.json"
    bad.write_text(json.dumps({"experiment": "fig5", "settings": {"n": 32}}))
    for path, message in [
        (tmp_path / "missing", "--fig5: cannot read"),
        (tmp_path, "is not the result.json of `tfapprox experiment fig5`"),
        (bad, "was run with n = 32, this run with 8"),
    ]:
        with pytest.raises(SystemExit):
            fig5_floor.main(["--quick", "--out", str(tmp_path / "o"), "--fig5", str(path)])
        assert message in capsys.readouterr().err


def test_report_reads_the_parts_of_a_run_and_trains_nothing(result, out, tmp_path, capsys):
    report = fig5_floor.main(["--quick", "--out", str(tmp_path / "r"), "--report", out])
    assert report["cells"] == result["cells"]
    assert "sweep [" not in capsys.readouterr().err
    assert not (tmp_path / "r" / "fig5b-r6-round-1.json").exists()
    # A part that stopped after its first round reports the cell unfinished.
    part = tmp_path / "part"
    part.mkdir()
    (part / "fig5b-r6-round-1.json").write_text(
        open(os.path.join(out, "fig5b-r6-round-1.json")).read()
    )
    (cell,) = fig5_floor.main(["--quick", "--out", str(tmp_path / "p"), "--report", str(part)])[
        "cells"
    ]
    assert cell["val_errors"] == result["cells"][0]["val_errors"][:1]
    assert cell["state"] == "unfinished"
    with pytest.raises(ValueError, match="no finished round of the chosen cells"):
        fig5_floor.main(["--quick", "--out", str(tmp_path / "e"), "--report", str(tmp_path)])
    # The runs of another size (--quick's) are not the default size's rounds.
    with pytest.raises(ValueError, match="no finished round of the chosen cells"):
        fig5_floor.main(["--out", str(tmp_path / "f"), "--m-h", "2", "--report", out])
