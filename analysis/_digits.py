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


def config(settings, epoch_factor=1):
    """The experiment's `TrainingConfig`, with ``epoch_factor`` × its epochs and patience."""
    from tfapprox.config import TrainingConfig

    return TrainingConfig(
        epochs=settings["epochs"] * epoch_factor,
        batch_size=settings["batch_size"],
        learning_rate=settings["learning_rate"],
        patience=settings["patience"] * epoch_factor,
    )


def train_group(models, x, y, settings, epoch_factor=1):
    """Train ``models`` together on ``(x, y)`` (cross-entropy on logits); the `GroupResult`."""
    from tfapprox.group import train_models

    from ._experiment import progress

    return train_models(
        models,
        (x, y),
        config(settings, epoch_factor),
        loss="sparse_categorical_crossentropy",
        shuffle_seed=settings["shuffle_seed"],
        progress=progress(f"{len(models)} digits classifiers", settings["epochs"] * epoch_factor),
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
