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
        expected = claim[better] > claim[worse] if claim["learned"] else None
        assert claim["holds"] == expected
        assert claim["learned"] == (claim["best_relative_error"] < 0.1)
    assert "dp_free_over_dp" in claims["relu-3"]


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
