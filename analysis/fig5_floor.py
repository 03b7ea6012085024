"""Paper A's Fig. 5 below the rank: rounds of continued training until each budget's floor.

`fig5` trains its budgets 3,840 steps (25,600 at m_h = 1). Below the rank
that is far from their floor (``analysis/RECIPE.md``, "Below the rank"):
fig5b-r6 at m_h = 2 keeps falling to about 100,000 steps. Here each cell
(target, m_h, seed) is trained in rounds of fig5's long recipe (``epochs``
epochs of batch 64, Adam with a warm-up and cosine decay), each round
continuing from the weights the last one saved (`tfapprox.sweeps.run_sweep`'s
``starts``: a warm restart of the schedule), so after k rounds a run has
k · ``epochs`` epochs behind it. After ``rounds`` rounds the **doubling
test** compares the lowest held-out error of the first k rounds with the
lowest of the first k/2 (a round that ends higher leaves the cell's best
model where it was):

    drop = (best(k/2) − best(k)) / best(k/2)

A drop of at most ``material_rtol`` (10 %, as in fig5 and ``tfapprox
check``) means twice the steps did not lower the error materially: the cell
is at its floor. A cell that still drops materially trains on, doubling its
rounds, up to ``max_rounds``; one that never passes is reported "still
falling". A cell's error is the lowest over its rounds.

Every round of a target is one resumable `run_sweep` (its results file
``OUT/TARGET-round-K.json``, weights in ``OUT/weights/``): an interrupted
run, started again with the same command, skips the finished rounds and
members. ``--target``, ``--m-h`` and ``--seed`` pick a part of the cells,
so cells can run in parallel processes, each with its own ``--out`` (a
results file has one writer); ``--report DIR ...`` then trains nothing and
reports the rounds found in those folders as one run.

Sizes: ``--quick`` (tiny, for the tests) and the default (fig5's model
and data, every m_h of fig5's grid below each target's rank (18 cells),
4 rounds of 200 epochs and, where the last doubling is material, up to 8).
A round of one cell is 83–131 s of one core (JAX, one process per core
with a single-threaded XLA, ``analysis/RECIPE.md``, "Every budget below
the rank"): the 18 cells and five second seeds, 122 rounds, took 1 h 51 min
split over two such processes. In one process the cells of a target train
together in the batched engine, as on a GPU.

Run: ``tfapprox experiment fig5-floor [--quick] [--out DIR] [--json]``, or
with this module's own options ``python -m tfapprox_analysis.fig5_floor
[--target NAME ...] [--m-h M ...] [--seed S ...] [--rounds K] [--max-rounds
K] [--fig5 DIR] [--report DIR ...] ...``.
"""

import math
import os
import sys
import time

from . import _experiment, fig5

FULL = {
    "fig5": fig5.FULL,
    "targets": ["fig5a-r6", "fig5a-rinf", "fig5b-r6", "fig5b-rinf"],
    "m_h": [m for m in fig5.FULL["m_h"] if m > 1],  # m_h = 1 is fig5's own long cell
    "seeds": [0],
    "epochs": 200,
    "rounds": 4,
    "max_rounds": 8,
    "material_rtol": 0.1,
}
QUICK = {
    **FULL,
    "fig5": fig5.QUICK,
    "targets": ["fig5b-r6"],
    "m_h": [2],
    "epochs": 2,
    "rounds": 2,
    "max_rounds": 4,
}


def cells(settings, targets=None, m_hs=None, seeds=None):
    """The cells ``(target, m_h, seed)`` below the rank, optionally narrowed.

    >>> cells(FULL, targets=["fig5b-r6"])
    [('fig5b-r6', 2, 0), ('fig5b-r6', 3, 0), ('fig5b-r6', 4, 0)]
    """
    chosen = []
    for name in targets or settings["targets"]:
        for m_h in m_hs or settings["m_h"]:
            if m_h < fig5._rank(name):
                chosen += [(name, m_h, seed) for seed in seeds or settings["seeds"]]
    return chosen


def doubling_drops(errors):
    """The doubling test's drops: ``{k: drop from k/2 rounds to k}`` for k = 2, 4, 8…

    ``errors[k - 1]`` is the held-out error after k rounds. A round that ends
    higher than an earlier one leaves the cell's best model where it was,
    so the test compares the lowest error of the first k/2 rounds with the
    lowest of the first k.

    >>> doubling_drops([1.0, 0.8, 0.7, 0.6])
    {2: 0.2, 4: 0.25}
    >>> doubling_drops([0.5, 0.8, 0.7, 0.45])
    {2: 0.0, 4: 0.1}
    """
    drops, k = {}, 2
    while k <= len(errors):
        before, now = min(errors[: k // 2]), min(errors[:k])
        drops[k] = round((before - now) / before, 12)
        k *= 2
    return drops


def _state(errors, settings):
    """``"floor"``, ``"still falling"`` or ``"training"`` (more rounds to run) after ``errors``."""
    k = len(errors)
    if k < settings["rounds"] or k & (k - 1):  # not yet at a doubling point
        return "training"
    if doubling_drops(errors)[k] <= settings["material_rtol"]:
        return "floor"
    return "still falling" if 2 * k > settings["max_rounds"] else "training"


def _label(k, previous_run):
    """The ``start`` recorded by round ``k`` ≥ 2 of the cell whose round k − 1 is ``previous_run``."""
    from tfapprox import results

    return {"continues": results.run_key(previous_run), "round": k}


def _finished(name, settings, folders, k, cells_, previous):
    """The runs of round ``k`` of ``cells_`` already in ``folders``: ``{cell: run}``."""
    from tfapprox import Budget, results

    paths = [_file(folder, name, k) for folder in folders]
    runs = [run for path in paths if os.path.exists(path) for run in results.read(path)["runs"]]
    found = {}
    for cell in cells_:
        _, m_h, seed = cell
        budget = fig5._members(settings["fig5"], [m_h], [seed])[0][0]
        start = None if k == 1 else _label(k, previous[cell])
        for run in runs:
            same = Budget.from_dict(run["budget"]) == budget and run["seed"] == seed
            if same and run.get("start") == start:
                found[cell] = run
    return found


def _round(name, settings, out, k, cells_, previous):
    """Round ``k`` (1-based) of ``cells_`` of target ``name``: ``{cell: run}``."""
    from tfapprox import nesting, targets

    base = settings["fig5"]
    members, starts = [], []
    for cell in cells_:
        _, m_h, seed = cell
        members.append(fig5._members(base, [m_h], [seed])[0])
        if k == 1:
            starts.append(None)
            continue
        run = previous[cell]
        weights = nesting.load_weights(_weights(out, name, k - 1), run)
        if weights is None:
            raise ValueError(
                f"the weights of round {k - 1} of {name} at m_h = {m_h} (seed {seed}) are missing "
                f"from {_weights(out, name, k - 1)}; remove {_file(out, name, k - 1)} to train "
                "that round again"
            )
        starts.append((_label(k, run), weights))
    sweep, _, _ = fig5._train(
        targets.load_preset(name),
        base,
        members,
        out,
        f"{name}-round-{k}",
        fig5._config(base, epochs=settings["epochs"]),
        weights_dir=_weights(out, name, k),
        starts=None if k == 1 else starts,
    )
    return dict(zip(cells_, sweep["runs"]))


def _file(out, name, k):
    return os.path.join(out, f"{name}-round-{k}.json")


def _weights(out, name, k):
    return os.path.join(out, "weights", f"{name}-round-{k}")


def run_target(name, settings, out, cells_, report=None):
    """Train ``cells_`` of target ``name`` in rounds until each is at its floor or ``max_rounds``.

    With ``report`` (a list of folders of fig5-floor runs) nothing is
    trained: each cell is reported from the rounds already in them (a cell
    still going is ``"unfinished"``; one with no round is left out).
    """
    history = {cell: [] for cell in cells_}
    previous, k = {}, 0
    while True:
        going = [c for c in cells_ if _state(_errors(history[c]), settings) == "training"]
        going = [c for c in going if len(history[c]) == k]  # untrained: stopped at round k
        if not going:
            break
        k += 1
        if report is None:
            previous = _round(name, settings, out, k, going, previous)
        else:
            previous = _finished(name, settings, report, k, going, previous)
        for cell, run in previous.items():
            history[cell].append(run)
    found = []
    for cell in cells_:
        if history[cell]:
            found.append(_cell_result(cell, history[cell], settings))
            if found[-1]["state"] == "training":
                found[-1]["state"] = "unfinished"
    return found


def _errors(runs):
    """Held-out errors of ``runs``; a run that ended non-finite (null) counts as ∞."""
    return [math.inf if r["val_error"] is None else float(r["val_error"]) for r in runs]


def _cell_result(cell, runs, settings):
    name, m_h, seed = cell
    errors = _errors(runs)
    per_epoch = fig5.steps_per_epoch(settings["fig5"])
    best = min(range(len(errors)), key=errors.__getitem__)
    return {
        "target": name,
        "rank": "inf" if math.isinf(fig5._rank(name)) else fig5._rank(name),
        "m_h": m_h,
        "seed": seed,
        "epochs": [settings["epochs"] * (k + 1) for k in range(len(runs))],
        "steps": [settings["epochs"] * (k + 1) * per_epoch for k in range(len(runs))],
        "val_errors": errors,
        "train_errors": [r["error"] for r in runs],
        "doubling_drops": {str(k): d for k, d in doubling_drops(errors).items()},
        "state": _state(errors, settings),
        "error": errors[best],
        "best_round": best + 1,
    }


def budgets(found, settings, fig5_result=None):
    """Per target, each budget's error at the floor: the points fig5's claims read.

    A budget's error is the lowest over its cells' rounds and seeds and,
    with ``fig5_result`` (a `fig5.main` result), also over fig5's own error
    after its checks (trained, construction, fitted kernel: ``fig5._after``),
    whose points at m_h = 1 and from the rank on join in. A budget is
    ``settled`` when every cell of it is at its floor, another seed, if
    trained, is not materially lower than the first, and fig5's models of
    it, if given, are settled: none of fig5's checks moved them materially.
    Returns fig5-style target results (``points`` with ``best_error``).
    """
    from tfapprox import targets

    rtol = settings["material_rtol"]
    by_target = {}
    for c in found:
        by_target.setdefault(c["target"], {}).setdefault(c["m_h"], []).append(c)
    reported = {r["target"]: r for r in (fig5_result or {}).get("targets", [])}
    doubled = {d["target"]: d for d in (fig5_result or {}).get("side", {}).get("doubling", [])}
    out = []
    for name in fig5.TARGETS:
        if name not in by_target and name not in reported:
            continue
        floor = by_target.get(name, {})
        points = {}
        if name in reported:
            after = fig5._after(reported[name], doubled.get(name))
            moved = {m_h for m_h, _ in fig5.moved_cells(reported[name], doubled.get(name)) or []}
            for p in reported[name]["points"]:
                m_h = p["m_h"]
                error = p["best_error"] if after is None else after[m_h]
                settled = after is not None and m_h not in moved
                points[m_h] = {"m_h": m_h, "fig5_error": error, "settled": settled}
        for m_h, seeds in floor.items():
            first = min(seeds, key=lambda c: c["seed"])
            best = min(c["error"] for c in seeds)
            restart = (first["error"] - best) / first["error"]
            point = points.setdefault(m_h, {"m_h": m_h, "fig5_error": None, "settled": True})
            point.update(
                floor_error=best,
                restart_drop=restart if len(seeds) > 1 else None,
                states=[c["state"] for c in seeds],
                settled=point["settled"]  # fig5's models of the budget, if any, settled too
                and all(c["state"] == "floor" for c in seeds)
                and restart <= rtol,
            )
        for point in points.values():
            known = [point.get("floor_error"), point["fig5_error"]]
            point["best_error"] = min(e for e in known if e is not None)
        target = targets.load_preset(name)
        out.append(
            {
                "target": name,
                "panel": fig5._panel(name),
                "rank": "inf" if math.isinf(fig5._rank(name)) else fig5._rank(name),
                "beta": float(target.beta),
                "points": [points[m] for m in sorted(points)],
            }
        )
    return out


def claims(targets_, settings):
    """Claims (b) and (c) of `fig5` read from the budgets' errors at the floor.

    A claim is ``"not converged"`` where a budget it reads is not settled
    (see `budgets`), else ``"holds"`` or ``"does not hold"``.
    """

    def verdict(holds, unsettled):
        return "not converged" if unsettled else "holds" if holds else "does not hold"

    slopes = []
    for t in targets_:
        if t["rank"] != "inf" or len(t["points"]) < 2:
            continue
        claim = fig5.claim_slope(t, settings["fig5"]["n_bootstrap"])
        unsettled = [p["m_h"] for p in t["points"] if not p["settled"]]
        claim.update(m_h=[p["m_h"] for p in t["points"]], unsettled=unsettled)
        claim["verdict"] = verdict(claim["holds"], unsettled)
        slopes.append(claim)
    order = fig5.claim_rank_order(targets_)
    settled = {
        (t["panel"], t["rank"], p["m_h"]): p["settled"] for t in targets_ for p in t["points"]
    }
    unsettled = sorted(
        {
            f"{c['panel']} m_h = {c['m_h']}"
            for c in order["comparisons"]
            for r in c["ranks"]
            if not settled[(c["panel"], r, c["m_h"])]
        }
    )
    order.update(unsettled=unsettled, verdict=verdict(order["holds"], unsettled))
    if not order["comparisons"]:
        order["verdict"] = "not read: no two ranks of a panel share an m_h below the rank"
    return {"b": slopes, "c": order}


def table(cells_):
    """The markdown table: one row per cell, the errors after each round and the verdict."""
    width = max(len(c["val_errors"]) for c in cells_)
    header = ["target", "m_h", "seed"] + [f"round {k + 1}" for k in range(width)]
    rows = []
    for c in cells_:
        errors = [f"{e:.4g}" for e in c["val_errors"]] + [""] * (width - len(c["val_errors"]))
        drops = ", ".join(f"{k}: {0.0 - 100 * d:+.1f} %" for k, d in c["doubling_drops"].items())
        rows.append(
            [c["target"], c["m_h"], c["seed"], *errors, drops, c["state"], f"{c['error']:.4g}"]
        )
    return _experiment.markdown_table(
        header + ["doubling (rounds: change)", "verdict", "error"], rows
    )


def budget_table(targets_):
    """Each budget's error at the floor (``*``: not settled) and where it comes from."""
    m_hs = sorted({p["m_h"] for t in targets_ for p in t["points"]})
    rows = []
    for t in targets_:
        points = {p["m_h"]: p for p in t["points"]}
        row = [t["target"]]
        for m_h in m_hs:
            p = points.get(m_h)
            if p is None:
                row.append("")
                continue
            source = "rounds" if p["best_error"] == p.get("floor_error") else "fig5"
            mark = "" if p["settled"] else "*"
            row.append(f"{p['best_error']:.3g}{mark} ({source})")
        rows.append(row)
    header = ["budget's error"] + [f"m_h = {m}" for m in m_hs]
    return _experiment.markdown_table(header, rows)


def claims_text(claimed):
    """The claims' verdicts, one line each."""
    lines = []
    for c in claimed["b"]:
        lines.append(
            f"(b) {c['target']}: slope {c['slope']:.2f} (95 % interval {c['slope_ci'][0]:.2f} to "
            f"{c['slope_ci'][1]:.2f}) against {c['expected']:.2f} on m_h = "
            f"{', '.join(map(str, c['m_h']))}: {c['verdict']}"
            + (
                f" (not settled: m_h = {', '.join(map(str, c['unsettled']))})"
                if c["unsettled"]
                else ""
            )
        )
    c = claimed["c"]
    lines.append(
        f"(c) error grows with r at fixed m_h < r: {c['held']} of {c['total']} comparisons: "
        f"{c['verdict']}"
        + (f" (not settled: {', '.join(c['unsettled'])})" if c["unsettled"] else "")
    )
    return "\n".join(lines)


def _add_options(parser):
    parser.add_argument("--target", nargs="+", choices=fig5.TARGETS, help="targets (default: all)")
    parser.add_argument("--m-h", nargs="+", type=int, help="m_h values (default: fig5's grid)")
    parser.add_argument("--seed", nargs="+", type=int, help="seeds (default: 0)")
    parser.add_argument(
        "--rounds", type=int, help="rounds before the first doubling test, a power of 2 (default 4)"
    )
    parser.add_argument(
        "--max-rounds", type=int, help="rounds a cell that keeps falling trains at most (default 8)"
    )
    parser.add_argument(
        "--report",
        nargs="+",
        metavar="DIR",
        help="train nothing: report the rounds found in these folders of fig5-floor runs (the "
        "parts of a run split over processes or machines) into --out",
    )
    parser.add_argument(
        "--fig5",
        metavar="PATH",
        help="a fig5 run of the same size (its folder or result.json): the claims then read "
        "each budget's lowest error of both runs",
    )


# The settings a fig5 run must share with this one for its errors to join in.
_SAME = ("n", "m_v", "m_ff", "ff_depth", "samples", "held_out", "training")


def read_fig5(path, settings):
    """The `fig5` result at ``path`` (a folder or its result.json); `ValueError` if unusable."""
    from tfapprox import _io

    if os.path.isdir(path):
        path = os.path.join(path, "result.json")
    try:
        result = _io.read_json(path, "fig5 result")
    except (OSError, ValueError) as err:
        raise ValueError(f"--fig5: cannot read {path!r}: {err}") from None
    if not isinstance(result, dict) or result.get("experiment") != "fig5":
        raise ValueError(f"--fig5: {path!r} is not the result.json of `tfapprox experiment fig5`")
    for key in _SAME:
        theirs, ours = result["settings"].get(key), settings["fig5"][key]
        if theirs != ours:
            raise ValueError(
                f"--fig5: {path!r} was run with {key} = {theirs!r}, this run with {ours!r}; "
                "use a fig5 run of the same size (--quick with --quick)"
            )
    return result


def _with_rounds(settings, args):
    """``settings`` with ``--rounds`` and ``--max-rounds`` where given."""
    given = {"rounds": args.rounds, "max_rounds": args.max_rounds}
    return {**settings, **{key: value for key, value in given.items() if value is not None}}


def _check_options(args, settings):
    """The first bad value of the command line, as one line, or None."""
    for m_h in args.m_h or []:
        if m_h < 1:
            return f"--m-h must be positive, got {m_h}"
    for seed in args.seed or []:
        if seed < 0:
            return f"--seed must be at least 0, got {seed}"
    settings = _with_rounds(settings, args)
    rounds, most = settings["rounds"], settings["max_rounds"]
    if rounds < 2 or rounds & (rounds - 1):
        return f"--rounds must be a power of 2 of at least 2, got {rounds}"
    if most < rounds:
        return f"--max-rounds must be at least --rounds ({rounds}), got {most}"
    if not cells(settings, args.target, args.m_h, args.seed):
        return "no cell below the rank: every chosen m_h is at or above its target's rank"
    for folder in args.report or []:
        if not os.path.isdir(folder):
            return f"--report: {folder!r} is not a folder"
    args.fig5_result = None
    if args.fig5 is not None:
        try:
            args.fig5_result = read_fig5(args.fig5, settings)
        except ValueError as err:
            return str(err)
    return None


@_experiment.entry
def main(argv=None):
    args, out, settings = _experiment.start(
        argv, __doc__, "runs/fig5-floor", QUICK, FULL, options=(_add_options, _check_options)
    )
    settings = _with_rounds(settings, args)
    chosen = cells(settings, args.target, args.m_h, args.seed)
    start = time.perf_counter()
    found = []
    for name in dict.fromkeys(c[0] for c in chosen):
        mine = [c for c in chosen if c[0] == name]
        found += run_target(name, settings, out, mine, report=args.report)
    if not found:
        raise ValueError(f"no finished round of the chosen cells in {', '.join(args.report)}")
    print(f"fig5-floor: {len(found)} cells in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    targets_ = budgets(found, settings, args.fig5_result)
    claimed = claims(targets_, settings)
    result = {
        "experiment": "fig5-floor",
        "paper": "Jiang & Li (NeurIPS 2024), Fig. 5, below the rank",
        "paper_numbers": fig5.PAPER,
        "quick": bool(args.quick),
        "settings": {
            **{k: v for k, v in settings.items() if k != "fig5"},
            "model_and_data": settings["fig5"],
            "error": "paper A's norm on held-out samples; a cell's error is its lowest round's",
            "rounds_rule": (
                "each round continues the last from its saved weights (warm restart of the "
                "schedule); doubling test: the best error of k rounds at most material_rtol below "
                "the best of k/2"
            ),
        },
        "fig5": None if args.fig5 is None else os.path.abspath(args.fig5),
        "report_of": None if args.report is None else [os.path.abspath(f) for f in args.report],
        "cells": found,
        "targets": targets_,
        "claims": claimed,
        "seconds": time.perf_counter() - start,
    }
    text = table(found) + "\n\n" + budget_table(targets_) + "\n\n" + claims_text(claimed)
    if args.fig5 is None:
        text += (
            "\n\nThese budgets are the trained rounds alone: fig5's constructions and fitted "
            "kernels are lower at many of them. Give --fig5 DIR (a fig5 run of the same size) "
            "to read the claims from each budget's best model."
        )
    return _experiment.finish(result, text, out, as_json=args.json)


if __name__ == "__main__":
    main()
