"""A budget sweep trained by the batched engine against sequential single-model fits.

One sweep = E members (one `Budget` per m_h, seed 0) on the same data. Three
ways to train it, each for the same number of epochs and steps with the same
batch size, Adam and XLA compilation:

- **engine**: `tfapprox.engine.train_members` on all E members at once (one
  compiled call per epoch);
- **stock** (the alternative a user has without the engine): for each member,
  ``build_transformer`` + ``model.compile(Adam, "mse", jit_compile=True)`` +
  ``model.fit(x, y, batch_size, epochs, shuffle=True)``, one after another;
- **sequential engine**: `train_members` called E times with one member each,
  which separates the gain of batching members from the gain of one compiled
  call per epoch.

Timing. Each pass trains ``--epochs`` epochs; the timed part is from the end
of its first epoch to the end of its last (a callback stamps epoch ends), so
model building, compilation and the first epoch are excluded and the number
is the steady-state cost of ``epochs − 1`` epochs. Every model and engine is
warmed once before the timed passes; the passes are interleaved in ABBA order
(engine, stock, sequential, sequential, stock, engine, ...) and the medians
are reported, so all three see the same drift of a shared machine.
``ratio`` is stock / engine of those medians, ``ratio_sequential`` is
sequential engine / engine. ``ratio_end_to_end`` compares the cold first
passes (building, compiling and training, as a user's first sweep would).

FLOPs are counted per member from its own (unpadded) budget: a multiply-add
is 2 FLOPs, bias adds and ReLUs 1 per element, the softmax 5 per logit; a
train step is 3× the forward pass; the Adam update is not counted. Achieved
GFLOP/s = Σ_members FLOPs / time, reported as a fraction of the GFLOP/s of an
N×N @ N×N float32 matmul (N = 2048, compiled by the same backend, best of 5,
timed at the start and the end of the run).

Usage (from the repository root)::

    KERAS_BACKEND=jax python -m analysis.bench_sweep [--quick] [--json OUT]
        [--repeats 2] [--epochs 4] [--samples 256] [--batch 64]
"""

import argparse
import statistics
import sys
import time

import numpy as np

SIZES = {
    # name: (n, m_v, m_ff, ff_depth, tau, d, m_h values)
    "small": (16, 16, 32, 3, 16, 1, tuple(range(1, 9))),
    "fig5": (32, 32, 128, 3, 16, 1, tuple(range(1, 17))),
}
QUICK_SIZES = {
    "small": (4, 4, 8, 1, 4, 1, (1, 2)),
    "fig5": (8, 8, 8, 1, 4, 1, (1, 3)),
}


def forward_flops(budget, tau, input_dim, output_dim=1):
    """Forward FLOPs of one sequence through `build_transformer` (learned encoding).

    >>> from tfapprox.budget import Budget
    >>> forward_flops(Budget(n=2, m_h=1, m_v=2, m_ff=2, ff_depth=1), tau=2, input_dim=1)
    148
    """

    def feedforward(d_in, d_out):
        widths = [d_in] + [budget.m_ff] * budget.ff_depth + [d_out]
        flops = 0
        for i, (a, b) in enumerate(zip(widths[:-1], widths[1:])):
            flops += 2 * a * b + b + (b if i < budget.ff_depth else 0)  # matmul, bias, ReLU
        return flops

    per_token = (
        input_dim  # + e(t)
        + feedforward(input_dim, budget.n)
        + 2 * budget.n * (2 * budget.m_h + budget.m_v)  # q, k, v
        + 2 * tau * budget.m_h  # logits
        + 5 * tau  # softmax
        + 2 * tau * budget.m_v  # mixing
        + feedforward(budget.m_v, output_dim)
    )
    return tau * per_token


def _matmul_gflops(size=2048, repeats=5):
    import keras
    from keras import ops

    from tfapprox.engine import _backend_tools

    _, compile_ = _backend_tools()
    matmul = compile_(lambda a, b: ops.matmul(a, b))
    rng = np.random.default_rng(0)
    a = ops.convert_to_tensor(rng.standard_normal((size, size), dtype="float32"))
    b = ops.convert_to_tensor(rng.standard_normal((size, size), dtype="float32"))
    ops.convert_to_numpy(matmul(a, b))  # compile
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        ops.convert_to_numpy(matmul(a, b))
        best = min(best, time.perf_counter() - start)
    del keras
    return 2 * size**3 / best / 1e9


class _Stamps:
    """Epoch-end timestamps, via the engine's ``progress`` or a Keras callback."""

    def __init__(self):
        self.times = []

    def __call__(self, epoch, states):
        self.times.append(time.perf_counter())

    def steady(self):
        return self.times[-1] - self.times[0]


def _stock_models(budgets, tau, d, learning_rate):
    import keras

    from tfapprox.models import build_transformer

    models = []
    for budget in budgets:
        keras.utils.set_random_seed(0)
        model = build_transformer(budget, tau, d)
        model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss="mse", jit_compile=True)
        models.append(model)
    return models


def _stock_pass(models, x, y, batch, epochs):
    import keras

    stamps = _Stamps()

    class Stamp(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            stamps(epoch, None)

    total = 0.0
    for model in models:
        stamps.times.clear()
        model.fit(
            x, y, batch_size=batch, epochs=epochs, shuffle=True, verbose=0, callbacks=[Stamp()]
        )
        total += stamps.steady()
    return total


def _engine_pass(members, x, y, config):
    from tfapprox.engine import train_members

    stamps = _Stamps()
    train_members(members, (x, y), config, progress=stamps)
    return stamps.steady()


def _sequential_pass(members, x, y, config):
    return sum(_engine_pass([member], x, y, config) for member in members)


def run_size(name, spec, *, samples, batch, epochs, repeats, peak, log=print):
    """Time one sweep three ways; return its row (dict)."""
    from tfapprox.budget import Budget

    n, m_v, m_ff, depth, tau, d, m_hs = spec
    budgets = [Budget(n=n, m_h=m_h, m_v=m_v, m_ff=m_ff, ff_depth=depth) for m_h in m_hs]
    members = [(budget, 0) for budget in budgets]
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
    log(f"[{name}] {len(members)} members, n={n} m_v={m_v} m_FF={m_ff} depth={depth} tau={tau}")

    # Cold passes: what a first sweep costs (build, compile, train).
    start = time.perf_counter()
    _engine_pass(members, x, y, config)
    cold_engine = time.perf_counter() - start
    start = time.perf_counter()
    models = _stock_models(budgets, tau, d, 1e-3)
    _stock_pass(models, x, y, batch, epochs)
    cold_stock = time.perf_counter() - start
    _sequential_pass(members, x, y, config)  # warm the E single-member engines
    log(f"[{name}] cold: engine {cold_engine:.1f}s, stock {cold_stock:.1f}s")

    times = {"engine": [], "stock": [], "sequential": []}
    passes = {
        "engine": lambda: _engine_pass(members, x, y, config),
        "stock": lambda: _stock_pass(models, x, y, batch, epochs),
        "sequential": lambda: _sequential_pass(members, x, y, config),
    }
    order = ["engine", "stock", "sequential"]
    for repeat in range(repeats):
        for kind in order if repeat % 2 == 0 else order[::-1]:
            times[kind].append(passes[kind]())
    median = {kind: statistics.median(values) for kind, values in times.items()}
    steps = (epochs - 1) * -(-samples // batch)
    flops = sum(3 * forward_flops(b, tau, d) for b in budgets) * samples * (epochs - 1)
    row = {
        "size": name,
        "members": len(members),
        "n": n,
        "m_v": m_v,
        "m_ff": m_ff,
        "ff_depth": depth,
        "tau": tau,
        "m_h": list(m_hs),
        "timed_steps_per_member": steps,
        "seconds_engine": median["engine"],
        "seconds_stock": median["stock"],
        "seconds_sequential_engine": median["sequential"],
        "times": times,
        "ratio": median["stock"] / median["engine"],
        "ratio_sequential": median["sequential"] / median["engine"],
        "ratio_end_to_end": cold_stock / cold_engine,
        "gflops_engine": flops / median["engine"] / 1e9,
        "gflops_stock": flops / median["stock"] / 1e9,
        "fraction_of_peak": flops / median["engine"] / 1e9 / peak,
        "fraction_of_peak_stock": flops / median["stock"] / 1e9 / peak,
    }
    log(
        f"[{name}] engine {row['seconds_engine']:.2f}s  stock {row['seconds_stock']:.2f}s  "
        f"sequential engine {row['seconds_sequential_engine']:.2f}s  ratio {row['ratio']:.2f}  "
        f"ratio_sequential {row['ratio_sequential']:.2f}  ratio_end_to_end "
        f"{row['ratio_end_to_end']:.2f}  engine {row['gflops_engine']:.1f} GFLOP/s = "
        f"{100 * row['fraction_of_peak']:.0f}% of the first matmul (stock "
        f"{100 * row['fraction_of_peak_stock']:.0f}%)"
    )
    return row


def main(argv=None):
    """Run the benchmark; return ``{"backend", "matmul_gflops", "rows": [...]}``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny sizes, one ABBA round")
    parser.add_argument("--json", dest="json_path", help="write the result as JSON here")
    parser.add_argument("--repeats", type=int, default=None, help="timed passes per method")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per pass (>= 2)")
    parser.add_argument("--samples", type=int, default=None, help="training sequences")
    parser.add_argument("--batch", type=int, default=64, help="batch size")
    parser.add_argument("--sizes", nargs="+", default=list(SIZES), choices=list(SIZES))
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 4)
    epochs = args.epochs or (2 if args.quick else 4)
    samples = args.samples or (32 if args.quick else 256)
    batch = min(args.batch, samples)
    if epochs < 2:
        parser.error("--epochs must be >= 2 (the first epoch is not timed)")

    import keras

    peak_start = _matmul_gflops(512 if args.quick else 2048)
    sizes = QUICK_SIZES if args.quick else SIZES
    rows = [
        run_size(
            name,
            sizes[name],
            samples=samples,
            batch=batch,
            epochs=epochs,
            repeats=repeats,
            peak=peak_start,
        )
        for name in args.sizes
    ]
    peak_end = _matmul_gflops(512 if args.quick else 2048)
    peak = max(peak_start, peak_end)
    for row in rows:  # against the best matmul of the run
        row["fraction_of_peak"] = row["gflops_engine"] / peak
        row["fraction_of_peak_stock"] = row["gflops_stock"] / peak
    result = {
        "backend": keras.backend.backend(),
        "matmul_gflops": peak,
        "matmul_gflops_start_end": [peak_start, peak_end],
        "samples": samples,
        "batch": batch,
        "epochs": epochs,
        "repeats": repeats,
        "rows": rows,
    }
    print(f"backend {result['backend']}, matmul {peak:.1f} GFLOP/s")
    print(
        f"{'size':>6} {'E':>3} {'engine s':>9} {'stock s':>8} {'seq s':>7} {'ratio':>6} "
        f"{'r_seq':>6} {'r_e2e':>6} {'%peak':>6}"
    )
    for row in rows:
        print(
            f"{row['size']:>6} {row['members']:>3} {row['seconds_engine']:>9.2f} "
            f"{row['seconds_stock']:>8.2f} {row['seconds_sequential_engine']:>7.2f} "
            f"{row['ratio']:>6.2f} {row['ratio_sequential']:>6.2f} "
            f"{row['ratio_end_to_end']:>6.2f} {100 * row['fraction_of_peak']:>5.0f}%"
        )
    if args.json_path:
        from tfapprox import _io

        _io.atomic_write_json(args.json_path, result)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
