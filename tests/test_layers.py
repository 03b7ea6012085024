"""Layers against NumPy references, shapes, configs and validation."""

import doctest
import itertools
import json

import keras
import numpy as np
import pytest

from tfapprox import layers
from tfapprox.layers import (
    FeedForward,
    PositionEncoding,
    SingleHeadAttention,
    fresh_initializer,
    sinusoidal_encoding,
)


def softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def attention_reference(x, wq, wk, wv, scale=1.0, keep=None):
    q, k, v = x @ wq, x @ wk, x @ wv
    logits = np.einsum("bth,bsh->bts", q, k) * scale
    scores = logits if keep is None else np.where(keep, logits, -np.inf)
    return softmax(scores) @ v, logits


def built_attention(rng, n=5, m_h=3, m_v=4, **kwargs):
    layer = SingleHeadAttention(key_dim=m_h, value_dim=m_v, **kwargs)
    layer.build((None, 6, n))
    weights = [rng.normal(size=w.shape).astype("float32") * 0.5 for w in layer.weights]
    layer.set_weights(weights)
    return layer, weights


# float32 matmuls and exponentials over O(10) terms: relative error ~1e-6.
RTOL, ATOL = 1e-5, 1e-5


def test_attention_matches_numpy_reference(rng):
    layer, (wq, wk, wv) = built_attention(rng)
    x = rng.normal(size=(2, 6, 5)).astype("float32")
    out, logits = layer(x, return_attention_logits=True)
    expected_out, expected_logits = attention_reference(x, wq, wk, wv)
    np.testing.assert_allclose(np.asarray(out), expected_out, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(np.asarray(logits), expected_logits, rtol=RTOL, atol=ATOL)


def test_attention_scale_divides_logits_by_sqrt_key_dim(rng):
    layer, (wq, wk, wv) = built_attention(rng, m_h=4, use_scale=True)
    x = rng.normal(size=(2, 6, 5)).astype("float32")
    out, logits = layer(x, return_attention_logits=True)
    expected_out, expected_logits = attention_reference(x, wq, wk, wv, scale=0.5)
    np.testing.assert_allclose(np.asarray(out), expected_out, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(np.asarray(logits), expected_logits, rtol=RTOL, atol=ATOL)


def test_causal_attention_ignores_future_tokens(rng):
    layer, (wq, wk, wv) = built_attention(rng, causal=True)
    x = rng.normal(size=(2, 6, 5)).astype("float32")
    keep = np.tril(np.ones((6, 6), dtype=bool))[None]
    expected, _ = attention_reference(x, wq, wk, wv, keep=keep)
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=RTOL, atol=ATOL)


def test_key_padding_mask_matches_reference(rng):
    layer, (wq, wk, wv) = built_attention(rng)
    x = rng.normal(size=(2, 6, 5)).astype("float32")
    mask = np.array([[1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]], dtype=bool)
    expected, _ = attention_reference(x, wq, wk, wv, keep=mask[:, None, :])
    np.testing.assert_allclose(np.asarray(layer(x, mask=mask)), expected, rtol=RTOL, atol=ATOL)


def test_attention_logits_have_rank_at_most_key_dim(rng):
    layer, _ = built_attention(rng, n=8, m_h=2)
    x = rng.normal(size=(1, 6, 8)).astype("float32")
    _, logits = layer(x, return_attention_logits=True)
    singular_values = np.linalg.svd(np.asarray(logits)[0], compute_uv=False)
    assert singular_values[1] > 1e-2 * singular_values[0]
    assert singular_values[2] < 1e-5 * singular_values[0]


def test_attention_without_position_encoding_is_permutation_equivariant(rng):
    layer, _ = built_attention(rng)
    x = rng.normal(size=(1, 6, 5)).astype("float32")
    perm = rng.permutation(6)
    np.testing.assert_allclose(
        np.asarray(layer(x[:, perm]))[0], np.asarray(layer(x))[0, perm], rtol=RTOL, atol=ATOL
    )


def test_attention_logits_work_inside_jit_compiled_model(rng):
    layer, (wq, wk, wv) = built_attention(rng)
    inputs = keras.Input((6, 5))
    out, logits = layer(inputs, return_attention_logits=True)
    model = keras.Model(inputs, [out, logits])
    model.compile(jit_compile=True)
    x = rng.normal(size=(3, 6, 5)).astype("float32")
    got_out, got_logits = model.predict(x, verbose=0)
    expected_out, expected_logits = attention_reference(x, wq, wk, wv)
    np.testing.assert_allclose(got_out, expected_out, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(got_logits, expected_logits, rtol=RTOL, atol=ATOL)


def test_attention_softmax_stays_float32_under_mixed_precision(rng):
    x = rng.normal(size=(2, 6, 5)).astype("float32") * 4.0
    reference, _ = built_attention(np.random.default_rng(1))
    layer = SingleHeadAttention(key_dim=3, value_dim=4, dtype="mixed_float16")
    layer.build((None, 6, 5))
    layer.set_weights(reference.get_weights())
    out = layer(x)
    assert keras.backend.standardize_dtype(out.dtype) == "float16"
    # float16 inputs and matmuls: ~1e-3 relative error per operation.
    np.testing.assert_allclose(
        np.asarray(out, dtype="float32"), np.asarray(reference(x)), rtol=2e-2, atol=2e-2
    )


def test_feedforward_matches_numpy_mlp(rng):
    layer = FeedForward(hidden_dim=7, output_dim=3, depth=2, activation="tanh")
    layer.build((None, 4, 2))
    weights = [rng.normal(size=w.shape).astype("float32") for w in layer.weights]
    layer.set_weights(weights)
    x = rng.normal(size=(3, 4, 2)).astype("float32")
    w1, b1, w2, b2, w3, b3 = weights
    expected = np.tanh(np.tanh(x @ w1 + b1) @ w2 + b2) @ w3 + b3
    np.testing.assert_allclose(np.asarray(layer(x)), expected, rtol=RTOL, atol=ATOL)


def _first_preactivations(layer, z):
    kernel, bias = (np.asarray(w, dtype=np.float64) for w in layer.hidden_layers[0].weights)
    return z @ kernel + bias  # (points, m_FF)


@pytest.mark.parametrize("low, high", [(0.0, 1.0), (1.0, 3.0), (-2.0, -1.0)])
def test_feedforward_kinks_bend_every_first_unit_inside_the_box(low, high):
    # Every unit's kink {w_jᵀz + b_j = 0} passes through a point of [low, high]²,
    # so its pre-activation changes sign over the box's corners.
    kinked = FeedForward(
        32, 2, depth=2, kink_initializer=keras.initializers.RandomUniform(low, high, seed=5)
    )
    kinked.build((None, 2))
    corners = np.array(list(itertools.product((low, high), repeat=2)))
    pre = _first_preactivations(kinked, corners)
    assert np.all(pre.min(axis=0) <= 1e-6) and np.all(pre.max(axis=0) >= -1e-6)
    # Only the first layer's biases are set; the others keep bias_initializer's zeros.
    assert all(not np.asarray(layer.bias).any() for layer in kinked.hidden_layers[1:])


def test_feedforward_zero_biases_start_linear_on_inputs_of_one_sign_and_kinks_do_not():
    # On u in [0, 1] a zero-bias ReLU network is linear in u (each relu(w u) is):
    # a straight line fits it; with kinks spread over [0, 1] none does.
    u = np.linspace(0.0, 1.0, 201)[:, None].astype("float32")
    line = np.stack([np.ones(201), u[:, 0]], axis=1)

    def off_line(net):
        out = np.asarray(net(u), dtype=np.float64)[:, 0]
        residual = out - line @ np.linalg.lstsq(line, out, rcond=None)[0]
        return np.abs(residual).max() / np.ptp(out)

    plain = FeedForward(16, 1, depth=1, kernel_initializer=keras.initializers.GlorotUniform(1))
    kinked = FeedForward(
        16,
        1,
        depth=1,
        kernel_initializer=keras.initializers.GlorotUniform(1),
        kink_initializer=keras.initializers.RandomUniform(0, 1, seed=2),
    )
    assert off_line(plain) < 1e-5
    assert off_line(kinked) > 1e-2
    # The kinks sit at c_j = −b_j / w_j, inside [0, 1].
    kernel, bias = (np.asarray(w) for w in kinked.hidden_layers[0].weights)
    assert np.all((-bias / kernel[0] >= 0) & (-bias / kernel[0] <= 1))


def test_learned_position_encoding_adds_embeddings_after_projection(rng):
    layer = PositionEncoding(5, mode="learned", projection_dim=3)
    layer.build((None, 5, 2))
    kernel, embeddings = [rng.normal(size=w.shape).astype("float32") for w in layer.weights]
    layer.set_weights([kernel, embeddings])
    x = rng.normal(size=(2, 5, 2)).astype("float32")
    np.testing.assert_allclose(
        np.asarray(layer(x)), x @ kernel + embeddings[None], rtol=RTOL, atol=ATOL
    )


def test_sinusoidal_position_encoding_is_fixed_and_matches_formula(rng):
    layer = PositionEncoding(6, mode="sinusoidal")
    x = rng.normal(size=(2, 6, 4)).astype("float32")
    out = np.asarray(layer(x))
    assert layer.trainable_weights == []
    t, i = 3, 2
    assert out[0, t, i] - x[0, t, i] == pytest.approx(np.sin(t / 10000 ** (i / 4)), abs=1e-6)
    np.testing.assert_allclose(
        out - x, np.broadcast_to(sinusoidal_encoding(6, 4), x.shape), atol=1e-6
    )


def test_no_position_encoding_is_identity(rng):
    x = rng.normal(size=(2, 6, 4)).astype("float32")
    np.testing.assert_array_equal(np.asarray(PositionEncoding(6, mode="none")(x)), x)


def test_position_encoding_rejects_longer_sequences():
    with pytest.raises(ValueError, match="Inputs have 7 positions but `sequence_length` is 6"):
        PositionEncoding(6)(np.zeros((1, 7, 2)))


LAYERS = [
    (lambda: PositionEncoding(6, mode="learned", projection_dim=3), (2, 6, 4)),
    (lambda: PositionEncoding(6, mode="sinusoidal"), (2, 6, 4)),
    (
        lambda: FeedForward(hidden_dim=8, output_dim=3, depth=2, output_activation="sigmoid"),
        (2, 6, 4),
    ),
    (
        lambda: FeedForward(
            hidden_dim=8, output_dim=3, kink_initializer=keras.initializers.RandomUniform(0, 1)
        ),
        (2, 6, 4),
    ),
    (lambda: SingleHeadAttention(key_dim=2, value_dim=3, causal=True), (2, 6, 4)),
    (lambda: SingleHeadAttention(key_dim=2), (2, 6, 4)),
]


@pytest.mark.parametrize("make_layer, shape", LAYERS)
def test_compute_output_shape_equals_real_shape(make_layer, shape):
    layer = make_layer()
    out = layer(np.zeros(shape, dtype="float32"))
    assert tuple(out.shape) == tuple(layer.compute_output_shape(shape))


@pytest.mark.parametrize("make_layer, shape", LAYERS)
def test_config_round_trip_rebuilds_identical_layer(make_layer, shape):
    layer = make_layer()
    layer.build(shape)
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert json.dumps(clone.get_config(), sort_keys=True) == json.dumps(config, sort_keys=True)
    clone.build(shape)
    clone.set_weights(layer.get_weights())
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    np.testing.assert_array_equal(np.asarray(clone(x)), np.asarray(layer(x)))


@pytest.mark.parametrize(
    "make, error, message",
    [
        (
            lambda: SingleHeadAttention(key_dim=0),
            ValueError,
            "`key_dim` must be a positive int. Received: key_dim=0",
        ),
        (lambda: SingleHeadAttention(key_dim=2, value_dim=-1), ValueError, "value_dim=-1"),
        (
            lambda: SingleHeadAttention(key_dim=2, use_scale="yes"),
            TypeError,
            "`use_scale` must be a bool",
        ),
        (lambda: SingleHeadAttention(key_dim=2.5), TypeError, "`key_dim` must be a positive int"),
        (lambda: FeedForward(hidden_dim=0, output_dim=2), ValueError, "hidden_dim=0"),
        (lambda: FeedForward(hidden_dim=4, output_dim=2, depth=0), ValueError, "depth=0"),
        (lambda: PositionEncoding(0), ValueError, "sequence_length=0"),
        (lambda: PositionEncoding(4, mode="rotary"), ValueError, "`mode` must be one of"),
    ],
)
def test_layers_reject_bad_arguments_naming_them(make, error, message):
    with pytest.raises(error, match=message.replace("(", "\\(")):
        make()


def assert_pairwise_different(weights):
    """No two of the named arrays are equal (each pair has the same shape)."""
    for (name_a, a), (name_b, b) in itertools.combinations(weights.items(), 2):
        assert a.shape == b.shape
        assert not np.array_equal(a, b), f"{name_a} == {name_b} at initialisation"


SEEDED = [None, keras.initializers.GlorotUniform(seed=3)]


@pytest.mark.parametrize("initializer", SEEDED, ids=["default", "seeded"])
def test_attention_kernels_start_independent(initializer):
    kwargs = {} if initializer is None else {"kernel_initializer": initializer}
    layer = SingleHeadAttention(key_dim=4, value_dim=4, **kwargs)  # W_Q, W_K, W_V all (4, 4)
    layer.build((None, 6, 4))
    assert_pairwise_different({w.name: w.numpy() for w in layer.weights})


@pytest.mark.parametrize("initializer", SEEDED, ids=["default", "seeded"])
def test_feedforward_hidden_kernels_start_independent(initializer):
    kwargs = {} if initializer is None else {"kernel_initializer": initializer}
    layer = FeedForward(hidden_dim=5, output_dim=2, depth=4, **kwargs)
    layer.build((None, 3, 5))  # input width 5: all four hidden kernels are (5, 5)
    kernels = {w.path: w.numpy() for w in layer.weights if w.name == "kernel"}
    assert len(kernels) == 5
    assert_pairwise_different({k: v for k, v in kernels.items() if v.shape == (5, 5)})


def test_feedforward_random_biases_start_independent():
    bias = keras.initializers.RandomNormal(seed=1)
    layer = FeedForward(hidden_dim=4, output_dim=4, depth=3, bias_initializer=bias)
    layer.build((None, 4))
    assert_pairwise_different({w.path: w.numpy() for w in layer.weights if w.name == "bias"})


def test_position_encoding_kernel_and_embeddings_start_independent():
    # d = tau = 6 and d' = 3: A and e are both (6, 3); one seeded initializer for both.
    same = keras.initializers.RandomUniform(-1.0, 1.0, seed=5)
    layer = PositionEncoding(
        6, projection_dim=3, embeddings_initializer=same, kernel_initializer=same
    )
    layer.build((None, 6, 6))
    assert_pairwise_different({w.name: w.numpy() for w in layer.weights})


SEEDED_LAYERS = [
    (lambda: SingleHeadAttention(4, kernel_initializer=keras.initializers.HeNormal(seed=2)), 4),
    (
        lambda: FeedForward(
            4, 3, depth=3, kernel_initializer=keras.initializers.GlorotUniform(seed=2)
        ),
        4,
    ),
    (
        lambda: PositionEncoding(
            6,
            projection_dim=4,
            embeddings_initializer=keras.initializers.RandomUniform(seed=2),
            kernel_initializer=keras.initializers.GlorotNormal(seed=3),
        ),
        2,
    ),
]


@pytest.mark.parametrize("make_layer, width", SEEDED_LAYERS)
def test_seeded_layer_built_twice_has_identical_weights(make_layer, width):
    first, second = make_layer(), make_layer()
    first.build((None, 6, width))
    second.build((None, 6, width))
    for a, b in zip(first.get_weights(), second.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_seeded_layer_from_config_has_identical_weights():
    layer = SingleHeadAttention(3, kernel_initializer=keras.initializers.GlorotUniform(seed=4))
    clone = SingleHeadAttention.from_config(layer.get_config())
    layer.build((None, 5, 3))
    clone.build((None, 5, 3))
    for a, b in zip(layer.get_weights(), clone.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_fresh_initializer_offsets_an_integer_seed_and_keeps_the_rest():
    base = keras.initializers.RandomNormal(mean=1.0, stddev=0.5, seed=10)
    clone = fresh_initializer(base, 3)
    assert type(clone) is keras.initializers.RandomNormal and clone is not base
    assert clone.get_config() == {**base.get_config(), "seed": 13}
    assert base.get_config()["seed"] == 10  # the layer's own (serialised) initializer is unchanged


def test_fresh_initializer_unseeded_clones_draw_different_values():
    base = keras.initializers.GlorotUniform()
    a, b = fresh_initializer(base)((4, 4)), fresh_initializer(base)((4, 4))
    assert not np.array_equal(np.asarray(a), np.asarray(b))


def test_fresh_initializer_shares_a_stateful_seed_generator():
    base = keras.initializers.GlorotUniform(seed=keras.random.SeedGenerator(0))
    assert fresh_initializer(base, 1) is base  # each draw advances the generator


def test_fresh_initializer_returns_plain_functions_unchanged():
    def ones(shape, dtype=None):
        return np.ones(shape, dtype="float32")

    assert fresh_initializer(ones, 2) is ones


def test_doctests_of_layers_pass():
    result = doctest.testmod(layers, verbose=False)
    assert result.attempted > 0 and result.failed == 0
