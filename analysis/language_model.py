"""A character-level language model: more layers vs more heads, DP vs DP-free (paper B Tables 2, 7).

Paper B (Wang & E, NeurIPS 2024) pre-trains language models and reports
(Table 2) that at equal parameter counts, adding layers lowers the loss far
more than adding heads (a gain of 0.802 from layers against 0.136 from
heads), and (Table 7) that dot-product attention (DP) beats DP-free
attention at three sizes (5.796 vs 5.830, 5.374 vs 5.486, 4.994 vs 5.274),
the gap widening with size.

Here, scaled down to a CPU: a character-level model of the Python standard
library's own source (`tfapprox.datasets.python_source_text`, no download;
96 symbols), next-character prediction on windows of τ characters
(`tfapprox.datasets.character_windows`: one-hot inputs, sparse categorical
cross-entropy on the 96 logits of every position, causal attention with the
linear-type RPE), paper B's model (`analysis/_paperb.py`). The first 90% of
the text trains (fresh random windows every epoch), the last 10% is the
held-out validation slice; the reported loss is the mean cross-entropy (nats
per character) on fixed validation windows.

- Table 2: a base model (L layers, H heads), the base with more layers, and
  the base with more heads, the head count chosen so that its parameter
  count is closest to the deeper model's. Gain = base loss − loss.
- Table 7: the same architecture with and without DP at three depths (the
  DP-free model has no W_Q, W_K, so fewer parameters; counts recorded).

The Table 2 models are trained again with twice the steps and the gains
recomputed, so the conclusion is not one of an optimiser stopped early.

Run: ``tfapprox experiment language-model [--quick] [--out DIR] [--json]``.
"""

import os
import time

import numpy as np

from . import _experiment, _paperb

PAPER = {
    "table2": {"gain_layers": 0.802, "gain_heads": 0.136},
    "table7": [
        {"size": "small", "dp": 5.796, "dp_free": 5.830},
        {"size": "medium", "dp": 5.374, "dp_free": 5.486},
        {"size": "large", "dp": 4.994, "dp_free": 5.274},
    ],
    "settings": "token-level pre-training at equal parameter counts (paper B Sec. 6, App.)",
}

# 7 models and 3 doubled ones at 1,200 steps: sized (from the --quick step times, about
# 35-50 ms a step) for 15 minutes on 2 quiet CPU cores.
FULL = {
    "max_chars": 400_000,
    "validation_fraction": 0.1,
    "tau": 64,
    "width": 32,
    "key_dim": 8,
    "value_dim": 8,
    "ffn_width": 64,
    "readout_width": 64,
    "rpe": "linear",
    "base": {"layers": 1, "heads": 2},
    "more_layers": 2,
    "dp_depths": [1, 2, 3],
    "steps": 1200,
    "batch_size": 32,
    "windows_per_epoch": 2048,
    "num_validation": 1024,
    "learning_rate": 3e-3,
    "seed": 0,
    "double_check": True,
}
QUICK = {
    **FULL,
    "max_chars": 60_000,
    "tau": 32,
    "width": 16,
    "key_dim": 4,
    "value_dim": 4,
    "ffn_width": 32,
    "readout_width": 32,
    "dp_depths": [1, 2],
    "steps": 150,
    "windows_per_epoch": 1024,
    "num_validation": 256,
    "double_check": False,
}

VOCABULARY = 96


def sizes(settings, num_layers, num_heads, use_dot_product=True):
    """`_paperb.parameter_count`'s arguments for one configuration."""
    return {
        "d_in": VOCABULARY,
        "d_out": VOCABULARY,
        "width": settings["width"],
        "num_layers": num_layers,
        "num_heads": num_heads,
        "key_dim": settings["key_dim"],
        "value_dim": settings["value_dim"],
        "ffn_width": settings["ffn_width"],
        "readout_width": settings["readout_width"],
        "use_dot_product": use_dot_product,
        "rpe": settings["rpe"],
    }


def matching_heads(settings, target_count, num_layers):
    """The head count whose parameter count at ``num_layers`` is closest to ``target_count``.

    >>> s = {**QUICK}
    >>> deeper = _paperb.parameter_count(**sizes(s, 2, 2))
    >>> h = matching_heads(s, deeper, 1)
    >>> h > 2
    True
    """
    counts = {h: _paperb.parameter_count(**sizes(settings, num_layers, h)) for h in range(1, 129)}
    return min(counts, key=lambda h: (abs(counts[h] - target_count), h))


def configurations(settings):
    """Every model to train: name, layers, heads, DP, and the tables it serves."""
    base = settings["base"]
    deeper = _paperb.parameter_count(**sizes(settings, settings["more_layers"], base["heads"]))
    wide = matching_heads(settings, deeper, base["layers"])
    configs = {
        "base": (base["layers"], base["heads"], True),
        "more_layers": (settings["more_layers"], base["heads"], True),
        "more_heads": (base["layers"], wide, True),
    }
    for depth in settings["dp_depths"]:
        configs[f"dp_L{depth}"] = (depth, base["heads"], True)
        configs[f"dp_free_L{depth}"] = (depth, base["heads"], False)
    return configs


def corpus(settings):
    """``(train_text, validation_text, sources)``: the text split at ``1 − validation_fraction``."""
    from tfapprox.datasets import python_source_text

    text, sources = python_source_text(settings["max_chars"])
    cut = int(len(text) * (1 - settings["validation_fraction"]))
    return text[:cut], text[cut:], sources


def train_config(settings, train_text, validation, layers, heads, dp, steps):
    """Train one configuration; its validation loss and parameter count."""
    import keras

    from tfapprox.datasets import character_windows

    shape = sizes(settings, layers, heads, dp)
    model = _paperb.build_model(settings["tau"], **shape, seed=settings["seed"])

    def batches(epoch):
        x, y = character_windows(
            train_text,
            settings["tau"],
            settings["windows_per_epoch"],
            seed=settings["seed"] + 1 + epoch,
        )
        return x, y, settings["batch_size"]

    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    start = time.perf_counter()
    losses = _paperb.train(
        model, batches, steps=steps, learning_rate=settings["learning_rate"], loss=loss
    )
    logits = _paperb.predict(model, validation[0])  # (N, tau, 96)
    return {
        "validation_loss": cross_entropy(logits, validation[1]),
        "train_loss": losses[-1],
        "parameter_count": int(model.count_params()),
        "steps": steps,
        "seconds": time.perf_counter() - start,
    }


def cross_entropy(logits, labels):
    """Mean ``−log softmax(logits)[label]`` in nats, in float64.

    >>> bool(np.isclose(cross_entropy(np.zeros((1, 2, 4)), np.array([[0, 3]])), np.log(4)))
    True
    """
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_z = np.log(np.exp(shifted).sum(axis=-1))
    picked = np.take_along_axis(shifted, np.asarray(labels)[..., None], axis=-1)[..., 0]
    return float(np.mean(log_z - picked))


def run(settings):
    """Train every configuration (and the Table 2 ones again with twice the steps)."""
    from tfapprox.datasets import character_windows

    train_text, validation_text, sources = corpus(settings)
    validation = character_windows(
        validation_text, settings["tau"], settings["num_validation"], seed=12_345
    )
    data = {
        "train_chars": len(train_text),
        "validation_chars": len(validation_text),
        "files": len(sources),
        "first_file": sources[0],
        "last_file": sources[-1],
    }
    results, trained = {}, {}
    for name, (layers, heads, dp) in configurations(settings).items():
        # The same architecture under two names (the base is Table 7's DP model
        # at its depth) is trained once.
        if (layers, heads, dp) not in trained:
            trained[layers, heads, dp] = train_config(
                settings, train_text, validation, layers, heads, dp, settings["steps"]
            )
        results[name] = {"layers": layers, "heads": heads, "dp": dp, **trained[layers, heads, dp]}
    if settings["double_check"]:
        for name in ("base", "more_layers", "more_heads"):
            c = results[name]
            again = train_config(
                settings,
                train_text,
                validation,
                c["layers"],
                c["heads"],
                c["dp"],
                2 * settings["steps"],
            )
            c["doubled"] = {"validation_loss": again["validation_loss"], "steps": again["steps"]}
            for other in results.values():
                if other is not c and (other["layers"], other["heads"], other["dp"]) == (
                    c["layers"],
                    c["heads"],
                    c["dp"],
                ):
                    other["doubled"] = dict(c["doubled"])
    return results, data


def claims(results, settings):
    """Gains from layers and heads (Table 2) and the DP gaps (Table 7), and whether they held."""
    base = results["base"]["validation_loss"]
    out = {
        "gain_layers": base - results["more_layers"]["validation_loss"],
        "gain_heads": base - results["more_heads"]["validation_loss"],
    }
    out["layers_beat_heads"] = bool(out["gain_layers"] > out["gain_heads"])
    if all("doubled" in results[n] for n in ("base", "more_layers", "more_heads")):
        doubled = {
            n: results[n]["doubled"]["validation_loss"] for n in results if "doubled" in results[n]
        }
        out["doubled"] = {
            "gain_layers": doubled["base"] - doubled["more_layers"],
            "gain_heads": doubled["base"] - doubled["more_heads"],
        }
        out["doubled"]["layers_beat_heads"] = bool(
            out["doubled"]["gain_layers"] > out["doubled"]["gain_heads"]
        )
    gaps = []
    for depth in settings["dp_depths"]:
        dp, free = results[f"dp_L{depth}"], results[f"dp_free_L{depth}"]
        gaps.append(
            {
                "layers": depth,
                "dp": dp["validation_loss"],
                "dp_free": free["validation_loss"],
                "dp_free_minus_dp": free["validation_loss"] - dp["validation_loss"],
            }
        )
    out["dp_gaps"] = gaps
    out["dp_better_at_every_size"] = bool(all(g["dp_free_minus_dp"] > 0 for g in gaps))
    return out


def _fmt(value):
    return f"{value:.3f}"


def table(results, found, settings):
    rows = []
    for name, c in results.items():
        rows.append(
            [
                name,
                c["layers"],
                c["heads"],
                "yes" if c["dp"] else "no",
                c["parameter_count"],
                _fmt(c["validation_loss"]),
                _fmt(c["doubled"]["validation_loss"]) if "doubled" in c else "",
            ]
        )
    text = _experiment.markdown_table(
        ["model", "L", "H", "DP", "params", "validation loss", "2× steps"], rows
    )
    paper2 = PAPER["table2"]
    lines = [
        text,
        "",
        f"- Table 2 (equal parameters): gain from layers {_fmt(found['gain_layers'])}, "
        f"from heads {_fmt(found['gain_heads'])} (paper: {paper2['gain_layers']} vs "
        f"{paper2['gain_heads']}); layers beat heads: {found['layers_beat_heads']}",
    ]
    if "doubled" in found:
        d = found["doubled"]
        lines.append(
            f"- with twice the steps: gain from layers {_fmt(d['gain_layers'])}, from heads "
            f"{_fmt(d['gain_heads'])}; layers beat heads: {d['layers_beat_heads']}"
        )
    for gap, paper in zip(found["dp_gaps"], PAPER["table7"]):
        lines.append(
            f"- Table 7, L = {gap['layers']}: DP {_fmt(gap['dp'])} vs DP-free "
            f"{_fmt(gap['dp_free'])} (paper, {paper['size']}: {paper['dp']} vs {paper['dp_free']})"
        )
    lines.append(f"- DP better at every size: {found['dp_better_at_every_size']}")
    return "\n".join(lines)


def _figure(results, found, out):
    from tfapprox.plots import pyplot, save_figure

    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.6))
    names = ["base", "more_layers", "more_heads"]
    axes[0].bar(names, [results[n]["validation_loss"] for n in names], color=["C7", "C0", "C1"])
    axes[0].set_ylim(min(results[n]["validation_loss"] for n in names) * 0.95, None)
    axes[0].set_ylabel("validation loss (nats/char)")
    axes[0].set_title("equal parameters: layers vs heads", fontsize=9)
    depths = [g["layers"] for g in found["dp_gaps"]]
    axes[1].plot(depths, [g["dp"] for g in found["dp_gaps"]], "s-", label="DP")
    axes[1].plot(depths, [g["dp_free"] for g in found["dp_gaps"]], "o--", label="DP-free")
    axes[1].set_xlabel("layers L")
    axes[1].set_ylabel("validation loss (nats/char)")
    axes[1].set_title("DP vs DP-free", fontsize=9)
    axes[1].legend(fontsize=7)
    fig.tight_layout()
    path = os.path.join(out, "language_model.png")
    save_figure(fig, path)
    return path


def main(argv=None):
    args, out, settings = _experiment.start(argv, __doc__, "runs/language-model", QUICK, FULL)
    import keras

    start = time.perf_counter()
    results, data = run(settings)
    found = claims(results, settings)
    result = {
        "experiment": "language-model",
        "paper": "Wang & E (NeurIPS 2024), Tables 2 and 7",
        "quick": bool(args.quick),
        "settings": {
            **settings,
            "backend": keras.backend.backend(),
            "model": "analysis/_paperb.py: one-hot characters (96), embedding, L residual blocks "
            "(causal MHA + ReLU FFN), no layer norm, readout FFN giving 96 logits",
            "optimizer": "Adam, linear warm-up (5%) and cosine decay, clipnorm 1",
            "loss": "sparse categorical cross-entropy from logits, every position",
            "reported": "mean cross-entropy (nats per character) on fixed windows of the "
            "held-out last slice of the text",
            "scaling": "paper B: token-level pre-training on a large corpus; here characters of "
            "the Python standard library, tau and steps as above",
        },
        "data": data,
        "paper_b": PAPER,
        "models": results,
        "claims": found,
        "seconds": time.perf_counter() - start,
    }
    figure = _figure(results, found, out)
    return _experiment.finish(
        result, table(results, found, settings), out, as_json=args.json, figure=figure
    )


if __name__ == "__main__":
    main()
