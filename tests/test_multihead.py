"""MultiHeadAttention (Wang & E 2024) against NumPy references and closed forms."""

import itertools
import json
import math

import keras
import numpy as np
import pytest

from tfapprox import layers as layers_module
from tfapprox.export import export_saved_model, load_model, save_model
from tfapprox.layers import (
    CAUSAL_BLOCK,
    MultiHeadAttention,
    SingleHeadAttention,
    causal_blocks,
    t5_relative_position_bucket,
)

# float32 matmuls and exponentials over O(10) terms: relative error ~1e-6.
RTOL, ATOL = 1e-5, 1e-5
TAU, N = 6, 5


def t5_bucket_reference(relative_position, bidirectional=True, num_buckets=32, max_distance=128):
    """NumPy port of T5's relative_position_bucket (Hugging Face's transformers)."""
    relative_position = np.asarray(relative_position)
    buckets = np.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets += (relative_position > 0).astype(relative_position.dtype) * num_buckets
        relative_position = np.abs(relative_position)
    else:
        relative_position = -np.minimum(relative_position, 0)
    max_exact = num_buckets // 2
    is_small = relative_position < max_exact
    with np.errstate(divide="ignore"):
        large = max_exact + (
            np.log(relative_position.astype(np.float64) / max_exact)
            / math.log(max_distance / max_exact)
            * (num_buckets - max_exact)
        )
    large = np.minimum(np.where(is_small, 0, large).astype(np.int64), num_buckets - 1)
    return buckets + np.where(is_small, relative_position, large)


def softplus(z):
    return np.log1p(np.exp(z))


def mha_reference(
    x, weights, *, rpe, causal, dp, num_buckets=8, max_distance=16, mask=None, scale=1.0
):
    """Attn(X)_t = W_O Σ_h Σ_s softmax_s(⟨q, k⟩ + p_h φ(t − s)) v_s, with masks; rows
    with no admissible key give 0. ``mask``: (batch, tau) over the keys or
    (batch, tau, tau), True to attend. Returns (output, logits)."""
    weights = list(weights)
    wq = weights.pop(0) if dp else None
    wk = weights.pop(0) if dp else None
    wv, wo = weights.pop(0), weights.pop(0)
    batch, tau, _ = x.shape
    heads = wv.shape[1]
    v = np.einsum("btn,nhv->bthv", x, wv)
    logits = np.zeros((batch, heads, tau, tau))
    if dp:
        q, k = np.einsum("btn,nhk->bthk", x, wq), np.einsum("btn,nhk->bthk", x, wk)
        logits += scale * np.einsum("bthk,bshk->bhts", q, k)
    t, s = np.arange(tau)[:, None], np.arange(tau)[None, :]
    z = np.abs(t - s)
    keep = np.ones((tau, tau), dtype=bool)
    if causal:
        keep &= s <= t
    if rpe == "linear":
        logits += softplus(weights[0])[:, None, None] * -z
    elif rpe == "log":
        logits += softplus(weights[0])[:, None, None] * -np.log(np.maximum(z, 1))
        keep &= z >= 1
    elif rpe == "t5":
        buckets = t5_bucket_reference(s - t, not causal, num_buckets, max_distance)
        logits += np.moveaxis(weights[0][buckets], -1, 0)
    keep = np.broadcast_to(keep, (batch, 1, tau, tau))
    if mask is not None:
        mask = np.asarray(mask, bool)
        keep = keep & (mask[:, None, None, :] if mask.ndim == 2 else mask[:, None])
    scores = np.where(keep, logits, -np.inf)
    peak = scores.max(axis=-1, keepdims=True)
    e = np.where(keep, np.exp(scores - np.where(np.isfinite(peak), peak, 0)), 0.0)
    total = e.sum(axis=-1, keepdims=True)
    attention = np.divide(e, total, out=np.zeros_like(e), where=total > 0)
    heads_out = np.einsum("bhts,bshv->bthv", attention, v)
    return np.einsum("bthv,hvo->bto", heads_out, wo), logits


def built_layer(
    rng, *, rpe="none", causal=False, dp=True, heads=3, key_dim=2, value_dim=4, tau=TAU, **kwargs
):
    """A layer built for (tau, N) inputs with random weights; returns (layer, weights)."""
    layer = MultiHeadAttention(
        num_heads=heads,
        key_dim=key_dim if dp else None,
        value_dim=value_dim,
        output_dim=3,
        causal=causal,
        use_dot_product=dp,
        relative_position=rpe,
        num_buckets=8,
        max_distance=16,
        **kwargs,
    )
    layer.build((None, tau, N))
    weights = [rng.normal(size=w.shape).astype("float32") * 0.5 for w in layer.weights]
    layer.set_weights(weights)
    return layer, weights


@pytest.mark.parametrize(
    "rpe, causal, dp",
    list(itertools.product(("none", "linear", "log", "t5"), (False, True), (True, False))),
)
def test_multihead_matches_numpy_reference(rng, rpe, causal, dp):
    layer, weights = built_layer(rng, rpe=rpe, causal=causal, dp=dp)
    x = rng.normal(size=(2, TAU, N)).astype("float32")
    out, logits = layer(x, return_attention_logits=True)
    expected_out, expected_logits = mha_reference(x, weights, rpe=rpe, causal=causal, dp=dp)
    np.testing.assert_allclose(np.asarray(out), expected_out, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(np.asarray(logits), expected_logits, rtol=RTOL, atol=ATOL)


def one_hot_weights(rpe, p, causal=True):
    """Row t of the attention matrix of a one-head DP-free layer: x_s = e_s, W_V = W_O = I."""
    layer = MultiHeadAttention(
        num_heads=1, use_dot_product=False, relative_position=rpe, causal=causal
    )
    layer.build((None, TAU, TAU))
    eye = np.eye(TAU, dtype="float32")
    raw = np.log(np.expm1(p))  # softplus(raw) = p
    layer.set_weights([eye[:, None, :], eye[None], np.array([raw], dtype="float32")])
    return np.asarray(layer(eye[None]))[0]  # (tau, tau): row t holds the weights w_ts


def test_dp_free_linear_rpe_weights_are_geometric():
    p = 0.7
    got = one_hot_weights("linear", p)
    for t in range(TAU):
        lags = t - np.arange(t + 1)
        expected = np.exp(-p * lags) / np.exp(-p * lags).sum()
        np.testing.assert_allclose(got[t, : t + 1], expected, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(got[t, t + 1 :], 0.0, atol=ATOL)


def test_dp_free_log_rpe_weights_are_a_power_law_without_the_current_token():
    p = 1.3
    got = one_hot_weights("log", p)
    # The first token has no admissible key (z = 0 is excluded): output 0.
    np.testing.assert_array_equal(got[0], 0.0)
    for t in range(1, TAU):
        lags = t - np.arange(t)  # z = t − s ≥ 1
        expected = lags ** (-p) / (lags ** (-p)).sum()
        np.testing.assert_allclose(got[t, :t], expected, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(got[t, t:], 0.0, atol=ATOL)


def test_non_causal_linear_rpe_uses_the_distance_both_ways():
    p = 0.4
    got = one_hot_weights("linear", p, causal=False)
    z = np.abs(np.arange(TAU)[:, None] - np.arange(TAU)[None, :])
    expected = np.exp(-p * z) / np.exp(-p * z).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(got, expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("bidirectional", [True, False])
@pytest.mark.parametrize("num_buckets, max_distance", [(32, 128), (8, 16), (10, 40)])
def test_t5_buckets_match_numpy_port_of_t5(bidirectional, num_buckets, max_distance):
    relative = np.arange(-300, 301)
    got = t5_relative_position_bucket(relative, bidirectional, num_buckets, max_distance)
    expected = t5_bucket_reference(relative, bidirectional, num_buckets, max_distance)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(got), expected)
    assert expected.min() == 0 and expected.max() == num_buckets - 1


def test_position_scales_stay_positive():
    layer = MultiHeadAttention(num_heads=3, key_dim=2, relative_position="log")
    layer.build((None, TAU, N))
    layer.set_weights([*layer.get_weights()[:-1], np.array([-30.0, 0.0, 5.0], dtype="float32")])
    scales = np.asarray(layer.position_scales)
    assert np.all(scales > 0)
    np.testing.assert_allclose(scales, softplus(np.array([-30.0, 0.0, 5.0])), rtol=1e-6)


def test_one_head_without_projection_equals_single_head_attention(rng):
    single = SingleHeadAttention(key_dim=2, value_dim=4)
    single.build((None, TAU, N))
    multi = MultiHeadAttention(num_heads=1, key_dim=2, value_dim=4, output_projection=False)
    multi.build((None, TAU, N))
    multi.set_weights([w[:, None, :] for w in single.get_weights()])
    x = rng.normal(size=(2, TAU, N)).astype("float32")
    np.testing.assert_allclose(np.asarray(multi(x)), np.asarray(single(x)), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("tau", [1, 31, 32, 33, 64, 70])
@pytest.mark.parametrize("block", [1, 5, 32])
def test_causal_blocks_tile_the_queries_and_reach_the_diagonal(tau, block):
    blocks = causal_blocks(tau, block)
    stops = [tau if stop is None else stop for _, stop, _ in blocks]
    assert [start for start, _, _ in blocks] == [0, *stops[:-1]]  # contiguous from 0
    assert stops[-1] == tau
    assert all(keys == stop for _, stop, keys in blocks)  # every key s <= t of the block
    assert all(stop - start <= block for (start, _, _), stop in zip(blocks, stops))


LONG_TAU = 2 * CAUSAL_BLOCK + 6  # three query blocks, the last one short


@pytest.mark.parametrize("rpe", ["none", "linear", "log", "t5"])
@pytest.mark.parametrize("mask_kind", [None, "keys", "pairs"])
@pytest.mark.parametrize("value_dim", [3, 2])  # the backend's kernel (m_v = m_h), einsums
def test_block_causal_attention_matches_numpy_reference(rng, rpe, mask_kind, value_dim):
    """Past one block of queries, causal attention skips the key blocks above the diagonal."""
    layer, weights = built_layer(
        rng, rpe=rpe, causal=True, heads=2, key_dim=3, value_dim=value_dim, tau=LONG_TAU
    )
    x = rng.normal(size=(2, LONG_TAU, N)).astype("float32")
    mask = None
    if mask_kind == "keys":
        mask = rng.random((2, LONG_TAU)) > 0.3
        mask[0, :40] = False  # queries of the first two blocks with no key at all
    elif mask_kind == "pairs":
        mask = rng.random((2, LONG_TAU, LONG_TAU)) > 0.3
    out, logits = layer(x, mask=mask, return_attention_logits=True)
    expected_out, expected_logits = mha_reference(
        x, weights, rpe=rpe, causal=True, dp=True, mask=mask
    )
    np.testing.assert_allclose(np.asarray(out), expected_out, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(logits), expected_logits, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("causal, tau", [(False, TAU), (True, LONG_TAU)])
@pytest.mark.parametrize("value_dim", [3, 2])
def test_use_scale_divides_the_dot_product_by_sqrt_key_dim(rng, causal, tau, value_dim):
    layer, weights = built_layer(
        rng, rpe="linear", causal=causal, key_dim=3, value_dim=value_dim, tau=tau, use_scale=True
    )
    x = rng.normal(size=(2, tau, N)).astype("float32")
    out, logits = layer(x, return_attention_logits=True)
    expected_out, expected_logits = mha_reference(
        x, weights, rpe="linear", causal=causal, dp=True, scale=1 / math.sqrt(3)
    )
    np.testing.assert_allclose(np.asarray(out), expected_out, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(logits), expected_logits, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("value_dim", [3, 2])
def test_block_causal_training_equals_one_block(rng, monkeypatch, value_dim):
    """The same train steps with blocks of CAUSAL_BLOCK rows and with one block give the same weights."""
    x = rng.normal(size=(8, LONG_TAU, N)).astype("float32")
    y = rng.normal(size=(8, LONG_TAU, N)).astype("float32")
    trained = []
    for block in (CAUSAL_BLOCK, LONG_TAU):
        monkeypatch.setattr(layers_module, "CAUSAL_BLOCK", block)
        keras.utils.set_random_seed(0)
        inputs = keras.Input((LONG_TAU, N))
        layer = MultiHeadAttention(
            2, 3, value_dim, output_dim=N, causal=True, relative_position="linear"
        )
        model = keras.Model(inputs, layer(inputs))
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", jit_compile=True)
        model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
        trained.append(model.get_weights())
    for blocked, whole in zip(*trained):
        np.testing.assert_allclose(blocked, whole, rtol=1e-4, atol=1e-6)


def test_logits_work_inside_jit_compiled_model(rng):
    layer, weights = built_layer(rng, rpe="log", causal=True)
    inputs = keras.Input((TAU, N))
    out, logits = layer(inputs, return_attention_logits=True)
    model = keras.Model(inputs, [out, logits])
    model.compile(jit_compile=True)
    x = rng.normal(size=(3, TAU, N)).astype("float32")
    got_out, got_logits = model.predict(x, verbose=0)
    expected_out, expected_logits = mha_reference(x, weights, rpe="log", causal=True, dp=True)
    assert got_logits.shape == (3, 3, TAU, TAU)
    np.testing.assert_allclose(got_out, expected_out, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(got_logits, expected_logits, rtol=RTOL, atol=ATOL)


def test_key_padding_mask_matches_reference(rng):
    layer, weights = built_layer(rng, rpe="linear")
    x = rng.normal(size=(2, TAU, N)).astype("float32")
    mask = np.ones((2, TAU), dtype=bool)
    mask[0, 4:] = False
    got = np.asarray(layer(x, mask=mask))
    # Masked keys: the reference on the first sequence cut to its first 4 keys
    # is not the same (queries 4, 5 remain); compare by zeroing their weight.
    expected, _ = mha_reference(x, weights, rpe="linear", causal=False, dp=True)
    np.testing.assert_allclose(got[1], expected[1], rtol=RTOL, atol=ATOL)
    short, _ = mha_reference(x[:1, :4], weights, rpe="linear", causal=False, dp=True)
    np.testing.assert_allclose(got[0, :4], short[0], rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(num_heads=2, key_dim=3),
        dict(num_heads=2, key_dim=3, value_dim=2, output_projection=False, causal=True),
        dict(num_heads=3, use_dot_product=False, relative_position="log", output_dim=7),
        dict(num_heads=2, key_dim=1, relative_position="t5", num_buckets=8, max_distance=16),
        dict(num_heads=2, key_dim=3, use_scale=True, causal=True),
    ],
)
def test_output_shape_and_config_round_trip(rng, kwargs):
    layer = MultiHeadAttention(**kwargs)
    x = rng.normal(size=(2, TAU, N)).astype("float32")
    out = layer(x)
    assert tuple(out.shape) == layer.compute_output_shape(x.shape)
    clone = MultiHeadAttention.from_config(layer.get_config())
    assert json.dumps(clone.get_config(), sort_keys=True) == json.dumps(
        layer.get_config(), sort_keys=True
    )
    clone.build(x.shape)
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(np.asarray(clone(x)), np.asarray(out))


def test_weights_start_independent():
    layer = MultiHeadAttention(num_heads=2, key_dim=3, value_dim=3, relative_position="linear")
    layer.build((None, TAU, 3))
    q, k, v, o, p = [np.asarray(w) for w in layer.weights]
    assert not np.allclose(q, k) and not np.allclose(k, v)
    assert not np.allclose(q[:, 0], q[:, 1])  # heads differ
    assert p[0] != p[1]


def test_keras_file_and_saved_model_round_trips(rng, tmp_path):
    import tensorflow as tf

    inputs = keras.Input((TAU, N))
    hidden = MultiHeadAttention(
        num_heads=2, key_dim=2, causal=True, relative_position="t5", num_buckets=8, max_distance=16
    )(inputs)
    outputs = MultiHeadAttention(num_heads=2, use_dot_product=False, relative_position="log")(
        hidden
    )
    model = keras.Model(inputs, outputs)
    x = rng.normal(size=(3, TAU, N)).astype("float32")
    expected = model.predict(x, verbose=0)
    loaded = load_model(save_model(model, tmp_path / "m.keras"))
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), expected)
    served = tf.saved_model.load(export_saved_model(model, tmp_path / "saved"))
    np.testing.assert_allclose(np.asarray(served.serve(x)), expected, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(num_heads=0, key_dim=2), ValueError, "num_heads=0"),
        (dict(num_heads=2), TypeError, "key_dim=None"),
        (
            dict(num_heads=2, key_dim=2, relative_position="alibi"),
            ValueError,
            "relative_position='alibi'",
        ),
        (
            dict(num_heads=2, key_dim=2, output_dim=4, output_projection=False),
            ValueError,
            "output_dim=4",
        ),
        (
            dict(num_heads=2, key_dim=2, relative_position="t5", num_buckets=32, max_distance=8),
            ValueError,
            "max_distance=8",
        ),
        (
            dict(num_heads=2, key_dim=2, relative_position="t5", num_buckets=3),
            ValueError,
            "num_buckets=3",
        ),
        (dict(num_heads=2, key_dim=2, use_dot_product=1), TypeError, "use_dot_product=1"),
        (dict(num_heads=2, use_dot_product=False, use_scale=True), ValueError, "use_scale=True"),
        (dict(num_heads=2, key_dim=2, use_scale="yes"), TypeError, "use_scale='yes'"),
    ],
)
def test_multihead_rejects_bad_arguments_naming_them(kwargs, error, message):
    with pytest.raises(error, match=message):
        MultiHeadAttention(**kwargs)


def test_t5_with_the_fewest_buckets_builds_and_runs():
    # Non-causal: 4 buckets = one exact and one logarithmic bucket per side.
    for causal, buckets in ((False, 4), (True, 2)):
        layer = MultiHeadAttention(
            num_heads=1, key_dim=2, relative_position="t5", num_buckets=buckets, causal=causal
        )
        out = layer(np.ones((1, 5, 3), "float32"))
        assert np.all(np.isfinite(keras.ops.convert_to_numpy(out)))
