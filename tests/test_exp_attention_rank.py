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
    # The rate is the least-squares slope of log(mean training loss) on log m_h.
    m_h = [p["m_h"] for p in result["points"]]
    loss = [p["train_loss_mean"] for p in result["points"]]
    slope, intercept = np.polyfit(np.log(m_h), np.log(loss), 1)
    assert rate["rate"] == pytest.approx(-slope, rel=1e-9)
    assert rate["constant"] == pytest.approx(np.exp(intercept), rel=1e-9)
    assert rate["error_falls_with_m_h"] == (slope < 0)
    low, high = rate["rate_ci"]
    assert rate["paper_rate_in_interval"] == (low <= 0.27 <= high)


def test_convergence_cells_retrain_the_checked_m_h_with_twice_the_epochs(result):
    settings = result["settings"]
    checks = result["convergence"]
    assert [c["m_h"] for c in checks] == settings["check_m_h"]
    by_m_h = {p["m_h"]: p for p in result["points"]}
    for check in checks:
        once = next(r for r in by_m_h[check["m_h"]]["runs"] if r["seed"] == check["seed"])
        assert check["error_1x"] == once["train_loss"]
        e1, e2 = check["error_1x"], check["error_2x"]
        assert check["relative_change"] == pytest.approx((e2 - e1) / e1)
        assert check["converged"] == (
            abs(check["relative_change"]) <= settings["convergence_tolerance"]
        )
        assert 1 <= check["epochs_2x"] <= 2 * settings["epochs"]


def test_claims_read_from_unconverged_cells_are_not_converged(result):
    claims = result["claims"]
    converged = all(c["converged"] for c in result["convergence"])
    assert claims["cells_converged"] == converged
    for key, verdict in claims["verdicts"].items():
        expected = ("held" if claims[key] else "failed") if converged else "not converged"
        assert verdict == expected


def test_training_config_is_recorded(result):
    training = result["settings"]["training"]
    assert (training["epochs"], training["batch_size"]) == (
        result["settings"]["epochs"],
        result["settings"]["batch_size"],
    )
    for point in result["points"]:
        assert all(1 <= r["epochs"] <= training["epochs"] for r in point["runs"])


def test_convergence_rule_closed_form():
    from analysis import _convergence

    record = _convergence.check(0.5, 0.45)
    assert (record["error_1x"], record["error_2x"]) == (0.5, 0.45)
    assert record["relative_change"] == pytest.approx(-0.1)
    assert record["converged"] is True
    assert _convergence.check(0.5, 0.6)["converged"] is False
    assert _convergence.check(0.0, 0.0)["converged"] is True
    assert _convergence.check(0.0, 0.1)["converged"] is False
    assert _convergence.verdict(False, [record]) == "failed"
    assert _convergence.verdict(True, [record, {"converged": False}]) == "not converged"
    assert _convergence.verdict(None, [record]) == "undecided"


def _image(tokens):
    """(16, 4) patch tokens -> (8, 8) image, token t = (r, c) holding pixel (2r + a, 2c + b)."""
    image = np.zeros((8, 8), dtype=tokens.dtype)
    for t in range(16):
        r, c = divmod(t, 4)
        for a in range(2):
            for b in range(2):
                image[2 * r + a, 2 * c + b] = tokens[t, 2 * a + b]
    return image


def test_augment_copies_are_one_pixel_shifts_of_their_image():
    from analysis import _digits

    train, _ = _digits.load(2)
    x, y = train.x[:40], train.y[:40]
    xa, ya = _digits.augment(x, y, copies=3, noise=0.0, shift=1, seed=5)
    assert xa.shape == (120, 16, 4) and ya.tolist() == np.tile(y, 3).tolist()
    shifts = set()
    for row in range(120):
        image, moved = _image(x[row % 40]), _image(xa[row])
        # Brute force: the copy equals exactly one of the 9 zero-filled shifts.
        padded = np.pad(image, 1)
        matches = [
            (dr, dc)
            for dr in (-1, 0, 1)
            for dc in (-1, 0, 1)
            if np.array_equal(moved, padded[1 - dr : 9 - dr, 1 - dc : 9 - dc])
        ]
        assert matches
        shifts.update(matches)
    assert len(shifts) > 1


def test_augment_noise_has_the_requested_std():
    from analysis import _digits

    train, _ = _digits.load(2)
    xa, _ = _digits.augment(train.x, train.y, copies=2, noise=0.1, shift=0, seed=1)
    residual = xa - np.tile(train.x, (2, 1, 1))
    # 172,416 Gaussian draws: the sample std is within 1% of 0.1 with overwhelming probability.
    assert abs(residual.std() - 0.1) < 1e-3 and abs(residual.mean()) < 1e-3


def test_training_set_is_the_recorded_augmentation(result):
    settings = result["settings"]
    assert settings["n_train"] == 1347 * settings["augment"]["copies"]
    assert settings["training"]["schedule"] == "cosine"
