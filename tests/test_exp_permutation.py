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
    assert isinstance(result["claims"]["accuracies_within_3_points"], bool)
    assert np.isfinite(result["claims"]["accuracy_drop"])
