"""The small ViT-like digits classifier that `permutation` and `attention_rank` share.

scikit-learn's bundled digits (8×8) cut into 2×2 patches: ``τ = 16`` tokens
of ``d = 4`` pixels (`tfapprox.datasets.digits_patches`), the offline
stand-in for CIFAR-10. The classifier is `tfapprox.models.build_transformer`
with a learned patch embedding A (``projection_dim``), a learned position
encoding e(t), and the time-averaged output (``output="pooled"``) as the
10 class logits.
"""

import numpy as np


def load(patch=2):
    """``(train, test)`` digits datasets (the fixed split of `digits_patches`)."""
    from tfapprox.datasets import digits_patches

    return digits_patches(patch=patch)


def build(budget, tau, dim, projection_dim):
    from tfapprox import Budget, models

    return models.build_transformer(
        Budget(**budget),
        tau,
        dim,
        output_dim=10,
        output="pooled",
        position_encoding="learned",
        projection_dim=projection_dim,
    )


def train(model, x, y, settings, seed):
    """`tfapprox.training.fit` with the experiment's settings; returns the `FitResult`."""
    from tfapprox import training

    return training.fit(
        model,
        (x, y),
        seed=seed,
        epochs=settings["epochs"],
        batch_size=settings["batch_size"],
        learning_rate=settings["learning_rate"],
        patience=settings["patience"],
        jit_compile=settings["jit_compile"],
        verbose=0,
    )


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
