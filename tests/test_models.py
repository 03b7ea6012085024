"""build_transformer: exact parameter count, NumPy reference, read-outs of ρ̂."""

import numpy as np
import pytest

from tfapprox import Budget
from tfapprox.models import (
    attention_logits,
    budget_of,
    build_transformer,
    describe,
    query_key_features,
)

BUDGETS = [
    (Budget(n=4, m_h=1, m_ff=3), {}),
    (Budget(n=8, m_h=3, m_v=5, m_ff=16, ff_depth=1), {"output_dim": 3}),
    (Budget(n=6, m_h=6, m_v=2, m_ff=5, ff_depth=4), {"position_encoding": "none"}),
    (Budget(n=5, m_h=2, m_ff=7), {"position_encoding": "sinusoidal", "projection_dim": 4}),
    (Budget(n=3, m_h=9, m_v=1, m_ff=2, ff_depth=2), {"projection_dim": 2, "output_dim": 4}),
    (Budget(n=32, m_h=4, m_ff=128), {"output": "pooled", "output_dim": 10}),
]


@pytest.mark.parametrize("budget, options", BUDGETS)
def test_parameter_count_equals_count_params(budget, options):
    sequence_length, input_dim = 7, 3
    model = build_transformer(budget, sequence_length, input_dim, **options)
    count_options = {k: v for k, v in options.items() if k != "output"}
    assert model.count_params() == budget.parameter_count(
        sequence_length, input_dim, **count_options
    )


def numpy_forward(model, x):
    """Ĥ computed from the model's weights with NumPy alone."""
    relu = lambda z: np.maximum(z, 0.0)  # noqa: E731

    def feedforward(layer, h):
        weights = layer.get_weights()
        for kernel, bias in zip(weights[:-2:2], weights[1:-2:2]):
            h = relu(h @ kernel + bias)
        return h @ weights[-2] + weights[-1]

    (embeddings,) = model.get_layer("position_encoding").get_weights()
    h = feedforward(model.get_layer("f_hat"), x + embeddings[None])
    wq, wk, wv = model.get_layer("attention").get_weights()
    logits = np.einsum("btk,bsk->bts", h @ wq, h @ wk)
    weights = np.exp(logits - logits.max(-1, keepdims=True))
    weights /= weights.sum(-1, keepdims=True)
    return feedforward(model.get_layer("F_hat"), weights @ (h @ wv))


def test_transformer_matches_numpy_composition(rng):
    model = build_transformer(Budget(n=6, m_h=2, m_v=3, m_ff=8, ff_depth=2), 5, 2, output_dim=2)
    x = rng.uniform(size=(4, 5, 2)).astype("float32")
    # float32 through two 3-layer MLPs and a softmax: ~1e-6 relative.
    np.testing.assert_allclose(
        model.predict(x, verbose=0), numpy_forward(model, x), rtol=1e-4, atol=1e-5
    )


def test_same_shaped_weights_of_a_new_model_all_differ():
    import itertools

    import keras

    # m_h = n = m_v: W_Q, W_K, W_V and the n×n hidden kernels of f̂ and F̂ share shapes;
    # d = 1 and tau = 8 = n: the position embeddings (8, 1) and f̂'s first kernel (1, 8)
    # only transpose, so compare the embeddings with the first kernel's transpose too.
    for seed in (None, 7):
        if seed is not None:
            keras.utils.set_random_seed(seed)
        model = build_transformer(Budget(n=8, m_h=8, m_ff=8, ff_depth=3), 8, 1)
        weights = {w.path: w.numpy() for w in model.weights if w.name != "bias"}
        weights["f_hat/hidden_0/kernel.T"] = weights["f_hat/hidden_0/kernel"].T
        assert len(weights) == 13
        itself = {"f_hat/hidden_0/kernel", "f_hat/hidden_0/kernel.T"}
        for (a, x), (b, y) in itertools.combinations(weights.items(), 2):
            if x.shape == y.shape and {a, b} != itself:
                assert not np.array_equal(x, y), f"{a} == {b} at initialisation (seed {seed})"


def test_models_built_after_the_same_global_seed_are_identical():
    import keras

    budget = Budget(n=6, m_h=2, m_ff=8)
    keras.utils.set_random_seed(3)
    first = build_transformer(budget, 5, 1).get_weights()
    keras.utils.set_random_seed(3)
    second = build_transformer(budget, 5, 1).get_weights()
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)


def test_pooled_output_is_time_average_of_sequence_output(rng):
    budget = Budget(n=4, m_h=2, m_ff=8)
    sequence = build_transformer(budget, 5, 2, output_dim=3)
    pooled = build_transformer(budget, 5, 2, output_dim=3, output="pooled")
    pooled.set_weights(sequence.get_weights())
    x = rng.uniform(size=(3, 5, 2)).astype("float32")
    np.testing.assert_allclose(
        pooled.predict(x, verbose=0),
        sequence.predict(x, verbose=0).mean(axis=1),
        rtol=1e-5,
        atol=1e-6,
    )


def test_budget_of_and_describe_recover_the_build_arguments():
    budget = Budget(n=6, m_h=2, m_v=3, m_ff=8, ff_depth=2)
    model = build_transformer(
        budget, 5, 2, output_dim=4, output="pooled", position_encoding="sinusoidal"
    )
    assert budget_of(model) == budget
    summary = describe(model)
    assert summary == {
        "budget": budget.to_dict(),
        "sequence_length": 5,
        "input_dim": 2,
        "output_dim": 4,
        "output": "pooled",
        "position_encoding": "sinusoidal",
        "projection_dim": None,
        "parameter_count": budget.parameter_count(5, 2, 4, position_encoding="sinusoidal"),
    }


def test_attention_logits_equal_query_key_products_and_have_rank_m_h(rng):
    model = build_transformer(Budget(n=8, m_h=2, m_ff=8), 6, 1)
    x = rng.uniform(size=(5, 6, 1)).astype("float32")
    logits = attention_logits(model, x, batch_size=2)
    q, k = query_key_features(model, x, batch_size=3)
    assert logits.shape == (5, 6, 6) and q.shape == k.shape == (5, 6, 2)
    np.testing.assert_allclose(logits, np.einsum("bth,bsh->bts", q, k), rtol=1e-4, atol=1e-5)
    singular_values = np.linalg.svd(logits, compute_uv=False)  # (5, 6)
    assert np.all(singular_values[:, 2:] < 1e-4 * singular_values[:, :1])


def test_readouts_reject_inputs_of_the_wrong_shape():
    model = build_transformer(Budget(n=4, m_h=2, m_ff=4), 6, 1)
    with pytest.raises(ValueError, match=r"`x` must have shape \(N, 6, 1\)"):
        attention_logits(model, np.zeros((2, 6, 3)))


def test_readouts_reject_models_without_the_named_parts():
    import keras

    inputs = keras.Input((4, 1))
    other = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    with pytest.raises(ValueError, match="not a tfapprox Transformer"):
        budget_of(other)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"budget": {"n": 4}}, TypeError, "`budget` must be a tfapprox.Budget"),
        ({"output": "last"}, ValueError, "`output` must be one of"),
        ({"sequence_length": 0}, ValueError, "sequence_length=0"),
        ({"position_encoding": "rotary"}, ValueError, "`mode` must be one of"),
        ({"kink_range": (1.0, 0.0)}, ValueError, "`kink_range` must be \\(low, high\\)"),
        ({"kink_range": (0.0, float("inf"))}, ValueError, "`kink_range` must be"),
        ({"kink_range": "01"}, ValueError, "`kink_range` must be"),
        ({"kink_range": (0, 1, 2)}, ValueError, "`kink_range` must be"),
        (
            {"kink_range": (0, 1), "embedding": "linear"},
            ValueError,
            "a linear embedding has none",
        ),
    ],
)
def test_build_transformer_rejects_bad_arguments(kwargs, error, message):
    arguments = {"budget": Budget(n=4, m_h=2, m_ff=4), "sequence_length": 4, "input_dim": 1}
    arguments.update(kwargs)
    with pytest.raises(error, match=message):
        build_transformer(**arguments)


def test_a_seeded_model_has_the_same_weights_whatever_the_global_random_state():
    import random

    budget = Budget(n=8, m_h=4, m_ff=16)
    first = build_transformer(budget, 6, 1, seed=3).get_weights()
    random.random()  # another thread drawing from Python's generator, say
    np.random.rand()
    second = build_transformer(budget, 6, 1, seed=3).get_weights()
    other = build_transformer(budget, 6, 1, seed=4).get_weights()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert any(not np.array_equal(a, b) for a, b in zip(first, other) if a.any())


def test_kink_range_sets_only_f_hats_first_biases_from_the_seed():
    budget = Budget(n=8, m_h=2, m_ff=16)
    options = dict(position_encoding="none", seed=3)
    plain = build_transformer(budget, 6, 1, **options)
    kinked = build_transformer(budget, 6, 1, kink_range=(0.25, 0.75), **options)
    again = build_transformer(budget, 6, 1, kink_range=(0.25, 0.75), **options)
    first_bias = kinked.get_layer("f_hat").hidden_layers[0].bias.path
    for variable, a, b in zip(kinked.weights, plain.get_weights(), again.get_weights()):
        np.testing.assert_array_equal(variable.numpy(), b)  # the seed alone decides
        if variable.path == first_bias:
            kernel = kinked.get_layer("f_hat").hidden_layers[0].kernel.numpy()[0]
            kinks = -variable.numpy() / kernel
            assert np.all((kinks >= 0.25) & (kinks <= 0.75))
        else:
            np.testing.assert_array_equal(variable.numpy(), a)


def test_a_seeded_model_still_has_independent_weights():
    model = build_transformer(Budget(n=8, m_h=8, m_ff=16), 6, 1, seed=0)
    kernels = [w.numpy() for w in model.weights if "kernel" in w.path or "embeddings" in w.path]
    for i, a in enumerate(kernels):
        for b in kernels[i + 1 :]:
            if a.shape == b.shape:
                assert not np.array_equal(a, b)


# Paper B (Wang & E 2024): layers, heads, residual blocks, RPE, DP-free.

PAPER_B_GRID = [
    dict(num_heads=h, num_layers=layers, residual=r, rpe=rpe, use_dot_product=dp)
    for h in (1, 2)
    for layers in (1, 2)
    for r in (False, True)
    for rpe in ("none", "linear", "log", "t5")
    for dp in (True, False)
]


def test_paper_b_parameter_count_equals_count_params_on_a_grid():
    import itertools

    sequence_length, input_dim = 5, 2
    options = itertools.cycle(
        [
            dict(embedding="linear", position_encoding="none", num_buckets=6),
            dict(embedding="ffn", projection_dim=3, output_dim=2),
            dict(embedding="linear", position_encoding="sinusoidal"),
        ]
    )
    for point, extra in zip(PAPER_B_GRID, options):
        layers, heads = point.pop("num_layers"), point.pop("num_heads")
        budget = Budget(n=4, m_h=2, m_v=3, m_ff=5, ff_depth=2, num_heads=heads, num_layers=layers)
        build = {**point, **extra}
        if point["rpe"] == "t5":
            build["max_distance"] = 40
        model = build_transformer(budget, sequence_length, input_dim, **build)
        build.pop("max_distance", None)
        assert model.count_params() == budget.parameter_count(
            sequence_length, input_dim, **build
        ), (budget, build)


def test_one_layer_one_head_without_residual_or_rpe_is_the_paper_a_model(rng):
    budget = Budget(n=6, m_h=2, m_v=3, m_ff=8, ff_depth=2)
    today = build_transformer(budget, 5, 2, output_dim=2, seed=0)
    explicit = build_transformer(
        budget,
        5,
        2,
        output_dim=2,
        seed=1,
        num_layers=1,
        num_heads=1,
        residual=False,
        rpe="none",
        use_dot_product=True,
    )
    explicit.set_weights(today.get_weights())
    x = rng.uniform(size=(4, 5, 2)).astype("float32")
    np.testing.assert_array_equal(explicit.predict(x, verbose=0), today.predict(x, verbose=0))
    np.testing.assert_allclose(
        explicit.predict(x, verbose=0), numpy_forward(today, x), rtol=1e-4, atol=1e-5
    )


def paper_b_model(seed=0, **options):
    budget = Budget(n=6, m_h=2, m_v=3, m_ff=8, ff_depth=1, num_heads=2, num_layers=3)
    settings = dict(
        residual=True, rpe="log", embedding="linear", position_encoding="none", causal=True
    )
    settings.update(options)
    return budget, build_transformer(budget, 5, 2, output_dim=2, seed=seed, **settings)


def test_paper_b_model_is_residual_blocks_without_layer_norm(rng):
    _, model = paper_b_model()
    x = rng.uniform(size=(3, 5, 2)).astype("float32")
    w_e, b_e = model.get_layer("embedding").get_weights()
    h = x @ w_e + b_e  # W_E x + b_E
    for layer in (1, 2, 3):
        h = h + np.asarray(model.get_layer(f"attention_{layer}")(h))
        if layer < 3:
            h = h + np.asarray(model.get_layer(f"ffn_{layer}")(h))
    expected = np.asarray(model.get_layer("F_hat")(h))  # readout, no residual
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)


def test_paper_b_model_without_residual_feeds_heads_to_the_next_network(rng):
    budget, model = paper_b_model(residual=False, rpe="linear")
    assert model.get_layer("attention_1").output.shape[-1] == budget.num_heads * budget.m_v
    x = rng.uniform(size=(3, 5, 2)).astype("float32")
    w_e, b_e = model.get_layer("embedding").get_weights()
    h = x @ w_e + b_e
    for layer in (1, 2, 3):
        h = np.asarray(model.get_layer(f"attention_{layer}")(h))
        if layer < 3:
            h = np.asarray(model.get_layer(f"ffn_{layer}")(h))
    expected = np.asarray(model.get_layer("F_hat")(h))
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-5, atol=1e-5)


def test_seeded_paper_b_model_depends_on_the_seed_alone():
    first = paper_b_model(seed=3)[1].get_weights()
    second = paper_b_model(seed=3)[1].get_weights()
    other = paper_b_model(seed=4)[1].get_weights()
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    assert all(not np.array_equal(a, b) for a, b in zip(first, other) if a.any())
    # Layers start independent: the value kernels of the three attention layers differ.
    model = paper_b_model(seed=3)[1]
    values = [model.get_layer(f"attention_{i}").value_kernel.numpy() for i in (1, 2, 3)]
    assert not np.array_equal(values[0], values[1]) and not np.array_equal(values[1], values[2])


def test_attention_logits_of_paper_b_model_are_per_layer_and_head(rng):
    _, model = paper_b_model(use_dot_product=True)
    x = rng.uniform(size=(4, 5, 2)).astype("float32")
    logits = attention_logits(model, x, batch_size=3)
    assert logits.shape == (4, 3, 2, 5, 5)
    w_e, b_e = model.get_layer("embedding").get_weights()
    _, first = model.get_layer("attention_1")(x @ w_e + b_e, return_attention_logits=True)
    np.testing.assert_allclose(logits[:, 0], np.asarray(first), rtol=1e-5, atol=1e-5)
    assert not np.allclose(logits[:, 1], logits[:, 0])


def test_budget_of_and_describe_recover_paper_b_build_arguments():
    budget, model = paper_b_model(rpe="t5", num_buckets=8, max_distance=12)
    assert budget_of(model) == budget
    summary = describe(model)
    assert summary["budget"] == budget.to_dict()
    assert summary["architecture"] == {
        "residual": True,
        "rpe": "t5",
        "use_dot_product": True,
        "embedding": "linear",
        "causal": True,
        "num_buckets": 8,
        "max_distance": 12,
    }
    assert summary["parameter_count"] == budget.parameter_count(
        5, 2, 2, "none", residual=True, rpe="t5", embedding="linear", num_buckets=8
    )


def test_query_key_features_refuse_multi_layer_models():
    _, model = paper_b_model()
    with pytest.raises(ValueError, match="paper A's one-layer, one-head model"):
        query_key_features(model, np.zeros((1, 5, 2)))


def test_build_transformer_rejects_scale_outside_paper_a_attention():
    with pytest.raises(ValueError, match="use_scale=True"):
        build_transformer(Budget(n=4, m_h=2, m_ff=4), 4, 1, use_scale=True, rpe="linear")


def test_readout_width_count_equals_count_params_on_a_grid():
    # Paper B's experiments size the readout apart from the blocks' FFNs.
    for layers, heads, m_readout, dp, embedding in [
        (1, 1, 3, True, "ffn"),
        (1, 2, 11, False, "linear"),
        (2, 3, 1, True, "linear"),
        (3, 2, 7, False, "ffn"),
        (2, 1, 4, True, "ffn"),
    ]:
        budget = Budget(
            n=4,
            m_h=2,
            m_v=3,
            m_ff=5,
            ff_depth=1,
            num_heads=heads,
            num_layers=layers,
            m_readout=m_readout,
        )
        build = dict(
            residual=layers > 1,
            rpe="log" if heads > 1 else "none",
            use_dot_product=dp,
            embedding=embedding,
            position_encoding="none",
        )
        model = build_transformer(budget, 5, 2, output_dim=3, **build)
        assert model.get_layer("F_hat").hidden_dim == m_readout
        assert model.count_params() == budget.parameter_count(5, 2, 3, **build), (budget, build)
        # The readout's width is read back; m_ff too when another FFN shows it.
        recovered = budget_of(model)
        assert recovered.readout_width == m_readout
        if layers > 1 or embedding == "ffn":
            assert recovered == budget


def test_budget_of_reads_the_readout_width_of_paper_a_models_as_m_ff():
    budget = Budget(n=6, m_h=2, m_ff=8, ff_depth=2)
    recovered = budget_of(build_transformer(budget, 4, 1))
    assert recovered == budget and recovered.m_readout is None
    assert "m_readout" not in describe(build_transformer(budget, 4, 1))["budget"]
