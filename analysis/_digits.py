"""The small ViT-like digits classifier that `permutation` and `attention_rank` share.

scikit-learn's bundled digits (8×8) cut into 2×2 patches: ``τ = 16`` tokens
of ``d = 4`` pixels (`tfapprox.datasets.digits_patches`), the offline
stand-in for CIFAR-10. The classifier is `tfapprox.models.build_transformer`
with a learned patch embedding A (``projection_dim``), a learned position
encoding e(t), and the time-averaged output (``output="pooled"``) as the
10 class logits. Families of classifiers (seeds, m_h) train together in one
`tfapprox.group.train_models` group.

Convergence (the experiments' rule): an error is evidence only if training
reached its floor, so the cells a claim is read from are trained again with
twice the epochs; a cell is ``converged`` when its error changed by at most
``analysis._convergence.CONVERGENCE_TOLERANCE`` (relative).
"""

import numpy as np


def load(patch=2):
    """``(train, test)`` digits datasets (the fixed split of `digits_patches`)."""
    from tfapprox.datasets import digits_patches

    return digits_patches(patch=patch)


def build(budget, tau, dim, projection_dim, seed=None):
    """The classifier; with ``seed`` its initial weights depend on the seed alone."""
    from tfapprox import Budget, models

    return models.build_transformer(
        Budget(**budget),
        tau,
        dim,
        output_dim=10,
        output="pooled",
        position_encoding="learned",
        projection_dim=projection_dim,
        seed=seed,
    )


def train_group(models, x, y, settings, epoch_factor=1, training=None):
    """Train ``models`` together on ``(x, y)`` (cross-entropy on logits); the `GroupResult`.

    ``training`` is the `TrainingConfig` (None: `_convergence.training_config`
    of ``settings`` and ``epoch_factor``).
    """
    from tfapprox.group import train_models

    from ._convergence import training_config
    from ._experiment import checkpoint, progress

    return train_models(
        models,
        (x, y),
        training or training_config(settings, epoch_factor),
        loss="sparse_categorical_crossentropy",
        shuffle_seed=settings["shuffle_seed"],
        progress=progress(f"{len(models)} digits classifiers", settings["epochs"] * epoch_factor),
        checkpoint=checkpoint(),
    )


def copy(model):
    """A new model with ``model``'s architecture and current weights."""
    import keras

    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def accuracy(model, x, y):
    logits = model.predict(x, batch_size=512, verbose=0)
    return float(np.mean(np.argmax(logits, axis=-1) == y))


def attention_complexity(model, x, n_bootstrap=200):
    """POD spectrum of the learned pre-softmax attention on inputs ``x`` and its fitted β."""
    from tfapprox.pod import PODComplexity

    estimator = PODComplexity(allow_short=True, n_bootstrap=n_bootstrap).fit(model, inputs=x)
    summary = estimator.summary()
    summary["all_values"] = [float(v) for v in estimator.singular_values_]
    return summary


def augment(x, y, copies, noise, shift, seed=0):
    """A fixed augmented training set: ``copies`` perturbed versions of every patch sequence.

    Each copy of image ``I`` (patches ``x``, 8×8 pixels in ``[0, 1]``) is
    shifted by ``(dr, dc)`` pixels, each drawn uniformly from
    ``−shift … shift`` (pixels shifted in are 0), and gets Gaussian pixel
    noise of standard deviation ``noise``; the result is cut into the same
    patches. The originals are not included. Copies follow the originals'
    order: row ``k · N + i`` is copy ``k`` of image ``i``.

    Args:
        x: array ``(N, τ, patch²)``: patch sequences of `load` (``τ · patch² = 64``).
        y: array ``(N,)``: labels.
        copies: int >= 1. Copies per image.
        noise: float >= 0. Pixel noise standard deviation.
        shift: int >= 0. Largest shift in pixels, per axis.
        seed: int. Seed of the shifts and the noise.

    Returns:
        ``(x_aug, y_aug)``: float32 ``(copies · N, τ, patch²)`` and labels ``(copies · N,)``.

    Example:

    >>> x = np.arange(64, dtype="float32").reshape(1, 16, 4)
    >>> xa, ya = augment(x, np.array([3]), copies=2, noise=0.0, shift=0)
    >>> xa.shape, bool(np.all(xa == x)), ya.tolist()
    ((2, 16, 4), True, [3, 3])
    """
    x = np.asarray(x, dtype="float32")
    n, tau, dim = x.shape
    patch = int(round(dim**0.5))
    side, grid = 8, 8 // patch
    # (N, τ, p²) -> (N, grid_r, grid_c, a, b) -> (N, grid_r, a, grid_c, b) -> (N, 8, 8)
    images = x.reshape(n, grid, grid, patch, patch).transpose(0, 1, 3, 2, 4).reshape(n, side, side)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(copies):
        moved = np.zeros_like(images)
        offsets = rng.integers(-shift, shift + 1, size=(n, 2))
        for dr in range(-shift, shift + 1):
            for dc in range(-shift, shift + 1):
                rows = np.flatnonzero((offsets[:, 0] == dr) & (offsets[:, 1] == dc))
                src = images[rows]
                dst = np.zeros_like(src)
                r0, r1 = max(dr, 0), side + min(dr, 0)
                c0, c1 = max(dc, 0), side + min(dc, 0)
                # (k, 8, 8): dst[r, c] = src[r − dr, c − dc] where both are inside
                dst[:, r0:r1, c0:c1] = src[:, r0 - dr : r1 - dr, c0 - dc : c1 - dc]
                moved[rows] = dst
        moved = moved + noise * rng.standard_normal(moved.shape).astype("float32")
        # (N, 8, 8) -> (N, grid_r, a, grid_c, b) -> (N, τ, p²)
        out.append(
            moved.reshape(n, grid, patch, grid, patch).transpose(0, 1, 3, 2, 4).reshape(n, tau, dim)
        )
    return np.concatenate(out).astype("float32"), np.tile(np.asarray(y), copies)
