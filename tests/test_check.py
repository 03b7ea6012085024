"""tfapprox.check: measured errors against the bound (constants, rate, violations, optima)."""

import json
import math

import numpy as np
import pytest

from tfapprox import _io, results, theory
from tfapprox.check import VERDICTS, check_errors, load_points


def _law_runs(
    c_beta,
    c_alpha,
    *,
    tau=16,
    alpha=0.5,
    beta=1.0,
    m_hs=range(1, 11),
    m_ffs=(64, 1024),
    noise=0.0,
    seeds=1,
    rng=None,
):
    b = theory.Bound(tau=tau, alpha=alpha, beta=beta, c_alpha=c_alpha, c_beta=c_beta)
    runs = []
    for m_ff in m_ffs:
        for m_h in m_hs:
            for seed in range(seeds):
                factor = 1.0 if noise == 0 else math.exp(noise * rng.standard_normal())
                runs.append(
                    {"m_h": m_h, "m_ff": m_ff, "error": b(m_h, m_ff) * factor, "seed": seed}
                )
    return runs


def test_check_errors_recovers_exact_constants():
    runs = _law_runs(2.5, 0.3)
    report = check_errors(runs, 16, 0.5, 1.0, n_bootstrap=0)
    assert report.fitted["c_beta"] == pytest.approx(2.5, rel=1e-9)
    assert report.fitted["c_alpha"] == pytest.approx(0.3, rel=1e-9)
    assert report.violations == []
    assert report.envelope_scale == pytest.approx(1.0, rel=1e-9)


def test_check_errors_recovers_slope_from_noisy_seeds(rng):
    # Attention-dominated law (tiny C_α): log error vs log m_h has slope −(2β−1) = −0.6.
    runs = _law_runs(
        1.0, 1e-6, beta=0.8, m_hs=range(1, 17), m_ffs=(128,), noise=0.05, seeds=3, rng=rng
    )
    report = check_errors(runs, 16, 0.5, 0.8, seed=1)
    rate = report.rate
    assert rate["verdict"] == "consistent"
    assert rate["ci"][0] <= -0.6 <= rate["ci"][1]
    # Minimum over 3 seeds of 5% log-normal noise: slope within 0.05 of the truth.
    assert rate["slope"] == pytest.approx(-0.6, abs=0.05)
    assert report.fitted["c_beta"] == pytest.approx(1.0, rel=0.15)


def test_check_errors_flags_faster_and_slower_rates():
    m_hs = range(1, 9)
    fast = [{"m_h": k, "m_ff": 100, "error": 3.0 * k**-2.0} for k in m_hs]
    slow = [{"m_h": k, "m_ff": 100, "error": 3.0 * k**-0.3} for k in m_hs]
    assert check_errors(fast, 4, 0.5, 1.0).rate["verdict"] == "faster than predicted"
    assert check_errors(slow, 4, 0.5, 1.0).rate["verdict"] == "slower than predicted"


def test_check_errors_flags_planted_violations():
    runs = _law_runs(1.0, 1.0, m_ffs=(256,))
    b = theory.Bound(tau=16, alpha=0.5, beta=1.0)
    planted = {3: 1.5, 7: 1.2}
    for run in runs:
        if run["m_h"] in planted:
            run["error"] = planted[run["m_h"]] * b(run["m_h"], run["m_ff"])
    report = check_errors(runs, 16, 0.5, 1.0, c_alpha=1.0, c_beta=1.0, n_bootstrap=0)
    assert report.given_bound_all is False
    assert sorted(v["m_h"] for v in report.violations) == [3, 7]
    for v in report.violations:
        assert v["ratio"] == pytest.approx(planted[v["m_h"]], rel=1e-12)
        assert v["margin"] == pytest.approx(v["error"] - v["bound"], rel=1e-12)
    assert report.constants["source"] == {"c_alpha": "given", "c_beta": "given"}


def test_check_errors_given_constants_bound_every_point():
    runs = _law_runs(1.0, 1.0)
    report = check_errors(runs, 16, 0.5, 1.0, c_alpha=2.0, c_beta=2.0, n_bootstrap=0)
    assert report.given_bound_all is True
    assert report.violations == []


def test_check_errors_fits_the_constant_not_given():
    runs = _law_runs(2.0, 0.5)
    report = check_errors(runs, 16, 0.5, 1.0, c_beta=2.0, n_bootstrap=0)
    assert report.constants["c_alpha"] == pytest.approx(0.5, rel=1e-9)
    assert report.constants["source"] == {"c_alpha": "fitted", "c_beta": "given"}
    assert report.given_bound_all is None


def test_check_errors_nnls_clamps_a_negative_constant():
    # Errors rising with m_h only: the unconstrained fit wants C_β < 0.
    runs = [{"m_h": k, "m_ff": 64, "error": 0.1 * k**2} for k in range(1, 8)]
    report = check_errors(runs, 4, 0.5, 1.0, n_bootstrap=0)
    assert report.fitted["c_beta"] == 0.0
    assert report.fitted["c_alpha"] > 0


def test_check_errors_leaves_out_the_error_floor():
    # Rank-4 kernel: the error falls like m_h^-1 and drops to a floor from m_h = 4.
    runs = [
        {"m_h": k, "m_ff": 128, "error": 5.0 / k if k < 4 else 1e-7 * (1 + 0.1 * k)}
        for k in range(1, 11)
    ]
    runs += [{"m_h": k, "m_ff": 128, "error": 5.0 / k, "seed": 1} for k in range(1, 4)]
    report = check_errors(runs, 16, 0.5, 1.0, n_bootstrap=200)
    assert report.rate["m_h_range"] == [1, 3]
    assert report.rate["slope"] == pytest.approx(-1.0, abs=1e-9)


def test_check_errors_reports_the_empirical_optimum():
    runs = _law_runs(1.0, 1.0, m_ffs=(128, 4096), m_hs=range(1, 9))
    report = check_errors(runs, 16, 0.5, 1.0, c_alpha=1.0, c_beta=1.0, n_bootstrap=0)
    b = theory.Bound(tau=16, alpha=0.5, beta=1.0)
    for optimum in report.optima:
        assert optimum["empirical_m_h"] == b.integer_m_h(optimum["m_ff"])
        assert optimum["predicted_m_h"] == b.integer_m_h(optimum["m_ff"])
        assert optimum["predicted_m_h_opt"] == pytest.approx(b.optimal_m_h(optimum["m_ff"]))


def test_check_errors_uses_minimum_over_seeds_and_skips_non_finite():
    runs = [
        {"m_h": 2, "m_ff": 8, "error": 0.5, "seed": 0},
        {"m_h": 2, "m_ff": 8, "error": 0.2, "seed": 1},
        {"m_h": 2, "m_ff": 8, "error": float("nan"), "seed": 2},
    ]
    report = check_errors(runs, 4, 0.5, 1.0, n_bootstrap=0)
    assert report.points[0]["error"] == 0.2
    assert report.points[0]["error_max"] == 0.5
    assert report.skipped == 1


def test_check_errors_reads_a_training_results_file(tmp_path):
    b = theory.Bound(tau=8, alpha=0.5, beta=1.0, c_alpha=0.5, c_beta=2.0)
    runs = [
        {
            "budget": {"n": 32, "m_h": k, "m_v": 32, "m_ff": 64, "ff_depth": 3},
            "loss": b(k, 64),
            "seed": 0,
            "epochs": 10,
        }
        for k in range(1, 7)
    ]
    path = tmp_path / "results.json"
    _io.atomic_write_json(path, {"runs": runs, "metadata": {"sequence_length": 8}})
    report = check_errors(str(path), None, 0.5, 1.0, n_bootstrap=0)
    assert report.parameters["tau"] == 8
    assert report.fitted["c_beta"] == pytest.approx(2.0, rel=1e-9)
    assert report.fitted["c_alpha"] == pytest.approx(0.5, rel=1e-9)
    json.dumps(report.to_dict())  # JSON-ready


def test_check_errors_requires_tau_without_metadata():
    with pytest.raises(ValueError, match="sequence_length"):
        check_errors([{"m_h": 1, "m_ff": 2, "error": 1.0}], None, 0.5, 1.0)


@pytest.mark.parametrize(
    "runs, fragment",
    [
        ([{"m_h": 1, "m_ff": 2}], "error"),
        ([{"m_h": 0, "m_ff": 2, "error": 1.0}], "m_h"),
        ([{"m_h": 1, "m_ff": 2, "error": -1.0}], ">= 0"),
        ([{"budget": {"m_h": 1}, "loss": 1.0, "seed": 0}], "budget"),
        ({"rows": []}, "runs"),
    ],
)
def test_check_errors_rejects_malformed_runs(runs, fragment):
    with pytest.raises(ValueError, match=fragment):
        check_errors(runs, 4, 0.5, 1.0)


def test_check_errors_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError):
        check_errors(str(tmp_path / "none.json"), 4, 0.5, 1.0)


def test_check_errors_reads_a_strict_results_file_with_a_diverged_run(tmp_path):
    budget = {"n": 8, "m_h": 2, "m_v": 8, "m_ff": 16, "ff_depth": 3}
    path = tmp_path / "results.json"
    results.write(
        path,
        [
            {"budget": budget, "loss": 0.5, "seed": 0},
            {"budget": budget, "loss": math.nan, "seed": 1},
        ],
        {"sequence_length": 4},
    )
    points, metadata, skipped = load_points(str(path))
    assert points == [{"m_h": 2, "m_ff": 16, "errors": [0.5], "seeds": [0]}]
    assert skipped == 1 and metadata == {"sequence_length": 4}


def test_load_points_applies_the_results_rules_to_a_results_dict():
    budget = {"n": 8, "m_h": 2, "m_ff": 16}  # lacks m_v and ff_depth
    with pytest.raises(ValueError, match=r"`budget` lacks the keys \['m_v', 'ff_depth'\]"):
        load_points({"runs": [{"budget": budget, "loss": 0.5, "seed": 0}]})


def test_verdicts_are_the_ones_reports_use():
    runs = [{"m_h": k, "m_ff": 100, "error": 3.0 * k**-1.0} for k in range(1, 6)]
    assert check_errors(runs, 4, 0.5, 1.0).rate["verdict"] == VERDICTS[0]
    assert check_errors(runs[:2], 4, 0.5, 1.0).rate["verdict"] == VERDICTS[3]


def test_envelope_constants_bound_every_point_and_are_minimal_by_brute_force():
    from tfapprox.check import envelope_constants

    rng = np.random.default_rng(3)
    m = np.arange(1.0, 9.0)
    a, b = m**-1.0, m**1.5 / 64
    errors = (2.0 * a + 0.5 * b) * rng.uniform(0.5, 1.0, m.size)
    out = envelope_constants(a, b, errors)
    bound = out["c_beta"] * a + out["c_alpha"] * b
    assert np.all(bound >= errors * (1 - 1e-9))
    # No feasible pair on a fine grid has a smaller objective (mean bound/error).
    cb, ca = np.meshgrid(np.linspace(0, 4, 401), np.linspace(0, 2, 401))
    grid = cb[..., None] * a + ca[..., None] * b
    feasible = np.all(grid >= errors, axis=-1)
    objective = np.mean(grid / errors, axis=-1)
    assert out["mean_ratio"] <= objective[feasible].min() + 1e-9
    assert out["tight"]  # an optimal LP vertex touches at least one point


def test_envelope_constants_of_exact_bound_data_are_the_true_constants():
    from tfapprox.check import envelope_constants

    m = np.array([1.0, 2.0, 4.0, 8.0])
    out = envelope_constants(m**-1.0, m**1.5 / 64, 3.0 * m**-1.0 + 0.25 * m**1.5 / 64)
    assert out["c_beta"] == pytest.approx(3.0, rel=1e-7)
    assert out["c_alpha"] == pytest.approx(0.25, rel=1e-7)
    assert out["mean_ratio"] == pytest.approx(1.0, rel=1e-7)


def test_check_errors_reports_envelope_constants_that_hold_everywhere():
    runs = [{"m_h": k, "m_ff": 256, "error": 5.0 / k + 0.01 * k} for k in range(1, 9)]
    report = check_errors(runs, tau=4, alpha=0.5, beta=1.0, n_bootstrap=0)
    lp = report.envelope
    for point in report.points:
        terms = theory.Bound(tau=4, alpha=0.5, beta=1.0).terms(point["m_h"], 256)
        bound = lp["c_beta"] * terms.attention_term + lp["c_alpha"] * terms.ff_term
        assert bound >= point["error"] * (1 - 1e-9)
    assert report.optima[0]["envelope_m_h"] is not None or lp["c_alpha"] == 0


def test_check_errors_reads_the_error_key_asked_for():
    budget = {"n": 4, "m_h": 2, "m_v": 4, "m_ff": 8, "ff_depth": 3}
    runs = [{"budget": budget, "seed": 0, "loss": 0.1, "error": 0.7, "val_error": 0.9}]
    for key, expected in (("loss", 0.1), ("error", 0.7), ("val_error", 0.9)):
        points, _, _ = load_points(runs, error_key=key)
        assert points[0]["errors"] == [expected]
    with pytest.raises(ValueError, match="error_key"):
        load_points(runs, error_key="mae")
    with pytest.raises(ValueError, match="no `val_loss`"):
        load_points(runs, error_key="val_loss")
