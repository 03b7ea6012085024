"""K Keras models of mixed architectures: `train_models` against sequential ``model.fit``.

The group is what paper B's experiments train: `build_transformer` models
of several budgets next to ``keras.Sequential`` SimpleRNN baselines and
token-wise MLPs, all on one sequence target. Two ways to train it, for the
same number of epochs and steps with the same batch size, Adam (constant
learning rate) and XLA compilation:

- **group**: `tfapprox.group.train_models` on all K models at once (one
  compiled call per epoch, every model's ``stateless_call`` inside);
- **stock** (what a user has without it): for each model,
  ``model.compile(Adam, "mse", jit_compile=True)`` +
  ``model.fit(x, y, batch_size, epochs, shuffle=True)``, one after another.

Timing, as `analysis.bench_sweep`: each pass trains ``--epochs`` epochs and
the timed part runs from the end of its first epoch to the end of its last
(building, compiling and the first epoch are excluded: the steady-state
cost of ``epochs − 1`` epochs). The passes alternate in ABBA order and the
medians are reported. ``ratio`` is stock / group of those medians;
``ratio_end_to_end`` compares the cold first passes (build, compile, train).

Usage (from the repository root)::

    python -m analysis.bench_group [--quick] [--json OUT] [--repeats 4]
        [--epochs 4] [--samples 256] [--batch 64]
"""

import argparse
import statistics
import sys
import time

import numpy as np

from .bench_sweep import _Stamps, _stock_pass

# (tau, d, transformer budgets (n, m_h, m_ff, ff_depth), RNN widths, MLP widths)
SPEC = (16, 1, ((16, 1, 32, 2), (16, 2, 32, 2), (16, 4, 32, 2), (32, 8, 64, 2)), (32, 64), (32,))
QUICK_SPEC = (4, 1, ((4, 1, 8, 1),), (4,), (4,))


def build_models(spec, seed=0):
    """The group: transformers, SimpleRNNs and token-wise MLPs, seeded."""
    import keras

    from tfapprox.budget import Budget
    from tfapprox.models import build_transformer

    tau, d, budgets, rnn_widths, mlp_widths = spec
    models = []
    for i, (n, m_h, m_ff, depth) in enumerate(budgets):
        budget = Budget(n=n, m_h=m_h, m_ff=m_ff, ff_depth=depth)
        models.append(build_transformer(budget, tau, d, seed=seed + i, name=f"transformer_{i}"))
    keras.utils.set_random_seed(seed)
    for width in rnn_widths:
        models.append(
            keras.Sequential(
                [
                    keras.Input((tau, d)),
                    keras.layers.SimpleRNN(width, return_sequences=True),
                    keras.layers.Dense(1),
                ],
                name=f"rnn_{width}",
            )
        )
    for width in mlp_widths:
        models.append(
            keras.Sequential(
                [
                    keras.Input((tau, d)),
                    keras.layers.Dense(width, activation="relu"),
                    keras.layers.Dense(1),
                ],
                name=f"mlp_{width}",
            )
        )
    return models


def _compile_stock(models, learning_rate):
    import keras

    for model in models:
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse", jit_compile=True)
    return models


def _group_pass(models, x, y, config):
    from tfapprox.group import train_models

    stamps = _Stamps()
    train_models(models, (x, y), config, progress=stamps)
    return stamps.steady()


def main(argv=None):
    """Run the benchmark; return ``{"backend", "models", "seconds_group", "ratio", ...}``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny models, one ABBA round")
    parser.add_argument("--json", dest="json_path", help="write the result as JSON here")
    parser.add_argument("--repeats", type=int, default=None, help="timed passes per method")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per pass (>= 2)")
    parser.add_argument("--samples", type=int, default=None, help="training sequences")
    parser.add_argument("--batch", type=int, default=64, help="batch size")
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 4)
    epochs = args.epochs or (2 if args.quick else 4)
    samples = args.samples or (32 if args.quick else 256)
    batch = min(args.batch, samples)
    if epochs < 2:
        parser.error("--epochs must be >= 2 (the first epoch is not timed)")

    import keras

    spec = QUICK_SPEC if args.quick else SPEC
    tau, d = spec[0], spec[1]
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(samples, tau, d)).astype("float32")
    y = (np.cumsum(x, axis=1) / tau).astype("float32")
    config = {
        "epochs": epochs,
        "batch_size": batch,
        "learning_rate": 1e-3,
        "schedule": "constant",
        "patience": 10 * epochs,
    }

    # Cold passes: build, compile and train, as a user's first run.
    start = time.perf_counter()
    grouped = build_models(spec)
    _group_pass(grouped, x, y, config)
    cold_group = time.perf_counter() - start
    start = time.perf_counter()
    stock = _compile_stock(build_models(spec), 1e-3)
    _stock_pass(stock, x, y, batch, epochs)
    cold_stock = time.perf_counter() - start
    names = [model.name for model in grouped]
    print(
        f"{len(names)} models: {', '.join(names)}; cold: group {cold_group:.1f}s, "
        f"stock {cold_stock:.1f}s",
        flush=True,
    )

    times = {"group": [], "stock": []}
    passes = {
        "group": lambda: _group_pass(grouped, x, y, config),
        "stock": lambda: _stock_pass(stock, x, y, batch, epochs),
    }
    order = ["group", "stock"]
    for repeat in range(repeats):
        for kind in order if repeat % 2 == 0 else order[::-1]:
            times[kind].append(passes[kind]())
    median = {kind: statistics.median(values) for kind, values in times.items()}
    result = {
        "backend": keras.backend.backend(),
        "models": names,
        "parameter_counts": [int(model.count_params()) for model in grouped],
        "tau": tau,
        "samples": samples,
        "batch": batch,
        "epochs": epochs,
        "repeats": repeats,
        "timed_steps_per_model": (epochs - 1) * -(-samples // batch),
        "times": times,
        "seconds_group": median["group"],
        "seconds_stock": median["stock"],
        "ratio": median["stock"] / median["group"],
        "seconds_cold_group": cold_group,
        "seconds_cold_stock": cold_stock,
        "ratio_end_to_end": cold_stock / cold_group,
    }
    print(
        f"backend {result['backend']}: {len(names)} models, {result['timed_steps_per_model']} "
        f"timed steps each; group {median['group']:.2f}s, sequential model.fit "
        f"{median['stock']:.2f}s, ratio {result['ratio']:.2f} (end to end "
        f"{result['ratio_end_to_end']:.2f})"
    )
    if args.json_path:
        from tfapprox import _io

        _io.atomic_write_json(args.json_path, result)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
