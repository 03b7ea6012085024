"""Train a family of small Keras models together: one compiled step for all.

Paper B's experiments train grids of tiny one-layer models (heads H × FFN
width m × position encoding) on the same inputs. `train_family` wraps them
in one multi-output Keras model whose loss is the sum of the members' mean
squared errors: the members share no weights, so each one's gradient is the
gradient of its own loss, and Adam keeps per-weight moments, so every member
follows exactly the Adam trajectory it would follow alone (same schedule,
same batches). One ``fit`` call, one compiled step, no Python loop over
members.
"""

import time

import numpy as np


def schedule(training, steps):
    """Adam's learning rate: linear warm-up then cosine decay to ``min_learning_rate``.

    ``training`` holds ``learning_rate``, ``min_learning_rate`` and
    ``warmup_fraction`` (of ``steps``).
    """
    import keras

    warmup = max(1, int(training["warmup_fraction"] * steps))
    peak = training["learning_rate"]
    return keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=peak / warmup,
        decay_steps=max(1, steps - warmup),
        alpha=training["min_learning_rate"] / peak,
        warmup_target=peak,
        warmup_steps=warmup,
    )


def _as_list(value, count):
    return [value] * count if isinstance(value, np.ndarray) else list(value)


def train_family(models, x, ys, x_test, ys_test, training, shuffle=True):
    """Train ``models`` (same input) together on ``(x, ys)``; their test MSEs.

    Args:
        models: list of built `keras.Model`, each ``(batch, tau, d) -> (batch, d_out)``.
        x: array ``(N, tau, d)``. Training inputs, shared by every model.
        ys: array ``(N, d_out)`` (every model fits it) or a list of one per model.
        x_test, ys_test: the held-out data, the same way.
        training: dict with ``steps``, ``batch_size``, ``learning_rate``,
            ``min_learning_rate``, ``warmup_fraction``.
        shuffle: bool. Shuffle the training set every epoch; False takes
            the batches in order (a training set of whole batches then gives
            every step the same batch). Defaults to True.

    Returns:
        dict: ``test_mse`` and ``train_mse`` (lists, one per model, on the
        whole training and test sets after training), ``steps``, ``seconds``
        and ``predict``, a function of inputs returning every model's
        predictions (one compiled call for the family).
    """
    import keras

    ys, ys_test = _as_list(ys, len(models)), _as_list(ys_test, len(models))
    inputs = keras.Input(shape=x.shape[1:])
    family = keras.Model(inputs, [model(inputs) for model in models])
    steps, batch = int(training["steps"]), int(training["batch_size"])
    family.compile(
        optimizer=keras.optimizers.Adam(learning_rate=schedule(training, steps)),
        loss=["mse"] * len(models),
        jit_compile=True,
    )
    per_epoch = len(x) // batch
    epochs = max(1, -(-steps // per_epoch))
    start = time.perf_counter()
    family.fit(
        x,
        ys,
        batch_size=batch,
        epochs=epochs,
        steps_per_epoch=min(per_epoch, steps),
        shuffle=shuffle,
        verbose=0,
    )
    seconds = time.perf_counter() - start
    return {
        "train_mse": _mse(family, x, ys, batch),
        "test_mse": _mse(family, x_test, ys_test, batch),
        "steps": epochs * min(per_epoch, steps),
        "seconds": seconds,
        "predict": lambda inputs: _predict(family, inputs, batch),
    }


def _predict(family, x, batch):
    """Every model's predictions on ``x``: a list of arrays."""
    predictions = family.predict(x, batch_size=max(batch, 1024), verbose=0)
    return predictions if isinstance(predictions, list) else [predictions]


def _mse(family, x, ys, batch):
    predictions = _predict(family, x, batch)
    return [
        float(np.mean((np.asarray(p, np.float64) - np.asarray(y, np.float64)) ** 2))
        for p, y in zip(predictions, ys)
    ]
