"""analysis/sparse_memory.py --quick: heads vs FFN width on fixed sparse memories (paper B Tables 3-6)."""

import numpy as np
import pytest

from analysis import sparse_memory


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    out = tmp_path_factory.mktemp("sparse-memory")
    return sparse_memory.main(["--quick", "--out", str(out), "--json"])


def test_every_target_has_its_grid_and_the_dp_cells(result):
    settings = result["settings"]
    free = {(c["target"], c["heads"], c["width"]) for c in result["cells"] if not c["dot_product"]}
    assert free == {
        (t, h, m)
        for t in settings["targets"]
        for h in settings["heads"]
        for m in settings["widths"]
    }
    dp = [[c["heads"], c["width"]] for c in result["cells"] if c["dot_product"]]
    assert dp == settings["dp_cells"]
    for c in result["cells"]:
        assert np.isfinite(c["error"]) and c["error"] > 0
        assert c["error"] == pytest.approx(c["relative_error"] * c["target_variance"])


def test_every_claim_states_its_direction_and_numbers(result):
    claims = {c["target"]: c for c in result["claims"]}
    assert set(claims) == {"relu-1", "sum-3", "relu-3"}
    for name, better, worse in (
        ("relu-1", "along_width", "along_heads"),
        ("sum-3", "along_heads", "along_width"),
    ):
        claim = claims[name]
        assert claim["direction_holds"] == (claim[better] > claim[worse])
        decided = claim["learned"] and claim["converged"]
        assert claim["holds"] == (claim["direction_holds"] if decided else None)
        assert claim["learned"] == (claim["best_relative_error"] < 0.1)
    assert "dp_free_over_dp" in claims["relu-3"]


def test_claims_are_read_from_converged_cells_only(result):
    settings = result["settings"]
    epochs = settings["training_config"]["epochs"]
    doubled = {
        (d["target"], d["heads"], d["width"], d["dot_product"]): d for d in result["doubling"]
    }
    assert set(doubled) == set(sparse_memory.deciding_cells(settings))
    cells = {(c["target"], c["heads"], c["width"], c["dot_product"]): c for c in result["cells"]}
    for key, d in doubled.items():
        assert d["epochs"] == [epochs, 2 * epochs]
        assert d["error_1x"] == cells[key]["error"]
        change = (d["error_2x"] - d["error_1x"]) / d["error_1x"]
        assert d["converged"] == (abs(change) <= settings["convergence_tolerance"])
    for claim in result["claims"]:
        mine = [d for key, d in doubled.items() if key[0] == claim["target"]]
        assert claim["converged"] == all(d["converged"] for d in mine)
        if not claim["converged"]:
            assert claim["verdict"] == "not converged" and claim["holds"] is None
        elif not claim["learned"]:
            assert claim["verdict"] == "undecided" and claim["holds"] is None
        else:
            assert claim["verdict"] == ("held" if claim["holds"] else "failed")


def test_deciding_cells_are_the_corners_and_the_dp_pairs():
    settings = {"targets": ["relu-1", "relu-3"], "heads": [1, 4, 16], "widths": [4, 32, 256]}
    settings["dp_cells"] = [[4, 256]]
    cells = sparse_memory.deciding_cells(settings)
    corners = [(1, 4), (1, 256), (16, 4), (16, 256)]
    assert cells == [
        *[("relu-1", h, m, False) for h, m in corners],
        *[("relu-3", h, m, False) for h, m in corners],
        ("relu-3", 4, 256, False),
        ("relu-3", 4, 256, True),
    ]


@pytest.mark.parametrize(
    ("name", "preset"),
    [("relu-1", "memory-relu-1"), ("sum-3", "memory-sum-3"), ("relu-3", "memory-relu-3")],
)
def test_targets_at_the_preset_lags_are_the_presets(name, preset):
    from tfapprox import targets

    reference = targets.load_preset(preset)
    settings = {"tau": 64, "lags": [12, 28, 57]}
    rebuilt = sparse_memory.load_target(name, settings)
    x = reference.sample(8, seed=3).x
    np.testing.assert_array_equal(rebuilt(x), reference(x))


def test_gains_are_geometric_means_of_error_ratios():
    rows = [
        {"target": "t", "heads": h, "width": m, "dot_product": False, "error": e}
        for (h, m), e in {(1, 4): 8.0, (1, 64): 2.0, (4, 4): 4.0, (4, 64): 0.25}.items()
    ]
    g = sparse_memory.gains(rows, "t", [1, 4], [4, 64])
    assert g["along_width"] == pytest.approx(np.sqrt(4.0 * 16.0))
    assert g["along_heads"] == pytest.approx(np.sqrt(2.0 * 8.0))
    assert g["corner"] == [8.0, 0.25]


def test_alibi_slopes_halve_geometrically():
    slopes = sparse_memory.alibi_slopes(8)
    assert slopes[0] == 0.5 and slopes[-1] == 2.0**-8
    assert np.allclose(slopes[1:] / slopes[:-1], 0.5)
