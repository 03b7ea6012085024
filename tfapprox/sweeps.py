"""Sweeps: train one model per (budget, seed) into a results file, resumably.

`sweep` trains with `tfapprox.training.fit` and appends each finished run to a
results file (`tfapprox.results.append`) at once, so an interrupted sweep
loses at most the run in progress, and running it again trains only the runs
not in the file yet (same budget, seed and `tfapprox.config.TrainingConfig`).

TensorFlow is imported only when a run is trained.
"""

import os
import sys

from tfapprox import results
from tfapprox._checks import check_seed
from tfapprox.budget import Budget
from tfapprox.config import TrainingConfig

__all__ = ["sweep"]


def _format_seconds(seconds):
    """``"42s"``, ``"3m05s"`` or ``"2h07m"``.

    >>> _format_seconds(185), _format_seconds(7620)
    ('3m05s', '2h07m')
    """
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _budget_label(budget):
    return " ".join(f"{key}={budget[key]}" for key in results.BUDGET_KEYS)


def sweep(data, budgets, results_path, *, seeds=(0,), config=None, progress=True, **fit_kwargs):
    """Train one model per (budget, seed), appending each run to a results file.

    Each finished run is appended to ``results_path`` at once (atomically), so
    an interrupted sweep loses at most the run in progress; running the same
    sweep again skips the runs already in the file (same budget, seed and
    training settings, `tfapprox.results.run_key`) and trains only the rest.
    The file records the data's fingerprint; a sweep on other data refuses to
    write into it.

    Args:
        data: Training data, as `fit` accepts it.
        budgets: iterable of `Budget` (or `Budget.to_dict()` dicts).
        results_path: str. The results file (created if missing).
        seeds: iterable of int. Seeds per budget. Defaults to ``(0,)``.
        config: `tfapprox.config.TrainingConfig`, a dict of its settings or
            None (defaults): how every run is trained.
        progress: bool. Print one line per run with an ETA to stderr.
            Defaults to True.
        **fit_kwargs: `TrainingConfig` settings by name (override
            ``config``) and other `fit` arguments (``jit_compile``,
            ``verbose``, which defaults to 0 here, ...).

    Returns:
        list of run dicts (`FitResult.to_dict()`), one per (budget, seed) in
        sweep order, whether trained now or read from the file.
    """
    from tfapprox import training
    from tfapprox.datasets import as_dataset

    dataset = as_dataset(data)
    budgets = [Budget.from_dict(b) if isinstance(b, dict) else b for b in budgets]
    for budget in budgets:
        if not isinstance(budget, Budget):
            raise TypeError(
                f"`budgets` must hold tfapprox.Budget objects. Received: {type(budget).__name__}"
            )
    seeds = [check_seed("seed", seed) for seed in seeds]
    if not budgets or not seeds:
        raise ValueError("`budgets` and `seeds` must not be empty")
    if "model_or_budget" in fit_kwargs or "seed" in fit_kwargs:
        raise TypeError(
            "`sweep` sets `model_or_budget` and `seed` itself; use `budgets` and `seeds`"
        )
    if config is None:
        config = TrainingConfig()
    elif isinstance(config, dict):
        config = TrainingConfig.from_dict(config)
    settings = {name: fit_kwargs.pop(name) for name in TrainingConfig.names() if name in fit_kwargs}
    config = config.replace(**settings)
    fit_kwargs.setdefault("verbose", 0)
    results_path = os.fspath(results_path)

    metadata = results.metadata_for(dataset)
    done = {}
    if os.path.exists(results_path):
        # Refuse a file of other data before training anything.
        existing = results.append(results_path, [], metadata)
        done = {results.run_key(run): run for run in existing["runs"]}

    hyperparameters = config.to_dict()
    plan = [(budget, seed) for budget in budgets for seed in seeds]
    keys = [
        results.run_key(
            {"budget": budget.to_dict(), "seed": seed, "hyperparameters": hyperparameters}
        )
        for budget, seed in plan
    ]
    ordered = []
    trained_seconds = []
    to_train = sum(key not in done for key in keys)
    for index, ((budget, seed), key) in enumerate(zip(plan, keys), start=1):
        label = f"[{index}/{len(plan)}] {_budget_label(budget.to_dict())} seed={seed}"
        if key in done:
            ordered.append(done[key])
            if progress:
                print(
                    f"{label}: already in results (loss {done[key]['loss']:.4g})",
                    file=sys.stderr,
                    flush=True,
                )
            continue
        result = training.fit(budget, dataset, seed=seed, config=config, **fit_kwargs)
        run = results.from_strict_json(results.to_strict_json(result.to_dict()))
        results.append(results_path, [run], metadata)
        done[key] = run
        ordered.append(run)
        trained_seconds.append(result.seconds)
        if progress:
            remaining = to_train - len(trained_seconds)
            eta = remaining * sum(trained_seconds) / len(trained_seconds)
            print(
                f"{label}: loss {result.loss:.4g}, {result.epochs} epochs, "
                f"{result.seconds:.1f}s; ETA {_format_seconds(eta)}",
                file=sys.stderr,
                flush=True,
            )
    return ordered
