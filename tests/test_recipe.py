"""analysis/recipe.py: the JAX ensemble is build_transformer's model, trained per member."""

import numpy as np
import pytest

jax = pytest.importorskip("jax")


@pytest.mark.parametrize("position_encoding", ["learned", "none"])
def test_jax_model_matches_build_transformer(position_encoding):
    from analysis import recipe

    # Same weights, float32 on both sides: round-off only.
    assert recipe.check_against_keras(3, position_encoding) <= 1e-5


def test_jax_target_matches_target_call():
    from analysis import recipe

    target = recipe.load_target("fig5b-rinf")
    data = target.sample(16, seed=3)
    ours = np.asarray(recipe.target_fn(target)(jax.numpy.asarray(data.x)))
    # float32 evaluation against float64 evaluation stored as float32.
    np.testing.assert_allclose(ours, data.y, atol=1e-5)


def test_truncation_error_vanishes_at_the_rank():
    from analysis import recipe

    table = recipe.truncation_errors(recipe.load_target("fig5b-r2"), (1, 2, 3), n_eval=256)
    assert table[1]["mse"] > 1e-4 and table[1]["paper"] > 0.1
    assert table[2] == table[3] == {"mse": 0.0, "paper": 0.0}


def test_masked_query_key_columns_stay_zero_and_members_learn_separately():
    from analysis import recipe

    target = recipe.load_target("fig5b-r2")
    ens = recipe.Ensemble(
        target, (1, 3), recipe={"batch": 8, "steps": 20, "warmup": 2, "bias_init": "kinks"}
    )
    before = jax.tree.map(np.asarray, ens.params)
    ens.train(chunk=10)
    after = jax.tree.map(np.asarray, ens.params)
    # Member 0 has m_h = 1: columns 1 and 2 of W_Q and W_K are padding.
    assert np.all(after["wq"][0, :, 1:] == 0) and np.all(after["wk"][0, :, 1:] == 0)
    assert not np.allclose(after["wq"][1], before["wq"][1])
    # Two members, two different initialisations.
    assert not np.allclose(before["f"][1]["w"][0], before["f"][1]["w"][1])
    errors = ens.evaluate(target.sample(32, seed=1))
    assert len(errors) == 2 and all(np.isfinite(e["mse"]) for e in errors)
