"""The L-BFGS finisher of the batched engine against one scipy L-BFGS per model.

E members (seeds 0…E−1 of one `Budget`) start from the same weights both
ways and run full-batch L-BFGS on the same training set for ``--steps``
iterations (or to their stop):

- **batched**: `tfapprox.engine._finish_members`, what `train_members` runs
  when ``finisher_steps`` > 0: one scipy L-BFGS per member in lockstep
  (`tfapprox.finisher.lbfgs_members`), every round's points (of the members
  still running) evaluated in one compiled call of the stacked members'
  loss and gradient;
- **stock** (the alternative without the engine, and what the engine did
  before): `tfapprox.finisher.finish_model` on each member's Keras model,
  one after another (scipy L-BFGS, its own compiled gradient per model).

Each pass is timed end to end (compiling included, as a sweep pays it), in
ABBA order over ``--repeats`` rounds; medians are reported. ``ratio`` is
stock / batched seconds; both make about the same number of loss and
gradient evaluations (the iterates agree up to float32 rounding), so
evaluations/s are reported too. FLOPs per evaluation: 3 × the forward pass
(`analysis.bench_sweep.forward_flops`) × samples; GFLOP/s as a fraction
of an N×N float32 matmul's, compiled by the same backend.

Usage (from the repository root)::

    KERAS_BACKEND=jax python -m analysis.bench_finisher [--quick] [--json OUT]
        [--members 8] [--steps 200] [--samples 1000] [--repeats 2]
"""

import argparse
import statistics
import sys
import time

import numpy as np

# The --thorough check's model: n = 8, m_FF = 32, depth 3, τ = 16, d = 1.
SIZE = {"n": 8, "m_h": 4, "m_ff": 32, "ff_depth": 3}
QUICK_SIZE = {"n": 4, "m_h": 2, "m_ff": 8, "ff_depth": 1}


def _members(budget, count, data):
    """The members' starting weights, padded and stacked, and what the engine needs."""
    from tfapprox import engine
    from tfapprox.models import build_transformer

    dataset = engine._dataset(data, "data")
    options = engine._model_options(None, dataset)
    tau = dataset.sequence_length
    weights, layout = [], None
    for seed in range(count):
        model = build_transformer(
            budget, tau, dataset.input_dim, output_dim=dataset.output_dim, seed=seed, **options
        )
        layout = layout or engine._layout(model)
        weights.append(model.get_weights())
    stacked, flat = engine._stack(weights)
    shapes = [p.shape[1:] for p, _ in stacked]
    mask = np.concatenate([m.reshape(count, -1) for _, m in stacked], 1)
    runner = engine._engine_for(layout, shapes, options, tau, [budget.m_h] * count, count, None)
    return dataset, options, weights, runner, flat, mask


def _batched_pass(runner, flat, mask, dataset, steps):
    from tfapprox import engine

    start = time.perf_counter()
    _, infos = engine._finish_members(runner, flat, mask, runner.scale, dataset, steps)
    return time.perf_counter() - start, infos


def _stock_pass(budget, weights, options, dataset, steps):
    from tfapprox.finisher import finish_model
    from tfapprox.models import build_transformer

    start = time.perf_counter()
    infos = []
    for seed, member in enumerate(weights):
        model = build_transformer(
            budget,
            dataset.sequence_length,
            dataset.input_dim,
            output_dim=dataset.output_dim,
            seed=seed,
            **options,
        )
        model.set_weights(member)
        infos.append(finish_model(model, dataset.x, dataset.y, steps))
    return time.perf_counter() - start, infos


def main(argv=None):
    """Run the benchmark; return its result (dict)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a tiny model, one round")
    parser.add_argument("--json", dest="json_path", help="write the result as JSON here")
    parser.add_argument("--members", type=int, default=None, help="members (seeds)")
    parser.add_argument("--steps", type=int, default=None, help="L-BFGS iterations per member")
    parser.add_argument("--samples", type=int, default=None, help="training sequences")
    parser.add_argument("--repeats", type=int, default=None, help="ABBA rounds")
    args = parser.parse_args(argv)

    def given(value, quick, full):
        return value if value is not None else (quick if args.quick else full)

    members = given(args.members, 2, 8)
    steps = given(args.steps, 5, 200)
    samples = given(args.samples, 64, 1000)
    repeats = given(args.repeats, 1, 2)
    for name, value in (
        ("--members", members),
        ("--steps", steps),
        ("--samples", samples),
        ("--repeats", repeats),
    ):
        if value < 1:
            parser.error(f"{name} must be >= 1")

    import keras

    from analysis.bench_sweep import _matmul_gflops, forward_flops
    from tfapprox import Budget, targets

    budget = Budget(**(QUICK_SIZE if args.quick else SIZE))
    target = targets.load_preset("fig5b-rinf")
    data = target.sample(samples, seed=0)
    dataset, options, weights, runner, flat, mask = _members(budget, members, data)
    peak = _matmul_gflops(512 if args.quick else 2048)

    times = {"batched": [], "stock": []}
    evaluations = {"batched": [], "stock": []}
    losses = {}
    order = ["batched", "stock"]
    for repeat in range(repeats):
        for kind in order if repeat % 2 == 0 else order[::-1]:
            if kind == "batched":
                seconds, infos = _batched_pass(runner, flat, mask, dataset, steps)
            else:
                seconds, infos = _stock_pass(budget, weights, options, dataset, steps)
            times[kind].append(seconds)
            evaluations[kind].append(sum(info["evaluations"] for info in infos))
            losses[kind] = [info["loss_after"] for info in infos]
    median = {kind: statistics.median(values) for kind, values in times.items()}
    per_evaluation = 3 * forward_flops(budget, dataset.sequence_length, dataset.input_dim)
    per_evaluation *= samples
    rate = {
        kind: statistics.median(evaluations[kind]) / median[kind] for kind in ("batched", "stock")
    }
    gflops = {kind: rate[kind] * per_evaluation / 1e9 for kind in rate}
    result = {
        "backend": keras.backend.backend(),
        "budget": budget.to_dict(),
        "members": members,
        "steps": steps,
        "samples": samples,
        "repeats": repeats,
        "matmul_gflops": peak,
        "times": times,
        "evaluations": evaluations,
        "seconds_batched": median["batched"],
        "seconds_stock": median["stock"],
        "ratio": median["stock"] / median["batched"],
        "evaluations_per_second": rate,
        "gflops": gflops,
        "fraction_of_peak": {kind: gflops[kind] / peak for kind in gflops},
        "loss_after": losses,
    }
    print(
        f"backend {result['backend']}, matmul {peak:.1f} GFLOP/s; {members} members of "
        f"{budget.to_dict()}, {samples} samples, at most {steps} L-BFGS iterations each"
    )
    print(f"{'':>8} {'seconds':>8} {'evals':>6} {'evals/s':>8} {'GFLOP/s':>8} {'%peak':>6}")
    for kind in ("batched", "stock"):
        print(
            f"{kind:>8} {median[kind]:>8.2f} {statistics.median(evaluations[kind]):>6.0f} "
            f"{rate[kind]:>8.1f} {gflops[kind]:>8.2f} "
            f"{100 * result['fraction_of_peak'][kind]:>5.1f}%"
        )
    print(f"ratio (stock / batched seconds) {result['ratio']:.2f}")
    if args.json_path:
        from tfapprox import _io

        _io.atomic_write_json(args.json_path, result)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
