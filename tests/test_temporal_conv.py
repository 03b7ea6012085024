"""tfapprox.layers.TemporalConv: NumPy reference, shapes, config and .keras round trips."""

import json

import keras
import numpy as np
import pytest

from tfapprox.layers import TemporalConv


def reference(x, kernel, left, right, bias=None):
    """``y(t) = Σ_j x_pad(t + j) W_j`` with ``left``/``right`` zero positions added."""
    padded = np.pad(x, ((0, 0), (left, right), (0, 0)))
    tau, k = x.shape[1], kernel.shape[0]
    out = np.stack(
        [sum(padded[:, t + j] @ kernel[j] for j in range(k)) for t in range(tau)], axis=1
    )
    return out if bias is None else out + bias


@pytest.mark.parametrize("padding, pads", [("causal", (2, 0)), ("same", (1, 1))])
def test_temporal_conv_matches_numpy_reference(padding, pads):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 5, 3)).astype("float32")
    layer = TemporalConv(3, filters=4, padding=padding, use_bias=True, kernel_initializer="normal")
    layer.build(x.shape)
    kernel = rng.normal(size=(3, 3, 4)).astype("float32")
    bias = rng.normal(size=(4,)).astype("float32")
    layer.set_weights([kernel, bias])
    assert layer.pads == pads
    # float32 sums of 9 products of O(1) numbers: round-off well below 1e-5.
    np.testing.assert_allclose(layer(x), reference(x, kernel, *pads, bias), atol=1e-5)


def test_causal_temporal_conv_applies_a_filter_to_past_tokens_only():
    x = np.arange(1.0, 6.0, dtype="float32").reshape(1, 5, 1)
    layer = TemporalConv(2, padding="causal")
    layer.build(x.shape)
    layer.set_weights([np.array([0.25, 0.75], dtype="float32").reshape(2, 1, 1)])
    # y(t) = 0.75 x(t) + 0.25 x(t − 1): W_{k−1} multiplies the current token.
    np.testing.assert_allclose(layer(x)[0, :, 0], [0.75, 1.75, 2.75, 3.75, 4.75], atol=1e-6)


def test_temporal_conv_starts_as_the_identity():
    x = np.random.default_rng(1).normal(size=(3, 6, 2)).astype("float32")
    for padding in ("causal", "same"):
        np.testing.assert_allclose(TemporalConv(4, padding=padding)(x), x, atol=1e-6)


def test_temporal_conv_output_shape_equals_compute_output_shape():
    layer = TemporalConv(3, filters=7, kernel_initializer="ones")
    out = layer(np.zeros((2, 5, 3), dtype="float32"))
    assert tuple(out.shape) == layer.compute_output_shape((2, 5, 3)) == (2, 5, 7)


def test_temporal_conv_rejects_bad_arguments():
    with pytest.raises(ValueError, match="kernel_size"):
        TemporalConv(0)
    with pytest.raises(ValueError, match="padding"):
        TemporalConv(2, padding="valid")
    with pytest.raises(ValueError, match="filters == d"):
        TemporalConv(2, filters=3).build((None, 4, 2))


def test_temporal_conv_config_round_trip():
    layer = TemporalConv(3, filters=5, padding="same", use_bias=True, kernel_initializer="ones")
    clone = TemporalConv.from_config(layer.get_config())
    assert json.dumps(clone.get_config(), sort_keys=True) == json.dumps(
        layer.get_config(), sort_keys=True
    )
    identity = TemporalConv(2)
    assert TemporalConv.from_config(identity.get_config()).kernel_initializer is None


def test_temporal_conv_keras_file_round_trip(tmp_path):
    inputs = keras.Input(shape=(6, 2))
    outputs = TemporalConv(3, filters=2, use_bias=True, kernel_initializer="glorot_uniform")(inputs)
    model = keras.Model(inputs, outputs)
    x = np.random.default_rng(2).normal(size=(4, 6, 2)).astype("float32")
    path = tmp_path / "conv.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)
    # Same weights and float32 ops: identical up to round-off.
    np.testing.assert_allclose(
        reloaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6
    )
