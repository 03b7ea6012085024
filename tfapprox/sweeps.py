"""Sweeps: train one model per (budget, seed) into a results file, resumably.

`sweep` trains with `tfapprox.training.fit` and appends each finished run to a
results file (`tfapprox.results.append`) at once, so an interrupted sweep
loses at most the run in progress, and running it again trains only the runs
not in the file yet (same budget, seed and `tfapprox.config.TrainingConfig`).

TensorFlow is imported only when a run is trained.
"""

import contextlib
import functools
import math
import os
import sys
import time

import numpy as np

from tfapprox import _io, results
from tfapprox._checks import check_bool, check_positive_int, check_seed
from tfapprox.budget import Budget
from tfapprox.config import TrainingConfig

__all__ = [
    "SettingsMismatchError",
    "checkpoint_folder",
    "chunk_members",
    "plan_members",
    "run_sweep",
    "sweep",
    "train_chunk",
]

# The key under which `train_chunk` returns a run's trained weights (never written to results).
WEIGHTS_KEY = "_weights"


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
    config = TrainingConfig.coerce(config)
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


# ----------------------------------------------------------------------------
# Batched sweeps: the engine, chunks, and Dask


def plan_members(m_h, m_ff, seeds, *, n, m_v=None, ff_depth=3):
    """The (budget, seed) grid of a sweep, in order: m_FF, then m_h, then seed.

    >>> [(b.m_h, b.m_ff, s) for b, s in plan_members([1, 2], [8], [0, 1], n=4)]
    [(1, 8, 0), (1, 8, 1), (2, 8, 0), (2, 8, 1)]
    """
    m_hs, m_ffs = list(m_h), list(m_ff)
    seeds = [check_seed("seed", seed) for seed in seeds]
    for name, values in (("m_h", m_hs), ("m_ff", m_ffs), ("seeds", seeds)):
        if not values:
            raise ValueError(f"`{name}` must not be empty")
    return [
        (Budget(n=n, m_h=h, m_ff=f, m_v=m_v, ff_depth=ff_depth), seed)
        for f in m_ffs
        for h in m_hs
        for seed in seeds
    ]


def _check_starts(starts, size):
    """`run_sweep`'s ``starts`` as a list of None or ``(label, weights)``, one per member."""
    if starts is None:
        return [None] * size
    if not isinstance(starts, (list, tuple)) or len(starts) != size:
        raise ValueError(f"`starts` must be None or a list with one entry per member ({size})")
    checked = []
    for index, start in enumerate(starts):
        if start is not None and not (
            isinstance(start, (list, tuple))
            and len(start) == 2
            and isinstance(start[0], dict)
            and start[0]
            and isinstance(start[1], (list, tuple))
        ):
            raise TypeError(
                f"`starts[{index}]` must be None or a pair (label dict, list of weight arrays). "
                f"Received: {type(start).__name__}"
            )
        checked.append(None if start is None else (dict(start[0]), list(start[1])))
    return checked


def chunk_members(members, chunk_size):
    """Cut the members into chunks the engine trains together.

    Members of one m_FF go together (padding a narrow network to a wide one
    wastes work); each chunk holds at most ``chunk_size`` members.

    >>> members = plan_members([1, 2, 3], [8, 16], [0], n=4)
    >>> [[(b.m_h, b.m_ff) for b, _ in c] for c in chunk_members(members, 2)]
    [[(1, 8), (2, 8)], [(3, 8)], [(1, 16), (2, 16)], [(3, 16)]]
    """
    chunk_size = check_positive_int("chunk_size", chunk_size)
    groups = {}
    for budget, seed in members:
        groups.setdefault(budget.m_ff, []).append((budget, seed))
    return [
        group[i : i + chunk_size]
        for group in groups.values()
        for i in range(0, len(group), chunk_size)
    ]


def train_chunk(payload, progress=None, checkpoint=None):
    """Train one chunk with the batched engine; return its runs (JSON-ready dicts).

    Runs in the driver or on a Dask worker: ``payload`` is plain data
    (``members`` as ``(budget dict, seed)``, the arrays, the config dict,
    the model options). With ``payload["keep_weights"]`` each run also holds
    its trained weights under `WEIGHTS_KEY`. Each run records the `TrainingConfig` it was trained
    with (``hyperparameters``), so `tfapprox.results.run_key` identifies it.
    ``progress``, a callable or None, receives a short text on where the
    chunk is ("epoch 12/150", "L-BFGS round 300, 5 running (≤ 2000
    iterations each)"); ``checkpoint`` is `tfapprox.engine.train_members`'s.

    On a Dask worker ``checkpoint`` is None and ``payload["checkpoint"]``,
    when present, names the chunk's checkpoint file in the driver's
    results folder: the worker keeps it there if it sees that folder (the
    same machine, or a shared file system), so a chunk whose worker dies
    or whose sweep is interrupted continues where it stopped.
    """
    from tfapprox import engine

    if checkpoint is None:
        checkpoint = _visible_checkpoint(payload.get("checkpoint"))

    config = TrainingConfig.from_dict(payload["config"])
    members = [(Budget.from_dict(budget), seed) for budget, seed in payload["members"]]
    starts = payload.get("starts") or [None] * len(members)
    validation = payload.get("validation")
    on_epoch = on_round = None
    if progress is not None:

        def on_epoch(epoch, states):
            progress(f"epoch {epoch}/{config.epochs}")

        def on_round(rounds, running):
            progress(
                f"L-BFGS round {rounds}, {running} running "
                f"(≤ {config.finisher_steps} iterations each)"
            )

    ensemble = engine.train_members(
        members,
        payload["data"],
        config,
        validation_data=validation,
        model_kwargs=config.model_kwargs,
        shuffle_seed=payload.get("shuffle_seed", 0),
        initial_weights=None
        if all(start is None for start in starts)
        else [None if start is None else start[1] for start in starts],
        progress=on_epoch,
        finisher_progress=on_round,
        checkpoint=checkpoint,
    )
    runs = []
    for record, weights, start in zip(ensemble.to_dicts(), ensemble.weights, starts):
        record["hyperparameters"] = config.to_dict()
        if start is not None:
            record["start"] = start[0]
        run = results.from_strict_json(results.to_strict_json(record))
        if payload.get("keep_weights"):
            run[WEIGHTS_KEY] = [np.asarray(w) for w in weights]
        runs.append(run)
    return runs


class SettingsMismatchError(ValueError):
    """A results file holds runs trained with other settings than this sweep's.

    ``path`` is the file and ``detail`` names up to three settings that
    differ, with their value there and here.
    """

    def __init__(self, path, detail):
        self.path, self.detail = path, detail
        super().__init__(
            f"results file {path} holds runs trained with other settings ({detail}); "
            "use another output folder, or --force to retrain and replace them"
        )


def _check_settings(existing, hyperparameters, path):
    """Refuse to mix runs trained with other settings into one file (`SettingsMismatchError`)."""
    for run in existing:
        theirs = run.get("hyperparameters") or {}
        with contextlib.suppress(TypeError, ValueError):
            theirs = TrainingConfig.from_dict(theirs).to_dict()
        if theirs != hyperparameters:
            changed = sorted(
                key
                for key in set(theirs) | set(hyperparameters)
                if theirs.get(key) != hyperparameters.get(key)
            )
            detail = ", ".join(
                f"{key} {theirs.get(key)!r} there, {hyperparameters.get(key)!r} here"
                for key in changed[:3]
            )
            raise SettingsMismatchError(path, detail)


def checkpoint_folder(results_path):
    """Where `run_sweep` keeps the checkpoints of chunks in training: ``results.checkpoints``.

    >>> checkpoint_folder("runs/check/results.json")
    'runs/check/results.checkpoints'
    """
    return os.path.splitext(os.fspath(results_path))[0] + ".checkpoints"


def _checkpoint_path(folder, chunk):
    """The checkpoint file of one chunk (named by its members, settings and starts)."""
    import hashlib
    import json

    named = [chunk["members"], chunk["config"]]
    labels = [None if start is None else start[0] for start in chunk.get("starts") or []]
    if any(label is not None for label in labels):
        named.append(labels)
    identity = json.dumps(named, sort_keys=True, default=str)
    return os.path.join(folder, f"chunk-{hashlib.sha256(identity.encode()).hexdigest()[:16]}.npz")


def _visible_checkpoint(path):
    """``path`` if the results folder it lies in exists on this machine, else None.

    A worker on another machine without a shared file system does not see
    the driver's folder; it trains its chunk without a checkpoint rather
    than leave files where no one removes them.
    """
    if path is None or not os.path.isdir(os.path.dirname(os.path.dirname(path))):
        return None
    return path


def _remove_checkpoint(folder, chunk):
    path = _checkpoint_path(folder, chunk)
    with contextlib.suppress(FileNotFoundError):
        os.remove(path)
    with contextlib.suppress(OSError):
        os.rmdir(folder)  # only once it is empty


def _announce_continuing(chunk, path, bar):
    """Say on the progress stream that ``chunk`` continues from its checkpoint ``path``."""
    if os.path.exists(path):
        print(
            f"sweep: continuing a chunk of {len(chunk['members'])} runs from {path}",
            file=bar.stream,
            flush=True,
        )


def _train_chunk_here(chunk, *, folder, bar):
    """`train_chunk` in this process, with a checkpoint and the progress line."""
    path = _checkpoint_path(folder, chunk)
    if bar is not None:
        _announce_continuing(chunk, path, bar)
    return train_chunk(chunk, progress=None if bar is None else bar.within, checkpoint=path)


class SweepProgress:
    """One progress line for a sweep: runs done/total, ETA and the best loss so far.

    Writes to ``stream`` (stderr), rewriting the line in a terminal and
    printing one line per finished chunk elsewhere. `within` shows where
    the running chunk is (its epoch or L-BFGS round): rewritten at most
    every `TTY_EVERY` seconds in a terminal, printed at most every
    `LOG_EVERY` seconds elsewhere, so a log shows that a long chunk lives.
    """

    TTY_EVERY = 0.5
    LOG_EVERY = 30.0

    def __init__(self, total, done=0, stream=None):
        self.total, self.done, self.start = total, done, time.perf_counter()
        self.trained = 0
        self.best = None
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.shown = self.start

    def within(self, text):
        """Show ``text``, where the running chunk is, if the last line is old enough."""
        now = time.perf_counter()
        if now - self.shown < (self.TTY_EVERY if self.tty else self.LOG_EVERY):
            return
        self.shown = now
        line = (
            f"sweep {self.done}/{self.total} runs, running chunk: {text}, "
            f"{_format_seconds(now - self.start)} elapsed"
        )
        print(
            ("\r\x1b[K" if self.tty else "") + line,
            end="" if self.tty else "\n",
            file=self.stream,
            flush=True,
        )

    def update(self, runs):
        self.done += len(runs)
        self.trained += len(runs)
        losses = [run["loss"] for run in runs if run.get("loss") is not None]
        losses = [loss for loss in losses if math.isfinite(loss)]
        if losses:
            self.best = min(losses + ([self.best] if self.best is not None else []))
        elapsed = time.perf_counter() - self.start
        remaining = self.total - self.done
        eta = elapsed / self.trained * remaining if self.trained else 0.0
        width = 24
        filled = int(width * self.done / max(self.total, 1))
        best = "-" if self.best is None else f"{self.best:.3g}"
        line = (
            f"sweep [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} runs, "
            f"best loss {best}, {_format_seconds(elapsed)} elapsed, ETA {_format_seconds(eta)}"
        )
        self.shown = time.perf_counter()
        print(
            ("\r\x1b[K" if self.tty else "") + line,
            end="" if self.tty else "\n",
            file=self.stream,
            flush=True,
        )

    def close(self):
        if self.tty:
            print(file=self.stream, flush=True)


def run_sweep(
    data,
    members,
    results_path,
    *,
    config=None,
    validation_data=None,
    metadata=None,
    scheduler=None,
    chunk_size=16,
    force=False,
    progress=True,
    weights_dir=None,
    starts=None,
):
    """Train every (budget, seed) with the batched engine into a results file, resumably.

    The members are cut into chunks (`chunk_members`) that the engine
    trains at once; chunks run in this process or on Dask (``scheduler``,
    see `tfapprox.distributed`). Each finished chunk is merged into
    ``results_path`` at once, atomically, by this process alone, so an
    interrupted sweep (Ctrl-C, a crash, a lost worker) loses only the chunks
    in flight, and running it again trains only the runs not in the file
    (same budget, seed and settings). A chunk in training also keeps a
    checkpoint (`tfapprox.engine.train_members`'s ``checkpoint``, at most
    30 seconds old) in the folder `checkpoint_folder` names, so running it
    again continues the chunk where it stopped; the checkpoint is removed
    once the chunk's runs are in the file. Dask workers keep theirs there
    too when they see the folder (``local:N``, or a cluster on a shared
    file system). A file holding runs with other
    settings is refused (``force`` retrains every member and drops them).

    Args:
        data: training data (`Dataset`, ``(x, y)`` or a dataset path).
        members: list of ``(Budget, seed)`` (see `plan_members`).
        results_path: str. The results file.
        config: `TrainingConfig`, a dict of its settings or None.
        validation_data: held-out data (its loss and paper-norm error are
            recorded as ``val_loss``, ``val_error``) or None.
        metadata: dict. Extra metadata for the file (e.g. the target).
        scheduler: None, ``"local:N"`` or a Dask scheduler address.
        chunk_size: int. Members per engine call. Defaults to 16.
        force: bool. Retrain members already in the file. Defaults to False.
        progress: bool. Show the sweep's progress line. Defaults to True.
        weights_dir: str or None. If given, each run's trained weights are
            saved there (`tfapprox.nesting.weights_path`: one ``.npz`` per
            run key, written before the run enters the results file), e.g.
            for warm starts. Defaults to None.
        starts: None, or a list with, per member, None (the seed's initial
            weights) or a pair ``(label, weights)``: the member starts from
            ``weights`` (arrays in ``build_transformer(...).get_weights()``
            order, e.g. `tfapprox.nesting.load_weights` of an earlier run,
            so training continues it) and records ``label`` (a JSON-ready
            dict naming the start) as its ``start``, which is part of its
            key (`tfapprox.results.run_key`). Defaults to None.

    Returns:
        dict: ``runs`` (one per member, in order), ``trained`` and
        ``skipped`` (counts), ``results_path``.
    """
    from tfapprox import distributed
    from tfapprox.datasets import as_dataset

    dataset = as_dataset(data)
    validation = None if validation_data is None else as_dataset(validation_data, "validation_data")
    config = TrainingConfig.coerce(config)
    if config.restarts != 1:
        # The engine trains one start per member; refuse rather than ignore.
        raise ValueError(
            "a sweep trains one start per (budget, seed): give more seeds for more starts "
            f"(--seeds), not restarts. Received: restarts={config.restarts}"
        )
    members = list(members)
    for budget, _ in members:
        if not isinstance(budget, Budget):
            raise TypeError(f"`members` must hold (Budget, seed) pairs. Received: {budget!r}")
    if not members:
        raise ValueError("`members` must not be empty")
    starts = _check_starts(starts, len(members))
    distributed.parse_scheduler(scheduler)  # a bad spec fails before any work
    force = check_bool("force", force)  # a truthy string would drop the finished runs
    progress = check_bool("progress", progress)
    if weights_dir is not None:
        _io.writable_folder(weights_dir, "the weights folder")
    results_path = os.fspath(results_path)
    _io.writable_folder(
        os.path.dirname(os.path.abspath(results_path)),
        f"the folder of the results file {results_path!r},",
    )

    hyperparameters = config.to_dict()
    file_metadata = {**results.metadata_for(dataset), **(metadata or {})}
    file_metadata["training"] = hyperparameters
    done = {}
    if os.path.exists(results_path):
        existing = results.read(results_path)
        results.check_same_data(existing["metadata"], file_metadata, f"results file {results_path}")
        if force:
            results.write(results_path, [], {**existing["metadata"], **file_metadata})
        else:
            _check_settings(existing["runs"], hyperparameters, results_path)
            done = {results.run_key(run): run for run in existing["runs"]}
    labels = [None if start is None else start[0] for start in starts]
    keys = [
        results.run_key(
            {"budget": b.to_dict(), "seed": s, "hyperparameters": hyperparameters, "start": label}
        )
        for (b, s), label in zip(members, labels)
    ]
    todo = [i for i, key in enumerate(keys) if key not in done]
    payload = {
        "data": (dataset.x, dataset.y),
        "validation": None if validation is None else (validation.x, validation.y),
        "config": hyperparameters,
        "keep_weights": weights_dir is not None,
    }
    # Chunks hold member indices first, so each member keeps its start.
    numbered = [(members[i][0], i) for i in todo]
    chunks = [
        {
            **payload,
            "members": [(b.to_dict(), members[i][1]) for b, i in chunk],
            "starts": [starts[i] for _, i in chunk],
        }
        for chunk in (chunk_members(numbered, chunk_size) if todo else [])
    ]
    bar = SweepProgress(len(members), done=len(members) - len(todo)) if progress else None
    folder = checkpoint_folder(os.path.abspath(results_path))
    for chunk in chunks:
        # Where a Dask worker keeps the chunk's checkpoint (an absolute path:
        # workers have their own working folders).
        chunk["checkpoint"] = _checkpoint_path(folder, chunk)

    def finished(index, runs):
        if weights_dir is not None:
            from tfapprox import nesting

            for run in runs:
                nesting.save_weights(weights_dir, run, run.pop(WEIGHTS_KEY))
        merged = results.append(results_path, runs, file_metadata)
        _remove_checkpoint(folder, chunks[index])
        for run in runs:
            done[results.run_key(run)] = run
        if bar is not None:
            bar.update(runs)
        return merged

    if not os.path.exists(results_path):
        results.write(results_path, [], file_metadata)
    try:
        run_chunk = train_chunk
        if distributed.parse_scheduler(scheduler)[0] == "inline":
            # In this process a chunk also reports its epochs; on Dask
            # only finished chunks come back.
            run_chunk = functools.partial(_train_chunk_here, folder=folder, bar=bar)
        elif bar is not None:
            for chunk in chunks:
                _announce_continuing(chunk, chunk["checkpoint"], bar)
        distributed.map_chunks(run_chunk, chunks, finished, scheduler=scheduler)
    finally:
        if bar is not None:
            bar.close()
    return {
        "runs": [done[key] for key in keys],
        "trained": len(todo),
        "skipped": len(members) - len(todo),
        "results_path": results_path,
    }
