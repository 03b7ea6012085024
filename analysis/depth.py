"""Depth on adaptive sparse memory: L = 1…4 layers at a fixed parameter count, with and without DP.

Paper B (Wang & E, NeurIPS 2024), Type II targets: the lags a token reads
depend on the tokens, ``t_1 = g_1(x_t)``, ``t_{k+1} = g_{k+1}(x_t, x_{t−t_k})``.
Paper B's theory: such targets need dot-product attention (DP) together with
a relative position encoding (RPE), two layers for K = 0 nested levels and
K + 1 (+1) layers for K levels; on ``y_t = x_{t−g(x_t)}`` (x ∈ {−1, 0, 1},
g(−1) = 0, g(0) = 1, g(1) = 2) no one-layer DP-free model has a sup-norm
error below 2/3.

Here, on the presets ``adaptive-g`` (that target, τ = 32) and
``adaptive-nested-2`` (K = 2 nested levels, lags 12…36 of τ = 64), paper B's
model (`analysis/_paperb.py`: embedding, L residual blocks without layer
norm, causal multi-head attention with the log-type RPE, ReLU FFNs, a
readout FFN) is trained for L = 1…4, with and without DP, at one parameter
count: width D, heads and head sizes are fixed and the blocks' FFN width m
is solved for the budget (each cell's exact count is recorded). The error
is paper B's sup norm, ``max |y_t − ŷ_t|`` over every position of fresh
test sequences (a lower estimate of the sup over all inputs); the MSE is
recorded too.

Training: Adam with a warm-up and cosine decay, fresh samples every epoch,
squared loss. The cells that decide the claims (one layer DP-free; the best
DP cell of ``adaptive-g``) are trained again with twice the steps and the
change is reported.

Scaling against paper B (length 1,000, 1M samples, 10,000 AdamW steps):
τ = 32 and 64, ``steps × batch`` samples (fresh each epoch), a few thousand
steps; recorded in the result.

Run: ``tfapprox experiment depth [--quick] [--out DIR] [--json]``.
"""

import os
import time

import numpy as np

from . import _experiment, _paperb

PAPER = {
    "bound": "one-layer DP-free: sup-norm error >= 2/3 on y_t = x_{t-g(x_t)}",
    "lower_bound": 2 / 3,
    "claims": {
        "dp_free_floor": "a one-layer DP-free model stays at sup error >= 2/3 on adaptive-g",
        "dp_reaches": "with DP (and >= 2 layers for K = 0) the error goes below 2/3",
        "depth_helps": "more layers at a fixed parameter count lower the error (K + 2 for K levels)",
    },
    "settings": "sequence length 1,000, 1M samples, AdamW 10,000 steps (paper B Sec. 6)",
}

# 16 cells and 2 doubled cells at 1,200 steps: sized (from the --quick step times, about
# 35-50 ms a step) for 15 minutes on 2 quiet CPU cores.
FULL = {
    "targets": ["adaptive-g", "adaptive-nested-2"],
    "layers": [1, 2, 3, 4],
    "parameter_budget": 7000,
    "width": 16,
    "num_heads": 4,
    "key_dim": 4,
    "value_dim": 4,
    "readout_width": 32,
    "rpe": "log",
    "steps": 1200,
    "batch_size": 64,
    "samples_per_epoch": 4096,
    "learning_rate": 3e-3,
    "num_test": 2048,
    "seed": 0,
    "double_check": True,
}
QUICK = {
    **FULL,
    "targets": ["adaptive-g"],
    "layers": [1, 2],
    "steps": 200,
    "batch_size": 32,
    "samples_per_epoch": 1024,
    "num_test": 256,
}


def sizes(settings, num_layers, use_dot_product):
    """`_paperb.parameter_count`'s arguments for one cell, the FFN width solved for the budget."""
    common = {
        "d_in": 1,
        "d_out": 1,
        "width": settings["width"],
        "num_layers": num_layers,
        "num_heads": settings["num_heads"],
        "key_dim": settings["key_dim"],
        "value_dim": settings["value_dim"],
        "readout_width": settings["readout_width"],
        "use_dot_product": use_dot_product,
        "rpe": settings["rpe"],
    }
    common["ffn_width"] = _paperb.ffn_width_for(settings["parameter_budget"], **common)
    return common


def sup_error(prediction, y):
    """Paper B's sup norm over a sample: ``max |y_t − ŷ_t|`` over sequences and positions.

    >>> sup_error(np.array([[[0.5], [1.0]]]), np.array([[[1.0], [1.0]]]))
    0.5
    """
    return float(np.max(np.abs(np.asarray(prediction, np.float64) - y)))


def train_cell(target, settings, num_layers, use_dot_product, steps):
    """Train one (target, L, DP) cell; its errors, parameter count and sizes."""
    from tfapprox import targets

    target = targets.load_preset(target)
    shape = sizes(settings, num_layers, use_dot_product)
    model = _paperb.build_model(
        target.sequence_length,
        **{k: v for k, v in shape.items()},
        seed=settings["seed"],
    )

    def batches(epoch):
        data = target.sample(settings["samples_per_epoch"], seed=settings["seed"] + epoch)
        return data.x.astype(np.float32), data.y.astype(np.float32), settings["batch_size"]

    start = time.perf_counter()
    losses = _paperb.train(
        model, batches, steps=steps, learning_rate=settings["learning_rate"], loss="mse"
    )
    test = target.sample(settings["num_test"], seed=10_000 + settings["seed"])
    prediction = _paperb.predict(model, test.x.astype(np.float32))
    return {
        "sup_error": sup_error(prediction, test.y),
        "mse": float(np.mean((prediction - test.y) ** 2)),
        "train_loss": losses[-1],
        "steps": steps,
        "parameter_count": int(model.count_params()),
        "ffn_width": shape["ffn_width"],
        "seconds": time.perf_counter() - start,
    }


def run(settings):
    """Every (target, L, DP) cell, then the doubling check of the deciding cells."""
    cells = []
    for target in settings["targets"]:
        for num_layers in settings["layers"]:
            for dp in (False, True):
                cell = train_cell(target, settings, num_layers, dp, settings["steps"])
                cells.append({"target": target, "layers": num_layers, "dp": dp, **cell})
    if settings["double_check"]:
        for cell in deciding(cells):
            again = train_cell(
                cell["target"], settings, cell["layers"], cell["dp"], 2 * settings["steps"]
            )
            cell["doubled"] = {
                "sup_error": again["sup_error"],
                "mse": again["mse"],
                "steps": again["steps"],
                "sup_change": again["sup_error"] - cell["sup_error"],
            }
    return cells


def deciding(cells):
    """The cells that decide the claims: one layer DP-free, and the best DP cell, on adaptive-g."""
    own = [c for c in cells if c["target"] == "adaptive-g"]
    chosen = [c for c in own if c["layers"] == 1 and not c["dp"]]
    with_dp = [c for c in own if c["dp"]]
    if with_dp:
        chosen.append(min(with_dp, key=lambda c: c["sup_error"]))
    return chosen


def claims(cells):
    """The paper's claims as measured: each with its numbers and whether it held."""
    out = {}
    bound = PAPER["lower_bound"]
    one = [c for c in cells if c["target"] == "adaptive-g" and c["layers"] == 1 and not c["dp"]]
    if one:
        errors = [one[0]["sup_error"]] + (
            [one[0]["doubled"]["sup_error"]] if "doubled" in one[0] else []
        )
        out["dp_free_one_layer_sup_error"] = errors
        out["dp_free_floor_held"] = bool(min(errors) >= bound)
    dp = [c for c in cells if c["target"] == "adaptive-g" and c["dp"]]
    if dp:
        best = min(dp, key=lambda c: c["sup_error"])
        out["dp_best"] = {"layers": best["layers"], "sup_error": best["sup_error"]}
        out["dp_below_bound"] = bool(best["sup_error"] < bound)
    dp_free_deep = [
        c for c in cells if c["target"] == "adaptive-g" and not c["dp"] and c["layers"] >= 2
    ]
    if dp_free_deep:
        best = min(dp_free_deep, key=lambda c: c["sup_error"])
        out["dp_free_deeper_best"] = {"layers": best["layers"], "sup_error": best["sup_error"]}
    for target in sorted({c["target"] for c in cells}):
        for dp in (False, True):
            row = sorted(
                (c for c in cells if c["target"] == target and c["dp"] == dp),
                key=lambda c: c["layers"],
            )
            if len(row) >= 2:
                key = f"{target}:{'dp' if dp else 'dp_free'}"
                out.setdefault("deeper_lowers_sup_error", {})[key] = bool(
                    row[-1]["sup_error"] < row[0]["sup_error"]
                )
    return out


def _fmt(value):
    return f"{value:.3g}"


def table(cells, found):
    rows = []
    for c in cells:
        doubled = c.get("doubled")
        rows.append(
            [
                c["target"],
                c["layers"],
                "yes" if c["dp"] else "no",
                c["parameter_count"],
                c["ffn_width"],
                _fmt(c["sup_error"]),
                _fmt(c["mse"]),
                f"{_fmt(doubled['sup_error'])} ({doubled['steps']} steps)" if doubled else "",
            ]
        )
    text = _experiment.markdown_table(
        ["target", "L", "DP", "params", "FFN m", "sup error", "MSE", "sup error, 2× steps"], rows
    )
    lines = [text, "", "paper B: one-layer DP-free sup error >= 2/3 on adaptive-g; DP goes below"]
    if "dp_free_one_layer_sup_error" in found:
        lines.append(
            "- one layer DP-free: sup error "
            + ", ".join(_fmt(v) for v in found["dp_free_one_layer_sup_error"])
            + f"; stays >= 2/3: {found['dp_free_floor_held']}"
        )
    if "dp_best" in found:
        lines.append(
            f"- best DP cell: L = {found['dp_best']['layers']}, sup error "
            f"{_fmt(found['dp_best']['sup_error'])}; below 2/3: {found['dp_below_bound']}"
        )
    if "dp_free_deeper_best" in found:
        lines.append(
            f"- best DP-free cell with L >= 2: L = {found['dp_free_deeper_best']['layers']}, "
            f"sup error {_fmt(found['dp_free_deeper_best']['sup_error'])}"
        )
    for key, held in found.get("deeper_lowers_sup_error", {}).items():
        lines.append(f"- {key}: deepest below one layer: {held}")
    return "\n".join(lines)


def _figure(cells, out):
    from tfapprox.plots import pyplot, save_figure

    plt = pyplot()
    names = sorted({c["target"] for c in cells})
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.6), squeeze=False)
    for ax, name in zip(axes[0], names):
        for dp, style in ((False, "o--"), (True, "s-")):
            row = sorted(
                (c for c in cells if c["target"] == name and c["dp"] == dp),
                key=lambda c: c["layers"],
            )
            ax.plot(
                [c["layers"] for c in row],
                [c["sup_error"] for c in row],
                style,
                label="DP" if dp else "DP-free",
            )
        ax.axhline(PAPER["lower_bound"], color="C3", lw=0.8, ls=":", label="2/3 (paper B)")
        ax.set_xlabel("layers L (fixed parameter count)")
        ax.set_ylabel("sup error")
        ax.set_title(name, fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = os.path.join(out, "depth.png")
    save_figure(fig, path)
    return path


def main(argv=None):
    args, out, settings = _experiment.start(argv, __doc__, "runs/depth", QUICK, FULL)
    import keras

    start = time.perf_counter()
    cells = run(settings)
    found = claims(cells)
    result = {
        "experiment": "depth",
        "paper": "Wang & E (NeurIPS 2024), Type II targets, Sec. 4-6",
        "quick": bool(args.quick),
        "settings": {
            **settings,
            "backend": keras.backend.backend(),
            "model": "analysis/_paperb.py: embedding, L residual blocks (causal MHA + ReLU FFN), "
            "no layer norm, readout FFN; the blocks' FFN width solved for the budget",
            "optimizer": "Adam, linear warm-up (5%) and cosine decay, clipnorm 1",
            "loss": "MSE over all positions; fresh samples every epoch",
            "reported": "sup error max|y - y_hat| over every position of fresh test sequences",
            "scaling": "paper B: tau 1,000, 1M samples, 10,000 AdamW steps; here tau 32 "
            "(adaptive-g) and 64 (adaptive-nested-2), steps x batch fresh samples",
        },
        "paper_b": PAPER,
        "cells": cells,
        "claims": found,
        "seconds": time.perf_counter() - start,
    }
    figure = _figure(cells, out)
    return _experiment.finish(result, table(cells, found), out, as_json=args.json, figure=figure)


if __name__ == "__main__":
    main()
