"""The main job: measure a target, train across budgets, check the errors against the bound.

`run_check` is what ``tfapprox check`` runs:

1. **Measure** the target's complexity: the POD spectrum of its attention
   kernel ρ and the fitted decay σ_k ≈ C_β k^{−β} with bootstrap intervals
   (`tfapprox.pod.PODComplexity`).
2. **Train** the hypothesis space at every m_h (and m_FF) with several
   seeds, with the batched engine (`tfapprox.sweeps.run_sweep`), into a
   resumable results file.
3. **Truncation error**: for a target with a known POD, the error of the
   target with ρ cut to rank m_h (`tfapprox.metrics.truncation_errors`):
   what the construction behind the bound reaches at that m_h.
4. **Check** the trained errors in paper A's norm (mean over inputs of
   Σ_t |H_t − Ĥ_t|) against ``τ² (C_β m_h^{1−2β} + C_α m_h^{α+1} m_FF^{−α})``
   (`tfapprox.check.check_errors`): envelope and least-squares constants,
   the slope before the floor against −(2β−1), m_h* against the best m_h.
5. **Nested budgets**: a budget whose best training loss is above that of a
   smaller budget it contains missed its best model (`tfapprox.nesting`).
   With an L-BFGS finisher it is warm-started from that budget's best
   weights, embedded without changing the function (so its loss can only
   fall); a budget's reported error is its best over random and warm
   starts. Without a finisher the verdict is "not converged".
6. **Convergence**: the budgets whose runs were least converged are trained
   again with twice the epochs and finisher iterations, and from one more
   random start; if either lowers a reported error by more than
   ``material_rtol`` (or changes the verdict), or a longer run breaks
   nesting, the report says the errors were limited by the optimiser, not
   by m_h. A longer run that ends higher leaves the best error where it
   was, and the report states it.
7. **Report**: ``report.md``, ``results.json``, ``convergence.json``,
   ``nesting.json``, ``weights/`` and ``rate.png`` in the output folder,
   and a verdict with the m_h to use.
"""

import dataclasses
import json
import math
import os
import sys

from tfapprox import _io, check, metrics, results
from tfapprox._checks import check_int, check_positive_int, check_real
from tfapprox.config import TrainingConfig

__all__ = [
    "DEFAULT_RECIPE",
    "DEFAULT_TARGET",
    "MEASURE_ALPHA",
    "default_settings",
    "measure_alpha",
    "quick_settings",
    "render_report",
    "run_check",
    "thorough_settings",
]

# An infinite-rank power-law spectrum (σ_k = 2 k^{−1}, so a rate −(2β−1) = −1 is
# measurable), τ = 8, d = 8, whose leading POD terms each drive one output
# (`tfapprox.targets.bilinear_target`): trained errors fall with m_h and
# reach a floor that more training does not move within minutes on a CPU.
# On paper A's Fig. 5b target (d = 1, one scalar value) they are flat in m_h
# and need an hour of L-BFGS to settle (analysis/RECIPE.md).
DEFAULT_TARGET = "bilinear-rinf"

# The default α: Barron's rate for sigmoidal networks, the value paper A
# quotes for feed-forward approximation; the check prints this reason.
DEFAULT_ALPHA = 0.5
ALPHA_REASON = (
    "α = 1/2: Barron's feed-forward rate, the one Jiang & Li quote; --alpha measure fits "
    "it on the target's POD basis (tfapprox.workflow.measure_alpha), or give a number"
)


# ``alpha=MEASURE_ALPHA`` (``--alpha measure``): α from `measure_alpha`.
MEASURE_ALPHA = "measure"


def measure_alpha(target, m_h, m_ff, *, epochs=200, samples=1024, seed=0):
    """The feed-forward rate α of ``target``, measured on its POD basis.

    Jiang & Li's construction approximates the first m_h POD basis
    functions φ_1 … φ_{m_h} of ρ with a feed-forward network of width m_FF,
    at an error ``C_α m_h^{α+1} / m_FF^α``. This fits ``FeedForward``
    networks of widths m_FF/8, m_FF/4, m_FF/2 and m_FF to the vector
    ``(φ_1, …, φ_k)(u)``, ``k = max m_h``, on u ~ U[0,1]^d
    (`tfapprox.ffrate.ff_rate`) and returns the fitted rate.

    α is itself read from trained errors (``epochs`` of Adam per width): if
    the widest networks stop above their floor, the fit reads α too low.
    The check's report keeps the widths, errors and interval, so the
    reader can judge. On ``fig5b-rinf`` (k = 6, m_FF = 64, one minute on
    2 cores) it gave α = 1.40 (95 % interval 0.73 to 1.84): the smooth
    basis √2 sin(2π i u) is approximated faster than Barron's 1/2.

    Args:
        target: `tfapprox.targets.Target` with a position-independent POD
            basis (``target.pod_basis``: the fig5, bilinear and positional
            families).
        m_h: iterable of int. The query/key widths checked (k is the largest).
        m_ff: int. The largest feed-forward width (at least 2).
        epochs, samples, seed: `ff_rate`'s training. Defaults 200, 1024, 0.

    Returns:
        `tfapprox.ffrate.FFRate`, with ``settings["basis_functions"] = k``.
    """
    from tfapprox import ffrate

    if not hasattr(target, "pod_basis") or target.position_dependent:
        raise ValueError(
            f"measuring α needs a target with a known, position-independent POD basis "
            f"(the fig5, bilinear and positional families); {target.name!r} has none: "
            "give --alpha"
        )
    k = max(check_positive_int("m_h", width) for width in m_h)
    m_ff = check_positive_int("m_ff", m_ff)
    widths = sorted({max(1, m_ff // 8), max(1, m_ff // 4), max(1, m_ff // 2), m_ff})
    if len(widths) < 2:
        raise ValueError(f"measuring α needs m_ff >= 2. Received: m_ff={m_ff}")
    terms = target.singular_values.size
    if k > terms:
        raise ValueError(f"the target has {terms} POD basis functions; m_h goes up to {k}")

    def basis(u):
        return target.pod_basis(u)[:, :k]

    fit = ffrate.ff_rate(
        basis, widths, input_dim=target.input_dim, epochs=epochs, num_samples=samples, seed=seed
    )
    return dataclasses.replace(fit, settings={**fit.settings, "basis_functions": k})


def _measured_alpha(path, target, m_h, m_ff):
    """`measure_alpha`, kept in ``path`` so that a resumed check does not train it again."""
    from tfapprox import ffrate

    key = {"target": target.metadata, "m_h": max(m_h), "m_ff": m_ff}
    if os.path.exists(path):
        stored = _io.read_json(path, "measured α")
        if stored.get("key") == json.loads(_io.to_json(key)):
            fit = {k: v for k, v in stored["fit"].items() if k != "non_finite"}
            for name in ("alpha_ci", "c_alpha_ci", "widths", "errors"):
                fit[name] = tuple(math.nan if v is None else v for v in fit[name])
            return ffrate.FFRate(**fit)
    fit = measure_alpha(target, m_h, m_ff)
    record = {"key": key, "fit": results.to_strict_json(fit.to_dict())}
    _io.atomic_write_json(path, record, allow_nan=False)
    return fit


def _alpha_reason(fit):
    low, high = fit.alpha_ci
    return (
        f"α measured: FeedForward widths {', '.join(map(str, fit.widths))} fitted to the POD "
        f"basis φ_1…φ_{fit.settings['basis_functions']} of ρ, α = {fit.alpha:.3g} "
        f"(95 % interval {low:.3g} to {high:.3g}; tfapprox.ffrate.ff_rate)"
    )


# The scale of the new W_Q columns of a nested warm start: from the exact
# embedding of a converged smaller model, L-BFGS stopped after 1 and 43
# iterations on the default target; from ε = 0.1 it used the added width
# (analysis/RECIPE.md, "Nested warm starts").
WARM_PERTURBATION = 0.1


def _settings(m_h, m_ff, n, ff_depth, seeds, samples, held_out, config, retrain):
    """One preset of `run_check`'s budgets and recipe, as its keyword arguments."""
    return {
        "m_h": list(m_h),
        "m_ff": [m_ff],
        "n": n,
        "ff_depth": ff_depth,
        "seeds": seeds,
        "samples": samples,
        "held_out": held_out,
        "config": config,
        "retrain": retrain,
    }


# The default recipe (measured on `DEFAULT_TARGET`, analysis/RECIPE.md, "The
# check's default recipe"): Adam at 1e-2 with a 5-epoch warm-up (the cosine
# schedule's default, min(5, epochs), so a shorter --epochs keeps what fits) and cosine
# decay, batch 32, 450 epochs, early stopping after 30 epochs without a 0.1 %
# improvement, and no position encoding (the target depends on values only; a
# learned encoding left single starts up to 6× apart). At 300 epochs twice
# the training lowered one error by 10.3 % under JAX.
DEFAULT_RECIPE = TrainingConfig(
    epochs=450,
    batch_size=32,
    learning_rate=1e-2,
    schedule="cosine",
    patience=30,
    model_kwargs={"position_encoding": "none"},
)


def default_settings():
    """The budgets and the training recipe of ``tfapprox check`` (about 3.5 minutes on 2 cores).

    m_h = 1…6 at m_FF = 32 with n = m_v = 8 and one hidden layer per
    feed-forward network (f̂ and F̂ two-layer ReLU networks), three seeds,
    1,000 training and 1,000 held-out sequences, `DEFAULT_RECIPE`; the
    convergence runs retrain the two least-converged budgets. On
    `DEFAULT_TARGET` twice the epochs and another start lowered no budget's
    best error by more than 2.8 % under TensorFlow and 6.0 % under JAX
    (``analysis/RECIPE.md``).
    """
    return _settings(range(1, 7), 32, 8, 1, 3, 1000, 1000, DEFAULT_RECIPE, 2)


def thorough_settings():
    """The default recipe, larger: m_h = 1…8, four seeds, 2,000 samples, 600 epochs.

    Every budget's best of four starts, on twice the data and trained
    longer than `default_settings`; the convergence runs retrain the three
    least-converged budgets. About ten minutes on 2 cores.
    """
    config = DEFAULT_RECIPE.replace(epochs=600)
    return _settings(range(1, 9), 32, 8, 1, 4, 2000, 1000, config, 3)


def quick_settings():
    """A small version of `default_settings` (well under a minute): the tests run it."""
    config = DEFAULT_RECIPE.replace(epochs=20, batch_size=64)
    return _settings(range(1, 5), 16, 8, 1, 1, 512, 256, config, 1)


def _percent_above(violation):
    """How far a budget's best loss is above the contained one's, relative to the latter.

    (`nesting.violations`' ``excess`` is relative to the larger loss: 2.0
    against 1.0 is an excess of 50 %, and 100 % above.)
    """
    loss, lower = violation["loss"], violation["contained"]["loss"]
    return f"{100 * (loss / lower - 1):.0f}%" if lower > 0 else "infinitely"


def _least_converged(runs, count):
    """The budgets (m_h, m_ff) whose runs were still improving most when they stopped."""

    def slack(run):
        history = [v for v in (run.get("history") or []) if v is not None and math.isfinite(v)]
        if run.get("stopped") == "non_finite":
            return math.inf
        finisher = run.get("finisher")
        if finisher and finisher.get("loss_half"):
            # The L-BFGS finisher's last half: how much it was still gaining.
            return (finisher["loss_half"] - finisher["loss_after"]) / finisher["loss_half"]
        if len(history) < 4:
            return 0.0
        tail = max(1, len(history) // 10)
        before, after = history[-2 * tail], history[-1]
        improving = (before - after) / before if before > 0 else 0.0
        return improving + (1.0 if run.get("stopped") == "max_epochs" else 0.0)

    ranked = sorted(runs, key=slack, reverse=True)
    chosen = []
    for run in ranked:
        key = (run["budget"]["m_h"], run["budget"]["m_ff"])
        if key not in chosen:
            chosen.append(key)
        if len(chosen) == count:
            break
    return chosen


def _best_by_budget(runs, key):
    """Per budget ``(m_h, m_ff)``: the lowest finite ``run[key]``."""
    from tfapprox import nesting

    return {budget: run[key] for budget, run in nesting.best_runs(runs, key).items()}


def _truncation_rows(rows, trained_test):
    """``rows`` (``m_h``, ``m_ff``, ``truncation``) with ``trained``: the best held-out error."""
    return [
        {**row, "trained": trained_test.get((row["m_h"], row["m_ff"]))}
        for row in rows
        if (row["m_h"], row["m_ff"]) in trained_test
    ]


def _nested_warm_starts(
    pool, *, path, weights_dir, train, test, config, rtol, metadata, progress=False
):
    """Warm-start every budget that breaks nesting from its best contained budget.

    Budgets are visited smallest first ((m_FF, m_h) order), so a warm start
    can itself be the source of a larger budget's. Each warm start runs
    L-BFGS for ``config.finisher_steps`` iterations from the contained
    budget's best weights (`tfapprox.nesting.warm_start`); one that used
    them all is continued for as many again (twice the training), and the
    change is recorded. Finished warm starts are appended to ``path`` at
    once, and a rerun reuses them. With ``progress``, a line on stderr
    announces each one.

    Returns:
        ``(runs, rows)``: the warm-start runs, and per budget visited a dict
        ``m_h``, ``m_ff``, ``loss_before`` (its best before), ``source``
        (``m_h``, ``m_ff``, ``seed``, ``loss``), ``loss``, ``error``,
        ``iterations``, ``loss_2x``/``error_2x`` (None unless continued), or
        ``skipped`` with the reason.
    """
    from tfapprox import nesting
    from tfapprox.budget import Budget

    done = {}
    if os.path.exists(path):
        done = {results.run_key(run): run for run in results.read(path)["runs"]}
    file_metadata = {**results.metadata_for(train), **metadata, "training": config.to_dict()}
    steps = config.finisher_steps
    pool, warm, rows = list(pool), [], []
    budgets = sorted(nesting.best_runs(pool), key=lambda b: (b[1], b[0]))
    for m_h, m_ff in budgets:
        found = [v for v in nesting.violations(pool, rtol) if (v["m_h"], v["m_ff"]) == (m_h, m_ff)]
        if not found:
            continue
        violation, best = found[0], nesting.best_runs(pool)
        source_key = (violation["contained"]["m_h"], violation["contained"]["m_ff"])
        source_run = best[source_key]
        budget = Budget.from_dict(best[(m_h, m_ff)]["budget"])
        source_budget = Budget.from_dict(source_run["budget"])
        digest = os.path.splitext(os.path.basename(nesting.weights_path("", source_run)))[0]
        identity = {
            "budget": budget.to_dict(),
            "seed": 0,
            "hyperparameters": config.to_dict(),
            "start": {
                "budget": source_budget.to_dict(),
                "seed": source_run["seed"],
                "run": digest,
                "perturbation": WARM_PERTURBATION,
            },
        }
        row = {
            "m_h": m_h,
            "m_ff": m_ff,
            "loss_before": violation["loss"],
            "source": {
                "m_h": source_key[0],
                "m_ff": source_key[1],
                "seed": source_run["seed"],
                "loss": source_run["loss"],
            },
        }
        run = done.get(results.run_key(identity))
        if run is None:
            source = nesting.load_weights(weights_dir, source_run)
            if source is None:
                rows.append({**row, "skipped": "the source run's weights were not kept"})
                continue
            if progress:
                print(
                    f"warm start: m_h = {m_h}, m_FF = {m_ff} from m_h = {source_key[0]}, "
                    f"m_FF = {source_key[1]} (L-BFGS, ≤ {steps} iterations)",
                    file=sys.stderr,
                    flush=True,
                )
            record, weights = nesting.warm_start(
                budget,
                source,
                source_budget,
                train,
                steps,
                validation_data=test,
                model_kwargs=config.model_kwargs,
                perturbation=WARM_PERTURBATION,
            )
            run = {**record, **identity, "loss_2x": None, "error_2x": None}
            if record["finisher"]["iterations"] >= steps:
                # It used every iteration: as many again say whether it was at its floor.
                longer, weights_2x = nesting.warm_start(
                    budget,
                    weights,
                    budget,
                    train,
                    steps,
                    validation_data=test,
                    model_kwargs=config.model_kwargs,
                )
                run["loss_2x"], run["error_2x"] = longer["loss"], longer["error"]
            nesting.save_weights(weights_dir, run, weights)
            run = results.from_strict_json(results.to_strict_json(run))
            results.append(path, [run], file_metadata)
        warm.append(run)
        pool.append(run)
        rows.append(
            {
                **row,
                "loss": run["loss"],
                "error": run["error"],
                "iterations": run["finisher"]["iterations"],
                "loss_2x": run.get("loss_2x"),
                "error_2x": run.get("error_2x"),
            }
        )
    return warm, rows


def _recommendation(report, rtol=0.05):
    """Per m_FF: the smallest m_h whose error is within ``rtol`` of the best one.

    Provisional when the verdict says the errors are not at their floor.
    """
    rows = []
    by_m_ff = {}
    for point in report.points:
        by_m_ff.setdefault(point["m_ff"], []).append(point)
    for m_ff, group in sorted(by_m_ff.items()):
        best = min(p["error"] for p in group)
        choice = min(p["m_h"] for p in group if p["error"] <= best * (1 + rtol))
        rows.append({"m_ff": m_ff, "m_h": choice, "error": best, "rtol": rtol})
    return rows


def _seed_noise(report):
    """How much seeds differ at one budget, against how much budgets differ.

    Returns ``(spread, between)``: the median over budgets of
    (max − min)/min over seeds, and (max − min)/min of the budgets' best
    errors. Seeds that differ more than budgets do mean the optimiser, not
    the budget, sets the errors.
    """
    spreads = [
        (p["error_max"] - p["error"]) / p["error"]
        for p in report.points
        if p["seeds"] > 1 and p["error"] > 0
    ]
    errors = [p["error"] for p in report.points if p["error"] > 0]
    if not spreads or len(errors) < 2:
        return None, None
    spreads.sort()
    spread = spreads[len(spreads) // 2]
    return spread, (max(errors) - min(errors)) / min(errors)


def _verdict(report, convergence, truncation):
    """One sentence a user can act on, and its short label."""
    if convergence["material"]:
        return (
            "not converged",
            "More training (twice the steps, or another start) lowered the errors "
            f"materially (largest drop {100 * convergence['max_change']:.0f}%): these "
            "errors are limited by the "
            "optimiser, so they say nothing yet about m_h. Train longer (--epochs, "
            "--finisher-steps) or with more seeds and run the check again.",
        )
    nesting = convergence.get("nesting") or []
    if nesting:
        worst = max(nesting, key=lambda row: row["excess"])
        budgets = ", ".join(f"m_h = {row['m_h']} (m_FF = {row['m_ff']})" for row in nesting)
        return (
            "not converged",
            f"The best training loss at {budgets} is above that of a smaller budget their "
            "hypothesis space contains (worst: m_h = "
            f"{worst['m_h']} is {_percent_above(worst)} above m_h = "
            f"{worst['contained']['m_h']}, m_FF = {worst['contained']['m_ff']}), so those runs "
            "did not find their budget's best model and the errors say nothing yet about m_h. "
            "Use more seeds, a longer schedule or --finisher-steps (which also warm-starts "
            "such budgets from the smaller one) and run the check again.",
        )
    text, label = _rate_sentence(report, truncation, convergence)
    warm = [row for row in convergence.get("warm_starts") or [] if "skipped" not in row]
    if warm:
        text += (
            " Random starts missed the best model at "
            + ", ".join(f"m_h = {row['m_h']} (m_FF = {row['m_ff']})" for row in warm)
            + "; warm starts from a smaller budget's best weights fixed that, and these "
            "errors include them."
        )
    return label, text


def _rate_sentence(report, truncation, convergence):
    """The verdict when more training moved no error: ``(sentence, label)``.

    Seeds that differ more than budgets do make the errors "noise-limited",
    unless another start was tried (``convergence["budgets"]``) and did not
    lower the best error materially: then each budget's best over its
    starts is read as its error, and the sentence says so.
    """
    rate = report.rate
    spread, between = _seed_noise(report)
    noisy = ""
    if spread is not None and spread >= between:
        restarted = sorted(
            (row for row in convergence.get("budgets") or [] if row.get("error_restart")),
            key=lambda row: (row["m_ff"], row["m_h"]),
        )
        if not restarted:
            return (
                f"Seeds at one budget differ by {100 * spread:.0f}% (median), more than the "
                f"best errors of different m_h ({100 * between:.0f}%): the optimiser, not m_h, "
                "sets these errors. Use more seeds or a longer schedule before reading a rate "
                "from them.",
                "noise-limited",
            )
        noisy = (
            f" Single starts at one budget differ by {100 * spread:.0f}% (median), more than "
            f"the best errors of different m_h ({100 * between:.0f}%), but one more start at "
            + ", ".join(f"m_h = {row['m_h']}" for row in restarted)
            + " did not lower the best error materially: each budget's error is the best of "
            "its starts."
        )
    if rate["verdict"] == "insufficient data":
        return (
            "The error does not fall with m_h over the range tested (fewer than three points "
            "before the floor): at this m_FF the error is limited by something other than the "
            "attention rank (the feed-forward parts or the value path)." + noisy,
            "flat",
        )
    below = [
        row
        for row in truncation
        if row["trained"] is not None and row["trained"] < row["truncation"]
    ]
    text = (
        f"Measured slope {rate['slope']:.2f} (95% interval {rate['ci'][0]:.2f} to "
        f"{rate['ci'][1]:.2f}) against the predicted {rate['predicted']:.2f}: "
        f"{rate['verdict']}."
    )
    if below:
        text += (
            f" At m_h = {', '.join(str(r['m_h']) for r in below)} the trained model beats the "
            "rank-m_h truncation of ρ: it uses more than the bound's construction."
        )
    return text + noisy, rate["verdict"]


def _squared_norm(mse_rate, exact):
    """The rate in the mean squared error, beside the truncation's slope in both norms.

    The bound's rate −(2β−1) is that of the POD tail ``Σ_{k>m_h} σ_k²``, a
    squared quantity: the rank-m_h truncation of ρ can follow it in the
    MSE and fall more slowly in paper A's unsquared norm (on
    ``bilinear-d16``: −1.02 against −0.62). So the report gives the trained
    errors' slope in the MSE too, and, for a target with a known POD, the
    truncation's least-squares slope in each norm over the m_h swept
    (None where fewer than two truncation errors are positive).

    >>> exact = {1: {"paper_error": 4.0, "mse": 16.0}, 2: {"paper_error": 2.0, "mse": 4.0}}
    >>> _squared_norm({"slope": -2.0}, exact)["truncation_slope"]
    {'paper_error': -1.0, 'mse': -2.0}
    """
    from tfapprox import fits

    slopes = None
    if exact is not None:
        slopes = {}
        for norm in ("paper_error", "mse"):
            points = [(k, row[norm]) for k, row in sorted(exact.items()) if k > 0 and row[norm] > 0]
            slopes[norm] = (
                float(fits.power_law(*zip(*points), n_bootstrap=0).slope)
                if len(points) >= 2
                else None
            )
    return {"rate": mse_rate, "truncation_slope": slopes}


def _convergence_rows(chosen, runs, longer, seeds):
    """Per retrained budget: its reported error against more training.

    Args:
        chosen: list of ``(m_h, m_ff)``: the retrained budgets.
        runs: list of dict. The runs the report reads, warm starts included:
            a budget's reported error is its lowest ``error`` among them.
        longer: list of dict. The convergence runs: seeds ``< seeds`` with
            twice the training, and seed ``seeds``, another start.
        seeds: int. The seeds per budget of the sweep.

    Returns:
        list of dict: ``m_h``, ``m_ff``, ``error`` (reported), ``error_2x``
        and ``error_restart`` (best of each kind of convergence run, or
        None), ``drop`` = (error − error_2x)/error, ``drop_restart`` likewise
        (negative when higher), and ``change`` = max(0, drop, drop_restart):
        only a lower error says the reported one was above the budget's
        floor; a higher one leaves the best of the runs where it was. A
        budget with no finite reported error has change 1 (nothing says it
        converged).
    """
    before = _best_by_budget(runs, "error")
    after_2x = _best_by_budget([run for run in longer if run["seed"] < seeds], "error")
    after_restart = _best_by_budget([run for run in longer if run["seed"] == seeds], "error")
    rows = []
    for budget in chosen:
        old, longer_error, restart_error = (
            values.get(budget) for values in (before, after_2x, after_restart)
        )
        row = {
            "m_h": budget[0],
            "m_ff": budget[1],
            "error": old,
            "error_2x": longer_error,
            "error_restart": restart_error,
            "drop": 0.0,
            "drop_restart": 0.0,
        }
        if old is not None and old > 0:
            if longer_error is not None:
                row["drop"] = (old - longer_error) / old
            if restart_error is not None:
                row["drop_restart"] = (old - restart_error) / old
            row["change"] = max(0.0, row["drop"], row["drop_restart"])
        else:
            row["change"] = 0.0 if old == 0 else 1.0
        rows.append(row)
    return rows


def run_check(
    target=DEFAULT_TARGET,
    *,
    m_h=tuple(range(1, 9)),
    m_ff=(128,),
    n=32,
    m_v=None,
    ff_depth=3,
    seeds=2,
    alpha=DEFAULT_ALPHA,
    samples=2000,
    held_out=1000,
    config=None,
    out="tfapprox-check",
    scheduler=None,
    chunk_size=16,
    retrain=2,
    material_rtol=0.1,
    nested_starts=True,
    progress=True,
):
    """Measure ``target``, train every (m_h, m_FF, seed), check the errors; write a report.

    The keyword defaults are paper A's Fig. 5 model (n = 32, m_FF = 128,
    m_h = 1…8: hours on a CPU). ``tfapprox check`` runs
    ``run_check(DEFAULT_TARGET, **default_settings())`` (minutes), and
    ``--quick`` / ``--thorough`` use `quick_settings` / `thorough_settings`.

    Args:
        target: str or `tfapprox.targets.Target`. A preset name or a target.
            Defaults to `DEFAULT_TARGET`.
        m_h, m_ff: iterables of int. The budgets.
        n, m_v, ff_depth: the other widths (`tfapprox.Budget`).
        seeds: int. Seeds per budget.
        alpha: float, or ``"measure"`` (`measure_alpha` at the largest
            m_FF, recorded in the report). The feed-forward rate α of the
            bound. Defaults to 1/2 (`ALPHA_REASON`).
        samples, held_out: int. Training and held-out sequences.
        config: `TrainingConfig` or None (its defaults).
        out: str. The output folder.
        scheduler: None or a Dask scheduler (`tfapprox.distributed`).
        chunk_size: int. Members per engine call.
        retrain: int. How many least-converged budgets are retrained with
            twice the epochs and finisher iterations, their seeds and one
            more (seed ``seeds``, another start); 0 skips the convergence
            check.
        material_rtol: float. A drop of a budget's reported error larger
            than this (relative) under twice the training or from another
            start counts as material.
        nested_starts: bool. Warm-start every budget whose best loss is
            above a contained budget's from that budget's best weights
            (`tfapprox.nesting`; only with ``config.finisher_steps``, whose
            L-BFGS it runs). Trained weights are kept in ``out/weights``.
            Defaults to True.
        progress: bool. Show the sweep's progress.

    Returns:
        dict: the whole report (also written to ``out/report.json``).
    """
    from tfapprox import nesting, plots, pod, sweeps, targets

    if isinstance(target, str):
        if target not in targets.preset_names():
            raise ValueError(
                f"unknown target preset {target!r}; presets: {', '.join(targets.preset_names())}"
            )
        target = targets.load_preset(target)
    if not isinstance(target, targets.Target):
        raise TypeError(
            f"`target` must be a preset name or a tfapprox Target. Received: {target!r}"
        )
    seeds = check_positive_int("seeds", seeds)
    samples = check_positive_int("samples", samples)
    held_out = check_positive_int("held_out", held_out)
    if alpha != MEASURE_ALPHA:
        alpha = check_real("alpha", alpha, low=0, low_open=True)
    retrain = check_int("retrain", retrain, minimum=0)
    material_rtol = check_real("material_rtol", material_rtol, low=0, low_open=True)
    config = TrainingConfig.coerce(config)
    encoding = config.model_kwargs.get("position_encoding", "learned")
    if target.position_dependent and encoding == "none":
        raise ValueError(
            f"target {target.name!r} depends on positions, which a model with "
            "position_encoding='none' cannot see: give it a position encoding "
            "(--position-encoding learned)"
        )
    members = sweeps.plan_members(m_h, m_ff, range(seeds), n=n, m_v=m_v, ff_depth=ff_depth)
    out = _io.writable_folder(out)

    # 1. Complexity.
    estimate = pod.PODComplexity(allow_short=True).fit(target)
    complexity = {
        "beta": float(estimate.beta_),
        "beta_ci": [float(v) for v in estimate.beta_ci_],
        "c_beta": float(estimate.c_beta_),
        "c_beta_ci": [float(v) for v in estimate.c_beta_ci_],
        "rank": None if estimate.rank_ is None else int(estimate.rank_),
        "true_beta": target.beta,
        "true_rank": None if target.rank is None else str(target.rank),
    }
    beta = complexity["beta"]
    if not math.isfinite(beta) or beta <= 0.5:
        raise ValueError(
            f"the target's POD decay β = {beta} is not above 1/2, where the bound applies "
            "(a finite-rank target has no rate to check; use one with an infinite spectrum)"
        )
    alpha_fit = None
    if alpha == MEASURE_ALPHA:
        alpha_fit = _measured_alpha(os.path.join(out, "alpha.json"), target, m_h, max(m_ff))
        if not (math.isfinite(alpha_fit.alpha) and alpha_fit.alpha > 0):
            raise ValueError(
                f"the measured feed-forward rate α = {alpha_fit.alpha:.3g} is not positive "
                f"(errors {alpha_fit.errors} at widths {alpha_fit.widths}): give --alpha"
            )
        alpha = alpha_fit.alpha

    # 2. Training.
    train = target.sample(samples, seed=0)
    test = target.sample(held_out, seed=1)
    metadata = {"target": target.metadata, "target_name": target.name}
    results_path = os.path.join(out, "results.json")
    weights_dir = os.path.join(out, "weights") if nested_starts and config.finisher_steps else None
    sweep = sweeps.run_sweep(
        train,
        members,
        results_path,
        config=config,
        validation_data=test,
        metadata=metadata,
        scheduler=scheduler,
        chunk_size=chunk_size,
        progress=progress,
        weights_dir=weights_dir,
    )
    runs = sweep["runs"]

    # 3. Truncation errors (paper A's norm, held-out inputs).
    truncation = []
    exact = None
    if hasattr(target, "truncated"):
        exact = metrics.truncation_errors(target, test.x, sorted(set(m_h)))
        truncation = [
            {"m_h": k, "m_ff": f, "truncation": exact[k]["paper_error"]}
            for f in sorted(set(m_ff))
            for k in sorted(set(m_h))
        ]
        truncation = _truncation_rows(truncation, _best_by_budget(runs, "val_error"))

    # 4. The check, in paper A's norm on the training data.
    def check_runs(these, error_key="error"):
        return check.check_errors(
            {"runs": these, "metadata": {"sequence_length": target.sequence_length}},
            tau=target.sequence_length,
            alpha=alpha,
            beta=beta,
            error_key=error_key,
        )

    report = check_runs(runs)

    # 5. Nested budgets: the best loss cannot rise with m_h or m_FF. A budget
    # that breaks this is warm-started from its best contained budget; the
    # warm starts are part of the recipe, so they come before the
    # convergence test, which then asks whether more training lowers the
    # error the report gives (the best of random and warm starts).
    convergence = {
        "budgets": [],
        "epochs": 2 * config.epochs,
        "finisher_steps": 2 * config.finisher_steps,
        "restart_seed": seeds,
        "material": False,
        "max_change": 0.0,
    }
    convergence["nesting_before"] = nesting.violations(runs, material_rtol)
    convergence["warm_starts"] = []
    if convergence["nesting_before"] and nested_starts and config.finisher_steps:
        warm, convergence["warm_starts"] = _nested_warm_starts(
            runs,
            path=os.path.join(out, "nesting.json"),
            weights_dir=weights_dir,
            train=train,
            test=test,
            config=config,
            rtol=material_rtol,
            metadata=metadata,
            progress=progress,
        )
        if warm:
            # The best model found at each budget may now be a warm start.
            runs = runs + warm
            report = check_runs(runs)
            truncation = _truncation_rows(truncation, _best_by_budget(runs, "val_error"))
        for row in convergence["warm_starts"]:
            if row.get("loss_2x") is not None and row["loss"] > 0:
                change = (row["loss"] - row["loss_2x"]) / row["loss"]
                convergence["max_change"] = max(convergence["max_change"], change)

    # 6. Convergence: the least converged budgets, twice the epochs, and
    # another start (one fresh seed, trained the same longer way).
    pool = runs
    if retrain > 0:
        chosen = _least_converged(runs, retrain)
        again = [(b, s) for b, s in members if (b.m_h, b.m_ff) in chosen]
        again += [(b, seeds) for b, s in members if (b.m_h, b.m_ff) in chosen and s == 0]
        longer = sweeps.run_sweep(
            train,
            again,
            os.path.join(out, "convergence.json"),
            config=config.replace(
                epochs=2 * config.epochs, finisher_steps=2 * config.finisher_steps
            ),
            validation_data=test,
            metadata=metadata,
            scheduler=scheduler,
            chunk_size=chunk_size,
            progress=progress,
            weights_dir=weights_dir,
        )
        rows = _convergence_rows(chosen, runs, longer["runs"], seeds)
        convergence["budgets"] = rows
        for row in rows:
            convergence["max_change"] = max(convergence["max_change"], row["change"])
        after = _best_by_budget(longer["runs"], "error")
        improved = [
            {
                **run,
                "error": min(
                    run["error"], after.get((run["budget"]["m_h"], run["budget"]["m_ff"]), math.inf)
                ),
            }
            for run in runs
        ]
        rechecked = check_runs(improved)
        convergence["verdict_2x"] = rechecked.rate["verdict"]
        convergence["verdict_changed"] = rechecked.rate["verdict"] != report.rate["verdict"]
        pool = runs + longer["runs"]
    # An error that moves under more training was not at its floor.
    convergence["material"] = convergence["max_change"] > material_rtol or bool(
        convergence.get("verdict_changed")
    )
    # The longer runs must keep nesting too: one that beats a larger budget
    # shows that budget's error was not its best.
    convergence["nesting"] = nesting.violations(pool, material_rtol)
    label, sentence = _verdict(report, convergence, truncation)
    recommendation = _recommendation(report)
    squared = _squared_norm(check_runs(runs, "loss").rate, exact)

    figure = plots.rate_plot(os.path.join(out, "rate.png"), report)
    summary = {
        "target": target.name,
        "complexity": complexity,
        "alpha": alpha,
        "alpha_reason": (
            _alpha_reason(alpha_fit)
            if alpha_fit is not None
            else ALPHA_REASON
            if alpha == DEFAULT_ALPHA
            else "given"
        ),
        "alpha_fit": None if alpha_fit is None else alpha_fit.to_dict(),
        "budgets": {
            "m_h": sorted(set(m_h)),
            "m_ff": sorted(set(m_ff)),
            "n": n,
            "m_v": m_v,
            "ff_depth": ff_depth,
        },
        "seeds": seeds,
        "samples": {"train": samples, "held_out": held_out},
        "training": config.to_dict(),
        "sweep": {"trained": sweep["trained"], "skipped": sweep["skipped"]},
        "check": report.to_dict(),
        "truncation": truncation,
        "squared": squared,
        "convergence": convergence,
        "material_rtol": material_rtol,
        "verdict": label,
        "verdict_text": sentence,
        "recommendation": recommendation,
        "outputs": {
            "report": os.path.join(out, "report.md"),
            "results": results_path,
            "figure": figure,
        },
    }

    _io.atomic_write_text(summary["outputs"]["report"], render_report(summary))
    _io.atomic_write_json(
        os.path.join(out, "report.json"), results.to_strict_json(summary), allow_nan=False
    )
    return summary


def _fmt(value, digits=3):
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _squared_lines(squared):
    """The report's lines on the rate in the mean squared error (`_squared_norm`)."""
    if not squared:
        return []
    rate = squared["rate"]
    interval = f"interval {_fmt(rate['ci'][0])} to {_fmt(rate['ci'][1])}, " if rate["ci"] else ""
    lines = [
        f"- In the mean squared error (the tail Σ_{{k>m_h}} σ_k² behind −(2β−1) is squared): "
        f"slope {_fmt(rate['slope'])} ({interval}{rate['points']} points): {rate['verdict']}."
    ]
    slopes = squared["truncation_slope"]
    if slopes and None not in slopes.values():
        lines.append(
            f"- The rank-m_h truncation of ρ itself falls with slope "
            f"{_fmt(slopes['paper_error'])} in paper A's norm and {_fmt(slopes['mse'])} in the "
            "mean squared error over these m_h."
        )
    return lines


def render_report(summary):
    """The markdown report of `run_check`."""
    c = summary["complexity"]
    report = summary["check"]
    lines = [
        f"# tfapprox check: {summary['target']}",
        "",
        f"**Verdict: {summary['verdict']}.** {summary['verdict_text']}",
        "",
    ]
    provisional = summary["verdict"] in ("not converged", "noise-limited")
    for row in summary["recommendation"]:
        lines.append(
            (
                "**Provisional recommendation** (the errors are not at their floor):"
                if provisional
                else "**Recommendation:**"
            )
            + f" for this target at m_FF = {row['m_ff']}, use m_h = {row['m_h']} "
            f"(the smallest m_h within {100 * row['rtol']:.0f}% of the best error, {_fmt(row['error'])})."
        )
    lines += [
        "",
        "## Complexity of the target",
        "",
        f"- POD decay β = {_fmt(c['beta'])} (95% interval {_fmt(c['beta_ci'][0])} to "
        f"{_fmt(c['beta_ci'][1])}), C_β = {_fmt(c['c_beta'])}; numerical rank {c['rank']}"
        + (f" (true β {c['true_beta']}, rank {c['true_rank']})" if c["true_beta"] else ""),
        f"- Feed-forward rate: {summary['alpha_reason']}",
        "",
        "## Trained errors (paper A's norm: mean over inputs of Σ_t |H_t − Ĥ_t|)",
        "",
        "| m_h | m_FF | min error (train) | max over seeds | bound (envelope) | truncation (held-out) | trained (held-out) |",
        "|---|---|---|---|---|---|---|",
    ]
    lp = report["envelope"]
    truncation = {(r["m_h"], r["m_ff"]): r for r in summary["truncation"]}
    from tfapprox import theory

    params = report["parameters"]
    unit = theory.Bound(tau=params["tau"], alpha=params["alpha"], beta=params["beta"])
    for point in report["points"]:
        terms = unit.terms(point["m_h"], point["m_ff"])
        bound = lp["c_beta"] * terms.attention_term + lp["c_alpha"] * terms.ff_term
        row = truncation.get((point["m_h"], point["m_ff"]), {})
        lines.append(
            f"| {point['m_h']} | {point['m_ff']} | {_fmt(point['error'])} | "
            f"{_fmt(point['error_max'])} | {_fmt(bound)} | {_fmt(row.get('truncation'))} | "
            f"{_fmt(row.get('trained'))} |"
        )
    rate = report["rate"]
    lines += [
        "",
        "## Against the bound",
        "",
        f"- The bound holds at every point with **C_β = {_fmt(lp['c_beta'])}, C_α = "
        f"{_fmt(lp['c_alpha'])}** (the smallest such constants, a linear program; mean "
        f"bound/error {_fmt(lp['mean_ratio'])}).",
        f"- Least-squares constants for the shape: C_β = {_fmt(report['fitted']['c_beta'])}, "
        f"C_α = {_fmt(report['fitted']['c_alpha'])}.",
        f"- Slope of log error vs log m_h before the floor: {_fmt(rate['slope'])} "
        f"(interval {_fmt(rate['ci'][0]) if rate['ci'] else '–'} to "
        f"{_fmt(rate['ci'][1]) if rate['ci'] else '–'}, {rate['points']} points) against "
        f"−(2β−1) = {_fmt(rate['predicted'])}: {rate['verdict']}.",
    ]
    lines += _squared_lines(summary.get("squared"))
    for optimum in report["optima"]:
        lines.append(
            f"- m_FF = {optimum['m_ff']}: best measured m_h = {optimum['empirical_m_h']}, "
            f"m_h* from the envelope constants = {_fmt(optimum['envelope_m_h_opt'])} "
            f"(integer {_fmt(optimum['envelope_m_h'])})."
        )
    conv = summary["convergence"]
    lines += ["", "## Convergence (twice the epochs and finisher iterations; another start)", ""]
    if not conv["budgets"]:
        lines.append("- Not checked (retrain = 0).")
    else:
        lines.append(
            "Each retrained budget's reported error (its best over random and warm starts) "
            "against its seeds trained twice as long, and against one more start."
        )
        lines.append("")
    for row in conv["budgets"]:
        change = "lower" if row["drop"] >= 0 else "higher"
        fresh = "lower" if row["drop_restart"] >= 0 else "higher"
        lines.append(
            f"- m_h = {row['m_h']}, m_FF = {row['m_ff']}: {_fmt(row['error'])} → "
            f"{_fmt(row['error_2x'])} with twice the training "
            f"({100 * abs(row['drop']):.1f}% {change}); another start (seed "
            f"{conv['restart_seed']}, trained as long): {_fmt(row['error_restart'])} "
            f"({100 * abs(row['drop_restart']):.1f}% {fresh})"
        )
    if conv["budgets"]:
        lines.append(
            f"- Largest drop {100 * conv['max_change']:.1f}% (material above "
            f"{100 * summary['material_rtol']:.0f}%); verdict with the longer runs: "
            f"{conv.get('verdict_2x')} ({'changed' if conv.get('verdict_changed') else 'unchanged'})."
        )
    lines += ["", "## Nested budgets (the best loss cannot rise with m_h or m_FF)", ""]
    for row in conv.get("warm_starts") or []:
        source = row["source"]
        head = (
            f"- m_h = {row['m_h']}, m_FF = {row['m_ff']}: best loss of the random starts "
            f"{_fmt(row['loss_before'])}, above m_h = {source['m_h']}, m_FF = {source['m_ff']} "
            f"({_fmt(source['loss'])}); "
        )
        if "skipped" in row:
            lines.append(head + f"no warm start ({row['skipped']}).")
            continue
        lines.append(
            head + f"warm-started from its weights: loss {_fmt(row['loss'])}, error "
            f"{_fmt(row['error'])} after {row['iterations']} L-BFGS iterations"
            + (
                f"; as many again: loss {_fmt(row['loss_2x'])}, error {_fmt(row['error_2x'])}."
                if row.get("loss_2x") is not None
                else " (it stopped by itself)."
            )
        )
    if not conv.get("nesting"):
        lines.append(
            "- Every budget's best training loss is at most that of each smaller budget "
            f"(within {100 * summary['material_rtol']:.0f}%)."
        )
    if conv.get("nesting") and not summary["training"].get("finisher_steps"):
        lines.append(
            "- No warm starts: they run the L-BFGS finisher, so they need --finisher-steps."
        )
    for row in conv.get("nesting") or []:
        contained = row["contained"]
        lines.append(
            f"- m_h = {row['m_h']}, m_FF = {row['m_ff']}: best loss {_fmt(row['loss'])}, "
            f"{_percent_above(row)} above m_h = {contained['m_h']}, m_FF = "
            f"{contained['m_ff']} ({_fmt(contained['loss'])}), a model it contains: not at "
            "its best."
        )
    training = summary["training"]
    depth = summary["budgets"].get("ff_depth", 3)
    lines += [
        "",
        "## Settings",
        "",
        f"- Budgets: m_h ∈ {summary['budgets']['m_h']}, m_FF ∈ {summary['budgets']['m_ff']}, "
        f"n = {summary['budgets']['n']}, m_v = {summary['budgets']['m_v'] or summary['budgets']['n']}, "
        f"{depth} hidden layer{'' if depth == 1 else 's'} per feed-forward network; "
        f"{summary['seeds']} seed{'' if summary['seeds'] == 1 else 's'} per budget; "
        f"{summary['samples']['train']} training and "
        f"{summary['samples']['held_out']} held-out sequences.",
        "- Training: " + ", ".join(f"{k} = {v}" for k, v in sorted(training.items())),
        f"- Files: {summary['outputs']['results']}, {summary['outputs']['figure']}",
        "",
    ]
    return "\n".join(lines)
