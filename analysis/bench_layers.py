"""Train-step throughput of `build_transformer` against stock `keras.layers.MultiHeadAttention`.

Two models per size, built from the same `Budget` (τ, n, m_h, m_v, m_FF):

- **ours**: `tfapprox.models.build_transformer` (position encoding → f̂ →
  `tfapprox.layers.SingleHeadAttention` → F̂);
- **stock**: the same `PositionEncoding` and the same `FeedForward` f̂ and F̂
  around ``keras.layers.MultiHeadAttention(num_heads=1, key_dim=m_h,
  value_dim=m_v, output_shape=m_v, use_bias=False)``, called as
  self-attention ``mha(h, h)`` (under JAX with m_h ≠ m_v, with
  ``return_attention_scores=True``: `stock_uses_scores`).

Both are compiled identically (Adam, mse, ``jit_compile=True``, the same
``steps_per_execution``), start from the same seed and train on the same
fixed, cached `tf.data` dataset with the same batch size. One measurement is
the wall time of ``model.fit(dataset, steps_per_epoch=S, epochs=1,
verbose=0)``; compilation is excluded by a warm-up fit. S and
``steps_per_execution`` are the same for both models and planned from the
FLOP count (`plan_steps`): one fit lasts about ``--seconds`` at
`ASSUMED_EFFICIENCY` of the measured peak, and a size whose single step
already takes longer runs one step per fit. The two models' fits are
interleaved in ABBA order, so both see the same drift of the machine.

The grid (`grid_points`, the default) is τ ∈ {16, 32, 64, 128}, n ∈ {32,
64, 128}, m_h ∈ {n/8, n/4, n/2}, m_v = n, m_FF ∈ {n, 4n}, batch ∈ {64,
256}: 144 points. ``--grid`` restricts its axes (``--grid tau=16,32
batch=256 m_h=n/8``); ``--sizes`` with ``--batch`` replaces it.
Reported:

- samples/s = S · batch / (median wall time of the repeats), for each model;
- ``ratio`` = ours / stock of those samples/s;
- ``paired`` = the median over repeats of t_stock / t_ours, each pair measured
  back to back: the ratio least disturbed by other work on a shared machine;
- ``FLOPs s/o`` = stock's train FLOPs per sample over ours: the speed-up that
  the missing output projection and scale alone would explain.

``--control`` adds an A/A control: a second stock model with the same
weights, timed in the same rotation. Its ratio to the stock model
(``ratio_control``, ideally 1) is the harness's noise at that point; the
summary gives its range over the grid and the points where ours is slower
than stock by more than that (`control_summary`).

tf.data's autotuner is switched off for the shared dataset: on a 2-core
machine it ran beside the step and pinned both models to the same step time.

Differences that remain, by construction of the stock layer (the API does not
allow removing them):

- MultiHeadAttention always has an output projection W_O ∈ R^{m_v×m_v}
  (``output_shape=m_v`` keeps F̂'s input width m_v): m_v² extra parameters
  and 2 τ m_v² extra forward FLOPs per sample. Ours has none, as in the paper.
- MultiHeadAttention always scales the logits by 1/√m_h (one multiply per
  logit); ours does not (``use_scale=False``, as in the paper).
- Both have no biases in the attention (``use_bias=False`` for the stock
  layer; ours has none) and no dropout.

FLOPs are counted per sample from the ops each model runs (`flop_count`):
a multiply-add is 2 FLOPs, a bias add, a ReLU, a scale and the position
encoding's add are 1 per element, the softmax is 5 per logit (max, subtract,
exp, sum, divide); a train step is 3× the forward pass. The loss and the
optimizer update (per step, not per sample) are not counted. The achieved
GFLOP/s is reported as a fraction of the peak: the best GFLOP/s (``2 N³ / t``)
of an N×N @ N×N float32 `tf.linalg.matmul` in a jit-compiled `tf.function`
(N = 2048), timed 5 times at the start and 5 times at the end of the same run.

Usage (from the repository root)::

    python -m analysis.bench_layers [--quick] [--json OUT] [--repeats 4] [--seconds 0.15] [--control]
        [--grid tau=16,32 n=32,64,128 m_h=n/8,n/4,n/2 m_ff=n,4n batch=64,256]
        [--sizes 16x32 128x128x32x128x128 --batch 64 256]

A size is ``TAUxN`` (then m_h = max(1, n/4), m_v = n, m_FF = n) or
``TAUxNxM_HxM_VxM_FF``.
"""

import argparse
import os
import platform
import statistics
import sys
import time

import numpy as np

GRID = {
    "tau": (16, 32, 64, 128),
    "n": (32, 64, 128),
    "m_h": ("n/8", "n/4", "n/2"),
    "m_ff": ("n", "4n"),
    "batch": (64, 256),
}
QUICK_SIZES = ("8x8x2x8x8",)
QUICK_BATCH = 8
MAX_STEPS_PER_EXECUTION = 10
# Fraction of the peak matmul GFLOP/s a train step is assumed to reach when
# planning the steps of a fit (the measured fractions were 10-75 %).
ASSUMED_EFFICIENCY = 0.3
INPUT_DIM = 1
OUTPUT_DIM = 1
FF_DEPTH = 3
SOFTMAX_FLOPS_PER_LOGIT = 5
TRAIN_FLOPS_PER_FORWARD = 3
TARGET_RATIO = 1.2


def parse_size(text):
    """``"TAUxN"`` or ``"TAUxNxM_HxM_VxM_FF"`` → dict(tau, n, m_h, m_v, m_ff).

    >>> parse_size("16x32")
    {'tau': 16, 'n': 32, 'm_h': 8, 'm_v': 32, 'm_ff': 32}
    >>> parse_size("8x8x2x4x16")
    {'tau': 8, 'n': 8, 'm_h': 2, 'm_v': 4, 'm_ff': 16}
    """
    try:
        numbers = [int(part) for part in text.lower().split("x")]
    except ValueError:
        numbers = []
    if len(numbers) not in (2, 5) or min(numbers, default=0) < 1:
        raise argparse.ArgumentTypeError(
            f"a size is TAUxN or TAUxNxM_HxM_VxM_FF with positive ints. Received: {text!r}"
        )
    if len(numbers) == 2:
        tau, n = numbers
        return {"tau": tau, "n": n, "m_h": max(1, n // 4), "m_v": n, "m_ff": n}
    return dict(zip(("tau", "n", "m_h", "m_v", "m_ff"), numbers))


def _width(text, n):
    """``"n/8"`` → n // 8, ``"4n"`` → 4 n, ``"n"`` → n (at least 1)."""
    text = str(text).replace(" ", "")
    if text.startswith("n/"):
        return max(1, n // int(text[2:]))
    if text.endswith("n"):
        return int(text[:-1] or 1) * n
    raise ValueError(f"a width is n, Kn or n/K. Received: {text!r}")


def parse_grid(items):
    """``["tau=16,32", "m_h=n/8"]`` → `GRID` with those axes replaced.

    >>> parse_grid(["tau=16,32", "batch=256", "m_ff=4n"])["tau"]
    (16, 32)
    >>> parse_grid(["m_h=n/2"])["m_h"], parse_grid([])["batch"]
    (('n/2',), (64, 256))
    """
    grid = dict(GRID)
    for item in items:
        axis, _, values = item.partition("=")
        if axis not in GRID or not values:
            raise argparse.ArgumentTypeError(
                f"a grid axis is one of {', '.join(GRID)} as AXIS=V1,V2. Received: {item!r}"
            )
        parts = tuple(v.strip() for v in values.split(","))
        try:
            if axis in ("m_h", "m_ff"):
                for v in parts:
                    _width(v, 64)
            else:
                parts = tuple(int(v) for v in parts)
                if min(parts) < 1:
                    raise ValueError
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"bad values for grid axis {axis}: {values!r} "
                "(tau, n, batch: positive ints; m_h, m_ff: n, Kn or n/K)"
            ) from None
        grid[axis] = parts
    return grid


def grid_points(grid=None):
    """The benchmark points of a grid (default `GRID`): dicts of tau, n, m_h, m_v, m_ff, batch.

    >>> len(grid_points())
    144
    >>> grid_points(parse_grid(["tau=8", "n=32", "m_h=n/8", "m_ff=4n", "batch=64"]))
    [{'tau': 8, 'n': 32, 'm_h': 4, 'm_v': 32, 'm_ff': 128, 'batch': 64}]
    """
    grid = GRID if grid is None else grid
    points = []
    for batch in grid["batch"]:
        for tau in grid["tau"]:
            for n in grid["n"]:
                for m_h in grid["m_h"]:
                    for m_ff in grid["m_ff"]:
                        points.append(
                            {
                                "tau": tau,
                                "n": n,
                                "m_h": _width(m_h, n),
                                "m_v": n,
                                "m_ff": _width(m_ff, n),
                                "batch": batch,
                            }
                        )
    return points


def plan_steps(flops_per_step, peak_gflops, seconds, steps_per_execution=None):
    """``(steps, steps_per_execution)`` of one timed fit: about `seconds` long.

    The step time is estimated as ``flops_per_step`` at `ASSUMED_EFFICIENCY`
    of ``peak_gflops``. ``steps_per_execution`` is at most
    `MAX_STEPS_PER_EXECUTION` (or as given) and divides ``steps``.

    >>> plan_steps(1e9, 100.0, 0.15)  # 1e9 / 30e9 s per step: 4.5 steps
    (4, 4)
    >>> plan_steps(1e6, 100.0, 0.15)
    (4500, 10)
    >>> plan_steps(1e12, 100.0, 0.15)  # one step is longer than the target
    (1, 1)
    """
    per_step = flops_per_step / (ASSUMED_EFFICIENCY * peak_gflops * 1e9)
    steps = max(1, round(seconds / per_step))
    if steps_per_execution is None:
        steps_per_execution = min(steps, MAX_STEPS_PER_EXECUTION)
    executions = max(1, round(steps / steps_per_execution))
    return executions * steps_per_execution, steps_per_execution


def _dense_flops(input_dim, output_dim, activation):
    """Per token: multiply-adds (2 each), bias adds, and the activation if any."""
    return 2 * input_dim * output_dim + output_dim + (output_dim if activation else 0)


def feedforward_flops(input_dim, hidden_dim, output_dim, depth):
    """Forward FLOPs per token of `tfapprox.layers.FeedForward` (ReLU hidden, linear output)."""
    flops = _dense_flops(input_dim, hidden_dim, True)
    flops += (depth - 1) * _dense_flops(hidden_dim, hidden_dim, True)
    return flops + _dense_flops(hidden_dim, output_dim, False)


def flop_count(budget, tau, model, input_dim=INPUT_DIM, output_dim=OUTPUT_DIM):
    """Forward FLOPs per sample of ``"ours"`` or ``"stock"``, by part, and the train-step total.

    Args:
        budget: `tfapprox.Budget` (n, m_h, m_v, m_ff, ff_depth).
        tau: int. Sequence length τ.
        model: str. ``"ours"`` (`build_transformer`, learned position
            encoding, no scale) or ``"stock"`` (MultiHeadAttention with
            scale and output projection, no biases).
        input_dim: int. d. Defaults to 1.
        output_dim: int. d_out. Defaults to 1.

    Returns:
        dict with one entry per part (forward FLOPs per sample),
        ``"forward"`` (their sum) and ``"train"`` (3 × forward).

    >>> from tfapprox.budget import Budget
    >>> flop_count(Budget(n=2, m_h=1, m_v=2, m_ff=2, ff_depth=1), 2, "ours")["train"]
    444
    """
    if model not in ("ours", "stock"):
        raise ValueError(f"`model` must be 'ours' or 'stock'. Received: model={model!r}")
    n, m_h, m_v, m_ff, depth = budget.n, budget.m_h, budget.m_v, budget.m_ff, budget.ff_depth
    stock = model == "stock"
    parts = {
        "position_encoding": tau * input_dim,
        "f_hat": tau * feedforward_flops(input_dim, m_ff, n, depth),
        "qkv_projection": tau * 2 * n * (2 * m_h + m_v),
        "logits": 2 * tau * tau * m_h,
        "scale": tau * tau if stock else 0,
        "softmax": SOFTMAX_FLOPS_PER_LOGIT * tau * tau,
        "mix": 2 * tau * tau * m_v,
        "output_projection": 2 * tau * m_v * m_v if stock else 0,
        "F_hat": tau * feedforward_flops(m_v, m_ff, output_dim, depth),
    }
    parts["forward"] = sum(parts.values())
    parts["train"] = TRAIN_FLOPS_PER_FORWARD * parts["forward"]
    return parts


def build_stock(budget, sequence_length, input_dim=INPUT_DIM, output_dim=OUTPUT_DIM):
    """`build_transformer`'s model with `keras.layers.MultiHeadAttention` as the attention."""
    import keras

    from tfapprox.layers import FeedForward, PositionEncoding

    inputs = keras.Input(shape=(sequence_length, input_dim), name="x")
    hidden = PositionEncoding(sequence_length, name="position_encoding")(inputs)  # (b, tau, d)
    hidden = FeedForward(budget.m_ff, budget.n, depth=budget.ff_depth, name="f_hat")(hidden)
    attention = keras.layers.MultiHeadAttention(
        num_heads=1,
        key_dim=budget.m_h,
        value_dim=budget.m_v,
        output_shape=budget.m_v,
        use_bias=False,
        name="attention",
    )
    if stock_uses_scores(budget):
        hidden, _ = attention(hidden, hidden, return_attention_scores=True)  # (b, tau, m_v)
    else:
        hidden = attention(hidden, hidden)  # (b, tau, m_v)
    outputs = FeedForward(budget.m_ff, output_dim, depth=budget.ff_depth, name="F_hat")(hidden)
    return keras.Model(inputs, outputs, name="stock")


def stock_uses_scores(budget):
    """Whether the stock layer is called with ``return_attention_scores=True``.

    Keras routes `keras.layers.MultiHeadAttention` through
    ``ops.dot_product_attention``, whose JAX kernel needs the key and value
    head widths equal; with m_h ≠ m_v the stock layer fails under JAX.
    Asking for the scores takes the layer's own einsum path, which works on
    every backend. Under TensorFlow, and under JAX with m_h = m_v, the
    layer is called plainly.
    """
    import keras

    return keras.backend.backend() == "jax" and budget.m_h != budget.m_v


def _compile(model, steps_per_execution):
    import keras

    model.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss="mse",
        jit_compile=True,
        steps_per_execution=steps_per_execution,
    )
    return model


def _dataset(tau, batch, num_batches, seed, input_dim=INPUT_DIM, output_dim=OUTPUT_DIM):
    """A fixed, cached, repeating dataset of `num_batches` distinct batches."""
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(num_batches * batch, tau, input_dim)).astype("float32")
    y = np.cumsum(x, axis=1) / np.arange(1, tau + 1, dtype="float32")[None, :, None]
    y = y[..., :output_dim].astype("float32")
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(batch, drop_remainder=True)
    # tf.data's autotuner runs beside the training step and, on a 2-core
    # machine, pinned the step time of both models to the same ~25 ms: off.
    options = tf.data.Options()
    options.autotune.enabled = False
    options.experimental_optimization.apply_default_optimizations = False
    return dataset.cache().repeat().with_options(options)


def _fit_seconds(model, dataset, steps):
    """Wall and process-CPU seconds of one ``fit`` of `steps` steps, and its last loss."""
    cpu, start = time.process_time(), time.perf_counter()
    history = model.fit(dataset, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False)
    wall = time.perf_counter() - start
    return wall, time.process_time() - cpu, float(history.history["loss"][-1])


def matmul_gflops(size, repeats):
    """GFLOP/s of each of `repeats` timed float32 ``size×size @ size×size`` matmuls (jit)."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    a = tf.constant(rng.standard_normal((size, size), dtype=np.float32))
    b = tf.constant(rng.standard_normal((size, size), dtype=np.float32))
    matmul = tf.function(lambda a, b: tf.reduce_sum(tf.linalg.matmul(a, b)), jit_compile=True)
    matmul(a, b).numpy()  # compile
    rates = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).numpy()
        rates.append(2 * size**3 / (time.perf_counter() - start) / 1e9)
    return rates


def bench_size(
    size, repeats, seconds_per_run, steps_per_execution, peak_gflops, seed, quick, control=False
):
    """One row of the table: both models at one point (`size` includes ``batch``).

    With ``control``, a second stock model with the same weights is timed in
    the same rotation (the A/A control, ``ratio_control``).
    """
    import keras

    from tfapprox.budget import Budget
    from tfapprox.models import build_transformer

    tau, batch = size["tau"], size["batch"]
    budget = Budget(
        n=size["n"], m_h=size["m_h"], m_v=size["m_v"], m_ff=size["m_ff"], ff_depth=FF_DEPTH
    )
    flops = {name: flop_count(budget, tau, name) for name in ("ours", "stock")}
    if quick:
        steps = steps_per_execution = 1
    else:
        steps, steps_per_execution = plan_steps(
            flops["stock"]["train"] * batch, peak_gflops, seconds_per_run, steps_per_execution
        )
    dataset = _dataset(tau, batch, num_batches=4, seed=seed)
    models = {}
    keras.utils.set_random_seed(seed)
    models["ours"] = _compile(
        build_transformer(budget, tau, INPUT_DIM, OUTPUT_DIM), steps_per_execution
    )
    keras.utils.set_random_seed(seed)
    models["stock"] = _compile(build_stock(budget, tau), steps_per_execution)
    if control:
        keras.utils.set_random_seed(seed)
        models["control"] = _compile(build_stock(budget, tau), steps_per_execution)
        models["control"].set_weights(models["stock"].get_weights())
    for model in models.values():  # warm-up: tracing and XLA compilation
        _fit_seconds(model, dataset, steps_per_execution)

    # Interleaved in ABBA order: both models see the same drift of the machine.
    seconds = {name: [] for name in models}
    cpu_seconds = {name: [] for name in models}
    losses = {}
    for repeat in range(repeats):
        order = list(models) if repeat % 2 == 0 else list(models)[::-1]
        for name in order:
            wall, cpu, losses[name] = _fit_seconds(models[name], dataset, steps)
            seconds[name].append(wall)
            cpu_seconds[name].append(cpu)
    # The two runs of one repeat are adjacent in time: their ratio is the one
    # least disturbed by other work on the machine.
    paired = [stock / ours for ours, stock in zip(seconds["ours"], seconds["stock"])]

    rate = {name: steps * batch / statistics.median(seconds[name]) for name in models}
    gflops = {name: flops[name]["train"] * rate[name] / 1e9 for name in ("ours", "stock")}
    controls = {}
    if control:
        controls = {"ratio_control": rate["control"] / rate["stock"]}
    return {
        **size,
        "steps": steps,
        "steps_per_execution": steps_per_execution,
        "samples_per_s_ours": rate["ours"],
        "samples_per_s_stock": rate["stock"],
        "ratio": rate["ours"] / rate["stock"],
        "ratio_paired_median": statistics.median(paired),
        "flop_ratio": flops["stock"]["train"] / flops["ours"]["train"],
        "gflops_ours": gflops["ours"],
        "gflops_stock": gflops["stock"],
        "train_flops_per_sample_ours": flops["ours"]["train"],
        "train_flops_per_sample_stock": flops["stock"]["train"],
        "flops_ours": flops["ours"],
        "flops_stock": flops["stock"],
        "params_ours": int(models["ours"].count_params()),
        "params_stock": int(models["stock"].count_params()),
        "loss_ours": losses["ours"],
        "loss_stock": losses["stock"],
        "seconds_ours": seconds["ours"],
        "seconds_stock": seconds["stock"],
        "cpu_seconds_ours": cpu_seconds["ours"],
        "cpu_seconds_stock": cpu_seconds["stock"],
        **controls,
    }


def control_summary(rows, keys):
    """The A/A band (min, max of ``ratio_control``) and the rows slower than its low end.

    ``keys`` name a row's point in the listed rows.

    >>> rows = [{"tau": 8, "ratio": r, "ratio_control": c}
    ...         for r, c in [(0.97, 0.96), (1.2, 1.02), (0.9, 0.99)]]
    >>> summary = control_summary(rows, ("tau",))
    >>> summary["band"], summary["slower_beyond_noise"]
    ([0.96, 1.02], [{'tau': 8, 'ratio': 0.9}])
    """
    controls = [row["ratio_control"] for row in rows]
    low = min(controls)
    return {
        "band": [low, max(controls)],
        "slower_beyond_noise": [
            {**{key: row[key] for key in keys}, "ratio": row["ratio"]}
            for row in rows
            if row["ratio"] < low
        ],
    }


def format_control(control, describe):
    """The summary line of `control_summary`; ``describe(row)`` names a listed point."""
    low, high = control["band"]
    beyond = ", ".join(describe(row) for row in control["slower_beyond_noise"]) or "none"
    return (
        f"A/A control (a stock copy / stock) over the grid: {low:.2f} to {high:.2f}; "
        f"points where ours/stock < {low:.2f}: {beyond}"
    )


def _load_average():
    """The 1-minute load average (other work on the machine), or NaN where unknown."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return float("nan")


def environment(load_before):
    """The machine a benchmark ran on: load averages, CPUs, Python, TensorFlow, Keras."""
    import keras
    import tensorflow as tf

    return {
        "load_average_before": load_before,
        "load_average_after": _load_average(),
        "cpus": os.cpu_count(),
        "machine": platform.machine(),
        "python": sys.version.split()[0],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
    }


def summarise(rows, peak, args, load_before):
    """The result of a benchmark run: rows with their fraction of the peak, ratio summary, machine.

    Every row needs ``gflops_ours``, ``gflops_stock``, ``ratio`` and
    ``ratio_paired_median``; ``args`` has ``repeats`` and ``quick``.
    """
    for row in rows:
        row["fraction_of_peak"] = row["gflops_ours"] / peak["gflops"]
        row["fraction_of_peak_stock"] = row["gflops_stock"] / peak["gflops"]
    ratios = [row["ratio"] for row in rows]
    return {
        "rows": rows,
        "peak": peak,
        "repeats": args.repeats,
        "quick": args.quick,
        "never_slower": min(ratios) >= 1.0,
        "never_slower_paired": min(row["ratio_paired_median"] for row in rows) >= 1.0,
        "ratio_min": min(ratios),
        "ratio_median": statistics.median(ratios),
        **environment(load_before),
    }


def format_table(result):
    """The human-readable table of a `main` result."""
    peak = result["peak"]
    lines = [
        f"train step, median of {result['repeats']} interleaved fits (ABBA), "
        f"{result['cpus']} CPUs, TF {result['tensorflow']}, Keras {result['keras']}",
        f"peak: {peak['size']}x{peak['size']} float32 matmul, best {peak['gflops']:.1f} GFLOP/s "
        f"(median {peak['gflops_median_before']:.1f} at the start, "
        f"{peak['gflops_median_after']:.1f} at the end); load average "
        f"{result['load_average_before']:.2f} before, {result['load_average_after']:.2f} after",
        f"{'batch':>5} {'tau':>4} {'n':>4} {'m_h':>4} {'m_v':>4} {'m_ff':>4}  "
        f"{'ours/s':>9} {'stock/s':>9} "
        f"{'ratio':>6} {'paired':>6} {'FLOPs s/o':>9}  {'GFLOP/s':>8} {'of peak':>7}  "
        f"{'stock GF/s':>10}",
    ]
    for row in result["rows"]:
        lines.append(
            f"{row['batch']:>5} {row['tau']:>4} {row['n']:>4} {row['m_h']:>4} {row['m_v']:>4} "
            f"{row['m_ff']:>4}  "
            f"{row['samples_per_s_ours']:>9.0f} {row['samples_per_s_stock']:>9.0f} "
            f"{row['ratio']:>6.2f} {row['ratio_paired_median']:>6.2f} {row['flop_ratio']:>9.3f}  "
            f"{row['gflops_ours']:>8.2f} {row['fraction_of_peak']:>7.1%}  "
            f"{row['gflops_stock']:>10.2f}"
        )
    for key, label in (("ratio", "ratio ours/stock"), ("ratio_paired_median", "paired")):
        ratios = [row[key] for row in result["rows"]]
        median = statistics.median(ratios)
        lines.append(
            f"{label} over {len(ratios)} points: min {min(ratios):.2f}, median {median:.2f}, "
            f"max {max(ratios):.2f}; >= 1.0 everywhere: {min(ratios) >= 1.0}; "
            f"median >= {TARGET_RATIO}: {median >= TARGET_RATIO}"
        )
    worst = sorted(result["rows"], key=lambda row: row["ratio"])[:5]
    lines.append(
        "worst points (batch tau n m_h m_ff: ratio): "
        + "; ".join(
            f"{r['batch']} {r['tau']} {r['n']} {r['m_h']} {r['m_ff']}: {r['ratio']:.2f}"
            for r in worst
        )
    )
    fractions = [row["fraction_of_peak"] for row in result["rows"]]
    lines.append(
        f"ours, fraction of the peak matmul: min {min(fractions):.1%}, "
        f"median {statistics.median(fractions):.1%}, max {max(fractions):.1%}"
    )
    if "control" in result:
        lines.append(
            format_control(
                result["control"],
                lambda r: (
                    f"{r['batch']} {r['tau']} {r['n']} {r['m_h']} {r['m_ff']} ({r['ratio']:.2f})"
                ),
            )
        )
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="one tiny size, few steps, tiny peak matmul (for the tests)",
    )
    parser.add_argument("--json", default=None, metavar="OUT", help="write the result to OUT")
    parser.add_argument(
        "--grid",
        nargs="+",
        default=[],
        metavar="AXIS=V1,V2",
        help="restrict the default grid: tau=16,32 n=64 m_h=n/8,n/4 m_ff=n,4n batch=256",
    )
    parser.add_argument(
        "--sizes",
        nargs="+",
        type=parse_size,
        default=None,
        metavar="SIZE",
        help="TAUxN or TAUxNxM_HxM_VxM_FF instead of the grid (each at every --batch)",
    )
    parser.add_argument(
        "--batch", type=int, nargs="+", default=None, help="batch sizes of --sizes (default 64)"
    )
    parser.add_argument(
        "--repeats", type=int, default=None, help="timed fits per model (default 4)"
    )
    parser.add_argument(
        "--seconds",
        type=float,
        default=0.15,
        help="target seconds of one timed fit (default 0.15)",
    )
    parser.add_argument(
        "--steps-per-execution",
        type=int,
        default=None,
        help=f"Keras steps_per_execution of both models (default: planned, <= "
        f"{MAX_STEPS_PER_EXECUTION})",
    )
    parser.add_argument("--peak-size", type=int, default=None, help="N of the peak matmul (2048)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--control", action="store_true", help="also time a copy of the stock model (A/A noise)"
    )
    args = parser.parse_args(argv)
    quick = args.quick
    try:
        grid = parse_grid(args.grid)
    except argparse.ArgumentTypeError as error:
        parser.error(str(error))
    if args.grid and args.sizes is not None:
        parser.error("--grid and --sizes are exclusive")
    if args.batch is not None and args.sizes is None and not quick:
        parser.error("--batch goes with --sizes (use --grid batch=... for the grid)")
    if quick or args.sizes is not None:
        sizes = args.sizes or [parse_size(s) for s in QUICK_SIZES]
        batches = args.batch or ([QUICK_BATCH] if quick else [64])
        args.points = [{**size, "batch": batch} for batch in batches for size in sizes]
    else:
        args.points = grid_points(grid)
    args.repeats = args.repeats or (2 if quick else 4)
    args.peak_size = args.peak_size or (256 if quick else 2048)
    for name in ("repeats", "steps_per_execution", "peak_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive int")
    if min(point["batch"] for point in args.points) < 1:
        parser.error("--batch must be a positive int")
    if not args.seconds > 0:
        parser.error("--seconds must be positive")
    return args


def main(argv=None):
    """Run the benchmark; print the table; return a dict with ``rows`` and ``peak``."""
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from tfapprox._io import atomic_write_json

    peak_repeats = 2 if args.quick else 5
    load_before = _load_average()
    before = matmul_gflops(args.peak_size, peak_repeats)
    rows = []
    for index, point in enumerate(args.points, 1):
        row = bench_size(
            point,
            args.repeats,
            args.seconds,
            args.steps_per_execution,
            statistics.median(before),
            args.seed,
            args.quick,
            args.control,
        )
        rows.append(row)
        # Progress on stderr (the full grid runs for many minutes).
        print(
            f"[{index}/{len(args.points)}] batch {row['batch']} tau {row['tau']} n {row['n']} "
            f"m_h {row['m_h']} m_ff {row['m_ff']}: ratio {row['ratio']:.2f} "
            f"(paired {row['ratio_paired_median']:.2f})",
            file=sys.stderr,
            flush=True,
        )
    # The peak again at the end: a machine that drifted shows two different medians.
    after = matmul_gflops(args.peak_size, peak_repeats)
    peak = {
        "size": args.peak_size,
        "gflops": max(before + after),
        "gflops_median_before": statistics.median(before),
        "gflops_median_after": statistics.median(after),
    }
    result = summarise(rows, peak, args, load_before)
    ratios = [row["ratio"] for row in rows]
    result["batches"] = sorted({row["batch"] for row in rows})
    result["meets_target"] = min(ratios) >= 1.0 and statistics.median(ratios) >= TARGET_RATIO
    result["target_ratio"] = TARGET_RATIO
    if args.control:
        keys = ("batch", "tau", "n", "m_h", "m_ff")
        result["control"] = control_summary(rows, keys)
    print(format_table(result))
    if args.json:
        atomic_write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
