"""Grouped training: many Keras models of any architectures in one compiled epoch.

`tfapprox.engine.train_members` trains many budgets of paper A's one-layer
model at once with a hand-written, padded forward pass. Paper B's questions
(Wang & E, 2024: heads against layers, relative position encodings, RNN
baselines, classifiers) need families of *other* models trained the same
way, and a padded forward pass per architecture does not scale.
`train_models` takes the models themselves: any list of built Keras models
with the same input and output shapes, run inside the compiled function by
``model.stateless_call(trainable, non_trainable, x)``.

The objective is the sum of the models' losses, so each model's gradient
is the gradient of its own loss; each model has its own Adam state
(`keras.optimizers.Adam`'s update, `tfapprox.engine.adam_update`) and
learning rate. A model trained in a group therefore follows the trajectory
it would follow alone, to float rounding. All models see the same batches
(a shared order, reshuffled each epoch by ``shuffle_seed``), and one compiled
call runs a whole epoch, because Python overhead per step dominates at
these sizes. The math uses `keras.ops`; gradients and compilation come from
`tfapprox.engine._backend_tools` (JAX or TensorFlow, no ``tf.data``).

On the host after every epoch each model follows the recipe of
`tfapprox.config.TrainingConfig` (`tfapprox._recipe.Recipe`, shared with
`train_members`): its learning-rate schedule, early stopping on a plateau
(a stopped model is frozen), a NaN/inf loss that stops only that model, and
its best weights, kept on the device and assigned back into the Keras model
at the end.

This is its own module, not part of `tfapprox.engine`: the engine is the
padded forward pass of one architecture; this trains models it knows
nothing about. Both share the recipe, the Adam update and the backend shim.
"""

import dataclasses
import math
import os
import time

import keras
import numpy as np
from keras import ops

from tfapprox import engine as _engine
from tfapprox._checks import check_choice, check_real, check_seed
from tfapprox._recipe import Recipe
from tfapprox.engine import (
    _backend_tools,
    _keep,
    _padded_order,
    _resume,
    _stopped_for,
    adam_rate,
    adam_update,
    mean_scores,
    training_config,
)
from tfapprox.finisher import check_mse_only, finish_model

__all__ = ["LOSSES", "GroupResult", "train_models"]

# "sparse_categorical_crossentropy" takes logits (as tfapprox.training.fit).
LOSSES = ("mse", "sparse_categorical_crossentropy")


# ----------------------------------------------------------------------------
# Arguments


def _arrays(data, name, loss):
    """``(x, y)`` as float32 and float32 targets or int32 labels, validated."""
    from tfapprox.datasets import Dataset

    if isinstance(data, Dataset):
        x, y = data.x, data.y
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = np.asarray(data[0]), np.asarray(data[1])
    else:
        raise TypeError(
            f"`{name}` must be a tfapprox Dataset or an (x, y) pair. Received: {type(data).__name__}"
        )
    if x.ndim < 2 or not np.issubdtype(x.dtype, np.number):
        raise ValueError(
            f"`{name}`: x must be a numeric array (N, ...). Received shape {x.shape}, "
            f"dtype {x.dtype}"
        )
    if y.ndim < 1 or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"`{name}`: x and y must hold the same number of samples. Received shapes "
            f"{x.shape} and {y.shape}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"`{name}` holds no samples")
    x = x.astype("float32")
    if not np.all(np.isfinite(x)):
        raise ValueError(f"`{name}`: x holds non-finite values (NaN or inf)")
    if loss == "sparse_categorical_crossentropy":
        if not np.issubdtype(y.dtype, np.integer) or y.min() < 0:
            raise ValueError(
                f"`{name}`: loss='sparse_categorical_crossentropy' needs non-negative integer "
                f"class labels y. Received dtype {y.dtype}"
            )
        return x, y.astype("int32")
    if not np.issubdtype(y.dtype, np.number):
        raise ValueError(f"`{name}`: y must hold numbers. Received dtype {y.dtype}")
    y = y.astype("float32")
    if not np.all(np.isfinite(y)):
        raise ValueError(f"`{name}`: y holds non-finite values (NaN or inf)")
    return x, y


def _check_input_shape(model, shape):
    """Raise if ``model`` declares one input whose shape (None: any size) differs from ``shape``."""
    inputs = getattr(model, "inputs", None) or []
    if len(inputs) != 1:
        return
    declared = tuple(inputs[0].shape)[1:]
    if len(declared) != len(shape) or any(
        d is not None and d != s for d, s in zip(declared, shape)
    ):
        raise ValueError(f"its input is declared as {(None, *declared)}")


def _check_models(models, x, y, loss):
    """The models as a list, each built and mapping ``x`` to outputs that fit ``y``."""
    if isinstance(models, keras.Model) or not isinstance(models, (list, tuple)):
        raise TypeError(
            f"`models` must be a list of built keras.Model objects. Received: {models!r:.80}"
        )
    if not models:
        raise ValueError("`models` is empty: give at least one built keras.Model")
    models = list(models)
    for index, model in enumerate(models):
        if not isinstance(model, keras.Model):
            raise TypeError(
                f"`models[{index}]` must be a keras.Model. Received: {type(model).__name__}"
            )
        if not model.built:
            raise ValueError(
                f"`models[{index}]` ({model.name!r}) is not built: build it (e.g. give it a "
                "keras.Input) before training"
            )
        if any(model is other for other in models[:index]):
            raise ValueError(f"`models[{index}]` ({model.name!r}) appears twice in `models`")
        try:
            _check_input_shape(model, x.shape[1:])
            # Symbolically (no eager forward pass: ~0.15 s per model saved).
            spec = model.compute_output_spec(keras.KerasTensor((1, *x.shape[1:]), dtype=x.dtype))
            shape = tuple(spec.shape)[1:]
        except Exception as err:  # a model that cannot take x: say which one
            raise ValueError(
                f"`models[{index}]` ({model.name!r}) cannot take inputs of shape "
                f"{(None, *x.shape[1:])}: {str(err).splitlines()[0]}"
            ) from None
        if loss == "mse":
            ok, want = shape == y.shape[1:], f"{(None, *y.shape[1:])}"
        else:
            classes = int(y.max()) + 1
            ok = shape[:-1] == y.shape[1:] and shape[-1] >= classes
            want = f"{(None, *y.shape[1:], classes)} or more logits"
        if not ok:
            raise ValueError(
                f"`models[{index}]` ({model.name!r}) outputs shape {(None, *shape)}; "
                f"loss={loss!r} with y of shape {y.shape} needs {want}"
            )
    return models


# ----------------------------------------------------------------------------
# The compiled epoch


class _Group:
    """The objective, Adam step, epoch loop and evaluation of K Keras models."""

    def __init__(self, models, loss):
        self.models = models
        self.loss = loss
        self.sequence = False  # set by train_models: y is (N, tau, d_out)
        value_and_grad, compile_ = _backend_tools()
        self._value_and_grad = value_and_grad(self._objective)
        self.run_epoch = compile_(self._run_epoch)
        self.evaluate = compile_(self._evaluate)

    def _sample_scores(self, model, trainable, non_trainable, x, y, training):
        """Per sample ``(B,)``: loss, Σ |y − ŷ| (paper A's norm) and accuracy; model losses."""
        out, non_trainable, extra = model.stateless_call(
            trainable, non_trainable, x, training=training, return_losses=True
        )
        if self.loss == "mse":
            diff = ops.cast(out, "float32") - y
            axes = tuple(range(1, len(diff.shape)))
            per_sample = ops.mean(ops.square(diff), axis=axes)  # (B,)
            second = ops.sum(ops.abs(diff), axis=axes)  # (B,)
        else:
            logits = ops.cast(out, "float32")
            entropy = ops.sparse_categorical_crossentropy(y, logits, from_logits=True)
            axes = tuple(range(1, len(entropy.shape)))
            per_sample = ops.mean(entropy, axis=axes) if axes else entropy  # (B,)
            right = ops.cast(ops.equal(ops.argmax(logits, axis=-1), y), "float32")
            second = ops.mean(right, axis=axes) if axes else right  # (B,)
        penalty = sum(extra) if extra else 0.0  # the models' regularisation losses
        return per_sample, second, penalty, tuple(non_trainable)

    def _objective(self, trainables, non_trainables, x, y, weights):
        """Σ_k loss_k and ``(losses (K,), new non-trainables)``."""
        losses, updated = [], []
        for model, trainable, non_trainable in zip(self.models, trainables, non_trainables):
            per_sample, _, penalty, non_trainable = self._sample_scores(
                model, list(trainable), list(non_trainable), x, y, True
            )
            losses.append(ops.sum(per_sample * weights) / ops.sum(weights) + penalty)
            updated.append(non_trainable)
        losses = ops.stack(losses)  # (K,)
        return ops.sum(losses), (losses, tuple(updated))

    def _run_epoch(self, state, learning_rate, order, weights, x, y):
        """One epoch over ``order`` (batches, B) with 0/1 sample ``weights`` (batches, B).

        ``state`` is ``(trainables, non_trainables, moments, velocities,
        steps, active, best_trainables, best_non_trainables, best_loss)``:
        per model tuples of tensors, and vectors ``(K,)``. Returns the new
        state, the epoch-mean losses ``(K,)`` and a flag ``(K,)`` for models
        whose loss turned non-finite (they stop before the update that would
        use it).
        """
        trainables, non_trainables, moments, velocities, steps, active, best_t, best_n, best = state
        started = active

        def body(i, carry):
            trainables, non_trainables, moments, velocities, steps, active, bad, total = carry
            index = ops.take(order, i, axis=0)  # (B,)
            batch_weights = ops.take(weights, i, axis=0)  # (B,)
            x_batch = ops.take(x, index, axis=0)  # (B, ...)
            y_batch = ops.take(y, index, axis=0)  # (B, ...)
            (_, (losses, updated)), grads = self._value_and_grad(
                trainables, non_trainables, x_batch, y_batch, batch_weights
            )
            finite = ops.isfinite(losses)
            bad = ops.logical_or(bad, ops.logical_and(active, ops.logical_not(finite)))
            active = ops.logical_and(active, finite)
            steps = steps + ops.cast(active, "float32")
            alpha = adam_rate(learning_rate, steps)  # (K,)
            new = ([], [], [], [])
            for k in range(len(self.models)):
                on = active[k]
                for param, moment, velocity, grad in zip(
                    trainables[k], moments[k], velocities[k], grads[k]
                ):
                    grad = ops.zeros_like(param) if grad is None else grad  # unused weight
                    grad = ops.where(on, grad, ops.zeros_like(grad))
                    rate = ops.cast(alpha[k], param.dtype)
                    for out, value in zip(
                        new[:3], adam_update(param, moment, velocity, grad, rate, on)
                    ):
                        out.append(value)
                new[3].append(
                    tuple(
                        ops.where(on, after, before)
                        for after, before in zip(updated[k], non_trainables[k])
                    )
                )
            trainables, moments, velocities = (_regroup(values, trainables) for values in new[:3])
            non_trainables = tuple(new[3])
            total = total + losses * ops.sum(batch_weights)
            return (trainables, non_trainables, moments, velocities, steps, active, bad, total)

        carry = (
            trainables,
            non_trainables,
            moments,
            velocities,
            steps,
            active,
            ops.zeros_like(active),
            ops.zeros_like(best),
        )
        trainables, non_trainables, moments, velocities, steps, active, bad, total = ops.fori_loop(
            0, order.shape[0], body, carry
        )
        epoch_loss = total / ops.sum(weights)  # (K,)
        improved = ops.logical_and(
            ops.logical_and(started, ops.logical_not(bad)), epoch_loss < best
        )
        best_t, best_n = (
            tuple(
                tuple(ops.where(improved[k], p, b) for p, b in zip(now[k], kept[k]))
                for k in range(len(self.models))
            )
            for now, kept in ((trainables, best_t), (non_trainables, best_n))
        )
        best = ops.where(improved, epoch_loss, best)
        state = (
            trainables,
            non_trainables,
            moments,
            velocities,
            steps,
            active,
            best_t,
            best_n,
            best,
        )
        return state, epoch_loss, bad

    def _evaluate(self, trainables, non_trainables, x, y, weights):
        """Weighted sums over a batch, per model ``(K,)``: loss and error (or accuracy)."""
        losses, seconds = [], []
        for model, trainable, non_trainable in zip(self.models, trainables, non_trainables):
            per_sample, second, penalty, _ = self._sample_scores(
                model, list(trainable), list(non_trainable), x, y, False
            )
            losses.append(ops.sum((per_sample + penalty) * weights))
            seconds.append(ops.sum(second * weights))
        return ops.stack(losses), ops.stack(seconds)


def _regroup(flat, like):
    """``flat`` (one list over every model's tensors) cut into per-model tuples as ``like``."""
    out, start = [], 0
    for group in like:
        out.append(tuple(flat[start : start + len(group)]))
        start += len(group)
    return tuple(out)


def _scores(group, trainables, non_trainables, x, y, batch_size):
    """Per model over ``(x, y)``: mean loss and mean error (or accuracy), NumPy ``(K,)`` each."""
    return mean_scores(
        lambda xb, yb, weights: group.evaluate(trainables, non_trainables, xb, yb, weights),
        x,
        y,
        batch_size,
    )


# ----------------------------------------------------------------------------
# Results


@dataclasses.dataclass
class GroupResult:
    """What `train_models` returns.

    Attributes:
        records: list of dict, one per model, JSON-ready: ``index``,
            ``name``, ``budget`` (the `Budget` dict of a `build_transformer`
            model, else None), ``loss`` (training loss of the kept weights on
            the whole training set: MSE, or cross-entropy), ``error``
            (paper A's norm, `tfapprox.metrics.paper_error`, for MSE on
            sequences ``(N, tau, d_out)``; else None), ``accuracy`` (for
            cross-entropy; else None), ``val_loss``, ``val_error``,
            ``val_accuracy`` (None without validation data), ``best_loss``
            and ``final_loss`` (epoch-mean training losses), ``epochs``,
            ``stopped`` (``"max_epochs"``, ``"plateau"`` or
            ``"non_finite"``), ``message``, ``learning_rate`` (initial),
            ``final_learning_rate``, ``history``, ``parameter_count``
            (trainable), ``seconds`` (the group's wall time divided by its
            size), ``group_seconds``, ``group_size``, ``hyperparameters``
            (the settings, ``shuffle_seed``, ``loss``), ``data`` and
            ``backend``.
        models: the Keras models, holding their kept weights.
    """

    records: list
    models: list

    def __len__(self):
        return len(self.records)

    def to_dicts(self):
        """The records (JSON-ready dicts), one per model."""
        return [dict(record) for record in self.records]


# ----------------------------------------------------------------------------
# Training


def _initial_state(models):
    def values(variables):
        return tuple(ops.convert_to_tensor(ops.convert_to_numpy(v)) for v in variables)

    trainables = tuple(values(model.trainable_variables) for model in models)
    non_trainables = tuple(values(model.non_trainable_variables) for model in models)
    zeros = tuple(tuple(ops.zeros_like(p) for p in group) for group in trainables)
    size = len(models)
    return (
        trainables,
        non_trainables,
        zeros,
        zeros,
        ops.zeros((size,), dtype="float32"),
        ops.ones((size,), dtype="bool"),
        trainables,
        non_trainables,
        ops.full((size,), np.inf, dtype="float32"),
    )


def _checkpoint_key(models, x, y, config, shuffle_seed, loss, rates):
    """SHA-256 of everything that decides a `train_models` call's trajectory."""
    import hashlib
    import json

    identity = {
        "models": [
            # Shapes, not paths: Keras numbers auto-named layers anew in every build.
            [type(model).__name__, [list(v.shape) for v in model.weights]]
            for model in models
        ],
        "data": [list(x.shape), str(x.dtype), list(y.shape), str(y.dtype)],
        "config": config,
        "shuffle_seed": shuffle_seed,
        "loss": loss,
        "rates": rates,
        "backend": keras.backend.backend(),
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode())
    digest.update(np.ascontiguousarray(x).tobytes())
    digest.update(np.ascontiguousarray(y).tobytes())
    for model in models:  # the initial weights
        for value in model.get_weights():
            digest.update(np.ascontiguousarray(value).tobytes())
    return digest.hexdigest()


def _budget(model):
    from tfapprox.models import budget_of

    try:
        return budget_of(model).to_dict()
    except (ValueError, KeyError, AttributeError, TypeError):
        return None


def train_models(
    models,
    data,
    config=None,
    *,
    validation_data=None,
    shuffle_seed=0,
    progress=None,
    loss="mse",
    learning_rates=None,
    checkpoint=None,
):
    """Train built Keras models of any architectures at once; keep each one's best weights.

    Each model trains as it would alone under ``config`` (Adam, the schedule,
    early stopping, best weights; see the module docstring), on the same
    shuffled batches: one compiled call per epoch runs every model's
    ``stateless_call``, and the objective is ``Σ_k loss_k``. The kept
    weights (the end of the epoch with the lowest finite training loss, or
    the initial weights) are assigned back into the models, which can then
    be evaluated, saved and exported as usual.

    Args:
        models: list of built `keras.Model` taking ``x``'s per-sample shape
            (e.g. `tfapprox.models.build_transformer` models, a
            ``keras.Sequential`` `SimpleRNN`, a classifier).
        data: `tfapprox.datasets.Dataset` or an ``(x, y)`` pair: ``x``
            ``(N, ...)`` floats; ``y`` the targets, of the models' output
            shape for ``"mse"``, or integer class labels of the output shape
            without its last (class) axis for cross-entropy, e.g. ``(N,)``
            for a classifier, ``(N, tau)`` for a character-level language
            model.
        config: training settings, as `tfapprox.engine.training_config`
            takes them (None, a `TrainingConfig`, a dict). Defaults to
            `fit`'s.
        validation_data: Optional held-out data like ``data``; reported,
            never used to steer. Defaults to None.
        shuffle_seed: int. Seed of the shared batch order. Defaults to 0.
        progress: callable or None. Called after every epoch as
            ``progress(epoch, states)`` with one dict per model: ``index``,
            ``name``, ``loss`` (None once stopped), ``learning_rate``,
            ``epochs``, ``stopped``. Defaults to None.
        loss: str. ``"mse"`` (mean over every output element) or
            ``"sparse_categorical_crossentropy"``, which expects **logits**
            (no softmax at the output; as `tfapprox.training.fit`) and
            averages over the label positions. Defaults to ``"mse"``.
        learning_rates: None or a list with, per model, None or an initial
            learning rate overriding ``config``'s. Defaults to None.
        checkpoint: str, path-like or None. A ``.npz`` file that keeps the
            training state (every model's weights, Adam moments and best
            weights, the recipe's counters and the batch order's generator)
            after an epoch, at most every `tfapprox.engine.CHECKPOINT_EVERY`
            seconds, and when the epochs end. If it holds the state of the
            same call (the models' variables and initial values, the data,
            the settings, ``shuffle_seed``, ``loss`` and ``learning_rates``),
            training continues from it, so an interrupted call run again
            ends as an uninterrupted one does; after the epochs, it goes
            straight to the finisher, which runs the models one after the
            other and writes the file again after each, so a model it had
            finished keeps its result. A file of another call, or a damaged
            one, is overwritten. The caller removes it when done. Defaults
            to None.

    Returns:
        `GroupResult`, with ``result.models`` the trained models.

    Example:

    >>> import keras, numpy as np
    >>> x = np.random.default_rng(0).uniform(size=(32, 4, 1)).astype("float32")
    >>> y = np.cumsum(x, axis=1) / 4
    >>> rnn = keras.Sequential([keras.Input((4, 1)), keras.layers.SimpleRNN(8, return_sequences=True),
    ...                         keras.layers.Dense(1)])
    >>> mlp = keras.Sequential([keras.Input((4, 1)), keras.layers.Dense(8, activation="relu"),
    ...                         keras.layers.Dense(1)])
    >>> result = train_models([rnn, mlp], (x, y), {"epochs": 3, "batch_size": 16})
    >>> [(r["epochs"], r["stopped"], len(r["history"])) for r in result.records]
    [(3, 'max_epochs', 3), (3, 'max_epochs', 3)]
    """
    start = time.perf_counter()
    loss = check_choice("loss", loss, LOSSES)
    x, y = _arrays(data, "data", loss)
    validation = None
    if validation_data is not None:
        validation = _arrays(validation_data, "validation_data", loss)
        if validation[0].shape[1:] != x.shape[1:] or validation[1].shape[1:] != y.shape[1:]:
            raise ValueError(
                "`validation_data` must have the training data's shapes per sample: x "
                f"{x.shape[1:]}, y {y.shape[1:]}. Received: x {validation[0].shape[1:]}, "
                f"y {validation[1].shape[1:]}"
            )
    config = training_config(config)
    if loss != "mse":
        check_mse_only(config["finisher_steps"], f"loss={loss!r}")
    shuffle_seed = check_seed("shuffle_seed", shuffle_seed)
    if progress is not None and not callable(progress):
        raise TypeError(f"`progress` must be callable or None. Received: {progress!r}")
    models = _check_models(models, x, y, loss)
    size = len(models)
    if learning_rates is None:
        learning_rates = [None] * size
    if not isinstance(learning_rates, (list, tuple)) or len(learning_rates) != size:
        raise ValueError(
            f"`learning_rates` must be None or a list with one entry per model ({size}). "
            f"Received: {learning_rates!r}"
        )
    base_rates = [
        config["learning_rate"]
        if rate is None
        else check_real(f"learning_rates[{i}]", rate, low=0, low_open=True)
        for i, rate in enumerate(learning_rates)
    ]

    if checkpoint is not None:
        if not isinstance(checkpoint, (str, os.PathLike)) or not os.fspath(checkpoint):
            raise TypeError(f"`checkpoint` must be a file path or None. Received: {checkpoint!r}")
        checkpoint = os.fspath(checkpoint)

    group = _Group(models, loss)
    state = _initial_state(models)
    x_device, y_device = ops.convert_to_tensor(x), ops.convert_to_tensor(y)
    recipe = Recipe(
        config, base_rates, [f"Model {i} ({model.name!r})" for i, model in enumerate(models)]
    )
    rng = np.random.default_rng(shuffle_seed)
    first_epoch, adam_done, kept = 0, False, None
    if checkpoint is not None:
        key = _checkpoint_key(models, x, y, config, shuffle_seed, loss, base_rates)
        resumed = _resume(checkpoint, key, rng, recipe)
        if resumed is not None:
            arrays, first_epoch, adam_done, seconds, kept = resumed
            state = keras.tree.pack_sequence_as(state, [ops.convert_to_tensor(a) for a in arrays])
            start -= seconds
        saved_at = time.perf_counter()

    def save(epoch, done, finisher=None):
        flat, seconds = keras.tree.flatten(state), time.perf_counter() - start
        _keep(checkpoint, key, flat, epoch, done, rng, recipe, seconds, finisher)

    for epoch in range(first_epoch, 0 if adam_done else config["epochs"]):
        order, weights = _padded_order(rng.permutation(len(x)), config["batch_size"])
        state = (*state[:5], ops.convert_to_tensor(recipe.active), *state[6:])
        state, epoch_loss, bad = group.run_epoch(
            state,
            ops.convert_to_tensor(recipe.rates.astype("float32")),
            ops.convert_to_tensor(order),
            ops.convert_to_tensor(weights),
            x_device,
            y_device,
        )
        losses = recipe.end_epoch(
            epoch, ops.convert_to_numpy(epoch_loss).astype("float64"), ops.convert_to_numpy(bad)
        )
        if checkpoint is not None and time.perf_counter() - saved_at >= _engine.CHECKPOINT_EVERY:
            save(epoch + 1, False)
            saved_at = time.perf_counter()
        if progress is not None:
            progress(
                epoch + 1,
                [
                    {**recipe.state(i, value), "name": models[i].name}
                    for i, value in enumerate(losses)
                ],
            )
        if not recipe.active.any():
            break
    if checkpoint is not None and not adam_done:
        save(config["epochs"], True)  # the finisher starts from here
    recipe.finish()

    best_trainables, best_non_trainables = state[6], state[7]
    for model, trainable, non_trainable in zip(models, best_trainables, best_non_trainables):
        for variable, value in zip(model.trainable_variables, trainable):
            variable.assign(value)
        for variable, value in zip(model.non_trainable_variables, non_trainable):
            variable.assign(value)
    finished = [None] * size
    if config["finisher_steps"]:
        live = [i for i in range(size) if recipe.stopped[i] != "non_finite"]
        # The models are finished one after the other; the checkpoint keeps
        # each one's result, so a rerun does not finish it again.
        results = _stopped_for(kept, live) or [None] * len(live)
        for j, i in enumerate(live):
            trainables = models[i].trainable_variables
            if results[j] is None:
                info = finish_model(models[i], x, y, config["finisher_steps"])
                flat = np.concatenate([ops.convert_to_numpy(v.value).ravel() for v in trainables])
                results[j] = (flat, info)
                if checkpoint is not None:
                    save(config["epochs"], True, (live, results))
            else:
                offsets = np.cumsum([0] + [math.prod(v.shape) for v in trainables])
                for v, a, b in zip(trainables, offsets[:-1], offsets[1:]):
                    v.assign(np.reshape(results[j][0][a:b], v.shape))
            finished[i] = results[j][1]
        best_trainables = [[v.value for v in m.trainable_variables] for m in models]
    eval_batch = max(config["batch_size"], 256)
    train_scores = _scores(group, best_trainables, best_non_trainables, x, y, eval_batch)
    val_scores = None
    if validation is not None:
        val_scores = _scores(group, best_trainables, best_non_trainables, *validation, eval_batch)

    elapsed = time.perf_counter() - start
    sequence = loss == "mse" and y.ndim == 3
    classify = loss != "mse"
    summary = {
        "num_samples": int(len(x)),
        "x_shape": list(x.shape[1:]),
        "y_shape": list(y.shape[1:]),
        "task": "labels" if classify else ("sequence" if sequence else "vector"),
    }

    def second(scores, i, wanted):
        return None if scores is None or not wanted else float(scores[1][i])

    records = []
    for i, model in enumerate(models):
        records.append(
            {
                "index": i,
                "name": model.name,
                "budget": _budget(model),
                "loss": float(train_scores[0][i]),
                "error": second(train_scores, i, sequence),
                "accuracy": second(train_scores, i, classify),
                "val_loss": None if val_scores is None else float(val_scores[0][i]),
                "val_error": second(val_scores, i, sequence),
                "val_accuracy": second(val_scores, i, classify),
                **recipe.summary(i),
                "finisher": finished[i],
                "parameter_count": int(sum(math.prod(v.shape) for v in model.trainable_variables)),
                "seconds": elapsed / size,
                "group_seconds": elapsed,
                "group_size": size,
                "hyperparameters": {**config, "shuffle_seed": shuffle_seed, "loss": loss},
                "data": dict(summary),
                "backend": keras.backend.backend(),
            }
        )
    return GroupResult(records=records, models=models)
