"""A fixed permutation of real-data tokens barely matters to a Transformer (paper A, Table 1).

Paper A trains ViT-B/16 on CIFAR-10 and a base Transformer on WMT14 En–De,
then applies one fixed permutation (the first 10 tokens moved to the end)
after the patch embedding and before the position encoding, labels
unchanged, and trains the permuted model from the original weights:
accuracy 0.98 → 0.96, BLEU 26.85 → 25.91. The theory (Sec. 6): a
permutation leaves the complexity measures (the POD spectrum of ρ) unchanged.

Here: scikit-learn's digits as 16 patches of 2×2 pixels, the small ViT-like
classifier of `analysis._digits`, and the permutation that moves the first
``shift`` tokens to the end. The patch embedding A and the position encoding
e(t) sit in one layer (``A x(t) + e(t)``); A acts token-wise, so permuting
the input tokens is permuting after A and before e(t). For each seed: train
on the original data, measure test accuracy and the POD spectrum of the
learned attention (τ×τ pre-softmax matrices on the test inputs, averaged
singular values, fitted ``σ_k ≈ C_β k^{−β}`` with a bootstrap interval);
then continue training a copy of that model on the permuted data and measure
the same.

Run: ``tfapprox experiment permutation [--quick] [--out DIR] [--json]``.
"""

import os
import time

import numpy as np

from . import _digits, _experiment

PAPER = {
    "cifar10_vit_b16_accuracy": {"original": 0.98, "permuted": 0.96},
    "wmt14_en_de_bleu": {"original": 26.85, "permuted": 25.91},
    "permutation": "first 10 of 196 tokens moved to the end",
}

FULL = {
    "jit_compile": True,
    "patch": 2,
    "shift": 4,
    "seeds": [0, 1, 2, 3, 4],
    "budget": {"n": 32, "m_h": 8, "m_v": 32, "m_ff": 64, "ff_depth": 2},
    "projection_dim": 16,
    "epochs": 150,
    "batch_size": 64,
    "learning_rate": 2e-3,
    "patience": 20,
    "n_bootstrap": 1000,
}
QUICK = {
    **FULL,
    "jit_compile": False,
    "seeds": [0, 1],
    "budget": {"n": 16, "m_h": 4, "m_v": 16, "m_ff": 32, "ff_depth": 1},
    "epochs": 25,
    "n_bootstrap": 200,
}


def shift_permutation(tau, shift):
    """Token order with the first ``shift`` tokens moved to the end.

    >>> shift_permutation(5, 2).tolist()
    [2, 3, 4, 0, 1]
    """
    return np.roll(np.arange(tau), -shift)


def _measure(model, x_train, y_train, x_test, y_test, settings):
    complexity = _digits.attention_complexity(model, x_test, settings["n_bootstrap"])
    return {
        "train_accuracy": _digits.accuracy(model, x_train, y_train),
        "test_accuracy": _digits.accuracy(model, x_test, y_test),
        "beta": complexity["beta"],
        "beta_ci": complexity["beta_ci"],
        "rank": complexity["rank"],
        "singular_values": complexity["all_values"],
    }


def run_seed(settings, train, test, seed):
    import keras

    keras.utils.set_random_seed(seed)
    tau, dim = train.x.shape[1:]
    perm = shift_permutation(tau, settings["shift"])
    model = _digits.build(settings["budget"], tau, dim, settings["projection_dim"])
    fit = _digits.train(model, train.x, train.y, settings, seed)
    original = _measure(fit.model, train.x, train.y, test.x, test.y, settings)
    original.update(train_loss=float(fit.loss), epochs=int(fit.epochs))

    permuted_model = keras.models.clone_model(fit.model)
    permuted_model.set_weights(fit.model.get_weights())
    x_train, x_test = train.x[:, perm], test.x[:, perm]
    original["permuted_input_accuracy_before_retraining"] = _digits.accuracy(
        permuted_model, x_test, test.y
    )
    refit = _digits.train(permuted_model, x_train, train.y, settings, seed)
    permuted = _measure(refit.model, x_train, train.y, x_test, test.y, settings)
    permuted.update(train_loss=float(refit.loss), epochs=int(refit.epochs))
    return {"seed": seed, "original": original, "permuted": permuted}


def _intervals_overlap(a, b):
    if a is None or b is None or any(v is None or np.isnan(v) for v in (*a, *b)):
        return None
    return bool(a[0] <= b[1] and b[0] <= a[1])


def summarise(runs):
    out = {}
    for case in ("original", "permuted"):
        acc = [r[case]["test_accuracy"] for r in runs]
        betas = [r[case]["beta"] for r in runs if r[case]["beta"] is not None]
        out[case] = {
            "test_accuracy": acc,
            "test_accuracy_mean": float(np.mean(acc)),
            "test_accuracy_std": float(np.std(acc)),
            "beta": betas,
            "beta_mean": float(np.mean(betas)) if betas else None,
            "spectrum_mean": np.mean([r[case]["singular_values"] for r in runs], axis=0).tolist(),
        }
    overlap = [_intervals_overlap(r["original"]["beta_ci"], r["permuted"]["beta_ci"]) for r in runs]
    gap = out["original"]["test_accuracy_mean"] - out["permuted"]["test_accuracy_mean"]
    out["claims"] = {
        "accuracy_drop": float(gap),
        "paper_accuracy_drop": 0.02,
        "accuracies_within_3_points": bool(abs(gap) <= 0.03),
        "beta_intervals_overlap_per_seed": overlap,
        "beta_intervals_overlap_all": bool(all(o for o in overlap if o is not None))
        if any(o is not None for o in overlap)
        else None,
    }
    return out


def table(runs, summary):
    rows = []
    for case in ("original", "permuted"):
        s = summary[case]
        rows.append(
            [
                case,
                f"{s['test_accuracy_mean']:.3f} ± {s['test_accuracy_std']:.3f}",
                PAPER["cifar10_vit_b16_accuracy"][case],
                ", ".join(
                    f"{r[case]['beta']:.2f} [{r[case]['beta_ci'][0]:.2f}, {r[case]['beta_ci'][1]:.2f}]"
                    if r[case]["beta"] is not None
                    else "n/a"
                    for r in runs
                ),
                PAPER["wmt14_en_de_bleu"][case],
            ]
        )
    text = _experiment.markdown_table(
        [
            "data",
            "digits test accuracy (mean ± sd over seeds)",
            "paper: CIFAR-10 ViT-B/16",
            "fitted β [95% CI] per seed",
            "paper: WMT14 BLEU",
        ],
        rows,
    )
    claims = summary["claims"]
    return (
        f"{text}\n\n- accuracy drop {claims['accuracy_drop']:+.3f} (paper +0.02); "
        f"within 3 points: {claims['accuracies_within_3_points']}\n"
        f"- β intervals of original and permuted overlap (per seed): "
        f"{claims['beta_intervals_overlap_per_seed']}"
    )


def _figure(summary, out):
    from tfapprox.plots import pyplot, save_figure

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    for case, style in (("original", "o-"), ("permuted", "s--")):
        values = np.asarray(summary[case]["spectrum_mean"])
        k = np.arange(1, values.size + 1)
        ax.loglog(k[values > 0], values[values > 0], style, ms=4, label=case)
    ax.set_xlabel("k")
    ax.set_ylabel(r"mean $\sigma_k$ of the pre-softmax attention / τ")
    ax.set_title("learned attention spectrum, digits, original vs permuted", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path = os.path.join(out, "permutation.png")
    save_figure(fig, path)
    return path


def main(argv=None):
    args, out, settings = _experiment.start(argv, __doc__, "runs/permutation", QUICK, FULL)
    start = time.perf_counter()
    train, test = _digits.load(settings["patch"])
    tau = train.x.shape[1]
    runs = [run_seed(settings, train, test, seed) for seed in settings["seeds"]]
    summary = summarise(runs)
    result = {
        "experiment": "permutation",
        "paper": "Jiang & Li (NeurIPS 2024), Table 1",
        "paper_numbers": PAPER,
        "quick": bool(args.quick),
        "settings": {
            **settings,
            "data": "sklearn digits, 2x2 patches (tau=16, d=4), digits_patches split 1347/450",
            "permutation": shift_permutation(tau, settings["shift"]).tolist(),
            "permuted_training": "continues from the weights trained on the original data",
            "optimizer": "Adam (tfapprox.training.fit: lr halved on plateaus, best epoch kept)",
            "complexity": "PODComplexity(inputs=test x): mean singular values of the "
            "tau x tau pre-softmax matrices, fitted sigma_k ~ C k^-beta, bootstrap CI",
        },
        "runs": runs,
        "summary": summary,
        "claims": summary["claims"],
        "seconds": time.perf_counter() - start,
    }
    figure = _figure(summary, out)
    return _experiment.finish(result, table(runs, summary), out, as_json=args.json, figure=figure)


if __name__ == "__main__":
    main()
