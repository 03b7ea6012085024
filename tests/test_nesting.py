"""Nested budgets: the containment test, function-preserving embedding, warm starts."""

import numpy as np
import pytest

from tfapprox import Budget, nesting, results, sweeps, workflow
from tfapprox.config import TrainingConfig
from tfapprox.models import build_transformer
from tfapprox.targets import load_preset

TAU = 6


def _runs(losses):
    return [
        {"budget": {"m_h": m_h, "m_ff": m_ff}, "loss": loss, "seed": seed}
        for (m_h, m_ff), values in losses.items()
        for seed, loss in enumerate(values)
    ]


def test_violations_flag_a_budget_above_one_it_contains():
    # Best of the seeds: (1, 8) 4.0, (2, 8) 2.0, (3, 8) 2.1, (1, 16) 5.0, (2, 16) 1.0.
    runs = _runs(
        {(1, 8): [4.0, 6.0], (2, 8): [2.0], (3, 8): [9.0, 2.1], (1, 16): [5.0], (2, 16): [1.0]}
    )
    found = nesting.violations(runs, 0.1)
    # Excess relative to the larger loss: (3, 8) 4.8% over (2, 8), within 10%; (1, 16)
    # 20% over (1, 8), which it
    # contains (fewer feed-forward units); (2, 16) contains all but (3, 8).
    assert [(v["m_h"], v["m_ff"]) for v in found] == [(1, 16)]
    assert found[0]["contained"] == {"m_h": 1, "m_ff": 8, "loss": 4.0}
    assert found[0]["excess"] == pytest.approx(0.2)
    assert nesting.violations(runs, 0.01)[0]["m_h"] == 3
    assert nesting.violations(_runs({(1, 8): [1.0], (2, 8): [0.5]}), 0.1) == []
    assert nesting.best_runs(runs)[(3, 8)]["seed"] == 1


@pytest.mark.parametrize(
    "small, large",
    [
        (Budget(n=4, m_h=1, m_ff=8), Budget(n=4, m_h=3, m_ff=8)),  # wider W_Q, W_K
        (Budget(n=4, m_h=2, m_ff=4), Budget(n=4, m_h=2, m_ff=12)),  # wider f̂ and F̂
        (Budget(n=4, m_h=1, m_ff=4, ff_depth=2), Budget(n=4, m_h=4, m_ff=8, ff_depth=2)),
    ],
)
def test_embedded_weights_compute_the_smaller_model(small, large):
    x = np.random.default_rng(0).normal(size=(5, TAU, 1)).astype("float32")
    small_model = build_transformer(small, TAU, 1, seed=1)
    large_model = build_transformer(large, TAU, 1, seed=2)
    fresh = large_model.get_weights()
    paths = [v.path for v in large_model.weights]
    large_model.set_weights(nesting.embed_weights(small_model.get_weights(), fresh, paths))
    np.testing.assert_allclose(
        np.asarray(large_model(x)), np.asarray(small_model(x)), rtol=1e-5, atol=1e-6
    )
    # Only the new W_Q columns and the new incoming rows are zeroed; W_K keeps fresh values.
    embedded = dict(zip(paths, large_model.get_weights()))
    fresh = dict(zip(paths, fresh))
    if large.m_h > small.m_h:
        assert not embedded["attention/query_kernel"][:, small.m_h :].any()
        np.testing.assert_array_equal(
            embedded["attention/key_kernel"][:, small.m_h :],
            fresh["attention/key_kernel"][:, small.m_h :],
        )


def test_embed_weights_refuses_a_budget_that_is_not_contained():
    small = build_transformer(Budget(n=4, m_h=3, m_ff=8), TAU, 1, seed=0)
    large = build_transformer(Budget(n=4, m_h=2, m_ff=8), TAU, 1, seed=0)
    with pytest.raises(ValueError, match="does not fit"):
        nesting.embed_weights(
            small.get_weights(), large.get_weights(), [v.path for v in large.weights]
        )
    with pytest.raises(ValueError, match="one entry per weight"):
        nesting.embed_weights(small.get_weights()[:1], large.get_weights(), ["a"])


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """A tiny sweep with kept weights, and its data."""
    folder = tmp_path_factory.mktemp("nesting")
    target = load_preset("fig5a-r2")
    train, test = target.sample(64, seed=0), target.sample(32, seed=1)
    config = TrainingConfig(epochs=2, batch_size=32, finisher_steps=20)
    members = sweeps.plan_members([1, 2], [4], [0], n=4, ff_depth=1)
    sweep = sweeps.run_sweep(
        train,
        members,
        folder / "results.json",
        config=config,
        validation_data=test,
        progress=False,
        weights_dir=folder / "weights",
    )
    return folder, train, test, config, sweep["runs"]


def test_a_sweep_keeps_each_runs_weights_and_they_reproduce_its_loss(swept):
    folder, train, _, _, runs = swept
    stored = results.read(folder / "results.json")["runs"]
    assert all("_weights" not in run for run in stored)
    for run in runs:
        weights = nesting.load_weights(folder / "weights", run)
        model = build_transformer(Budget.from_dict(run["budget"]), train.sequence_length, 1)
        model.set_weights(weights)
        predicted = np.asarray(model.predict(train.x, verbose=0))
        assert np.mean((predicted - train.y) ** 2) == pytest.approx(run["loss"], rel=1e-4)
    assert nesting.load_weights(folder / "weights", {**runs[0], "seed": 7}) is None


def test_warm_start_begins_at_the_contained_models_loss_and_never_rises(swept):
    folder, train, test, config, runs = swept
    small = runs[0]
    source = nesting.load_weights(folder / "weights", small)
    large = Budget(n=4, m_h=3, m_ff=8, ff_depth=1)
    record, weights = nesting.warm_start(
        large, source, Budget.from_dict(small["budget"]), train, 10, validation_data=test
    )
    assert record["finisher"]["loss_before"] == pytest.approx(small["loss"], rel=1e-4)
    assert record["loss"] <= small["loss"] * (1 + 1e-4)
    assert record["start"]["budget"] == small["budget"]
    assert record["val_error"] > 0 and len(weights) == len(source)
    with pytest.raises(ValueError, match="not contained"):
        nesting.warm_start(
            Budget(n=8, m_h=3, m_ff=8, ff_depth=1),
            source,
            Budget.from_dict(small["budget"]),
            train,
            10,
        )


def test_a_perturbed_warm_start_never_ends_above_the_exact_embedding(swept):
    folder, train, _, _, runs = swept
    small = runs[0]
    source = nesting.load_weights(folder / "weights", small)
    large, contained = Budget(n=4, m_h=3, m_ff=4, ff_depth=1), Budget.from_dict(small["budget"])
    # A start far from the source, one iteration: L-BFGS cannot get back, the embedding is kept.
    record, weights = nesting.warm_start(large, source, contained, train, 1, perturbation=100.0)
    assert record["finisher"]["kept"] == "embedding"
    # Far above the source (how far depends on the backend's fresh weights: ×4.5 under JAX).
    assert record["finisher"]["loss_before"] > 2 * small["loss"]
    assert record["loss"] == pytest.approx(small["loss"], rel=1e-4)
    paths = [v.path for v in build_transformer(large, train.sequence_length, 1).weights]
    assert not weights[paths.index("attention/query_kernel")][:, 1:].any()
    nearby, _ = nesting.warm_start(large, source, contained, train, 10, perturbation=0.1)
    assert nearby["finisher"]["loss_before"] != pytest.approx(small["loss"], rel=1e-6)
    assert nearby["loss"] <= small["loss"] * (1 + 1e-4)
    with pytest.raises(ValueError, match="perturbation"):
        nesting.warm_start(large, source, contained, train, 1, perturbation=-1.0)


def test_the_check_warm_starts_a_budget_that_breaks_nesting_and_resumes(swept, monkeypatch, capsys):
    folder, train, test, config, runs = swept
    # m_h = 2 recorded far above m_h = 1, which it contains.
    pool = [runs[0], {**runs[1], "loss": runs[0]["loss"] * 10}]
    path = folder / "nesting.json"
    kwargs = dict(
        path=path,
        weights_dir=folder / "weights",
        train=train,
        test=test,
        config=config,
        rtol=0.1,
        metadata={},
    )
    warm, rows = workflow._nested_warm_starts(pool, progress=True, **kwargs)
    assert capsys.readouterr().err == (
        f"warm start: m_h = 2, m_FF = 4 from m_h = 1, m_FF = 4 "
        f"(L-BFGS, ≤ {config.finisher_steps} iterations)\n"
    )
    assert [(r["m_h"], r["source"]["m_h"]) for r in rows] == [(2, 1)]
    assert warm[0]["loss"] <= runs[0]["loss"] * (1 + 1e-4)
    assert warm[0]["start"]["seed"] == runs[0]["seed"]
    assert nesting.violations(pool + warm, 0.1) == []
    assert results.read(path)["runs"][0]["loss"] == warm[0]["loss"]
    assert nesting.load_weights(folder / "weights", warm[0]) is not None

    def retrain(*args, **kwargs):
        raise AssertionError("a finished warm start was trained again")

    monkeypatch.setattr(nesting, "warm_start", retrain)
    again, _ = workflow._nested_warm_starts(pool, progress=True, **kwargs)
    assert again[0]["loss"] == warm[0]["loss"]
    assert capsys.readouterr().err == ""  # nothing trained, nothing announced
    # Without the source's weights, the budget is reported, not warm-started.
    kwargs.update(path=folder / "other.json", weights_dir=folder / "none")
    missing, rows = workflow._nested_warm_starts(pool, **kwargs)
    assert missing == [] and "weights" in rows[0]["skipped"]


def test_a_warm_started_check_names_the_repaired_budgets():
    class Report:
        rate = {"verdict": "consistent", "slope": -1.0, "ci": [-1.2, -0.8], "predicted": -1.0}
        points = [{"error": 1.0, "error_max": 1.0, "seeds": 1}]

    convergence = {
        "material": False,
        "max_change": 0.0,
        "nesting": [],
        "warm_starts": [{"m_h": 5, "m_ff": 32, "loss": 1.0}],
    }
    label, sentence = workflow._verdict(Report, convergence, [])
    assert label == "consistent"
    assert "m_h = 5 (m_FF = 32)" in sentence and "warm starts" in sentence


def test_run_check_warm_starts_and_reports_a_budget_that_breaks_nesting(tmp_path):
    settings = dict(
        m_h=(1, 2),
        m_ff=(4,),
        n=4,
        ff_depth=1,
        seeds=1,
        samples=64,
        held_out=32,
        config=TrainingConfig(epochs=2, batch_size=32, finisher_steps=10),
        retrain=1,
        out=tmp_path,
        progress=False,
    )
    first = workflow.run_check("fig5b-rinf", **settings)
    # Any violation among the sweep's runs was warm-started away; one left
    # can only come from the longer convergence runs, and it means the
    # reported errors were not at their floor.
    longer = [run["loss"] for run in results.read(tmp_path / "convergence.json")["runs"]]
    for violation in first["convergence"]["nesting"]:
        assert violation["contained"]["loss"] in longer
        assert first["verdict"] == "not converged"
    # Record m_h = 2 far above m_h = 1, as if its random start had failed.
    stored = results.read(tmp_path / "results.json")
    low = min(run["loss"] for run in stored["runs"] if run["budget"]["m_h"] == 1)
    for run in stored["runs"]:
        if run["budget"]["m_h"] == 2:
            run["loss"] = 10 * low
    results.write(tmp_path / "results.json", stored["runs"], stored["metadata"])
    (tmp_path / "convergence.json").unlink()
    summary = workflow.run_check("fig5b-rinf", **{**settings, "retrain": 0})
    conv = summary["convergence"]
    assert [(v["m_h"], v["contained"]["m_h"]) for v in conv["nesting_before"]] == [(2, 1)]
    assert [(row["m_h"], row["source"]["m_h"]) for row in conv["warm_starts"]] == [(2, 1)]
    assert conv["nesting"] == []
    assert conv["warm_starts"][0]["loss"] <= low * (1 + 1e-4)
    point = [p for p in summary["check"]["points"] if p["m_h"] == 2][0]
    assert point["seeds"] == 2  # the random start and the warm start
    text = (tmp_path / "report.md").read_text()
    assert "warm-started from its weights" in text
    kept = results.read(tmp_path / "nesting.json")["runs"]
    assert conv["warm_starts"][0]["loss"] in [run["loss"] for run in kept]
    # Without a finisher a violation stays, and the report says why.
    assert "No warm starts" not in text
    unrepaired = {
        **summary,
        "training": {**summary["training"], "finisher_steps": 0},
        "convergence": {**conv, "warm_starts": [], "nesting": conv["nesting_before"]},
    }
    assert "need --finisher-steps" in workflow.render_report(unrepaired)
