"""analysis/fig5.py: paper A's Fig. 5 claims, checked from trained errors."""

import math

import numpy as np
import pytest

from analysis import fig5


@pytest.fixture(scope="module")
def out(tmp_path_factory):
    return str(tmp_path_factory.mktemp("fig5"))


@pytest.fixture(scope="module")
def result(out):
    return fig5.main(["--quick", "--out", out])


def test_every_target_has_one_point_per_m_h(result):
    assert [r["target"] for r in result["targets"]] == list(fig5.TARGETS)
    for r in result["targets"]:
        assert [p["m_h"] for p in r["points"]] == result["settings"]["m_h"]
        for p in r["points"]:
            assert p["error"] == min(p["errors"]) and p["error"] > 0


def test_truncation_error_vanishes_exactly_from_the_rank_on(result):
    for r in result["targets"]:
        truncation = [p["truncation_error"] for p in r["points"]]
        assert all(a >= b - 1e-12 for a, b in zip(truncation, truncation[1:]))
        for p in r["points"]:
            if r["rank"] != "inf" and p["m_h"] >= r["rank"]:
                assert p["truncation_error"] == 0.0
            else:
                assert p["truncation_error"] > 0.0


def test_claims_and_side_runs_are_reported(result):
    claims = result["claims"]
    assert [c["target"] for c in claims["a"]] == [t for t in fig5.TARGETS if "inf" not in t]
    assert [c["expected"] for c in claims["b"]] == pytest.approx([-0.1, -1.0])
    assert claims["c"]["total"] > 0
    doubling = result["side"]["doubling"][0]
    assert doubling["epochs"][1] == 2 * doubling["epochs"][0]
    assert doubling["long_epochs"] == [4, 8] and doubling["restart_seed"] == 1
    target = next(r for r in result["targets"] if r["target"] == doubling["target"])
    assert [row["m_h"] for row in doubling["rows"]] == fig5.doubling_cells(target)
    for row in doubling["rows"]:
        # m_h = 1 (--quick's long cell) is continued and restarted; others trained afresh.
        long = row["m_h"] in result["settings"]["long"]["m_h"]
        assert row["check"] == ("continued" if long else "twice the epochs")
        assert (row["restart"] is not None) == long
        # A longer run that ends higher leaves the budget's best model where it was.
        others = [row["trained"][1]] + ([row["restart"]] if long else [])
        assert row["errors"][1] == min(row["errors"][0], *others)
    assert {c["verdict"] for c in claims["a"]} <= {"holds", "does not hold", "not converged"}
    assert result["outputs"]["figure"].endswith("fig5.png")


def test_the_construction_is_a_start_beside_the_trained_runs(result):
    for r in result["targets"]:
        rank = math.inf if r["rank"] == "inf" else r["rank"]
        for p in r["points"]:
            starts = {
                "trained": p["error"],
                "construction": p["construction_error"],
                "fitted kernel": p["fitted_error"],
            }
            starts = {k: v for k, v in starts.items() if v is not None}
            assert p["best_error"] == min(starts.values())
            assert starts[p["best_start"]] == p["best_error"]
            if p["m_h"] < rank:
                # Below the rank it is the truncated target, up to f̂'s 16 kinks.
                assert p["construction_error"] == pytest.approx(p["truncation_error"], rel=0.1)
        # From the rank on, the kept terms and so the model's function are the same.
        past = [p["construction_error"] for p in r["points"] if p["m_h"] >= rank]
        assert len(past) == (0 if r["rank"] == "inf" else 1 + (r["rank"] == 2))
        assert past == pytest.approx(past[:1] * len(past), rel=1e-5)
        polish = r["construction_finisher"]
        if r["rank"] == "inf":
            assert polish is None
        else:
            assert polish["m_h"] == r["rank"] and len(polish["errors"]) == 3
            assert [run["steps"] for run in polish["runs"]] == [5, 10]


def test_below_the_rank_the_fitted_kernel_is_a_start_too(result):
    n = result["settings"]["n"]  # 8 in --quick: a_k, b_k and f fit for rank ≤ 3
    for r in result["targets"]:
        rank = math.inf if r["rank"] == "inf" else r["rank"]
        for p in r["points"]:
            if p["m_h"] >= rank:
                assert p["fitted_error"] is None and p["fitted_check"] is None
                continue
            assert p["fitted_rank"] == min(p["m_h"], (n - 1) // 2)
            # Fitted from the truncation, it ends below the truncation's construction.
            assert p["fitted_error"] < p["construction_error"]
            check = p["fitted_check"]
            # --quick's max_steps (10) allows one doubling: 5 steps, then 5 more.
            assert [run["steps"] for run in check["runs"]] == [5, 10]
            assert [run["steps"] for run in check["trail"]] == [5, 10]
            assert check["errors"][0] == p["fitted_error"]
            # The trail's NumPy errors are the built models' to f̂'s kinks.
            trail = [run["error"] for run in check["trail"]]
            assert trail == pytest.approx(check["errors"], rel=0.2)
            drop = (check["errors"][0] - min(check["errors"])) / check["errors"][0]
            assert check["relative_drop"] == pytest.approx(drop)
            assert check["material"] == (drop > result["settings"]["material_rtol"])


def test_a_fitted_kernel_that_moves_with_twice_the_steps_counts_where_it_is_the_start():
    m_h = np.array([1, 2, 4, 8])
    result = _result("fig5b-rinf", 1.5 / np.sqrt(m_h))  # slope −1/2 exactly, not −1
    point = result["points"][1]
    point["fitted_check"] = {"material": True, "errors": [1.5 / np.sqrt(2), 0.3]}
    still = {"rows": [{"m_h": 1, "material": False, "errors": [1.5, 1.5]}]}
    # Only where the fitted kernel is the budget's start does its move count.
    assert fig5.claim_slope(result, 50, still)["moved"] == []
    point["best_start"] = "fitted kernel"
    claim = fig5.claim_slope(result, 50, still)
    assert claim["moved"] == ["fitted kernel at m_h = 2"]
    # With m_h = 2 at 0.3 the errors are no longer a power law, and the
    # slope's interval takes in −1: the verdict changes with more training.
    assert not claim["holds"] and claim["holds_after"]
    assert claim["verdict"] == "not converged"
    assert claim["after_checks"]["slope"] != pytest.approx(-0.5)
    # A material move that leaves the verdict where it was is still not converged.
    point["fitted_check"]["errors"][1] = 1.5 / np.sqrt(2) * (1 - 1e-9)
    claim = fig5.claim_slope(result, 50, still)
    assert claim["moved"] == ["fitted kernel at m_h = 2"] and claim["holds_after"] is False
    assert claim["verdict"] == "not converged"
    # No material move and the same verdict after the checks: the verdict stands.
    point["fitted_check"]["material"] = False
    assert fig5.claim_slope(result, 50, still)["verdict"] == "does not hold"


def test_running_again_resumes_without_training(result, out, capsys):
    capsys.readouterr()
    again = fig5.main(["--quick", "--out", out, "--json"])
    assert all(r["trained"] == 0 for r in again["targets"])
    # Each sweep names its target on stderr, so a long run shows where it is.
    named = [line for line in capsys.readouterr().err.splitlines() if line.startswith("fig5: ")]
    rows = result["side"]["doubling"][0]["rows"]
    short = sum(row["check"] == "twice the epochs" for row in rows)
    assert named == [
        line
        for name in fig5.TARGETS
        for line in (f"fig5: {name}, 2 runs", f"fig5: {name}-long, 1 run")
    ] + [f"fig5: fig5b-r6-double, {short} run" + ("s" if short != 1 else "")] * (short > 0) + [
        "fig5: fig5b-r6-continue, 1 run",
        "fig5: fig5b-r6-restart, 1 run",
        "fig5: fig5b-r6-pe-learned, 1 run",
    ]
    for first, second in zip(result["targets"], again["targets"]):
        assert [p["error"] for p in first["points"]] == [p["error"] for p in second["points"]]


def _result(name, errors, m_hs=(1, 2, 4, 8)):
    rank = "inf" if name.endswith("rinf") else int(name.rsplit("-r", 1)[1])
    beta = 0.55 if name.startswith("fig5a") else 1.0
    points = [
        {"m_h": m, "error": e, "best_error": e, "best_start": "trained", "construction_error": None}
        for m, e in zip(m_hs, errors)
    ]
    return {"target": name, "panel": name[:5], "rank": rank, "beta": beta, "points": points}


def test_claim_a_compares_errors_past_the_rank_with_the_first():
    assert fig5.claim_floor(_result("fig5b-r2", [1.0, 0.005, 0.002, 0.001]), 0.01)["holds"]
    fails = fig5.claim_floor(_result("fig5b-r2", [1.0, 0.005, 0.02, 0.001]), 0.01)
    assert not fails["holds"] and fails["worst_ratio_at_m_h_ge_r"] == pytest.approx(0.02)


def test_claim_a_reads_the_lower_of_trained_and_construction_and_knows_convergence():
    result = _result("fig5b-r2", [1.0, 0.05, 0.05, 0.05])
    for p in result["points"][1:]:
        p["construction_error"], p["best_error"], p["best_start"] = 0.002, 0.002, "construction"
    claim = fig5.claim_floor(result, 0.01)
    assert claim["holds"] and claim["verdict"] == "holds" and claim["moved"] is None
    assert claim["worst_ratio_at_m_h_ge_r"] == pytest.approx(0.002)
    assert claim["trained_worst_ratio"] == pytest.approx(0.05)
    assert claim["starts_at_m_h_ge_r"] == ["construction"]
    assert claim["worst_ratio_after_doubling"] is None
    still = {
        "rows": [
            {"m_h": 1, "material": False, "errors": [1.0, 0.95]},
            {"m_h": 2, "material": False, "errors": [0.002, 0.002]},
        ]
    }
    assert fig5.claim_floor(result, 0.01, still)["moved"] == []
    moved = {
        "rows": [
            {"m_h": 1, "material": True, "errors": [1.0, 0.5]},
            {"m_h": 2, "material": False, "errors": [0.002, 0.003]},
        ]
    }
    claim = fig5.claim_floor(result, 0.01, moved)
    # The ratio with the doubled cells: 0.002 / 0.5 (m_h = 2's longer run ended
    # higher); still < 0.01, but m_h = 1 moved materially: not converged.
    assert claim["worst_ratio_after_doubling"] == pytest.approx(0.004)
    assert claim["moved"] == [1] and claim["holds_after"] and claim["verdict"] == "not converged"
    # A small move (5 %) that breaks the claim is not converged too.
    small = {
        "rows": [
            {"m_h": 1, "material": False, "errors": [1.0, 0.95]},
            {"m_h": 2, "material": False, "errors": [0.002, 0.002]},
        ]
    }
    claim = fig5.claim_floor(result, 0.003, small)
    assert claim["moved"] == [] and claim["holds_after"] and claim["verdict"] == "holds"
    claim = fig5.claim_floor(result, 0.00205, small)  # 0.002 / 0.95 = 0.0021 after
    assert claim["moved"] == [] and claim["holds"] and claim["holds_after"] is False
    assert claim["verdict"] == "not converged"
    result["construction_finisher"] = {"m_h": 2, "material": True, "errors": [0.002] * 3}
    assert fig5.claim_floor(result, 0.01, still)["moved"] == ["construction at m_h = 2"]


def test_claim_a_counts_only_the_cells_it_is_read_from():
    # r = 6: claim (a) reads m_h = 1 and m_h ≥ 6; a move at m_h = 2 is claim (b)'s business.
    result = _result("fig5b-r6", [1.0, 0.5, 0.3, 0.001], m_hs=(1, 2, 4, 8))
    doubled = {
        "rows": [
            {"m_h": 1, "material": False, "errors": [1.0, 0.95]},
            {"m_h": 2, "material": True, "errors": [0.5, 0.3]},
        ]
    }
    claim = fig5.claim_floor(result, 0.01, doubled)
    assert claim["moved"] == [] and claim["verdict"] == "holds"
    assert fig5._moved(result, doubled) == [2]
    doubled["rows"][0]["material"] = True
    assert fig5.claim_floor(result, 0.01, doubled)["moved"] == [1]


def test_the_doubled_cells_are_the_trained_starts_and_the_nearest_below_the_rank():
    result = _result("fig5a-r6", [1.0, 0.5, 0.4, 0.3], m_hs=(1, 2, 4, 8))
    starts = ["trained", "fitted kernel", "fitted kernel", "construction"]
    best = [1.0, 0.2, 0.3, 1e-4]
    for p, start, error in zip(result["points"], starts, best):
        p["best_start"], p["best_error"] = start, error
    # m_h = 1 is trained; of m_h = 2 (0.5 / 0.2) and 4 (0.4 / 0.3) below r = 6,
    # m_h = 4's trained run is nearest its budget's error; m_h = 8 is past the rank.
    assert fig5.doubling_cells(result) == [1, 4]
    result["points"][3]["best_start"] = "trained"  # a trained start past the rank too
    assert fig5.doubling_cells(result) == [1, 4, 8]


def test_claim_b_recovers_an_exact_power_law():
    m_h = np.array([1, 2, 4, 8])
    fit = fig5.claim_slope(_result("fig5b-rinf", 1.5 * m_h**-1.0), n_bootstrap=50)
    assert fit["slope"] == pytest.approx(-1.0) and fit["holds"]
    flat = fig5.claim_slope(_result("fig5b-rinf", 1.5 * m_h**-0.2), n_bootstrap=50)
    assert flat["slope"] == pytest.approx(-0.2) and not flat["holds"]


def test_claim_c_counts_every_pair_below_the_larger_rank():
    results = [
        _result("fig5a-r2", [1.0, 0.1, 0.1, 0.1]),
        _result("fig5a-r6", [2.0, 1.0, 0.5, 0.1]),
        _result("fig5a-rinf", [3.0, 0.5, 1.0, 0.9]),
    ]
    claim = fig5.claim_rank_order(results)
    # (2, 6) at m_h 1, 2, 4; (6, inf) at m_h 1, 2, 4; (2, inf) at m_h 1.
    assert claim["total"] == 7
    failed = [(c["ranks"], c["m_h"]) for c in claim["comparisons"] if not c["holds"]]
    assert failed == [([6, "inf"], 2)] and not claim["holds"]
    assert math.isclose(claim["held"], 6) and claim["held_after"] is None
    # With the errors after the checks: r = ∞'s m_h = 2 falling to 0.4 leaves
    # the failed comparison failed (r = 6 has 1.0 there) ...
    doubled = {
        "fig5a-r2": {"rows": []},
        "fig5a-r6": {"rows": [{"m_h": 1, "errors": [2.0, 2.0], "material": False}]},
        "fig5a-rinf": {"rows": [{"m_h": 2, "errors": [0.5, 0.4], "material": True}]},
    }
    claim = fig5.claim_rank_order(results, doubled)
    assert claim["checked"] == 7 and claim["held_after"] == 6
    assert claim["moved"] == ["fig5a-rinf m_h = 2"] and claim["verdict"] == "not converged"
    # ... and r = 6's m_h = 2 falling to 0.3 mends it (0.1 ≤ 0.3 ≤ 0.4).
    doubled["fig5a-r6"]["rows"].append({"m_h": 2, "errors": [1.0, 0.3], "material": True})
    claim = fig5.claim_rank_order(results, doubled)
    assert claim["held_after"] == 7 and claim["held"] == 6 and claim["holds_after"]
    # A move at m_h = 8, compared by no pair (8 ≥ r = 6), is not the claim's.
    for row in doubled["fig5a-r6"]["rows"] + doubled["fig5a-rinf"]["rows"]:
        row["material"] = False
    doubled["fig5a-r6"]["rows"].append({"m_h": 8, "errors": [0.1, 0.01], "material": True})
    claim = fig5.claim_rank_order(results, doubled)
    assert claim["moved"] == [] and claim["verdict"] == "not converged"  # 6 → 7 held


def test_one_panel_draws_alone(tmp_path):
    results = [_result("fig5b-r2", [1.0, 0.1, 0.1, 0.1]), _result("fig5b-rinf", [1, 0.5, 0.3, 0.2])]
    for r in results:
        for p in r["points"]:
            p["truncation_error"], p["construction_error"] = 0.0, 0.5
    claims = {"b": [fig5.claim_slope(results[1], n_bootstrap=20)]}
    path = fig5._figure(results, claims, str(tmp_path))
    assert path.endswith("fig5.png") and (tmp_path / "fig5.png").stat().st_size > 0


def test_the_paper_model_has_no_position_encoding_and_the_side_run_has_one(result, out):
    import json
    import os

    paper = {"position_encoding": "none", "kink_range": [0.0, 1.0]}
    assert result["settings"]["training"]["model_kwargs"] == paper
    for name in fig5.TARGETS:
        with open(os.path.join(out, f"{name}.json")) as f:
            runs = json.load(f)["runs"]
        assert all(r["hyperparameters"]["model_kwargs"] == paper for r in runs)
    with open(os.path.join(out, "fig5b-r6-pe-learned.json")) as f:
        side = json.load(f)["runs"]
    # The side run differs in the encoding only.
    learned = {**paper, "position_encoding": "learned"}
    assert all(r["hyperparameters"]["model_kwargs"] == learned for r in side)
    # The learned encoding adds τ·d = 16 weights (e(t)) to each model.
    with open(os.path.join(out, "fig5b-r6.json")) as f:
        plain = {r["budget"]["m_h"]: r["parameter_count"] for r in json.load(f)["runs"]}
    assert all(r["parameter_count"] == plain[r["budget"]["m_h"]] + 16 for r in side)
    row = result["side"]["position_encoding"]["rows"][0]
    learned = min(r["val_error"] for r in side if r["budget"]["m_h"] == row["m_h"])
    assert row["learned"] == learned
    point = next(p for p in result["targets"][4]["points"] if p["m_h"] == row["m_h"])
    assert result["targets"][4]["target"] == "fig5b-r6" and row["none"] == point["error"]


def test_long_picks_the_paper_sizes(tmp_path):
    from analysis import _experiment

    args, _, settings = _experiment.start(
        ["--long", "--out", str(tmp_path)], fig5.__doc__, "x", fig5.QUICK, fig5.FULL, long=fig5.LONG
    )
    assert args.long and settings is fig5.LONG
    assert settings["m_h"] == list(range(1, 17)) and settings["seeds"] == 2
    assert (settings["n"], settings["m_v"], settings["m_ff"], settings["ff_depth"]) == (
        32,
        32,
        128,
        3,
    )
    assert settings["training"]["model_kwargs"] == {
        "position_encoding": "none",
        "kink_range": [0.0, 1.0],
    }
    steps = (
        settings["samples"] // settings["training"]["batch_size"] * settings["training"]["epochs"]
    )
    assert steps == 65536
    # The default: 3,840 steps, 25,600 for m_h = 1 (its floor needs them).
    assert (fig5._steps(fig5.FULL, "training"), fig5._steps(fig5.FULL, "long")) == (
        "3,840",
        "25,600",
    )
    _, _, default = _experiment.start(
        ["--out", str(tmp_path)], fig5.__doc__, "x", fig5.QUICK, fig5.FULL, long=fig5.LONG
    )
    assert default is fig5.FULL
    with pytest.raises(SystemExit):  # --quick and --long exclude each other
        _experiment.start(
            ["--quick", "--long", "--out", str(tmp_path)],
            fig5.__doc__,
            "x",
            fig5.QUICK,
            fig5.FULL,
            long=fig5.LONG,
        )
    with pytest.raises(SystemExit):  # an experiment without a long size has no --long
        _experiment.start(["--long", "--out", str(tmp_path)], fig5.__doc__, "x", {}, {})


def test_runs_of_other_settings_are_refused_with_a_way_out(result, out, tmp_path):
    # A folder from an earlier fig5 (here: its runs re-labelled as trained with
    # the learned encoding) is refused by its first target, before training.
    import json
    import os

    from helpers import run_cli

    old = tmp_path / "old"
    old.mkdir()
    with open(os.path.join(out, "fig5a-r2.json")) as f:
        data = json.load(f)
    for run in data["runs"]:
        run["hyperparameters"]["model_kwargs"] = {}
    (old / "fig5a-r2.json").write_text(json.dumps(data))
    with pytest.raises(ValueError, match="use another --out folder, or remove this one") as err:
        fig5.main(["--quick", "--out", str(old)])
    assert "--force" not in str(err.value)
    assert (
        "model_kwargs {} there, {'position_encoding': 'none', 'kink_range': [0.0, 1.0]} here"
        in str(err.value)
    )
    result = run_cli("experiment", "fig5", "--quick", "--out", old, expect_exit=1)
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and "fig5a-r2.json holds runs trained with other settings" in errors[0]
    assert sorted(os.listdir(old)) == ["fig5a-r2.json"]


def test_m_h_1_trains_long_and_its_check_continues_the_saved_run(result, out, tmp_path):
    import os
    import shutil

    from tfapprox import results

    long = result["settings"]["long"]
    for r in result["targets"]:
        epochs = {p["m_h"]: p["epochs"] for p in r["points"]}
        assert epochs == {1: long["epochs"], 2: 3, 6: 3}
    source = results.read(os.path.join(out, "fig5b-r6-long.json"))["runs"][0]
    continued = results.read(os.path.join(out, "fig5b-r6-continue.json"))["runs"][0]
    restart = results.read(os.path.join(out, "fig5b-r6-restart.json"))["runs"][0]
    # The check starts where the long run ended: its key names that run.
    assert continued["start"] == {"continues": results.run_key(source)}
    assert continued["budget"] == source["budget"] and continued["seed"] == source["seed"]
    assert continued["hyperparameters"]["epochs"] == long["epochs"]
    assert restart["seed"] == 1 and "start" not in restart
    row = result["side"]["doubling"][0]["rows"][0]
    assert row["trained"] == [source["val_error"], continued["val_error"]]
    assert row["restart"] == restart["val_error"]
    # Without the saved weights there is nothing to continue: say so, and how to go on.
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    shutil.rmtree(copy / "weights")
    os.remove(copy / "fig5b-r6-continue.json")
    with pytest.raises(
        ValueError, match="weights of .*fig5b-r6-long.json's run at m_h = 1 are missing"
    ):
        fig5._continued("fig5b-r6", fig5.QUICK, str(copy), [1])


def test_a_checked_cell_keeps_the_lowest_of_its_starts():
    point = {"m_h": 1, "error": 0.4, "best_error": 0.3}
    row = fig5._check_row(point, [0.4, 0.35], 0.1, "continued", restart=0.25)
    assert row["errors"] == [0.3, 0.25] and row["relative_drop"] == pytest.approx(1 / 6)
    assert row["material"] and row["check"] == "continued"
    row = fig5._check_row(point, [0.4, 0.5], 0.1, "twice the epochs")
    assert row["errors"] == [0.3, 0.3] and row["relative_drop"] == 0.0 and not row["material"]
    assert row["restart"] is None


def test_the_floor_rounds_join_fig5s_budgets(result, out, tmp_path):
    from analysis import fig5_floor

    floor = fig5_floor.main(["--quick", "--out", str(tmp_path / "floor"), "--fig5", out])
    (cell,) = floor["cells"]
    by_target = {t["target"]: t for t in floor["targets"]}
    assert list(by_target) == list(fig5.TARGETS)
    doubled = {d["target"]: d for d in result["side"]["doubling"]}
    for r in result["targets"]:
        after = fig5._after(r, doubled.get(r["target"]))
        points = by_target[r["target"]]["points"]
        assert [p["m_h"] for p in points] == result["settings"]["m_h"]
        for p in points:
            fig5_error = r["points"][[q["m_h"] for q in r["points"]].index(p["m_h"])]["best_error"]
            expected = fig5_error if after is None else after[p["m_h"]]
            if (r["target"], p["m_h"]) == (cell["target"], cell["m_h"]):
                expected = min(expected, cell["error"])
            assert p["best_error"] == pytest.approx(expected)
            if after is None:  # unchecked by fig5 (no doubling record): not settled
                assert not p["settled"]
            if (r["target"], p["m_h"]) == (cell["target"], cell["m_h"]):
                assert p["settled"] <= (cell["state"] == "floor")
    assert [c["target"] for c in floor["claims"]["b"]] == ["fig5a-rinf", "fig5b-rinf"]
    assert floor["claims"]["c"]["total"] == result["claims"]["c"]["total"]
