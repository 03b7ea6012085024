"""Training: `fit` with restarts, and its result `FitResult`.

Jiang & Li (2024) measure the approximation error of a budget by the
*training* error of a model trained until the loss plateaus: the error is an
infimum over the hypothesis space, and the smallest training loss found is
its proxy. `fit` trains one model that way (Adam on a learning-rate schedule,
early stopping on plateaus of the training loss, ``restarts`` independent
initialisations keeping the best), as a `tfapprox.config.TrainingConfig`
says, and returns a `FitResult`.

Sweeps over budgets live in `tfapprox.sweeps` and the results files they
write in `tfapprox.results`; ``tfapprox.training.sweep``, ``load_results``,
``write_results``, ``validate_results``, ``results_metadata``, ``run_key``
and ``data_fingerprint`` are kept here as aliases.

This module imports TensorFlow and Keras only inside `fit`, so `FitResult`
is cheap to import.
"""

import dataclasses
import math
import os
import time
import warnings

from tfapprox import results as _results
from tfapprox._checks import check_bool, check_seed
from tfapprox.budget import Budget
from tfapprox.config import TrainingConfig
from tfapprox.datasets import as_dataset as _as_dataset
from tfapprox.datasets import summary as _data_summary


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


def _arrays(dataset):
    """``(x, y)`` as the dtypes Keras trains on (float32; int32 labels)."""
    x = dataset.x.astype("float32", copy=False)
    if dataset.task == "labels":
        return x, dataset.y.astype("int32", copy=False)
    return x, dataset.y.astype("float32", copy=False)


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


def training_hyperparameters(**settings):
    """Validate training settings; return them as results files record them.

    Kept for compatibility: ``TrainingConfig(**settings).to_dict()``.
    """
    return TrainingConfig(**settings).to_dict()


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
                if patience is not None and self.wait >= patience:
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
    config=None,
    seed=0,
    jit_compile=True,
    validation_data=None,
    log_dir=None,
    callbacks=None,
    verbose=1,
    **settings,
):
    """Train through the schedule or to a plateau; keep the best of ``restarts``.

    The loss is the mean squared error for sequence ``(N, tau, d_out)`` and
    vector ``(N, d_out)`` targets, and the sparse categorical cross-entropy
    from logits (plus accuracy) for integer labels ``(N,)``. Training uses
    Adam with the config's schedule (by default cosine decay over the
    epochs; ``"plateau"`` halves the learning rate when the training loss
    stops falling for ``reduce_lr_patience`` epochs), and stops after
    ``patience`` epochs without an improvement (``min_rel_delta``,
    ``min_delta``) or at the last epoch; the weights of the best epoch are
    restored. A NaN or inf loss stops that restart with a
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
        config: `tfapprox.config.TrainingConfig`, a dict of its settings, or
            None (the defaults). How to train: epochs, batch size, learning
            rate and its schedule, patience, restarts, ``model_kwargs``.
        seed: int. Seed of restart 0. Defaults to 0.
        jit_compile: bool. XLA-compile the training step. Defaults to True.
        validation_data: Optional data in any form ``data`` accepts; its
            loss is reported (``metrics["val_loss"]``) but does not steer
            training. Defaults to None.
        log_dir: str or None. TensorBoard log folder (one sub-folder
            ``seed_<s>`` per restart). Defaults to None.
        callbacks: list of `keras.callbacks.Callback` or None. Extra
            callbacks for every restart. Defaults to None.
        verbose: 0, 1 or 2. Keras' progress output. Defaults to 1 (bar).
        **settings: `TrainingConfig` settings by name (``epochs=50``,
            ``learning_rate=1e-2``, ...), overriding those of ``config``.

    Returns:
        `FitResult`, with the trained model as ``result.model``.

    Example:

    >>> import numpy as np
    >>> x = np.random.default_rng(0).uniform(size=(32, 4, 1))
    >>> y = np.cumsum(x, axis=1) / 4  # the running mean up to each token, times t/4
    >>> result = fit(Budget(n=4, m_h=1, m_ff=4), (x, y), epochs=2, jit_compile=False, verbose=0)
    >>> result.epochs, result.hyperparameters["epochs"], result.stopped
    (2, 2, 'max_epochs')
    """
    start = time.perf_counter()
    config = TrainingConfig.coerce(config)
    unknown = sorted(set(settings) - set(TrainingConfig.names()))
    if unknown:
        raise TypeError(f"fit() got unexpected keyword arguments {unknown}")
    config = config.replace(**settings)
    dataset = _as_dataset(data)
    if dataset.num_samples == 0:
        raise ValueError("`data` holds no samples")
    hyperparameters = config.to_dict()
    epochs, batch_size, restarts = config.epochs, config.batch_size, config.restarts
    learning_rate, patience = config.learning_rate, config.patience
    min_delta, min_rel_delta = config.min_delta, config.min_rel_delta
    reduce_lr_factor, min_learning_rate = config.reduce_lr_factor, config.min_learning_rate
    reduce_lr_patience = config.effective_reduce_lr_patience
    model_kwargs = config.model_kwargs
    seed = check_seed("seed", seed)
    jit_compile = check_bool("jit_compile", jit_compile)
    if verbose not in (0, 1, 2):
        raise ValueError(f"`verbose` must be 0, 1 or 2. Received: verbose={verbose!r}")
    callbacks = list(callbacks or [])
    if not all(hasattr(c, "set_model") for c in callbacks):  # Keras' Callback interface
        raise TypeError(
            "`callbacks` must be a list of keras.callbacks.Callback. "
            f"Received: callbacks={callbacks!r}"
        )
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
        from tfapprox.finisher import check_mse_only

        check_mse_only(config.finisher_steps, "class labels")
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
        if config.schedule == "plateau":
            rate_callback = keras.callbacks.ReduceLROnPlateau(
                monitor="loss",
                factor=reduce_lr_factor,
                patience=reduce_lr_patience,
                min_delta=min_delta,
                min_lr=min_learning_rate,
                verbose=0,
            )
        else:  # the same per-epoch rates as the batched engine
            rate_callback = keras.callbacks.LearningRateScheduler(
                lambda epoch, _rate: config.scheduled_rate(epoch)
            )
        restart_callbacks = [guard, rate_callback]
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
        if config.finisher_steps and guard.stopped != "non_finite":
            from tfapprox.finisher import finish_model

            finish_model(model, x, y, config.finisher_steps)
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
# Aliases of the names that moved to tfapprox.results and tfapprox.sweeps

RUN_KEYS = _results.RUN_KEYS
BUDGET_KEYS = _results.BUDGET_KEYS
validate_results = _results.validate
load_results = _results.read
write_results = _results.write
results_metadata = _results.metadata_for
run_key = _results.run_key
data_fingerprint = _results.data_fingerprint


def __getattr__(name):
    # `tfapprox.sweeps` imports this module, so `sweep` is looked up lazily.
    if name == "sweep":
        from tfapprox.sweeps import sweep

        return sweep
    raise AttributeError(f"module 'tfapprox.training' has no attribute {name!r}")
