"""analysis/language_model.py --quick: layers vs heads, DP vs DP-free (paper B Tables 2 and 7)."""

import contextlib
import io
import json
import os

import numpy as np
import pytest

from analysis import language_model


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("language-model")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        result = language_model.main(["--quick", "--out", str(out), "--json"])
    return result, stdout.getvalue(), out


def test_json_has_every_configuration_with_a_finite_validation_loss(run):
    result, printed, _ = run
    parsed = json.loads(printed)
    depths = result["settings"]["dp_depths"]
    expected = {"base", "more_layers", "more_heads"}
    expected |= {f"dp_L{d}" for d in depths} | {f"dp_free_L{d}" for d in depths}
    assert set(parsed["models"]) == expected
    for model in parsed["models"].values():
        # Below a uniform guess over the 96 symbols: the models learned something.
        assert 0 < model["validation_loss"] < np.log(96)


def test_more_layers_and_more_heads_have_about_the_same_parameter_count(run):
    models = run[0]["models"]
    deeper, wider, base = (
        models[n]["parameter_count"] for n in ("more_layers", "more_heads", "base")
    )
    assert deeper > base and wider > base
    # One head more or less costs 4 D m_h + 1 weights: the best match is within half of that.
    settings = run[0]["settings"]
    assert abs(deeper - wider) <= (4 * settings["width"] * settings["key_dim"] + 1) / 2


def test_dp_free_models_lack_only_the_query_and_key_weights(run):
    result = run[0]
    settings = result["settings"]
    for depth in settings["dp_depths"]:
        dp, free = result["models"][f"dp_L{depth}"], result["models"][f"dp_free_L{depth}"]
        heads = settings["base"]["heads"]
        missing = depth * 2 * heads * settings["key_dim"] * settings["width"]
        assert dp["parameter_count"] - free["parameter_count"] == missing


def test_claims_are_the_differences_of_the_losses(run):
    result = run[0]
    models, claims = result["models"], result["claims"]
    base = models["base"]["validation_loss"]
    assert claims["gain_layers"] == pytest.approx(base - models["more_layers"]["validation_loss"])
    assert claims["gain_heads"] == pytest.approx(base - models["more_heads"]["validation_loss"])
    assert claims["layers_beat_heads"] == (claims["gain_layers"] > claims["gain_heads"])


def test_outputs_are_written_with_the_scaling(run):
    result, _, out = run
    for key in ("result", "table", "figure"):
        assert os.path.isfile(result["outputs"][key])
    saved = json.loads((out / "result.json").read_text())
    assert (
        saved["data"]["train_chars"] + saved["data"]["validation_chars"]
        == saved["settings"]["max_chars"]
    )
    assert saved["settings"]["tau"] == language_model.QUICK["tau"]


def test_cross_entropy_matches_a_direct_softmax():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5, 7)) * 4
    labels = rng.integers(0, 7, size=(3, 5))
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    direct = -np.mean(np.log(np.take_along_axis(p, labels[..., None], -1)))
    assert language_model.cross_entropy(logits, labels) == pytest.approx(direct, rel=1e-12)


def test_matching_heads_minimises_the_count_difference():
    settings = language_model.QUICK
    target = language_model.parameter_count(settings, 2, 2)
    h = language_model.matching_heads(settings, target, 1)
    gap = abs(language_model.parameter_count(settings, 1, h) - target)
    for other in (h - 1, h + 1):
        assert abs(language_model.parameter_count(settings, 1, other) - target) >= gap


def test_models_count_what_the_budget_says_with_their_own_readout_width():
    settings = {**language_model.QUICK, "readout_width": 24}
    budget = language_model.budget(settings, 2, 3)
    assert budget.readout_width == 24 and budget.m_ff == settings["ffn_width"]
    from tfapprox.models import build_transformer

    model = build_transformer(
        budget, settings["tau"], 96, 96, causal=True, **language_model.architecture(settings, False)
    )
    assert model.count_params() == language_model.parameter_count(settings, 2, 3, False)
    assert model.get_layer("F_hat").hidden_dim == 24


def test_deciding_models_are_trained_again_and_verdicts_follow_them(run):
    result = run[0]
    models, claims = result["models"], result["claims"]
    threshold = result["settings"]["convergence_threshold"]
    for name in language_model.deciding(result["settings"]):
        record = models[name]["doubled"]
        assert record["epochs"] == 2 * models[name]["epochs"]
        change = (record["error_2x"] - models[name]["validation_loss"]) / models[name][
            "validation_loss"
        ]
        assert record["relative_change"] == pytest.approx(change)
        assert record["converged"] == (abs(change) <= threshold)
    table2 = [models[n] for n in ("base", "more_layers", "more_heads")]
    if all(m["doubled"]["converged"] for m in table2):
        expected = "held" if claims["layers_beat_heads"] else "failed"
    else:
        expected = "not converged"
    assert claims["verdicts"]["layers_beat_heads"] == expected
    for gap in claims["dp_gaps"]:
        pair = [models[f"{kind}_L{gap['layers']}"] for kind in ("dp", "dp_free")]
        # The gap is DP-free's held-out loss minus DP's; it holds when positive.
        assert gap["dp_free_minus_dp"] == pytest.approx(
            pair[1]["validation_loss"] - pair[0]["validation_loss"], abs=1e-12
        )
        if not all(m.get("doubled", {}).get("converged") for m in pair):
            assert gap["verdict"] == "not converged"
        else:
            assert gap["verdict"] == ("held" if gap["dp_free_minus_dp"] > 0 else "failed")
