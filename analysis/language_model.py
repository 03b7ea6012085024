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
linear-type RPE), paper B's model built by `tfapprox.models.build_transformer`
from a `tfapprox.Budget` (linear embedding, residual blocks without layer
norm, two-layer ReLU FFNs of width m between blocks, a readout FFN of width
``readout_width``). The first 90% of the text trains (``num_train`` random
windows, one fixed set; see ``DATA_CHOICE``), the last 10% is the held-out
validation slice; the reported loss is the mean cross-entropy (nats per
character) on fixed validation windows. Every model trains in one group of
`tfapprox.group.train_models` (loss ``"sparse_categorical_crossentropy"``).

- Table 2: a base model (L layers, H heads), the base with more layers, and
  the base with more heads, the head count chosen so that its parameter
  count (`Budget.parameter_count`) is closest to the deeper model's.
  Gain = base loss − loss.
- Table 7: the same architecture with and without DP at three depths (the
  DP-free model has no W_Q, W_K, so fewer parameters; counts recorded).

The deciding models (Table 2's three; Table 7's pair at the sizes in
``double_depths``) are trained again with twice the epochs in one group
(`analysis._convergence`): each records the relative change of its
validation loss and ``converged`` (|change| <= 10%); the gains are
recomputed from the doubled losses, and a claim read from an unconverged or
unchecked model is "not converged".

Run: ``tfapprox experiment language-model [--quick] [--out DIR] [--json]``.
"""

import os
import time

import numpy as np

from . import _convergence, _experiment

PAPER = {
    "table2": {"gain_layers": 0.802, "gain_heads": 0.136},
    "table7": [
        {"size": "small", "dp": 5.796, "dp_free": 5.830},
        {"size": "medium", "dp": 5.374, "dp_free": 5.486},
        {"size": "large", "dp": 4.994, "dp_free": 5.274},
    ],
    "settings": "token-level pre-training at equal parameter counts (paper B Sec. 6, App.)",
}

DATA_CHOICE = {
    "choice": "one fixed set of num_train training windows (train_models' way) instead of "
    "fresh windows every epoch",
    "measurement": "the depth experiment's comparison at equal steps (a larger fixed set, "
    "nearer to fresh samples, was as good or better) sets num_train as large as memory "
    "allows: 8,192 one-hot windows of 64 characters (200 MB); the result records each "
    "model's training and validation loss, so overfitting of the fixed set shows as their gap",
}

# Sized for <= 12 minutes on 2 quiet CPU cores. Measured CPU time per step (all threads,
# batch 32, TensorFlow) of the group of the 7 distinct models: 0.063 s; compiling a group
# about 31 s. 2,560 steps (10 epochs of 256 batches), the 7 deciding models again for 5,120
# steps: 62 + 2,560 x 0.063 + 5,120 x 0.063 + about 10 s of data and evaluation = about
# 560 s of CPU time, an upper bound on the wall time on 2 cores.
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
    "double_depths": [1, 2, 3],
    "epochs": 10,
    "batch_size": 32,
    "num_train": 8192,
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
    "double_depths": [],
    "epochs": 4,
    "num_train": 512,
    "num_validation": 256,
}

VOCABULARY = 96


def budget(settings, num_layers, num_heads):
    """The `Budget` of a configuration: paper B's FFNs (one hidden layer), its own readout width."""
    from tfapprox import Budget

    return Budget(
        n=settings["width"],
        m_h=settings["key_dim"],
        m_v=settings["value_dim"],
        m_ff=settings["ffn_width"],
        ff_depth=1,
        num_heads=num_heads,
        num_layers=num_layers,
        m_readout=settings["readout_width"],
    )


def architecture(settings, use_dot_product=True):
    """`build_transformer`'s options of paper B's model (besides the budget)."""
    return {
        "residual": True,
        "rpe": settings["rpe"],
        "use_dot_product": use_dot_product,
        "embedding": "linear",
        "position_encoding": "none",
    }


def parameter_count(settings, num_layers, num_heads, use_dot_product=True):
    """The exact count of a configuration's model (96 one-hot symbols in, 96 logits out)."""
    return budget(settings, num_layers, num_heads).parameter_count(
        settings["tau"], VOCABULARY, VOCABULARY, **architecture(settings, use_dot_product)
    )


def matching_heads(settings, target_count, num_layers):
    """The head count whose parameter count at ``num_layers`` is closest to ``target_count``.

    >>> s = {**QUICK}
    >>> deeper = parameter_count(s, 2, 2)
    >>> h = matching_heads(s, deeper, 1)
    >>> h > 2
    True
    """
    counts = {h: parameter_count(settings, num_layers, h) for h in range(1, 129)}
    return min(counts, key=lambda h: (abs(counts[h] - target_count), h))


def configurations(settings):
    """Every model to train: name, layers, heads, DP, and the tables it serves."""
    base = settings["base"]
    deeper = parameter_count(settings, settings["more_layers"], base["heads"])
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


def deciding(settings):
    """The configurations trained again with twice the epochs: Table 2's three and
    Table 7's pairs at ``double_depths``."""
    names = ["base", "more_layers", "more_heads"]
    for depth in settings["double_depths"]:
        names += [f"dp_L{depth}", f"dp_free_L{depth}"]
    return names


def corpus(settings):
    """``(train_text, validation_text, sources)``: the text split at ``1 − validation_fraction``."""
    from tfapprox.datasets import python_source_text

    text, sources = python_source_text(settings["max_chars"])
    cut = int(len(text) * (1 - settings["validation_fraction"]))
    return text[:cut], text[cut:], sources


def train_group(settings, train, validation, architectures, epochs):
    """Train ``architectures`` (``(layers, heads, dp)`` triples) as one group.

    Returns one dict per architecture: validation loss, training loss,
    parameter count, epochs, steps and seconds.
    """
    from tfapprox.group import train_models
    from tfapprox.models import build_transformer

    models = [
        build_transformer(
            budget(settings, layers, heads),
            settings["tau"],
            VOCABULARY,
            VOCABULARY,
            causal=True,
            seed=settings["seed"],
            name=f"L{layers}_H{heads}_{'dp' if dp else 'dp_free'}",
            **architecture(settings, dp),
        )
        for layers, heads, dp in architectures
    ]
    result = train_models(
        models,
        train,
        _convergence.cosine_config(settings, epochs),
        validation_data=validation,
        shuffle_seed=settings["seed"],
        loss="sparse_categorical_crossentropy",
        progress=_experiment.progress(f"language-model: {len(models)} models", epochs),
        checkpoint=_experiment.checkpoint(),
    )
    steps = epochs * -(-len(train[0]) // settings["batch_size"])
    return [
        {
            "validation_loss": record["val_loss"],
            "train_loss": record["loss"],
            "parameter_count": int(model.count_params()),
            "epochs": epochs,
            "steps": steps,
            "seconds": record["seconds"],
        }
        for model, record in zip(result.models, result.records)
    ]


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
    """Train every configuration in one group, then the deciding ones with twice the epochs."""
    from tfapprox.datasets import character_windows

    train_text, validation_text, sources = corpus(settings)
    train = character_windows(
        train_text, settings["tau"], settings["num_train"], seed=settings["seed"] + 1
    )
    validation = character_windows(
        validation_text, settings["tau"], settings["num_validation"], seed=12_345
    )
    data = {
        "train_chars": len(train_text),
        "validation_chars": len(validation_text),
        "train_windows": settings["num_train"],
        "files": len(sources),
        "first_file": sources[0],
        "last_file": sources[-1],
    }
    configs = configurations(settings)
    # The same architecture under two names (the base is Table 7's DP model at
    # its depth) is trained once.
    unique = list(dict.fromkeys(configs.values()))
    trained = dict(
        zip(unique, train_group(settings, train, validation, unique, settings["epochs"]))
    )
    results = {
        name: {"layers": a[0], "heads": a[1], "dp": a[2], **trained[a]}
        for name, a in configs.items()
    }
    timing = {"group": trained[unique[0]]["seconds"] * len(unique)}
    if settings["double_check"]:
        again = list(dict.fromkeys(configs[name] for name in deciding(settings)))
        doubled = train_group(settings, train, validation, again, 2 * settings["epochs"])
        timing["doubled"] = doubled[0]["seconds"] * len(again)
        for architecture_, other in zip(again, doubled):
            record = {
                **_convergence.check(
                    trained[architecture_]["validation_loss"], other["validation_loss"]
                ),
                "epochs": other["epochs"],
            }
            for c in results.values():
                if (c["layers"], c["heads"], c["dp"]) == architecture_:
                    c["doubled"] = dict(record)
    return results, data, timing


def claims(results, settings):
    """Gains from layers and heads (Table 2) and the DP gaps (Table 7), whether they held,
    and each claim's verdict (`_convergence.verdict`)."""
    base = results["base"]["validation_loss"]
    out = {
        "gain_layers": base - results["more_layers"]["validation_loss"],
        "gain_heads": base - results["more_heads"]["validation_loss"],
    }
    out["layers_beat_heads"] = bool(out["gain_layers"] > out["gain_heads"])
    table2 = [results[n] for n in ("base", "more_layers", "more_heads")]
    verdicts = {
        "layers_beat_heads": _convergence.verdict(
            out["layers_beat_heads"], _convergence.doubled(table2)
        )
    }
    if all("doubled" in c for c in table2):
        doubled = {
            n: results[n]["doubled"]["error_2x"] for n in ("base", "more_layers", "more_heads")
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
        gap = {
            "layers": depth,
            "dp": dp["validation_loss"],
            "dp_free": free["validation_loss"],
            "dp_free_minus_dp": free["validation_loss"] - dp["validation_loss"],
        }
        gap["verdict"] = _convergence.verdict(
            gap["dp_free_minus_dp"] > 0, _convergence.doubled([dp, free])
        )
        gaps.append(gap)
    out["dp_gaps"] = gaps
    out["dp_better_at_every_size"] = bool(all(g["dp_free_minus_dp"] > 0 for g in gaps))
    pairs = [results[f"{kind}_L{d}"] for d in settings["dp_depths"] for kind in ("dp", "dp_free")]
    verdicts["dp_better_at_every_size"] = _convergence.verdict(
        out["dp_better_at_every_size"], _convergence.doubled(pairs)
    )
    out["verdicts"] = verdicts
    out["convergence_threshold"] = _convergence.CONVERGENCE_TOLERANCE
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
                _fmt(c["train_loss"]),
                _fmt(c["validation_loss"]),
                _convergence.describe(c.get("doubled")),
            ]
        )
    text = _experiment.markdown_table(
        ["model", "L", "H", "DP", "params", "train loss", "validation loss", "2× epochs"], rows
    )
    paper2 = PAPER["table2"]
    lines = [
        text,
        "",
        f"- Table 2 (equal parameters): gain from layers {_fmt(found['gain_layers'])}, "
        f"from heads {_fmt(found['gain_heads'])} (paper: {paper2['gain_layers']} vs "
        f"{paper2['gain_heads']}); layers beat heads: {found['layers_beat_heads']} "
        f"({found['verdicts']['layers_beat_heads']})",
    ]
    if "doubled" in found:
        d = found["doubled"]
        lines.append(
            f"- with twice the epochs: gain from layers {_fmt(d['gain_layers'])}, from heads "
            f"{_fmt(d['gain_heads'])}; layers beat heads: {d['layers_beat_heads']}"
        )
    for gap, paper in zip(found["dp_gaps"], PAPER["table7"]):
        lines.append(
            f"- Table 7, L = {gap['layers']}: DP {_fmt(gap['dp'])} vs DP-free "
            f"{_fmt(gap['dp_free'])} ({gap['verdict']}; paper, {paper['size']}: {paper['dp']} vs "
            f"{paper['dp_free']})"
        )
    lines.append(
        f"- DP better at every size: {found['dp_better_at_every_size']} "
        f"({found['verdicts']['dp_better_at_every_size']})"
    )
    lines.append(
        f"converged: |e_2x - e_1x| / e_1x <= {found['convergence_threshold']:.0%} "
        "(validation loss, twice the epochs)"
    )
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


@_experiment.entry
def main(argv=None):
    args, out, settings = _experiment.start(argv, __doc__, "runs/language-model", QUICK, FULL)
    import keras

    start = time.perf_counter()
    results, data, timing = run(settings)
    found = claims(results, settings)
    result = {
        "experiment": "language-model",
        "paper": "Wang & E (NeurIPS 2024), Tables 2 and 7",
        "quick": bool(args.quick),
        "settings": {
            **settings,
            "backend": keras.backend.backend(),
            "model": "tfapprox.models.build_transformer with a Budget (m_readout = "
            "readout_width): one-hot characters (96), linear embedding, L residual blocks "
            "(causal MHA, linear RPE; ReLU FFN between blocks), no layer norm, readout FFN "
            "giving 96 logits",
            "training": "tfapprox.group.train_models: every configuration in one group; the "
            "deciding ones again with 2x epochs in one group",
            "training_config": _convergence.cosine_config(settings, settings["epochs"]).to_dict(),
            "data_choice": DATA_CHOICE,
            "loss": "sparse categorical cross-entropy from logits, every position, on one "
            "fixed set of num_train training windows",
            "reported": "mean cross-entropy (nats per character) on fixed windows of the "
            "held-out last slice of the text",
            "convergence_threshold": _convergence.CONVERGENCE_TOLERANCE,
            "scaling": "paper B: token-level pre-training on a large corpus; here characters of "
            "the Python standard library, tau, windows and epochs as above",
        },
        "data": data,
        "paper_b": PAPER,
        "models": results,
        "claims": found,
        "group_seconds": timing,
        "seconds": time.perf_counter() - start,
    }
    figure = _figure(results, found, out)
    return _experiment.finish(
        result, table(results, found, settings), out, as_json=args.json, figure=figure
    )


if __name__ == "__main__":
    main()
