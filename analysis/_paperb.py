"""Paper B's model and training loop, shared by the ``depth`` and ``language-model`` experiments.

The model (Wang & E, NeurIPS 2024, Sec. 2): an embedding
``x ↦ W_E x + b_E`` of width D, then L residual blocks
``X ← X + Attn(X)``, ``X ← X + FFN(X)`` without layer norm and without
1/√d scaling, then a readout FFN without residual. Attention is
`tfapprox.layers.MultiHeadAttention` (causal, H heads, a relative position
encoding, with or without the dot product); every FFN is a two-layer ReLU
network ``W_2 ReLU(W_1 x + b_1) + b_2``.

`parameter_count` is the closed form of the model's size (a test checks it
against Keras' count), so experiments can match parameter counts across
depths before building anything.
"""

import math

import numpy as np


def attention_parameters(width, num_heads, key_dim, value_dim, use_dot_product, rpe):
    """Weights of one attention layer (W_O back to width D): `tfapprox.budget.attention_parameter_count`.

    >>> attention_parameters(16, 4, 4, 4, True, "log")
    1028
    >>> attention_parameters(16, 4, 4, 4, False, "log")
    516
    """
    from tfapprox.budget import attention_parameter_count

    return attention_parameter_count(
        width,
        num_heads,
        key_dim if use_dot_product else 0,
        value_dim,
        output_projection=True,
        use_dot_product=use_dot_product,
        rpe=rpe,
    )


def ffn_parameters(d_in, hidden, d_out):
    """A two-layer ReLU network ``d_in → hidden → d_out``: `tfapprox.budget.feedforward_parameter_count`.

    >>> ffn_parameters(16, 32, 16)
    1072
    """
    from tfapprox.budget import feedforward_parameter_count

    return feedforward_parameter_count(d_in, hidden, d_out, 1)


def parameter_count(
    *,
    d_in,
    d_out,
    width,
    num_layers,
    num_heads,
    key_dim,
    value_dim,
    ffn_width,
    readout_width,
    use_dot_product=True,
    rpe="log",
):
    """The exact number of weights of `build_model` with these sizes.

    ``(d_in + 1) D + L (attention + FFN(D, m, D)) + FFN(D, m_r, d_out)``.

    >>> parameter_count(d_in=1, d_out=1, width=16, num_layers=1, num_heads=4, key_dim=4,
    ...                 value_dim=4, ffn_width=32, readout_width=32)
    2709
    """
    block = attention_parameters(width, num_heads, key_dim, value_dim, use_dot_product, rpe)
    block += ffn_parameters(width, ffn_width, width)
    return (d_in + 1) * width + num_layers * block + ffn_parameters(width, readout_width, d_out)


def ffn_width_for(budget, **sizes):
    """The block FFN width m whose `parameter_count` is closest to ``budget`` (m ≥ 1).

    ``sizes`` are `parameter_count`'s other arguments (without ``ffn_width``).

    >>> sizes = dict(d_in=1, d_out=1, width=16, num_layers=1, num_heads=4, key_dim=4,
    ...              value_dim=4, readout_width=32)
    >>> ffn_width_for(2709, **sizes)
    32
    """
    base = parameter_count(ffn_width=0, **sizes)
    per_unit = parameter_count(ffn_width=1, **sizes) - base
    if per_unit == 0:
        raise ValueError("`num_layers` must be positive to solve for the FFN width")
    return max(1, int(round((budget - base) / per_unit)))


def build_model(
    tau,
    d_in,
    d_out,
    *,
    width,
    num_layers,
    num_heads,
    key_dim,
    value_dim,
    ffn_width,
    readout_width,
    use_dot_product=True,
    rpe="log",
    seed=0,
):
    """Paper B's causal Transformer as a Keras functional model ``(batch, τ, d_in) → (batch, τ, d_out)``."""
    import keras

    from tfapprox.layers import MultiHeadAttention

    keras.utils.set_random_seed(seed)
    inputs = keras.Input(shape=(tau, d_in), name="x")
    h = keras.layers.Dense(width, name="embedding")(inputs)  # (batch, tau, D)
    for layer in range(num_layers):
        attention = MultiHeadAttention(
            num_heads=num_heads,
            key_dim=key_dim if use_dot_product else None,
            value_dim=value_dim,
            causal=True,
            use_dot_product=use_dot_product,
            relative_position=rpe,
            name=f"attention_{layer}",
        )
        h = keras.layers.Add(name=f"attention_residual_{layer}")([h, attention(h)])
        hidden = keras.layers.Dense(ffn_width, activation="relu", name=f"ffn_{layer}_1")(h)
        update = keras.layers.Dense(width, name=f"ffn_{layer}_2")(hidden)  # (batch, tau, D)
        h = keras.layers.Add(name=f"ffn_residual_{layer}")([h, update])
    hidden = keras.layers.Dense(readout_width, activation="relu", name="readout_1")(h)
    outputs = keras.layers.Dense(d_out, name="readout_2")(hidden)  # (batch, tau, d_out)
    return keras.Model(inputs, outputs, name=f"paper_b_L{num_layers}_H{num_heads}")


def schedule(learning_rate, steps, warmup=0.05):
    """Adam's learning rate: a linear warm-up over ``warmup`` of the steps, then cosine decay to 0."""
    import keras

    warmup_steps = max(1, int(round(warmup * steps)))
    return keras.optimizers.schedules.CosineDecay(
        0.0,
        decay_steps=max(1, steps - warmup_steps),
        warmup_target=learning_rate,
        warmup_steps=warmup_steps,
    )


def train(
    model,
    batches,
    *,
    steps,
    learning_rate,
    loss,
    jit_compile=True,
    clipnorm=1.0,
    steps_per_execution=25,
):
    """Train ``model`` with Adam on ``batches(epoch) -> (x, y, batch_size)`` for ``steps`` steps.

    ``batches`` is called once per epoch with the epoch number and returns
    that epoch's training set (fresh samples each epoch when the caller
    draws them with the epoch as the seed) and the batch size. Returns the
    per-epoch training losses.
    """
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(schedule(learning_rate, steps), clipnorm=clipnorm),
        loss=loss,
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    losses, done, epoch = [], 0, 0
    while done < steps:
        x, y, batch_size = batches(epoch)
        per_epoch = len(x) // batch_size
        take = min(per_epoch, steps - done)
        history = model.fit(
            x[: take * batch_size],
            y[: take * batch_size],
            batch_size=batch_size,
            epochs=1,
            shuffle=False,
            verbose=0,
        )
        losses.append(float(history.history["loss"][-1]))
        done += take
        epoch += 1
    if not all(math.isfinite(v) for v in losses):
        raise FloatingPointError(f"training diverged: losses {losses}")
    return losses


def predict(model, x, batch_size=512):
    """``model``'s outputs on ``x`` as float64."""
    return np.asarray(model.predict(x, batch_size=batch_size, verbose=0), dtype=np.float64)
