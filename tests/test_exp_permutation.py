"""analysis/permutation.py --quick: original vs permuted digits tokens (paper A Table 1)."""

import numpy as np
import pytest

from analysis import permutation


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    return permutation.main(["--quick", "--out", str(tmp_path_factory.mktemp("perm"))])


def test_each_seed_reports_accuracy_and_beta_for_both_cases(result):
    assert len(result["runs"]) == len(result["settings"]["seeds"])
    for run in result["runs"]:
        for case in ("original", "permuted"):
            assert 0.0 <= run[case]["test_accuracy"] <= 1.0
            assert len(run[case]["singular_values"]) == 16


def test_classifier_learns_well_above_chance_on_both(result):
    for case in ("original", "permuted"):
        assert result["summary"][case]["test_accuracy_mean"] > 0.3


def test_permutation_moves_the_first_tokens_to_the_end(result):
    perm = result["settings"]["permutation"]
    shift = result["settings"]["shift"]
    assert perm == list(range(shift, 16)) + list(range(shift))


def test_paper_numbers_are_recorded(result):
    assert result["paper_numbers"]["cifar10_vit_b16_accuracy"] == {
        "original": 0.98,
        "permuted": 0.96,
    }


def test_claims_are_computed_from_the_runs(result):
    claims, runs = result["claims"], result["runs"]
    accuracy = {
        case: np.mean([run[case]["test_accuracy"] for run in runs])
        for case in ("original", "permuted")
    }
    drop = accuracy["original"] - accuracy["permuted"]
    assert claims["accuracy_drop"] == pytest.approx(drop, abs=1e-12)
    assert claims["accuracies_within_3_points"] == (abs(drop) <= 0.03)
    # Two intervals overlap when each starts before the other ends.
    overlap = []
    for run in runs:
        ends = [*run["original"]["beta_ci"], *run["permuted"]["beta_ci"]]
        if any(end is None or np.isnan(end) for end in ends):
            overlap.append(None)  # no interval: no claim
            continue
        a0, a1, b0, b1 = ends
        overlap.append(a0 <= b1 and b0 <= a1)
    assert claims["beta_intervals_overlap_per_seed"] == overlap
    known = [o for o in overlap if o is not None]
    assert claims["beta_intervals_overlap_all"] == (all(known) if known else None)


def test_convergence_cells_compare_the_mean_test_error_at_twice_the_epochs(result):
    seeds = result["settings"]["check_seeds"]
    tolerance = result["settings"]["convergence_tolerance"]
    by_seed = {run["seed"]: run for run in result["runs"]}
    for case in ("original", "permuted"):
        check = result["convergence"][case]
        once = [1.0 - by_seed[seed][case]["test_accuracy"] for seed in seeds]
        np.testing.assert_allclose(check["test_error_1x"], once)
        e1, e2 = np.mean(once), np.mean(check["test_error_2x"])
        assert check["relative_change"] == pytest.approx((e2 - e1) / e1)
        assert check["converged"] == (abs(check["relative_change"]) <= tolerance)
        assert all(1 <= e <= 2 * result["settings"]["epochs"] for e in check["epochs_2x"])


def test_claims_are_not_converged_unless_both_cells_are(result):
    claims = result["claims"]
    converged = all(c["converged"] for c in result["convergence"].values())
    assert claims["cells_converged"] == converged
    for key, verdict in claims["verdicts"].items():
        if not converged:
            assert verdict == "not converged"
        elif claims[key] is not None:
            assert verdict == ("held" if claims[key] else "failed")


def test_training_config_is_recorded_and_groups_both_families(result):
    training = result["settings"]["training"]
    assert training["epochs"] == result["settings"]["epochs"]
    assert training["learning_rate"] == result["settings"]["learning_rate"]
    for run in result["runs"]:
        for case in ("original", "permuted"):
            assert 1 <= run[case]["epochs"] <= result["settings"]["epochs"]
    assert set(result["seconds_groups"]) == {"original", "permuted", "convergence_2x"}


def test_table_shows_the_convergence_column(result):
    with open(result["outputs"]["table"], encoding="utf-8") as handle:
        text = handle.read()
    assert "converged (2× epochs" in text
    assert text.count("yes (") + text.count("no (") == 2
