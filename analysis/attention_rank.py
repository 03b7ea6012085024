"""Training error against the attention rank budget m_h, and the learned spectrum (paper A, Fig. 1).

Paper A, Fig. 1: in ViT-B/16 on CIFAR-10 the head size m_h runs over 1…64;
the singular values of the τ×τ pre-softmax attention matrix, averaged over
inputs, decay fast (low rank) and the training error falls like
``m_h^{−0.27}``.

Here: the digits classifier of `analysis._digits` (16 patches of 2×2
pixels) with every size fixed but m_h. For each m_h and seed: train with the
same settings, record the training error (cross-entropy, the loss the model
minimises, and 1 − training accuracy), fit ``error ≈ C m_h^{−rate}`` with
`tfapprox.fits.power_law` (pairs-bootstrap interval) on the per-m_h mean,
and compute the mean singular values of the pre-softmax attention matrices
on the training inputs (`tfapprox.pod.attention_spectrum`).

Run: ``tfapprox experiment attention-rank [--quick] [--out DIR] [--json]``.
"""

import os
import time

import numpy as np

from . import _digits, _experiment

PAPER = {"model": "ViT-B/16 on CIFAR-10", "rate": 0.27, "m_h": "1..64"}

FULL = {
    "jit_compile": True,
    "patch": 2,
    "m_h": [1, 2, 3, 4, 6, 8, 12, 16],
    "seeds": [0, 1],
    "budget": {"n": 32, "m_v": 32, "m_ff": 64, "ff_depth": 2},
    "projection_dim": 16,
    "epochs": 120,
    "batch_size": 64,
    "learning_rate": 2e-3,
    "patience": 20,
    "n_bootstrap": 1000,
}
QUICK = {
    **FULL,
    "jit_compile": False,
    "m_h": [1, 2, 4],
    "seeds": [0],
    "budget": {"n": 16, "m_v": 16, "m_ff": 32, "ff_depth": 1},
    "epochs": 20,
    "n_bootstrap": 200,
}


def run(settings, train):
    import keras

    from tfapprox import pod

    tau, dim = train.x.shape[1:]
    points = []
    for m_h in settings["m_h"]:
        runs = []
        for seed in settings["seeds"]:
            keras.utils.set_random_seed(seed)
            model = _digits.build(
                {**settings["budget"], "m_h": m_h}, tau, dim, settings["projection_dim"]
            )
            fit = _digits.train(model, train.x, train.y, settings, seed)
            spectrum = pod.attention_spectrum(fit.model, train.x)
            runs.append(
                {
                    "seed": seed,
                    "train_loss": float(fit.loss),
                    "train_error_rate": 1.0 - _digits.accuracy(fit.model, train.x, train.y),
                    "epochs": int(fit.epochs),
                    "spectrum": [float(v) for v in spectrum],
                }
            )
        points.append(
            {
                "m_h": m_h,
                "train_loss": [r["train_loss"] for r in runs],
                "train_loss_mean": float(np.mean([r["train_loss"] for r in runs])),
                "train_error_rate_mean": float(np.mean([r["train_error_rate"] for r in runs])),
                "spectrum_mean": np.mean([r["spectrum"] for r in runs], axis=0).tolist(),
                "runs": runs,
            }
        )
    return points


def fit_rate(points, n_bootstrap):
    from tfapprox.fits import power_law

    m_h = np.array([p["m_h"] for p in points], dtype=float)
    loss = np.array([p["train_loss_mean"] for p in points])
    fit = power_law(m_h, loss, n_bootstrap=n_bootstrap)
    return {
        "rate": fit.rate,
        "rate_ci": list(fit.rate_ci),
        "constant": fit.constant,
        "residual_std": fit.residual_std,
        "confidence": fit.confidence,
        "paper_rate": PAPER["rate"],
        "paper_rate_in_interval": bool(fit.rate_ci[0] <= PAPER["rate"] <= fit.rate_ci[1]),
        "error_falls_with_m_h": bool(fit.rate > 0),
    }


def table(points, rate):
    rows = [
        [
            p["m_h"],
            f"{p['train_loss_mean']:.4g}",
            f"{p['train_error_rate_mean']:.4f}",
            ", ".join(f"{v:.3g}" for v in p["spectrum_mean"][:4]),
            f"{rate['constant'] * p['m_h'] ** -rate['rate']:.4g}",
        ]
        for p in points
    ]
    text = _experiment.markdown_table(
        ["m_h", "training loss (CE)", "1 − train accuracy", "mean σ_1..4 of ρ̂ / τ", "fit"], rows
    )
    return (
        f"{text}\n\n- fitted training loss ≈ {rate['constant']:.3g} · m_h^−{rate['rate']:.3f}, "
        f"{int(rate['confidence'] * 100)}% interval of the rate [{rate['rate_ci'][0]:.3f}, "
        f"{rate['rate_ci'][1]:.3f}]; paper (ViT-B/16, CIFAR-10): m_h^−0.27; "
        f"0.27 in our interval: {rate['paper_rate_in_interval']}"
    )


def _figure(points, rate, out):
    from tfapprox.plots import pyplot, save_figure

    plt = pyplot()
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    m_h = np.array([p["m_h"] for p in points], dtype=float)
    for p in points:
        left.scatter(
            [p["m_h"]] * len(p["train_loss"]), p["train_loss"], s=10, color="C0", alpha=0.5
        )
    left.loglog(
        m_h, [p["train_loss_mean"] for p in points], "o", color="C0", label="mean over seeds"
    )
    grid = np.geomspace(m_h.min(), m_h.max(), 50)
    left.loglog(
        grid,
        rate["constant"] * grid ** -rate["rate"],
        "-",
        color="C3",
        label=f"fit m_h^-{rate['rate']:.2f}",
    )
    left.loglog(
        grid, rate["constant"] * grid**-0.27, ":", color="grey", label="slope of paper: -0.27"
    )
    left.set_xlabel("m_h")
    left.set_ylabel("training loss (cross-entropy)")
    left.legend(fontsize=7)
    for index, p in enumerate(points):
        values = np.asarray(p["spectrum_mean"])
        k = np.arange(1, values.size + 1)
        right.semilogy(
            k[values > 0],
            values[values > 0],
            "o-",
            ms=3,
            color=f"C{index % 10}",
            label=f"m_h={p['m_h']}",
        )
    right.set_xlabel("k")
    right.set_ylabel(r"mean $\sigma_k$ of the τ×τ pre-softmax matrix / τ")
    right.legend(fontsize=7)
    fig.suptitle("digits classifier: error vs m_h and learned attention spectra", fontsize=9)
    fig.tight_layout()
    path = os.path.join(out, "attention_rank.png")
    save_figure(fig, path)
    return path


def main(argv=None):
    args, out, settings = _experiment.start(argv, __doc__, "runs/attention-rank", QUICK, FULL)
    start = time.perf_counter()
    train, _ = _digits.load(settings["patch"])
    points = run(settings, train)
    rate = fit_rate(points, settings["n_bootstrap"])
    result = {
        "experiment": "attention-rank",
        "paper": "Jiang & Li (NeurIPS 2024), Fig. 1",
        "paper_numbers": PAPER,
        "quick": bool(args.quick),
        "settings": {
            **settings,
            "data": "sklearn digits, 2x2 patches (tau=16, d=4), the 1347 training sequences",
            "optimizer": "Adam (tfapprox.training.fit: lr halved on plateaus, best epoch kept)",
            "error": "training cross-entropy of the kept model; power law fitted on its mean",
            "spectrum": "tfapprox.pod.attention_spectrum on the training inputs (mean over "
            "inputs of the singular values of the tau x tau pre-softmax matrix, divided by tau)",
        },
        "points": points,
        "rate": rate,
        "claims": {k: rate[k] for k in ("error_falls_with_m_h", "paper_rate_in_interval")},
        "seconds": time.perf_counter() - start,
    }
    figure = _figure(points, rate, out)
    return _experiment.finish(result, table(points, rate), out, as_json=args.json, figure=figure)


if __name__ == "__main__":
    main()
