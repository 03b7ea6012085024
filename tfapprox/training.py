"""Training: `fit` with restarts, sweeps over budgets, and results files.

Jiang & Li (2024) measure the approximation error of a budget by the
*training* error of a model trained until the loss plateaus: the error is an
infimum over the hypothesis space, and the smallest training loss found is
its proxy. `fit` trains one model that way (Adam, learning-rate reduction and
early stopping on plateaus of the training loss, ``restarts`` independent
initialisations keeping the best) and returns a `FitResult`. `sweep` trains
one model per (budget, seed) and appends each finished run to a *results
file*, the JSON the theory checker reads::

    {"runs": [FitResult.to_dict(), ...],
     "metadata": {"sequence_length": ..., "input_dim": ..., "data_sha256": ...}}

Every run holds at least ``"budget"`` (``n``, ``m_h``, ``m_v``, ``m_ff``,
``ff_depth``), ``"loss"`` (the training loss of the returned model) and
``"seed"``.

This module imports TensorFlow and Keras only inside the functions that train,
so `load_results` and `FitResult` are cheap to import.
"""

import dataclasses
import hashlib
import inspect
import json
import math
import numbers
import os
import sys
import time
import warnings

from tfapprox import _io
from tfapprox._checks import check_bool, check_positive_int, check_real, check_seed
from tfapprox.budget import Budget

RUN_KEYS = ("budget", "loss", "seed")
BUDGET_KEYS = ("n", "m_h", "m_v", "m_ff", "ff_depth")


@dataclasses.dataclass
class FitResult:
    """The outcome of `fit`: losses, effort, budget and hyperparameters.

    Attributes:
        loss: float. Training loss of the returned model (the best restart,
            with its best weights restored), evaluated on the whole training
            set: the approximation-error proxy. MSE for sequence and vector
            targets, cross-entropy for labels.
        best_loss: float. Lowest epoch-mean training loss seen in the kept
            restart (as Keras reports it, with weights moving during the
            epoch).
        final_loss: float. Epoch-mean training loss of the last finite epoch
            of the kept restart.
        epochs: int. Epochs run by the kept restart.
        seconds: float. Wall time of the whole fit, all restarts.
        parameter_count: int. Trainable parameters of the model.
        budget: `Budget` or None (None for a model not built by
            `tfapprox.models.build_transformer`).
        seed: int. Seed of restart 0; restart ``k`` uses ``seed + k``.
        restarts: int. Number of independent initialisations.
        restart_losses: list of float. ``loss`` of every restart.
        best_restart: int. Index of the kept restart.
        stopped: str. Why the kept restart stopped: ``"max_epochs"``,
            ``"plateau"`` or ``"non_finite"``.
        message: str or None. The non-finite-loss message, if any restart
            hit one.
        hyperparameters: dict. Everything that shapes the training (epochs,
            batch size, learning rate, patience, ...); with budget and seed it
            identifies a run in a sweep.
        metrics: dict. Final metrics of the returned model, e.g.
            ``accuracy``, ``val_loss``.
        history: list of float. Epoch-mean training losses of the kept
            restart.
        data: dict. Shape of the training data (``sequence_length``,
            ``input_dim``, ``output_dim``, ``task``, ``num_samples``).
        jit_compile: bool. Whether XLA compiled the steps.
        model: The trained `keras.Model`; not serialised.
    """

    loss: float
    best_loss: float
    final_loss: float
    epochs: int
    seconds: float
    parameter_count: int
    budget: Budget
    seed: int
    restarts: int
    restart_losses: list
    best_restart: int
    stopped: str
    message: str = None
    hyperparameters: dict = dataclasses.field(default_factory=dict)
    metrics: dict = dataclasses.field(default_factory=dict)
    history: list = dataclasses.field(default_factory=list)
    data: dict = dataclasses.field(default_factory=dict)
    jit_compile: bool = True
    model: object = dataclasses.field(default=None, repr=False, compare=False)

    def to_dict(self):
        """The result as a JSON-ready dict (without the model)."""
        out = {}
        for field in dataclasses.fields(self):
            if field.name == "model":
                continue
            value = getattr(self, field.name)
            if field.name == "budget" and value is not None:
                value = value.to_dict()
            out[field.name] = value
        return out

    @classmethod
    def from_dict(cls, config):
        """Rebuild a result from `to_dict` output (the model is not restored)."""
        if not isinstance(config, dict):
            raise TypeError(f"`config` must be a dict. Received: {type(config).__name__}")
        names = {f.name for f in dataclasses.fields(cls)} - {"model"}
        unknown = sorted(set(config) - names)
        if unknown:
            raise ValueError(
                f"Unknown FitResult fields {unknown}; expected a subset of {sorted(names)}"
            )
        required = [
            f.name
            for f in dataclasses.fields(cls)
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        ]
        missing = [name for name in required if name not in config]
        if missing:
            raise ValueError(f"FitResult dict lacks the fields {missing}")
        values = dict(config)
        if values["budget"] is not None:
            values["budget"] = Budget.from_dict(values["budget"])
        return cls(**values)


# ----------------------------------------------------------------------------
# Argument checks


def _as_dataset(data, name="data"):
    """A validated `tfapprox.datasets.Dataset` from a Dataset, (x, y) or path."""
    from tfapprox.datasets import Dataset, load_dataset

    if isinstance(data, Dataset):
        return data
    if isinstance(data, (str, os.PathLike)):
        return load_dataset(data)
    if isinstance(data, (tuple, list)) and len(data) == 2:
        try:
            return Dataset(data[0], data[1])
        except ValueError as err:
            raise ValueError(f"`{name}`: {err}") from None
    raise TypeError(
        f"`{name}` must be a tfapprox Dataset, an (x, y) pair or a dataset file path. "
        f"Received: {type(data).__name__}"
    )


def _arrays(dataset):
    """``(x, y)`` as the dtypes Keras trains on (float32; int32 labels)."""
    x = dataset.x.astype("float32", copy=False)
    if dataset.task == "labels":
        return x, dataset.y.astype("int32", copy=False)
    return x, dataset.y.astype("float32", copy=False)


def _data_summary(dataset):
    return {
        "sequence_length": int(dataset.sequence_length),
        "input_dim": int(dataset.input_dim),
        "output_dim": int(dataset.output_dim),
        "task": dataset.task,
        "num_samples": int(dataset.num_samples),
    }


def data_fingerprint(data):
    """SHA-256 of a dataset's arrays (shapes, dtypes and bytes).

    A results file records it, so `sweep` refuses to mix runs on different
    data into one file.
    """
    dataset = _as_dataset(data)
    digest = hashlib.sha256()
    for array in (dataset.x, dataset.y):
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes(order="C"))
    return digest.hexdigest()


def _check_model_matches(model, dataset):
    """Raise `ValueError` if ``model`` cannot be trained on ``dataset``."""
    input_shape = tuple(model.input_shape)
    expected = (dataset.sequence_length, dataset.input_dim)
    if len(input_shape) != 3 or any(
        got is not None and got != want for got, want in zip(input_shape[1:], expected)
    ):
        raise ValueError(
            f"The model takes inputs of shape {input_shape} but the data `x` has shape "
            f"{dataset.x.shape}"
        )
    output_shape = tuple(model.output_shape)
    if dataset.task == "labels":
        if len(output_shape) != 2 or (
            output_shape[-1] is not None and output_shape[-1] < dataset.output_dim
        ):
            raise ValueError(
                f"Class labels 0..{dataset.output_dim - 1} need a model with outputs "
                f"(batch, {dataset.output_dim}) logits (output='pooled'). "
                f"Received output shape {output_shape}"
            )
    elif len(output_shape) != dataset.y.ndim or any(
        got is not None and got != want for got, want in zip(output_shape[1:], dataset.y.shape[1:])
    ):
        raise ValueError(
            f"The model's output shape {output_shape} does not match the targets `y` "
            f"of shape {dataset.y.shape}"
        )


# ----------------------------------------------------------------------------
# fit


def training_hyperparameters(
    *,
    epochs=500,
    batch_size=64,
    learning_rate=1e-3,
    restarts=1,
    patience=30,
    min_delta=0.0,
    min_rel_delta=1e-3,
    reduce_lr_factor=0.5,
    reduce_lr_patience=None,
    min_learning_rate=1e-6,
    model_kwargs=None,
):
    """Validate `fit`'s training hyperparameters; return them as a JSON-ready dict.

    The defaults are `fit`'s. The dict, with the budget and the seed,
    identifies a run in a results file (see `run_key`).
    """
    epochs = check_positive_int("epochs", epochs)
    batch_size = check_positive_int("batch_size", batch_size)
    restarts = check_positive_int("restarts", restarts)
    patience = check_positive_int("patience", patience)
    learning_rate = check_real("learning_rate", learning_rate, low=0, low_open=True)
    min_delta = check_real("min_delta", min_delta, low=0)
    min_rel_delta = check_real("min_rel_delta", min_rel_delta, low=0)
    if min_rel_delta >= 1.0:
        raise ValueError(f"`min_rel_delta` must be < 1. Received: min_rel_delta={min_rel_delta!r}")
    reduce_lr_factor = check_real("reduce_lr_factor", reduce_lr_factor, low=0, low_open=True)
    if reduce_lr_factor >= 1.0:
        raise ValueError(
            f"`reduce_lr_factor` must be < 1. Received: reduce_lr_factor={reduce_lr_factor!r}"
        )
    if reduce_lr_patience is None:
        reduce_lr_patience = max(1, patience // 3)
    reduce_lr_patience = check_positive_int("reduce_lr_patience", reduce_lr_patience)
    min_learning_rate = check_real("min_learning_rate", min_learning_rate, low=0)
    if model_kwargs is not None and not isinstance(model_kwargs, dict):
        raise TypeError(f"`model_kwargs` must be a dict. Received: {type(model_kwargs).__name__}")
    return _normalise(
        {
            "epochs": epochs,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "restarts": restarts,
            "patience": patience,
            "min_delta": min_delta,
            "min_rel_delta": min_rel_delta,
            "reduce_lr_factor": reduce_lr_factor,
            "reduce_lr_patience": reduce_lr_patience,
            "min_learning_rate": min_learning_rate,
            "model_kwargs": dict(model_kwargs or {}),
        }
    )


def _pipeline(x, y, batch_size, shuffle_seed=None):
    """A tf.data pipeline: (seeded shuffle,) batch, prefetch."""
    import tensorflow as tf

    data = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle_seed is not None:
        data = data.shuffle(len(x), seed=shuffle_seed, reshuffle_each_iteration=True)
    return data.batch(batch_size).prefetch(tf.data.AUTOTUNE)


def _guard_callback(patience, min_delta, min_rel_delta):
    """A callback: best weights, early stopping on plateau, stop on NaN/inf.

    Keras' `EarlyStopping` keeps no weights when the first epoch already
    diverges, and `TerminateOnNaN` forgets which weights were good; this
    callback does both jobs. The weights at the end of the epoch with the
    lowest finite training loss (or the initial weights, if no epoch
    finished finite) are restored when training ends.
    """
    import keras

    class TrainingGuard(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.best_loss = math.inf
            self.best_epoch = None
            self.best_weights = self.model.get_weights()
            self.reference = math.inf
            self.wait = 0
            self.epoch = 0
            self.epochs = 0
            self.stopped = "max_epochs"
            self.message = None
            self.history = []

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch = epoch

        def on_train_batch_end(self, batch, logs=None):
            loss = float((logs or {}).get("loss", 0.0))
            if not math.isfinite(loss) and self.stopped != "non_finite":
                self._stop_non_finite(loss, f"epoch {self.epoch + 1}, batch {batch + 1}")

        def on_epoch_end(self, epoch, logs=None):
            self.epochs = epoch + 1
            if self.stopped == "non_finite":
                return
            loss = float((logs or {}).get("loss", math.nan))
            if not math.isfinite(loss):
                self._stop_non_finite(loss, f"the end of epoch {epoch + 1}")
                return
            self.history.append(loss)
            if loss < self.best_loss:
                self.best_loss, self.best_epoch = loss, epoch
                self.best_weights = self.model.get_weights()
            if loss < self.reference * (1.0 - min_rel_delta) - min_delta:
                self.reference, self.wait = loss, 0
            else:
                self.wait += 1
                if self.wait >= patience:
                    self.stopped = "plateau"
                    self.model.stop_training = True

        def _stop_non_finite(self, loss, where):
            self.stopped = "non_finite"
            if self.best_epoch is None:
                kept = "keeping the initial weights"
            else:
                kept = (
                    f"keeping the weights of epoch {self.best_epoch + 1} "
                    f"(loss {self.best_loss:.6g})"
                )
            self.message = (
                f"Training stopped at {where}: the training loss is {loss}; {kept}. "
                "Lower the learning rate or rescale the data."
            )
            self.model.stop_training = True

        def on_train_end(self, logs=None):
            self.model.set_weights(self.best_weights)

    return TrainingGuard()


def _finite_or_inf(value):
    value = float(value)
    return value if math.isfinite(value) else math.inf


def fit(
    model_or_budget,
    data,
    *,
    epochs=500,
    batch_size=64,
    learning_rate=1e-3,
    restarts=1,
    seed=0,
    jit_compile=True,
    patience=30,
    min_delta=0.0,
    min_rel_delta=1e-3,
    reduce_lr_factor=0.5,
    reduce_lr_patience=None,
    min_learning_rate=1e-6,
    validation_data=None,
    log_dir=None,
    callbacks=None,
    model_kwargs=None,
    verbose=1,
):
    """Train until the training loss plateaus; keep the best of ``restarts``.

    The loss is the mean squared error for sequence ``(N, tau, d_out)`` and
    vector ``(N, d_out)`` targets, and the sparse categorical cross-entropy
    from logits (plus accuracy) for integer labels ``(N,)``. Training uses
    Adam, halves the learning rate when the training loss stops falling for
    ``reduce_lr_patience`` epochs, and stops after ``patience`` epochs
    without an improvement (``min_rel_delta``, ``min_delta``); the weights of the
    best epoch are restored. A NaN or inf loss stops that restart with a
    `RuntimeWarning` naming the epoch and keeps its best weights so far.

    Restart ``k`` initialises the weights with seed ``seed + k`` (restart 0
    keeps the weights of a given model) and shuffles with the same seed; the
    restart whose restored model has the lowest training loss is kept (the
    approximation error is an infimum; its proxy is the minimum training
    error). The same seed and arguments give the same result.

    Args:
        model_or_budget: A `keras.Model` (with one input ``(batch, tau, d)``)
            or a `tfapprox.Budget`, built with
            `tfapprox.models.build_transformer` from the data's shapes
            (``output="pooled"`` for labels and vector targets).
        data: `tfapprox.datasets.Dataset`, an ``(x, y)`` pair or a dataset
            ``.npz`` path.
        epochs: int. Maximum epochs per restart. Defaults to 500.
        batch_size: int. Defaults to 64.
        learning_rate: float. Initial Adam learning rate. Defaults to 1e-3.
        restarts: int. Independent initialisations. Defaults to 1.
        seed: int. Seed of restart 0. Defaults to 0.
        jit_compile: bool. XLA-compile the training step. Defaults to True.
        patience: int. Epochs without improvement before stopping. Defaults
            to 30.
        min_delta: float. Smallest absolute loss decrease that counts as
            an improvement. Defaults to 0.0.
        min_rel_delta: float in [0, 1). Smallest relative decrease that
            counts: an epoch improves on the reference loss L when its loss
            is below ``L · (1 − min_rel_delta) − min_delta``. Defaults to
            1e-3, so a loss that creeps down by less than 0.1% in
            ``patience`` epochs counts as a plateau.
        reduce_lr_factor: float in (0, 1). Learning-rate factor on a plateau.
            Defaults to 0.5.
        reduce_lr_patience: int or None. Epochs without improvement before
            reducing the learning rate. Defaults to ``max(1, patience // 3)``.
        min_learning_rate: float. Floor of the learning rate. Defaults to
            1e-6.
        validation_data: Optional data in any form ``data`` accepts; its
            loss is reported (``metrics["val_loss"]``) but does not steer
            training. Defaults to None.
        log_dir: str or None. TensorBoard log folder (one sub-folder
            ``seed_<s>`` per restart). Defaults to None.
        callbacks: list of `keras.callbacks.Callback` or None. Extra
            callbacks for every restart. Defaults to None.
        model_kwargs: dict or None. Extra `build_transformer` arguments
            (e.g. ``position_encoding``) when given a budget. Defaults to None.
        verbose: 0, 1 or 2. Keras' progress output. Defaults to 1 (bar).

    Returns:
        `FitResult`, with the trained model as ``result.model``.

    Example:

    >>> result = fit(Budget(n=8, m_h=2, m_ff=16), (x, y), epochs=50)  # doctest: +SKIP
    >>> result.loss, result.model.count_params()  # doctest: +SKIP
    """
    start = time.perf_counter()
    dataset = _as_dataset(data)
    if dataset.num_samples == 0:
        raise ValueError("`data` holds no samples")
    hyperparameters = training_hyperparameters(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        restarts=restarts,
        patience=patience,
        min_delta=min_delta,
        min_rel_delta=min_rel_delta,
        reduce_lr_factor=reduce_lr_factor,
        reduce_lr_patience=reduce_lr_patience,
        min_learning_rate=min_learning_rate,
        model_kwargs=model_kwargs,
    )
    # The validated values (ints as ints, floats as floats).
    epochs, batch_size, restarts = (
        hyperparameters[k] for k in ("epochs", "batch_size", "restarts")
    )
    learning_rate, patience, min_delta, min_rel_delta = (
        hyperparameters[k] for k in ("learning_rate", "patience", "min_delta", "min_rel_delta")
    )
    reduce_lr_factor, reduce_lr_patience, min_learning_rate = (
        hyperparameters[k] for k in ("reduce_lr_factor", "reduce_lr_patience", "min_learning_rate")
    )
    seed = check_seed("seed", seed)
    jit_compile = check_bool("jit_compile", jit_compile)
    if verbose not in (0, 1, 2):
        raise ValueError(f"`verbose` must be 0, 1 or 2. Received: verbose={verbose!r}")
    validation = (
        None if validation_data is None else _as_dataset(validation_data, "validation_data")
    )
    if log_dir is not None:
        import importlib.util

        if importlib.util.find_spec("tensorboard") is None:
            raise ValueError(
                "`log_dir` writes TensorBoard logs, but the tensorboard package is not "
                f"installed (pip install tensorboard). Received: log_dir={os.fspath(log_dir)!r}"
            )

    import keras

    from tfapprox import models

    keras.utils.set_random_seed(seed)
    if isinstance(model_or_budget, Budget):
        options = {"output": "sequence" if dataset.task == "sequence" else "pooled"}
        options.update(model_kwargs or {})
        model = models.build_transformer(
            model_or_budget,
            dataset.sequence_length,
            dataset.input_dim,
            output_dim=dataset.output_dim,
            **options,
        )
    elif isinstance(model_or_budget, keras.Model):
        if model_kwargs:
            raise ValueError("`model_kwargs` only applies when `model_or_budget` is a Budget")
        model = model_or_budget
    else:
        raise TypeError(
            "`model_or_budget` must be a keras.Model or a tfapprox.Budget. "
            f"Received: {type(model_or_budget).__name__}"
        )
    _check_model_matches(model, dataset)
    if validation is not None:
        _check_model_matches(model, validation)
    try:
        budget = models.budget_of(model)
    except ValueError:
        budget = None

    if dataset.task == "labels":
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    else:
        loss = keras.losses.MeanSquaredError()
        metrics = []
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss=loss,
        metrics=metrics,
        jit_compile=jit_compile,
    )
    # Build the optimizer now so every restart can start from its fresh state.
    model.optimizer.build(model.trainable_variables)
    optimizer_state = [variable.numpy() for variable in model.optimizer.variables]

    x, y = _arrays(dataset)
    evaluation_data = _pipeline(x, y, batch_size)
    validation_pipeline = None
    if validation is not None:
        validation_pipeline = _pipeline(*_arrays(validation), batch_size)

    runs = []
    best = None
    for restart in range(restarts):
        restart_seed = seed + restart
        keras.utils.set_random_seed(restart_seed)
        if restart > 0:
            fresh = keras.models.clone_model(model)
            model.set_weights(fresh.get_weights())
            del fresh
        for variable, value in zip(model.optimizer.variables, optimizer_state):
            variable.assign(value)
        model.optimizer.learning_rate = learning_rate
        guard = _guard_callback(patience, min_delta, min_rel_delta)
        restart_callbacks = [
            guard,
            keras.callbacks.ReduceLROnPlateau(
                monitor="loss",
                factor=reduce_lr_factor,
                patience=reduce_lr_patience,
                min_delta=min_delta,
                min_lr=min_learning_rate,
                verbose=0,
            ),
        ]
        if log_dir is not None:
            restart_callbacks.append(
                keras.callbacks.TensorBoard(
                    log_dir=os.path.join(os.fspath(log_dir), f"seed_{restart_seed}")
                )
            )
        restart_callbacks.extend(callbacks or [])
        if verbose and restarts > 1:
            print(f"Restart {restart + 1}/{restarts} (seed {restart_seed})", flush=True)
        model.fit(
            _pipeline(x, y, batch_size, shuffle_seed=restart_seed),
            epochs=epochs,
            callbacks=restart_callbacks,
            validation_data=validation_pipeline,
            shuffle=False,  # the pipeline shuffles, seeded
            verbose=verbose,
        )
        if guard.message:
            warnings.warn(guard.message, RuntimeWarning, stacklevel=2)
        scores = model.evaluate(evaluation_data, verbose=0, return_dict=True)
        run = {
            "loss": float(scores["loss"]),
            "metrics": {name: float(value) for name, value in scores.items() if name != "loss"},
            "guard": guard,
        }
        runs.append(run)
        if best is None or _finite_or_inf(run["loss"]) < _finite_or_inf(best["loss"]):
            best = run
            best["index"] = restart
            best["weights"] = model.get_weights()

    model.set_weights(best["weights"])
    final_metrics = dict(best["metrics"])
    if validation_pipeline is not None:
        scores = model.evaluate(validation_pipeline, verbose=0, return_dict=True)
        final_metrics.update({f"val_{name}": float(value) for name, value in scores.items()})
    guard = best["guard"]
    messages = [run["guard"].message for run in runs if run["guard"].message]
    return FitResult(
        loss=best["loss"],
        best_loss=guard.best_loss if guard.history else math.nan,
        final_loss=guard.history[-1] if guard.history else math.nan,
        epochs=guard.epochs,
        seconds=time.perf_counter() - start,
        parameter_count=int(model.count_params()),
        budget=budget,
        seed=seed,
        restarts=restarts,
        restart_losses=[run["loss"] for run in runs],
        best_restart=best["index"],
        stopped=guard.stopped,
        message=" | ".join(messages) if messages else None,
        hyperparameters=hyperparameters,
        metrics=final_metrics,
        history=list(guard.history),
        data=_data_summary(dataset),
        jit_compile=jit_compile,
        model=model,
    )


# ----------------------------------------------------------------------------
# Results files


def _check_run(run, where):
    if not isinstance(run, dict):
        raise ValueError(f"{where} must be a JSON object. Received: {type(run).__name__}")
    missing = [key for key in RUN_KEYS if key not in run]
    if missing:
        raise ValueError(f"{where} lacks the keys {missing}; every run needs {list(RUN_KEYS)}")
    budget = run["budget"]
    if not isinstance(budget, dict):
        raise ValueError(f"{where}: `budget` must be an object with keys {list(BUDGET_KEYS)}")
    missing = [key for key in BUDGET_KEYS if key not in budget]
    if missing:
        raise ValueError(f"{where}: `budget` lacks the keys {missing}")
    try:
        Budget.from_dict(budget)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: bad `budget`: {err}") from None
    loss = run["loss"]
    if isinstance(loss, bool) or not isinstance(loss, numbers.Real):
        raise ValueError(f"{where}: `loss` must be a number. Received: loss={loss!r}")
    seed = run["seed"]
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise ValueError(f"{where}: `seed` must be an int. Received: seed={seed!r}")


def validate_results(results, source="results"):
    """Check the structure of a results dict; return it unchanged.

    Raises `ValueError` naming ``source`` and the offending run.
    """
    if not isinstance(results, dict) or not isinstance(results.get("runs"), list):
        raise ValueError(f'{source} must be a JSON object {{"runs": [...], "metadata": {{...}}}}')
    if not isinstance(results.get("metadata", {}), dict):
        raise ValueError(f"{source}: `metadata` must be a JSON object")
    for index, run in enumerate(results["runs"]):
        _check_run(run, f"{source}: run {index}")
    return results


def load_results(path):
    """Read and validate a results file.

    Returns:
        dict ``{"runs": [...], "metadata": {...}}`` (``metadata`` is ``{}``
        when the file has none).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: the file is not JSON, or a run lacks ``budget`` (with
            ``n``, ``m_h``, ``m_v``, ``m_ff``, ``ff_depth``), ``loss`` or
            ``seed``; the message names the file and the run.
    """
    path = os.fspath(path)
    results = _io.read_json(path, what="results file")
    validate_results(results, source=f"results file {path}")
    results.setdefault("metadata", {})
    return results


def write_results(path, runs, metadata=None):
    """Validate ``runs`` and write ``{"runs": runs, "metadata": metadata}`` atomically."""
    runs = [run.to_dict() if isinstance(run, FitResult) else run for run in runs]
    results = {"runs": runs, "metadata": dict(metadata or {})}
    validate_results(results, source=f"results for {os.fspath(path)}")
    _io.atomic_write_json(path, results)
    return results


def results_metadata(data):
    """The metadata a results file records about its training data."""
    from tfapprox import __version__

    dataset = _as_dataset(data)
    return {
        **_data_summary(dataset),
        "data_sha256": data_fingerprint(dataset),
        "data_metadata": dataset.metadata,
        "tfapprox_version": __version__,
    }


def _normalise(obj):
    """``obj`` after a JSON round trip (so keys compare equal to a file's)."""
    return json.loads(_io.to_json(obj))


def run_key(run):
    """The identity of a run in a sweep: budget, seed and hyperparameters."""
    return json.dumps(
        _normalise(
            {
                "budget": run["budget"],
                "seed": run["seed"],
                "hyperparameters": run.get("hyperparameters", {}),
            }
        ),
        sort_keys=True,
    )


def _format_seconds(seconds):
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


def _budget_label(budget):
    return " ".join(f"{key}={budget[key]}" for key in BUDGET_KEYS)


def sweep(data, budgets, results_path, *, seeds=(0,), progress=True, **fit_kwargs):
    """Train one model per (budget, seed), appending each run to a results file.

    Each finished run is appended to ``results_path`` at once (atomically), so
    an interrupted sweep loses at most the run in progress; running the same
    sweep again skips the runs already in the file (same budget, seed and
    training hyperparameters) and trains only the rest. The file records the
    data's fingerprint; a sweep on other data refuses to write into it.

    Args:
        data: Training data, as `fit` accepts it.
        budgets: iterable of `Budget` (or `Budget.to_dict()` dicts).
        results_path: str. The results file (created if missing).
        seeds: iterable of int. Seeds per budget. Defaults to ``(0,)``.
        progress: bool. Print one line per run with an ETA to stderr.
            Defaults to True.
        **fit_kwargs: Passed to `fit` (``verbose`` defaults to 0 here).

    Returns:
        list of run dicts (`FitResult.to_dict()`), one per (budget, seed) in
        sweep order, whether trained now or read from the file.
    """
    dataset = _as_dataset(data)
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
    fit_kwargs.setdefault("verbose", 0)
    results_path = os.fspath(results_path)

    metadata = results_metadata(dataset)
    if os.path.exists(results_path):
        results = load_results(results_path)
        recorded = results["metadata"].get("data_sha256")
        if recorded is not None and recorded != metadata["data_sha256"]:
            raise ValueError(
                f"results file {results_path} holds runs on different data "
                f"(data_sha256 {recorded[:12]}…, this data {metadata['data_sha256'][:12]}…); "
                "use another results file"
            )
        results["metadata"] = {**metadata, **results["metadata"]}
    else:
        results = {"runs": [], "metadata": metadata}
    done = {run_key(run): run for run in results["runs"]}

    names = set(inspect.signature(training_hyperparameters).parameters)
    hyperparameters = training_hyperparameters(
        **{name: value for name, value in fit_kwargs.items() if name in names}
    )
    plan = [(budget, seed) for budget in budgets for seed in seeds]
    keys = [
        run_key({"budget": budget.to_dict(), "seed": seed, "hyperparameters": hyperparameters})
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
        # Train with exactly the recorded hyperparameters, so the run's key
        # matches the file whatever defaults `fit` has.
        result = fit(budget, dataset, seed=seed, **{**fit_kwargs, **hyperparameters})
        run = _normalise(result.to_dict())
        results["runs"].append(run)
        _io.atomic_write_json(results_path, results)
        done[run_key(run)] = run
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
