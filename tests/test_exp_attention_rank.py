"""analysis/attention_rank.py --quick: training error vs m_h and the learned spectrum (paper A Fig. 1)."""

import numpy as np
import pytest

from analysis import attention_rank


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    return attention_rank.main(["--quick", "--out", str(tmp_path_factory.mktemp("arank"))])


def test_one_point_per_m_h_with_a_spectrum(result):
    assert [p["m_h"] for p in result["points"]] == result["settings"]["m_h"]
    for point in result["points"]:
        spectrum = np.asarray(point["spectrum_mean"])
        assert spectrum.shape == (16,)
        assert np.all(np.diff(spectrum) <= 1e-9)


def test_learned_attention_rank_is_at_most_m_h(result):
    for point in result["points"]:
        spectrum = np.asarray(point["spectrum_mean"])
        # ρ̂ = Q Kᵀ has rank ≤ m_h; beyond it only float32 round-off remains.
        if point["m_h"] < 16:
            assert spectrum[point["m_h"]] <= 1e-4 * spectrum[0]


def test_power_law_fit_and_paper_rate_are_reported(result):
    rate = result["rate"]
    assert np.isfinite(rate["rate"]) and rate["rate_ci"][0] <= rate["rate"] <= rate["rate_ci"][1]
    assert rate["paper_rate"] == 0.27
