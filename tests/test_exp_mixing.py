"""analysis/mixing.py --quick: App. D.3 spectrum, mixed low-rank target, TemporalConv in front."""

import math

import numpy as np
import pytest

from analysis import mixing
from analysis._convergence import CONVERGENCE_TOLERANCE


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    return mixing.main(["--quick", "--out", str(tmp_path_factory.mktemp("mixing"))])


def test_d3_spectrum_matches_closed_form_and_paper(result):
    d3 = result["d3"]
    # Gauss quadrature of a trigonometric polynomial: exact to round-off.
    np.testing.assert_allclose(d3["original"][:2], [1, 1], atol=1e-9)
    np.testing.assert_allclose(d3["mixed"][:3], d3["mixed_closed_form"], atol=1e-9)
    expected = [math.sqrt((7 + math.sqrt(33)) / 8), 0.5, math.sqrt((7 - math.sqrt(33)) / 8)]
    np.testing.assert_allclose(d3["mixed_closed_form"], expected, atol=1e-12)
    # The paper rounds: 1.265, 0.5, 0.4.
    np.testing.assert_allclose(d3["mixed"][:3], [1.265, 0.5, 0.4], atol=0.005)


def test_unmixed_kernel_has_the_target_rank_and_mixing_raises_it(result):
    rows = result["mixed"]
    assert rows[0]["filter_length"] == 1 and rows[0]["kernel"]["rank"] == 2
    assert all(r["kernel"]["rank"] > 2 for r in rows[1:])
    assert result["claims"]["mixing_raises_kernel_rank"]


def test_every_setting_and_error_is_recorded(result):
    for row in result["mixed"]:
        assert len(row["transformer"]) == len(result["settings"]["seeds"])
        assert np.isfinite(row["transformer_mse"]) and np.isfinite(row["conv_transformer_mse"])
        # Relative to the variance of the test outputs: mixing smooths the target,
        # so raw MSEs of different targets are not comparable.
        assert row["transformer_relative_mse"] > 0 and row["conv_transformer_relative_mse"] > 0
        assert len(row["conv_transformer"][0]["learned_filter"]) == max(
            result["settings"]["filter_lengths"]
        )


def test_conditional_kernel_without_mixing_is_the_kernel():
    rho = mixing.conditional_kernel([1.0], 4, [1.0, 0.5])
    u = np.linspace(0, 1, 7)[:, None, None]
    v = np.linspace(0, 1, 5)[None, :, None]
    exact = sum(
        s * 2 * np.sin(2 * np.pi * i * u[..., 0]) * np.sin(2 * np.pi * i * v[..., 0])
        for i, s in ((1, 1.0), (2, 0.5))
    )
    np.testing.assert_allclose(rho(u, v, 2, 1), exact, atol=1e-12)


def test_conditional_kernel_matches_monte_carlo():
    theta, tau = [0.5, 0.3, 0.2], 5
    rho = mixing.conditional_kernel(theta, tau, [1.0])
    rng = np.random.default_rng(0)
    x = rng.random((200_000, tau))
    t, s, u, v = 3, 2, 0.3, 0.8
    x[:, t], x[:, s] = u, v
    a = sum(theta[j] * x[:, t - j] for j in range(3))
    b = sum(theta[j] * x[:, s - j] for j in range(3))
    mc = np.mean(2 * np.sin(2 * np.pi * a) * np.sin(2 * np.pi * b))
    # 200k samples of a bounded (|·| ≤ 2) variable: standard error < 0.005.
    assert abs(rho(np.array([[u]]), np.array([[v]]), t, s)[0] - mc) < 0.02


def test_claims_from_unconverged_cells_are_not_converged(result):
    assert result["settings"]["convergence_tolerance"] == CONVERGENCE_TOLERANCE
    rows = result["mixed"]
    for row in rows:
        for key in ("transformer", "conv_transformer"):
            check = row[f"{key}_convergence"]
            assert len(check["runs"]) == len(row[key])
            assert check["converged"] == all(
                abs(r["relative_change"]) <= CONVERGENCE_TOLERANCE for r in check["runs"]
            )
    claims, verdicts = result["claims"], result["claims"]["verdicts"]
    plain_ok = all(r["transformer_convergence"]["converged"] for r in rows)
    expected = "held" if claims["mixing_raises_transformer_relative_error"] else "failed"
    assert verdicts["mixing_raises_transformer_relative_error"] == (
        expected if plain_ok else "not converged"
    )
    for held, verdict, row in zip(
        claims["conv_beats_plain_on_mixed"], verdicts["conv_beats_plain_on_mixed"], rows[1:]
    ):
        both = (
            row["transformer_convergence"]["converged"]
            and row["conv_transformer_convergence"]["converged"]
        )
        assert verdict == (("held" if held else "failed") if both else "not converged")
    # Computed spectra need no training.
    assert verdicts["mixing_raises_kernel_rank"] == "held"


def test_m_h_sweep_trains_every_m_h_on_the_unmixed_and_a_mixed_target(result):
    settings, sweeps = result["settings"], result["m_h_sweep"]
    assert [s["filter_length"] for s in sweeps] == settings["sweep_filter_lengths"]
    for sweep in sweeps:
        assert [p["m_h"] for p in sweep["points"]] == settings["sweep_m_h"]
        for point in sweep["points"]:
            assert [r["m_h"] for r in point["runs"]] == [point["m_h"]] * len(
                settings["sweep_seeds"]
            )
            assert point["relative_mse"] == pytest.approx(
                np.mean([r["relative_mse"] for r in point["runs"]])
            )
    claims = result["claims"]
    gain_base, _ = mixing.m_h_gain(sweeps[0], settings["rank"])
    gain_mixed, _ = mixing.m_h_gain(sweeps[-1], settings["rank"])
    assert claims["m_h_gain_unmixed"] == gain_base and claims["m_h_gain_mixed"] == gain_mixed
    assert claims["mixed_gains_more_from_m_h_beyond_rank"] == (
        gain_mixed > gain_base and gain_mixed > 1 + CONVERGENCE_TOLERANCE
    )
    assert "Part 4" in (result["outputs"]["table"] and open(result["outputs"]["table"]).read())


def test_m_h_gain_compares_the_first_m_h_at_or_above_the_rank_with_the_largest():
    sweep = {
        "points": [
            {"m_h": m_h, "relative_mse": value}
            for m_h, value in ((1, 0.8), (2, 0.4), (4, 0.2), (8, 0.1))
        ]
    }
    gain, cells = mixing.m_h_gain(sweep, 2)
    assert gain == pytest.approx(4.0) and [c["m_h"] for c in cells] == [2, 8]
    assert mixing.m_h_gain(sweep, 3)[0] == pytest.approx(2.0)  # m_h = 4 is the first ≥ 3
