"""Train-step throughput of `tfapprox.layers.MultiHeadAttention` against stock Keras.

One attention layer per model, trained alone on ``(batch, tau, n)`` inputs
(mse against a running mean of the inputs), so the ratio is the layer's own:

- **ours**: ``MultiHeadAttention(H, m_h, m_v, output_dim=n, causal=True,
  relative_position=RPE)`` (no biases; no scale, paper B's form, with the
  linear RPE; ``use_scale=True`` without RPE, to compute the stock layer's
  function). Causal,
  it attends block by block and skips the key blocks above the diagonal
  (`tfapprox.layers.causal_blocks`); within a block it runs the same
  backend kernel as the stock layer;
- **stock**: ``keras.layers.MultiHeadAttention(H, m_h, m_v, output_shape=n,
  use_bias=False)`` called causally. ``attention_mask`` cannot carry an
  additive bias, so for ``rpe="linear"`` the stock layer is a subclass whose
  `_compute_attention` (the hook Keras documents for custom attention) calls
  the same backend kernel the stock layer uses, ``ops.dot_product_attention``,
  with ``bias = −softplus(r_h)·|t − s|`` from its own trainable r_h and
  ``scale=1``: the two layers compute the same function, and the benchmark
  checks that they agree on copied weights (``max_abs_diff``). For
  ``rpe="none"`` the stock layer is unmodified (its native causal path, with
  its 1/√m_h scale), and ours scales too: the same function again.

  Like for like matters here: at τ = 32, n = 64, H = 8, the same ops as
  the stock layer ran 0.97-1.01× stock with its scale 1/√m_h and 0.91-0.95×
  with a scale of 1 (three runs each): the timing depends on the values.

Both models are compiled identically (Adam, mse, ``jit_compile=True``, the
same ``steps_per_execution``), start from the same weights and train on the
same fixed, cached `tf.data` dataset (`analysis.bench_layers._dataset`);
fits are timed in ABBA order after a warm-up fit, as in
`analysis.bench_layers`. Reported per point: samples/s of each model,
``ratio`` (ours / stock), ``paired`` (median of the back-to-back ratios),
``cpu`` (the same ratio of process CPU seconds, which other work on a
shared machine disturbs less than wall time),
and ours' train GFLOP/s as a fraction of the peak of a large float32 matmul
(`analysis.bench_layers.matmul_gflops`, measured at the start and the end).

``--control`` adds an A/A control: a second copy of the stock model, with
the same weights, timed in the same rotation (ours, stock, copy; then
reversed). Its ratio to the stock model (``ratio_control``, ideally 1) is
the noise of the harness at that point; the summary gives its range over the
grid and the points where ours is slower than stock by more than that.

FLOPs per sample (forward; a train step is 3×), those of dense attention
(what the stock layer computes; ours skips part of the τ² terms, so its
GFLOP/s is the rate of useful work): the Q/K/V projections
``2 τ n H (2 m_h + m_v)``, the logits ``2 τ² H m_h``, the bias ``τ² H``, the
softmax ``5 τ² H``, the mixing ``2 τ² H m_v`` and W_O ``2 τ H m_v n``.

Usage (from the repository root)::

    python -m analysis.bench_multihead [--quick] [--json OUT] [--repeats 4] [--seconds 0.2] [--control]
        [--tau 32 64 128] [--n 64 128] [--heads 4 8] [--batch 64] [--rpe linear none]

m_h = m_v = n / H at every point.
"""

import argparse
import os
import statistics
import sys

import numpy as np

from . import bench_layers

SOFTMAX_FLOPS_PER_LOGIT = bench_layers.SOFTMAX_FLOPS_PER_LOGIT
TRAIN_FLOPS_PER_FORWARD = bench_layers.TRAIN_FLOPS_PER_FORWARD
RPES = ("linear", "none")


def flop_count(tau, n, heads, m_h, m_v, rpe):
    """Train FLOPs per sample of one causal attention layer (3 × forward).

    >>> flop_count(2, 2, 1, 1, 1, "linear")  # 3 · (24 + 8 + 4 + 20 + 8 + 8)
    216
    """
    forward = (
        2 * tau * n * heads * (2 * m_h + m_v)
        + 2 * tau * tau * heads * m_h
        + (tau * tau * heads if rpe != "none" else 0)
        + SOFTMAX_FLOPS_PER_LOGIT * tau * tau * heads
        + 2 * tau * tau * heads * m_v
        + 2 * tau * heads * m_v * n
    )
    return TRAIN_FLOPS_PER_FORWARD * forward


def stock_layer(heads, m_h, m_v, n, rpe):
    """`keras.layers.MultiHeadAttention`, with a linear RPE bias when ``rpe="linear"``."""
    import keras
    from keras import ops

    class BiasedMultiHeadAttention(keras.layers.MultiHeadAttention):
        """Stock attention with the additive bias −softplus(r_h)·|t − s|, scale 1."""

        def build(self, query_shape, value_shape, key_shape=None):
            super().build(query_shape, value_shape, key_shape)
            self.position_weights = self.add_weight(
                name="position_weights", shape=(self.num_heads,), initializer="zeros"
            )

        def _compute_attention(
            self,
            query,
            key,
            value,
            attention_mask=None,
            training=None,
            return_attention_scores=False,
            use_causal_mask=False,
        ):
            tau = ops.shape(query)[1]
            positions = ops.arange(tau)
            distance = ops.cast(ops.abs(positions[None, :] - positions[:, None]), "float32")
            scales = ops.softplus(self.position_weights)
            bias = -scales[:, None, None] * distance[None]  # (H, tau, tau)
            output = ops.dot_product_attention(
                query, key, value, bias=bias[None], scale=1.0, is_causal=True
            )
            return output, None

    cls = BiasedMultiHeadAttention if rpe == "linear" else keras.layers.MultiHeadAttention
    return cls(
        num_heads=heads,
        key_dim=m_h,
        value_dim=m_v,
        output_shape=n,
        use_bias=False,
        name="stock_attention",
    )


def build_models(point, seed, control=False):
    """``{"ours": model, "stock": model}`` for one point, with the same weights.

    With ``control``, also ``"control"``: a second stock model with the stock
    model's weights (the A/A control).
    """
    import keras

    from tfapprox.layers import MultiHeadAttention

    tau, n, heads, m_h, rpe = point["tau"], point["n"], point["heads"], point["m_h"], point["rpe"]
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((tau, n))
    ours_layer = MultiHeadAttention(
        heads,
        m_h,
        m_h,
        output_dim=n,
        causal=True,
        use_scale=rpe == "none",  # the stock layer's 1/√m_h, where it has no bias
        relative_position=rpe,
        name="attention",
    )
    ours = keras.Model(inputs, ours_layer(inputs), name="ours")
    inputs = keras.Input((tau, n))
    layer = stock_layer(heads, m_h, m_h, n, rpe)
    stock = keras.Model(inputs, layer(inputs, inputs, use_causal_mask=True), name="stock")
    # The same weights: Q, K, V (n, H, m), W_O (H, m_v, n) and r_h in both layouts.
    ours_by_part = dict(
        zip(("query", "key", "value", "attention_output", "position_weights"), ours_layer.weights)
    )
    for weight in layer.weights:
        part = next(p for p in ours_by_part if f"/{p}" in weight.path)
        # A copy: under JAX, assigning the variable itself shares its buffer,
        # which the first compiled step of either model then donates.
        weight.assign(keras.ops.convert_to_numpy(ours_by_part[part]))
    models = {"ours": ours, "stock": stock}
    if control:
        inputs = keras.Input((tau, n))
        copy = stock_layer(heads, m_h, m_h, n, rpe)
        models["control"] = keras.Model(
            inputs, copy(inputs, inputs, use_causal_mask=True), name="control"
        )
        models["control"].set_weights(stock.get_weights())
    return models


def bench_point(point, repeats, seconds_per_run, peak_gflops, seed, quick, control=False):
    """One row: both models (and the A/A control) at one point, timed in ABBA order."""
    tau, batch = point["tau"], point["batch"]
    flops = flop_count(tau, point["n"], point["heads"], point["m_h"], point["m_h"], point["rpe"])
    if quick:
        steps = steps_per_execution = 1
    else:
        steps, steps_per_execution = bench_layers.plan_steps(
            flops * batch, peak_gflops, seconds_per_run
        )
    models = build_models(point, seed, control)
    dataset = bench_layers._dataset(tau, batch, 4, seed, point["n"], point["n"])
    x = next(iter(dataset))[0].numpy()
    agree = float(
        np.max(np.abs(models["ours"].predict(x, verbose=0) - models["stock"].predict(x, verbose=0)))
    )
    for model in models.values():
        bench_layers._compile(model, steps_per_execution)
        bench_layers._fit_seconds(model, dataset, steps_per_execution)  # warm-up
    seconds = {name: [] for name in models}
    cpu_seconds = {name: [] for name in models}
    for repeat in range(repeats):
        order = list(models) if repeat % 2 == 0 else list(models)[::-1]
        for name in order:
            wall, cpu, _ = bench_layers._fit_seconds(models[name], dataset, steps)
            seconds[name].append(wall)
            cpu_seconds[name].append(cpu)
    paired = [stock / ours for ours, stock in zip(seconds["ours"], seconds["stock"])]
    rate = {name: steps * batch / statistics.median(seconds[name]) for name in models}
    controls = {}
    if control:
        controls = {
            "ratio_control": rate["control"] / rate["stock"],
            "ratio_paired_control": statistics.median(
                stock / copy for copy, stock in zip(seconds["control"], seconds["stock"])
            ),
        }
    return {
        **point,
        "steps": steps,
        "steps_per_execution": steps_per_execution,
        "max_abs_diff": agree,
        "samples_per_s_ours": rate["ours"],
        "samples_per_s_stock": rate["stock"],
        "ratio": rate["ours"] / rate["stock"],
        "ratio_paired_median": statistics.median(paired),
        # Process CPU time, less sensitive than wall time to other work on a shared machine.
        "ratio_cpu": statistics.median(cpu_seconds["stock"])
        / statistics.median(cpu_seconds["ours"]),
        "train_flops_per_sample": flops,
        "gflops_ours": flops * rate["ours"] / 1e9,
        "gflops_stock": flops * rate["stock"] / 1e9,
        "params_ours": int(models["ours"].count_params()),
        "params_stock": int(models["stock"].count_params()),
        "seconds_ours": seconds["ours"],
        "seconds_stock": seconds["stock"],
        "cpu_seconds_ours": cpu_seconds["ours"],
        "cpu_seconds_stock": cpu_seconds["stock"],
        **controls,
    }


def format_table(result):
    """The human-readable table of a `main` result."""
    peak = result["peak"]
    lines = [
        f"one attention layer, train step, median of {result['repeats']} interleaved fits "
        f"(ABBA), {result['cpus']} CPUs, TF {result['tensorflow']}, Keras {result['keras']}",
        f"peak: {peak['size']}x{peak['size']} float32 matmul, best {peak['gflops']:.1f} GFLOP/s; "
        f"load average {result['load_average_before']:.2f} before, "
        f"{result['load_average_after']:.2f} after",
        f"{'rpe':>6} {'batch':>5} {'tau':>4} {'n':>4} {'H':>3} {'m_h':>4}  {'ours/s':>9} "
        f"{'stock/s':>9} {'ratio':>6} {'paired':>6} {'cpu':>5}  {'GFLOP/s':>8} {'of peak':>7}  {'|diff|':>8}"
        + (f"  {'A/A':>5}" if "control" in result else ""),
    ]
    for row in result["rows"]:
        lines.append(
            f"{row['rpe']:>6} {row['batch']:>5} {row['tau']:>4} {row['n']:>4} {row['heads']:>3} "
            f"{row['m_h']:>4}  {row['samples_per_s_ours']:>9.0f} "
            f"{row['samples_per_s_stock']:>9.0f} {row['ratio']:>6.2f} "
            f"{row['ratio_paired_median']:>6.2f} {row['ratio_cpu']:>5.2f}  "
            f"{row['gflops_ours']:>8.2f} "
            f"{row['fraction_of_peak']:>7.1%}  {row['max_abs_diff']:>8.1e}"
            + (f"  {row['ratio_control']:>5.2f}" if "control" in result else "")
        )
    ratios = [row["ratio"] for row in result["rows"]]
    paired = [row["ratio_paired_median"] for row in result["rows"]]
    lines.append(
        f"ratio ours/stock over {len(ratios)} points: min {min(ratios):.2f}, median "
        f"{statistics.median(ratios):.2f}, max {max(ratios):.2f}; paired min {min(paired):.2f}; "
        f">= 1.0 everywhere: {result['never_slower']}"
    )
    if "control" in result:
        lines.append(
            bench_layers.format_control(
                result["control"], lambda p: f"{p['rpe']} tau {p['tau']} n {p['n']} H {p['heads']}"
            )
        )
    return "\n".join(lines)


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one tiny point (for the tests)")
    parser.add_argument("--json", default=None, metavar="OUT", help="write the result to OUT")
    parser.add_argument("--tau", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--n", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--heads", type=int, nargs="+", default=[4, 8])
    parser.add_argument("--batch", type=int, nargs="+", default=[64])
    parser.add_argument("--rpe", nargs="+", choices=RPES, default=list(RPES))
    parser.add_argument("--repeats", type=int, default=None, help="timed fits per model (4)")
    parser.add_argument("--seconds", type=float, default=0.2, help="seconds per timed fit")
    parser.add_argument("--peak-size", type=int, default=None, help="N of the peak matmul (2048)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--control", action="store_true", help="also time a copy of the stock model (A/A noise)"
    )
    args = parser.parse_args(argv)
    if args.quick:
        # tau = 40: past one block of causal queries (`tfapprox.layers.CAUSAL_BLOCK` = 32).
        args.tau, args.n, args.heads, args.batch = [40], [8], [2], [4]
    for name in ("tau", "n", "heads", "batch"):
        if min(getattr(args, name)) < 1:
            parser.error(f"--{name} must be positive ints")
    if any(n % h for n in args.n for h in args.heads):
        parser.error("every --n must be a multiple of every --heads (m_h = n / H)")
    args.repeats = args.repeats or (2 if args.quick else 4)
    args.peak_size = args.peak_size or (256 if args.quick else 2048)
    if args.repeats < 1 or args.peak_size < 1 or not args.seconds > 0:
        parser.error("--repeats, --peak-size and --seconds must be positive")
    args.points = [
        {"rpe": rpe, "batch": batch, "tau": tau, "n": n, "heads": h, "m_h": n // h}
        for rpe in args.rpe
        for batch in args.batch
        for tau in args.tau
        for n in args.n
        for h in args.heads
    ]
    return args


def main(argv=None):
    """Run the benchmark; print the table; return a dict with ``rows`` and ``peak``."""
    args = parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    from tfapprox._io import atomic_write_json

    peak_repeats = 2 if args.quick else 5
    load_before = bench_layers._load_average()
    before = bench_layers.matmul_gflops(args.peak_size, peak_repeats)
    rows = []
    for index, point in enumerate(args.points, 1):
        row = bench_point(
            point,
            args.repeats,
            args.seconds,
            statistics.median(before),
            args.seed,
            args.quick,
            args.control,
        )
        rows.append(row)
        print(
            f"[{index}/{len(args.points)}] {row['rpe']} tau {row['tau']} H {row['heads']}: "
            f"ratio {row['ratio']:.2f} (paired {row['ratio_paired_median']:.2f})",
            file=sys.stderr,
            flush=True,
        )
    after = bench_layers.matmul_gflops(args.peak_size, peak_repeats)
    peak = {"size": args.peak_size, "gflops": max(before + after)}
    result = bench_layers.summarise(rows, peak, args, load_before)
    if args.control:
        result["control"] = bench_layers.control_summary(rows, ("rpe", "tau", "n", "heads"))
    print(format_table(result))
    if args.json:
        atomic_write_json(args.json, result)
    return result


if __name__ == "__main__":
    main()
