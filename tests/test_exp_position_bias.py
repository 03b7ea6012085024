"""analysis/position_bias.py --quick: linear vs log RPE on heavy and light tails (paper B Tables 8-9)."""

import numpy as np
import pytest

from analysis import position_bias


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("position-bias")
    return position_bias.main(["--quick", "--out", str(out), "--json"])


def test_every_kernel_rpe_and_head_count_has_a_cell(result):
    settings = result["settings"]
    cells = {(c["kernel"], c["rpe"], c["heads"]) for c in result["cells"]}
    assert cells == {
        (k, r, h) for k in settings["kernels"] for r in settings["rpe"] for h in settings["heads"]
    }
    for c in result["cells"]:
        assert len(c["p"]) == c["heads"] and all(p > 0 for p in c["p"])
        assert np.isfinite(c["error"]) and c["error"] > 0


def test_exact_error_agrees_with_the_held_out_mse(result):
    # The model is affine in x, so E(ŷ − y)² has a closed form; the held-out
    # MSE estimates it from 1,024 sequences (relative spread of a mean of
    # squared errors: a few percent; 30% is far outside it).
    for c in result["cells"]:
        assert c["test_mse"] == pytest.approx(c["error"], rel=0.3)


def test_log_rpe_with_one_head_learns_the_heavy_tail(result):
    # t^-0.5 is one log-type head with p = 0.5: a few hundred steps get p
    # within 5% and beat the linear RPE by orders of magnitude.
    claim = next(c for c in result["claims"] if c["kernel"] == "power-0.5")
    assert claim["matching_wins"] and claim["ratio"] > 30
    assert claim["learned_p"] == pytest.approx(0.5, rel=0.05)


def test_the_deciding_cells_are_retrained_with_twice_the_epochs(result):
    settings, claims = result["settings"], result["claims"]
    epochs = settings["training_config"]["epochs"]
    doubled = {(d["kernel"], d["rpe"], d["heads"]): d for d in result["doubling"]}
    cells = {(c["kernel"], c["rpe"], c["heads"]): c for c in result["cells"]}
    for claim in claims:
        name, match = claim["kernel"], claim["matching_rpe"]
        other = [c for c in result["cells"] if c["kernel"] == name and c["rpe"] != match]
        best = min(other, key=lambda c: c["error"])
        keys = [(name, match, 1), (name, best["rpe"], best["heads"])]
        keys.append((name, best["rpe"], max(settings["heads"])))
        assert set(keys) <= set(doubled)
        converged = all(doubled[key]["converged"] for key in keys)
        assert claim["converged"] == converged
        assert claim["verdict"] == (
            ("held" if claim["matching_wins"] else "failed") if converged else "not converged"
        )
        assert claim["holds"] == (claim["matching_wins"] if converged else None)
    for key, d in doubled.items():
        assert d["epochs"] == [epochs, 2 * epochs]
        assert d["error_1x"] == cells[key]["error"]
        change = (d["error_2x"] - d["error_1x"]) / d["error_1x"]
        assert d["relative_change"] == pytest.approx(change)
        at_floor = max(d["error_1x"], d["error_2x"]) <= settings["error_floor"]
        assert d["at_floor"] == at_floor
        assert d["converged"] == (abs(change) <= settings["convergence_tolerance"] or at_floor)


def test_impulse_response_recovers_a_known_affine_map():
    kernel = np.array([0.5, -1.0, 2.0])
    k_hat, b_hat = position_bias.impulse_response(lambda x: x[..., 0] @ kernel[:, None] + 0.25, 3)
    assert k_hat == pytest.approx(kernel) and b_hat == pytest.approx(0.25)


def test_exact_error_matches_monte_carlo():
    rng = np.random.default_rng(0)
    k, k_hat, b = rng.normal(size=5), rng.normal(size=5), 0.3
    x = rng.uniform(-1, 1, (200_000, 5))
    sampled = np.mean((x @ k_hat + b - x @ k) ** 2)
    # Monte Carlo standard error at 200,000 samples is well below 1%.
    assert position_bias.exact_error(k_hat, b, k) == pytest.approx(sampled, rel=0.02)


def test_the_target_at_the_query_token_is_the_log_head_exactly():
    # One log-type head with p = 0.5 at the appended token weights lag z by
    # z^-0.5 / Σ z^-0.5: the kernel-power-0.5 target up to that constant.
    target, p = position_bias.load_kernel("power-0.5", 64)
    kernel, bias = position_bias.impulse_response(
        lambda z: position_bias.last_output(target, z), 64
    )
    z = np.arange(64, 0, -1.0)  # distance of input j from the query token
    assert bias == 0.0 and kernel == pytest.approx(z**-p)


def test_antithetic_impulses_give_the_population_error():
    rng = np.random.default_rng(1)
    k, k_hat, b = rng.normal(size=6), rng.normal(size=6), -0.4
    x = position_bias.antithetic_impulses(6, copies=2)[..., 0]
    assert x.shape == (24, 6)
    mean = np.mean((x @ k_hat + b - x @ k) ** 2)
    assert mean == pytest.approx(position_bias.exact_error(k_hat, b, k), rel=1e-12)
