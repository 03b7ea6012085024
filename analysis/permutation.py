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
the same. The seeds train together in one `tfapprox.group.train_models`
group, their permuted copies in a second. The ``check_seeds`` train again
with twice the epochs: a claim whose cells' test error still moves by more
than 10 % is reported as "not converged".

Run: ``tfapprox experiment permutation [--quick] [--out DIR] [--json]``.
"""

import os
import time

import numpy as np

from . import _convergence, _digits, _experiment

PAPER = {
    "cifar10_vit_b16_accuracy": {"original": 0.98, "permuted": 0.96},
    "wmt14_en_de_bleu": {"original": 26.85, "permuted": 25.91},
    "permutation": "first 10 of 196 tokens moved to the end",
}

# Sized for <= 12 min on 2 quiet cores, convergence check included: one grouped
# epoch costs about 0.06 CPU-s per model at these sizes and compiling a group
# about 4 CPU-s per model, so 10 x 300 + 4 x 600 model-epochs in four groups
# come to about 7.5 CPU-min at most (fewer when models stop on a plateau).
FULL = {
    "patch": 2,
    "shift": 4,
    "seeds": [0, 1, 2, 3, 4],
    "budget": {"n": 32, "m_h": 8, "m_v": 32, "m_ff": 64, "ff_depth": 2},
    "projection_dim": 16,
    "epochs": 300,
    "batch_size": 64,
    "learning_rate": 2e-3,
    "patience": 30,
    "shuffle_seed": 0,
    # Seeds whose original and permuted models train again with twice the epochs.
    "check_seeds": [0, 1],
    "n_bootstrap": 1000,
}
QUICK = {
    **FULL,
    "seeds": [0, 1],
    "budget": {"n": 16, "m_h": 4, "m_v": 16, "m_ff": 32, "ff_depth": 1},
    "epochs": 25,
    "check_seeds": [0],
    "patience": 20,
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


def train_both(settings, train, test, seeds, epoch_factor=1):
    """Train one classifier per seed on the original data, then copies of them on the permuted data.

    Each family trains in one `tfapprox.group.train_models` group; the
    permuted models start from the weights trained on the original data (as
    the paper). Returns ``(original, permuted, before)``: the two
    `GroupResult` and, per seed, the original model's test accuracy on
    permuted inputs before any retraining.
    """
    tau, dim = train.x.shape[1:]
    perm = shift_permutation(tau, settings["shift"])
    models = [
        _digits.build(settings["budget"], tau, dim, settings["projection_dim"], seed=seed)
        for seed in seeds
    ]
    original = _digits.train_group(models, train.x, train.y, settings, epoch_factor)
    copies = [_digits.copy(model) for model in original.models]
    before = [_digits.accuracy(model, test.x[:, perm], test.y) for model in copies]
    permuted = _digits.train_group(copies, train.x[:, perm], train.y, settings, epoch_factor)
    return original, permuted, before


def run(settings, train, test):
    """Per seed: accuracies, losses and the attention's POD spectrum and β, original and permuted."""
    perm = shift_permutation(train.x.shape[1], settings["shift"])
    original, permuted, before = train_both(settings, train, test, settings["seeds"])
    data = {
        "original": (train.x, test.x),
        "permuted": (train.x[:, perm], test.x[:, perm]),
    }
    runs = []
    for index, seed in enumerate(settings["seeds"]):
        run = {"seed": seed}
        for case, group in (("original", original), ("permuted", permuted)):
            x_train, x_test = data[case]
            record = group.records[index]
            run[case] = _measure(group.models[index], x_train, train.y, x_test, test.y, settings)
            run[case].update(
                train_loss=record["loss"], epochs=record["epochs"], stopped=record["stopped"]
            )
        run["original"]["permuted_input_accuracy_before_retraining"] = before[index]
        runs.append(run)
    seconds = {
        "original": original.records[0]["group_seconds"],
        "permuted": permuted.records[0]["group_seconds"],
    }
    return runs, seconds


def check_convergence(settings, train, test, runs):
    """Both cells (original, permuted) of the ``check_seeds`` with twice the epochs.

    A cell's error is its test error rate (1 − test accuracy, the quantity
    the accuracy claim is read from), averaged over the checked seeds.
    """
    seeds = settings["check_seeds"]
    original, permuted, _ = train_both(settings, train, test, seeds, epoch_factor=2)
    perm = shift_permutation(train.x.shape[1], settings["shift"])
    x_test = {"original": test.x, "permuted": test.x[:, perm]}
    by_seed = {run["seed"]: run for run in runs}
    checks = {}
    for case, group in (("original", original), ("permuted", permuted)):
        once = [1.0 - by_seed[seed][case]["test_accuracy"] for seed in seeds]
        twice = [1.0 - _digits.accuracy(model, x_test[case], test.y) for model in group.models]
        checks[case] = {
            "seeds": list(seeds),
            "test_error_1x": once,
            "test_error_2x": twice,
            "epochs_2x": [record["epochs"] for record in group.records],
            **_convergence.check(np.mean(once), np.mean(twice)),
        }
    seconds = original.records[0]["group_seconds"] + permuted.records[0]["group_seconds"]
    return checks, seconds


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


def verdicts(claims, checks):
    """Each claim's verdict: both cells (original, permuted) must have converged."""
    converged = all(check["converged"] for check in checks.values())
    return {
        "cells_converged": converged,
        "verdicts": {
            key: _convergence.verdict(claims[key], list(checks.values()))
            for key in ("accuracies_within_3_points", "beta_intervals_overlap_all")
        },
    }


def table(runs, summary, checks):
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
                _convergence.describe(checks[case]),
            ]
        )
    text = _experiment.markdown_table(
        [
            "data",
            "digits test accuracy (mean ± sd over seeds)",
            "paper: CIFAR-10 ViT-B/16",
            "fitted β [95% CI] per seed",
            "paper: WMT14 BLEU",
            "converged (2× epochs, Δ test error)",
        ],
        rows,
    )
    claims = summary["claims"]
    verdict = claims["verdicts"]
    return (
        f"{text}\n\n- accuracy drop {claims['accuracy_drop']:+.3f} (paper +0.02); "
        f"within 3 points: {verdict['accuracies_within_3_points']}\n"
        f"- β intervals of original and permuted overlap (per seed): "
        f"{claims['beta_intervals_overlap_per_seed']}; all: "
        f"{verdict['beta_intervals_overlap_all']}\n"
        f"- verdicts need both cells converged: test error moved by at most "
        f"{_convergence.CONVERGENCE_TOLERANCE:.0%} with twice the epochs (seeds "
        f"{checks['original']['seeds']}), else 'not converged'"
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


@_experiment.entry
def main(argv=None):
    args, out, settings = _experiment.start(argv, __doc__, "runs/permutation", QUICK, FULL)
    unknown = sorted(set(settings["check_seeds"]) - set(settings["seeds"]))
    if unknown:
        raise ValueError(f"`check_seeds` must be among `seeds`. Received: {unknown}")
    start = time.perf_counter()
    train, test = _digits.load(settings["patch"])
    tau = train.x.shape[1]
    runs, seconds = run(settings, train, test)
    checks, seconds["convergence_2x"] = check_convergence(settings, train, test, runs)
    summary = summarise(runs)
    summary["claims"].update(verdicts(summary["claims"], checks))
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
            "training": _convergence.training_config(settings).to_dict(),
            "optimizer": "Adam, tfapprox.group.train_models: the seeds in one group, then "
            "their permuted copies in a second; lr halved on plateaus, best epoch kept; "
            "seeds set the initial weights, the batch order is shared (shuffle_seed)",
            "complexity": "PODComplexity(inputs=test x): mean singular values of the "
            "tau x tau pre-softmax matrices, fitted sigma_k ~ C k^-beta, bootstrap CI",
            "convergence": "original and permuted models of check_seeds retrained with 2x "
            "epochs and patience; converged when the mean test error rate changed by at "
            "most the tolerance (relative)",
            "convergence_tolerance": _convergence.CONVERGENCE_TOLERANCE,
        },
        "runs": runs,
        "summary": summary,
        "convergence": checks,
        "claims": summary["claims"],
        "seconds_groups": seconds,
        "seconds": time.perf_counter() - start,
    }
    figure = _figure(summary, out)
    return _experiment.finish(
        result, table(runs, summary, checks), out, as_json=args.json, figure=figure
    )


if __name__ == "__main__":
    main()
