"""Batched training: many budgets and seeds of one target in one compiled step.

Every question the theory answers is a sweep: one target, many budgets
(m_h, m_FF, ...) and several seeds. `train_members` trains E such *members*
at once. Their weights carry a leading member axis; a member with a smaller
width is zero-padded to the largest, and fixed zero masks keep the padding
at zero, so a padded member is exactly the smaller model of
`tfapprox.models.build_transformer` (ρ̂ has rank ≤ its own m_h; its
effective parameter count is ``Budget.parameter_count``). The loss is the
sum of the members' losses, so gradients and the Adam updates (with one
learning rate per member) stay independent: a member trained inside an
ensemble follows the same trajectory as the same member trained alone, to
float rounding.

One compiled call runs a whole epoch (a loop over the batches of a shared,
pre-shuffled order), because Python overhead per step dominates at these
sizes. The math uses `keras.ops` only; the gradient and the compilation use
the backend (`_backend_tools`): JAX (``jax.value_and_grad`` + ``jax.jit``) or
TensorFlow (``tf.GradientTape`` + ``tf.function(jit_compile=True)``).
Under TensorFlow, ``TFAPPROX_JIT_COMPILE=0`` in the environment drops XLA
(`jit_compile_enabled`): compiling takes 40-60 % of XLA's time and each
epoch 1.3-2.2 times longer (README, "Sweeps at scale"), the better trade
for short runs such as the test suite's.

Per member, on the host after each epoch: the learning-rate schedule
(``"plateau"``: reduce on plateau as `keras.callbacks.ReduceLROnPlateau`;
``"cosine"``; ``"constant"``; linear warm-up for the last two), early
stopping on a plateau of the training loss (a stopped member is frozen), and
a NaN/inf loss, which stops only that member. The weights of each member's
best epoch are kept on the device. With ``finisher_steps`` > 0, full-batch
L-BFGS then runs from them, one scipy L-BFGS per member in lockstep with
every round's points evaluated in one compiled call
(`tfapprox.finisher.lbfgs_members`, `analysis/bench_finisher.py`).

`train_members` returns an `EnsembleResult`: JSON-ready per-member records
(``budget``, ``seed``, ``loss``, ``error``, ...; valid runs of a results
file) and each member's weights, which `EnsembleResult.member_model` loads
into an ordinary `build_transformer` model.
"""

import dataclasses
import math
import os
import time

import keras
import numpy as np
from keras import ops

from tfapprox._checks import check_int, check_positive_int, check_real, check_seed
from tfapprox._recipe import Recipe, _reduce_on_plateau, _schedule_rate  # noqa: F401
from tfapprox.budget import Budget
from tfapprox.config import SCHEDULES  # noqa: F401  (re-exported)
from tfapprox.datasets import Dataset

STOP_REASONS = ("max_epochs", "plateau", "non_finite")

# The `TrainingConfig` settings the engine's recipe uses (restarts are the
# caller's business: one member is one initialisation; model_kwargs shape the
# members' models).
ENGINE_SETTINGS = (
    "epochs",
    "batch_size",
    "learning_rate",
    "patience",
    "min_delta",
    "min_rel_delta",
    "reduce_lr_factor",
    "reduce_lr_patience",
    "min_learning_rate",
    "schedule",
    "warmup_epochs",
    "finisher_steps",
)

_MODEL_OPTIONS = (
    "output",
    "position_encoding",
    "projection_dim",
    "activation",
    "output_activation",
    "use_scale",
    "causal",
    "kink_range",
)

# keras.optimizers.Adam's defaults.
_BETA_1, _BETA_2, _EPSILON = 0.9, 0.999, 1e-7


# ----------------------------------------------------------------------------
# Arguments


def training_config(config=None):
    """The engine's training settings, validated by `tfapprox.config.TrainingConfig`.

    The recipe (optimiser settings, schedule, stopping) is defined once, in
    `TrainingConfig`; the engine reads the settings it uses from it.

    Args:
        config: None (the defaults), a `TrainingConfig`, a dict of its
            settings, or any object with some of its attribute names.

    Returns:
        dict with the settings of `ENGINE_SETTINGS` (``reduce_lr_patience``
        and ``warmup_epochs`` resolved as `TrainingConfig.to_dict` does).

    >>> training_config({"epochs": 10})["reduce_lr_patience"]
    10
    >>> training_config({"epoch": 10})  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: Unknown TrainingConfig settings ['epoch']; known: epochs, ...
    """
    settings = _as_config(config).to_dict()
    return {key: settings[key] for key in ENGINE_SETTINGS}


def _as_config(config):
    """``config`` as a `TrainingConfig` (see `training_config` for what it accepts)."""
    from tfapprox.config import TrainingConfig

    if config is None:
        config = TrainingConfig()
    elif isinstance(config, dict):
        config = TrainingConfig.from_dict(config)
    elif not isinstance(config, TrainingConfig):
        values = {
            key: getattr(config, key) for key in TrainingConfig.names() if hasattr(config, key)
        }
        if not values:
            raise TypeError(
                "`config` must be None, a dict or an object with training attributes "
                f"(epochs, batch_size, ...). Received: {type(config).__name__}"
            )
        config = TrainingConfig(**values)
    return config


def _members(members):
    """``[(Budget, seed, learning_rate or None), ...]`` from tuples or dicts."""
    if isinstance(members, (str, bytes, dict)) or not hasattr(members, "__iter__"):
        raise TypeError(
            "`members` must be a list of (budget, seed) pairs or dicts with keys "
            f"'budget', 'seed' (and optionally 'learning_rate'). Received: {members!r}"
        )
    out = []
    for index, member in enumerate(members):
        if isinstance(member, dict):
            unknown = sorted(set(member) - {"budget", "seed", "learning_rate"})
            if unknown or "budget" not in member:
                raise ValueError(
                    f"`members[{index}]` must have the keys 'budget', 'seed' and optionally "
                    f"'learning_rate'. Received: {member!r}"
                )
            budget, seed, rate = (
                member["budget"],
                member.get("seed", 0),
                member.get("learning_rate"),
            )
        elif isinstance(member, (tuple, list)) and len(member) == 2:
            (budget, seed), rate = member, None
        else:
            raise TypeError(
                f"`members[{index}]` must be a (budget, seed) pair or a dict. Received: {member!r}"
            )
        if isinstance(budget, dict):
            budget = Budget.from_dict(budget)
        if not isinstance(budget, Budget):
            raise TypeError(
                f"`members[{index}]`: the budget must be a tfapprox.Budget. "
                f"Received: {type(budget).__name__}"
            )
        if budget.m_readout is not None:
            raise ValueError(
                f"`members[{index}]`: the batched engine gives the readout the width m_ff; "
                "train a budget with its own readout width with tfapprox.group.train_models. "
                f"Received: m_ff={budget.m_ff}, m_readout={budget.m_readout}"
            )
        if budget.num_heads != 1 or budget.num_layers != 1:
            raise ValueError(
                f"`members[{index}]`: the batched engine trains paper A's one-layer, one-head "
                f"model; train {budget.num_layers} layers of {budget.num_heads} heads with "
                "tfapprox.fit. Received: "
                f"num_heads={budget.num_heads}, num_layers={budget.num_layers}"
            )
        seed = check_seed(f"members[{index}].seed", seed)
        if rate is not None:
            rate = check_real(f"members[{index}].learning_rate", rate, low=0, low_open=True)
        out.append((budget, seed, rate))
    if not out:
        raise ValueError("`members` is empty: give at least one (budget, seed) pair")
    depths = sorted({budget.ff_depth for budget, _, _ in out})
    if len(depths) > 1:
        raise ValueError(
            "All members must share `ff_depth` (depth cannot be padded exactly); train each "
            f"depth as its own ensemble. Received depths {depths}"
        )
    return out


def _dataset(data, name):
    if isinstance(data, Dataset):
        dataset = data
    elif isinstance(data, (tuple, list)) and len(data) == 2:
        try:
            dataset = Dataset(data[0], data[1])
        except ValueError as err:
            raise ValueError(f"`{name}`: {err}") from None
    else:
        raise TypeError(
            f"`{name}` must be a tfapprox Dataset or an (x, y) pair. Received: {type(data).__name__}"
        )
    if dataset.task == "labels":
        raise ValueError(
            f"`{name}` holds class labels; the engine trains regression targets (y of shape "
            "(N, tau, d_out) or (N, d_out)). Use tfapprox.fit for classification"
        )
    if dataset.num_samples == 0:
        raise ValueError(f"`{name}` holds no samples")
    return dataset


def _model_options(model_kwargs, dataset):
    options = {"output": "sequence" if dataset.task == "sequence" else "pooled"}
    if model_kwargs is not None:
        if not isinstance(model_kwargs, dict):
            raise TypeError(
                f"`model_kwargs` must be a dict. Received: {type(model_kwargs).__name__}"
            )
        unknown = sorted(set(model_kwargs) - set(_MODEL_OPTIONS))
        if unknown:
            raise ValueError(
                f"`model_kwargs` has unsupported keys {unknown}; the engine supports "
                f"{list(_MODEL_OPTIONS)}"
            )
        options.update(model_kwargs)
    want = "sequence" if dataset.task == "sequence" else "pooled"
    if options["output"] != want:
        raise ValueError(
            f"`model_kwargs['output']` must be {want!r} for y of shape {dataset.y.shape}. "
            f"Received: {options['output']!r}"
        )
    return options


# ----------------------------------------------------------------------------
# Backend shim: the only backend-specific code.


def jit_compile_enabled():
    """Whether the engine XLA-compiles under TensorFlow: ``$TFAPPROX_JIT_COMPILE``, default on.

    ``0``/``false``/``no``/``off`` turn XLA off (``tf.function(jit_compile=False)``);
    ``1``/``true``/``yes``/``on`` or unset keep it on. JAX always compiles with
    XLA (``jax.jit``) and ignores the setting.

    >>> from unittest import mock
    >>> with mock.patch.dict("os.environ", {"TFAPPROX_JIT_COMPILE": "0"}):
    ...     jit_compile_enabled()
    False
    >>> with mock.patch.dict("os.environ", {"TFAPPROX_JIT_COMPILE": "yes"}):
    ...     jit_compile_enabled()
    True

    Raises:
        ValueError: the variable holds anything else.
    """
    value = os.environ.get("TFAPPROX_JIT_COMPILE", "1").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(
        "TFAPPROX_JIT_COMPILE must be 0 or 1 (or false/true, no/yes, off/on). "
        f"Received: TFAPPROX_JIT_COMPILE={value!r}"
    )


def _backend_tools():
    """``(value_and_grad, compile)`` for the Keras backend.

    ``value_and_grad(fn)`` maps ``fn(params, *args) -> (scalar, aux)`` to a
    function returning ``((scalar, aux), grads)``; ``compile(fn)`` compiles
    a function of tensors, with XLA unless `jit_compile_enabled` says no.
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        def value_and_grad(fn):
            return jax.value_and_grad(fn, has_aux=True)

        return value_and_grad, jax.jit
    if backend == "tensorflow":
        import tensorflow as tf

        def value_and_grad(fn):
            def wrapped(params, *args):
                with tf.GradientTape() as tape:
                    tape.watch(params)
                    value = fn(params, *args)
                return value, tape.gradient(value[0], params)

            return wrapped

        xla = jit_compile_enabled()
        return value_and_grad, lambda fn: tf.function(fn, jit_compile=xla)
    raise ValueError(
        "The batched engine runs on the 'jax' and 'tensorflow' Keras backends. "
        f"Received: KERAS_BACKEND={backend!r}"
    )


# ----------------------------------------------------------------------------
# Adam, one learning rate per model (shared with `tfapprox.group`)


def adam_rate(learning_rate, steps):
    """Adam's bias-corrected step size ``lr · √(1 − β₂ᵗ) / (1 − β₁ᵗ)``, as `keras.optimizers.Adam`.

    ``learning_rate`` and ``steps`` (t, the updates made so far including
    this one; 0 reads as 1) broadcast against each other.
    """
    safe_steps = ops.maximum(steps, 1.0)
    return (
        learning_rate
        * ops.sqrt(1.0 - ops.power(_BETA_2, safe_steps))
        / (1.0 - ops.power(_BETA_1, safe_steps))
    )


def adam_update(param, moment, velocity, grad, alpha, on):
    """One `keras.optimizers.Adam` update where ``on``; the old values elsewhere.

    ``m ← m + (g − m)(1 − β₁)``, ``v ← v + (g² − v)(1 − β₂)``,
    ``θ ← θ − α m / (√v + ε)`` with ``α`` from `adam_rate`.

    Returns:
        ``(param, moment, velocity)``, updated.
    """
    m_new = moment + (grad - moment) * (1.0 - _BETA_1)
    v_new = velocity + (ops.square(grad) - velocity) * (1.0 - _BETA_2)
    step = (m_new * alpha) / (ops.sqrt(v_new) + _EPSILON)
    return (
        ops.where(on, param - step, param),
        ops.where(on, m_new, moment),
        ops.where(on, v_new, velocity),
    )


# ----------------------------------------------------------------------------
# The batched model


@dataclasses.dataclass(frozen=True)
class _Layout:
    """Where each part of `build_transformer`'s weights sits in ``get_weights()``."""

    projection: int  # index of A, or None
    embeddings: int  # index of e(t), or None
    f_hat: tuple  # ((kernel, bias), ...) hidden layers then output
    attention: tuple  # (query, key, value)
    F_hat: tuple


def _layout(model):
    from tfapprox.models import _parts

    parts = _parts(model)
    index = {id(weight): i for i, weight in enumerate(model.weights)}

    def at(weight):
        return None if weight is None else index[id(weight)]

    def dense_stack(ff):
        layers = [*ff.hidden_layers, ff.output_layer]
        return tuple((at(layer.kernel), at(layer.bias)) for layer in layers)

    encoding, attention = parts["position_encoding"], parts["attention"]
    return _Layout(
        projection=at(encoding.kernel),
        embeddings=at(encoding.embeddings),
        f_hat=dense_stack(parts["f_hat"]),
        attention=(
            at(attention.query_kernel),
            at(attention.key_kernel),
            at(attention.value_kernel),
        ),
        F_hat=dense_stack(parts["F_hat"]),
    )


def _expand(vector, ndim):
    """A member vector ``(E,)`` shaped to broadcast against ``(E, ...)`` of rank ``ndim``."""
    return ops.reshape(vector, (-1,) + (1,) * (ndim - 1))


class _Engine:
    """The forward pass, loss, Adam step and epoch loop of E padded members."""

    def __init__(self, layout, shapes, options, sequence_length, m_h, size, group=None):
        from tfapprox.layers import sinusoidal_encoding

        self.layout = layout
        self.shapes = [tuple(shape) for shape in shapes]  # padded, per member
        self.offsets = np.cumsum([0] + [int(np.prod(shape)) for shape in self.shapes]).tolist()
        self.size = size
        # Members per gradient evaluation: the epoch loops over E / group groups,
        # which keeps each group's activations in cache (see `_group_size`).
        self.group = size if group is None else group
        if size % self.group:
            raise ValueError(f"`group` must divide the ensemble size {size}. Received: {group}")
        self.output = options["output"]
        self.mode = options.get("position_encoding", "learned")
        self.activation = keras.activations.get(options.get("activation", "relu"))
        self.output_activation = keras.activations.get(options.get("output_activation"))
        self.causal = bool(options.get("causal", False))
        self.use_scale = bool(options.get("use_scale", False))
        # The logit factor per member (1/√m_h with use_scale).
        self.scale = np.asarray(
            [1.0 / math.sqrt(m) if self.use_scale else 1.0 for m in m_h], dtype="float32"
        )
        self.sinusoids = None
        if self.mode == "sinusoidal":
            width = options.get("projection_dim")
            self.sinusoids = (sequence_length, width)  # width None: d, set at first call
        value_and_grad, compile_ = _backend_tools()
        self._value_and_grad = value_and_grad(self._loss)
        self._sinusoidal_encoding = sinusoidal_encoding
        self.run_epoch = compile_(self._run_epoch)
        # Evaluation runs a few forward passes: eager, which saves an XLA compile.
        self.evaluate = self._evaluate
        self.predict = self._forward

    # Forward -----------------------------------------------------------------

    def unflatten(self, flat):
        """The weights as a list ``(E, *shape)`` from the flat ``(E, P)`` vector."""
        return [
            ops.reshape(flat[:, start:stop], (flat.shape[0], *shape))
            for start, stop, shape in zip(self.offsets[:-1], self.offsets[1:], self.shapes)
        ]

    def _dense_stack(self, params, stack, hidden):
        """``hidden`` is ``(E, M, i)`` or, shared by all members, ``(M, i)``."""
        for depth, (kernel, bias) in enumerate(stack):
            last = depth == len(stack) - 1
            if len(hidden.shape) == 2:
                hidden = ops.einsum("mi,eio->emo", hidden, params[kernel])  # (E, M, o)
            else:
                hidden = ops.matmul(hidden, params[kernel])  # (E, M, o)
            hidden = hidden + params[bias][:, None, :]
            hidden = self.output_activation(hidden) if last else self.activation(hidden)
        return hidden

    def _forward(self, flat, x, scale=None):
        """Ĥ of every member: ``x (B, tau, d)`` → ``(E, B, tau, d_out)`` or ``(E, B, d_out)``.

        ``flat`` holds every member's weights, ``(E, P)``; ``scale`` the
        members' logit factors ``(E,)`` (`self.scale` when None).
        """
        params = self.unflatten(flat)
        size = flat.shape[0]
        if scale is None:
            scale = ops.convert_to_tensor(self.scale)
        layout = self.layout
        batch, tau = ops.shape(x)[0], x.shape[1]
        hidden = ops.reshape(x, (-1, x.shape[2]))  # (B tau, d), shared by the members
        if layout.projection is not None:
            hidden = ops.einsum("md,edp->emp", hidden, params[layout.projection])  # (E, B tau, d')
        width = hidden.shape[-1]
        if self.mode != "none":
            if self.mode == "learned":
                encoding = params[layout.embeddings][:, :tau]  # (E, tau, d')
            else:
                table = self._sinusoidal_encoding(self.sinusoids[0], width)
                encoding = ops.convert_to_tensor(table[:tau])[None]  # (1, tau, d')
            if len(hidden.shape) == 2:
                hidden = ops.reshape(hidden, (1, batch, tau, width))
            else:
                hidden = ops.reshape(hidden, (size, batch, tau, width))
            hidden = hidden + encoding[:, None]  # (E or 1, B, tau, d')
            hidden = ops.reshape(hidden, (hidden.shape[0], -1, width))
            if hidden.shape[0] == 1:
                hidden = hidden[0]  # (B tau, d'), still shared
        hidden = self._dense_stack(params, layout.f_hat, hidden)  # (E, B tau, n)
        query, key, value = (params[i] for i in layout.attention)
        m_h = query.shape[-1]
        kernel = ops.concatenate([query, key, value], axis=-1)  # (E, n, 2 m_h + m_v)
        qkv = ops.reshape(ops.matmul(hidden, kernel), (size, batch, tau, -1))
        query, key, value = qkv[..., :m_h], qkv[..., m_h : 2 * m_h], qkv[..., 2 * m_h :]
        logits = ops.einsum("ebtk,ebsk->ebts", query, key)  # (E, B, tau, tau)
        if self.use_scale:
            logits = logits * _expand(scale, 4)
        if self.causal:
            keep = ops.arange(tau)[None, :] <= ops.arange(tau)[:, None]  # (tau, tau)
            logits = ops.where(keep[None, None], logits, ops.full_like(logits, -1e9))
        weights = ops.softmax(logits, axis=-1)  # (E, B, tau, tau)
        mixed = ops.einsum("ebts,ebsv->ebtv", weights, value)  # (E, B, tau, m_v)
        mixed = ops.reshape(mixed, (size, -1, mixed.shape[-1]))  # (E, B tau, m_v)
        out = self._dense_stack(params, self.layout.F_hat, mixed)  # (E, B tau, d_out)
        out = ops.reshape(out, (size, batch, tau, out.shape[-1]))  # (E, B, tau, d_out)
        if self.output == "pooled":
            out = ops.mean(out, axis=2)  # (E, B, d_out)
        return out

    def _sample_errors(self, params, x, y, scale=None):
        """Per member and sample: mean squared error and Σ_t Σ_o |H − Ĥ|, ``(E, B)`` each."""
        diff = self._forward(params, x, scale) - y[None]
        axes = tuple(range(2, len(diff.shape)))
        return ops.mean(ops.square(diff), axis=axes), ops.sum(ops.abs(diff), axis=axes)

    def _loss(self, params, x, y, weights, scale):
        squared, _ = self._sample_errors(params, x, y, scale)  # (E, B)
        losses = ops.sum(squared * weights[None], axis=1) / ops.sum(weights)  # (E,)
        return ops.sum(losses), losses

    # Training ----------------------------------------------------------------

    def _gradients(self, params, x, y, weights, scale=None, group=None):
        """Per-member losses ``(E,)`` and gradients ``(E, P)``, group by group.

        ``scale`` (the members' logit factors) defaults to `self.scale` and
        ``group`` (members per evaluation, dividing E) to `self.group`; the
        finisher gives both for the members it evaluates.
        """
        size = params.shape[0]
        scale = ops.convert_to_tensor(self.scale if scale is None else scale)
        group = self.group if group is None else group
        if group == size:
            (_, losses), grads = self._value_and_grad(params, x, y, weights, scale)
            return losses, grads
        count = size // group

        def one_group(args):
            (_, losses), grads = self._value_and_grad(args[0], x, y, weights, args[1])
            return losses, grads

        losses, grads = ops.map(
            one_group,
            (
                ops.reshape(params, (count, group, -1)),  # (groups, G, P)
                ops.reshape(scale, (count, group)),
            ),
        )
        return ops.reshape(losses, (size,)), ops.reshape(grads, (size, -1))

    def _run_epoch(self, state, mask, learning_rate, order, weights, x, y):
        """One epoch over ``order`` (batches, B) with sample ``weights`` (batches, B).

        ``state`` is ``(params, m, v, steps, active, best_params, best_loss)``
        with the weights and Adam moments as flat ``(E, P)`` tensors;
        returns the new state, the epoch-mean losses ``(E,)`` and a flag
        ``(E,)`` for members whose loss turned non-finite (they stop before
        the update that would use it).
        """
        params, moments, velocities, steps, active, best_params, best_loss = state
        started = active

        def body(i, carry):
            params, moments, velocities, steps, active, bad, total = carry
            index = ops.take(order, i, axis=0)  # (B,)
            batch_weights = ops.take(weights, i, axis=0)  # (B,)
            x_batch = ops.take(x, index, axis=0)  # (B, tau, d)
            y_batch = ops.take(y, index, axis=0)  # (B, tau, d_out) or (B, d_out)
            losses, grads = self._gradients(params, x_batch, y_batch, batch_weights)
            finite = ops.isfinite(losses)
            bad = ops.logical_or(bad, ops.logical_and(active, ops.logical_not(finite)))
            active = ops.logical_and(active, finite)
            steps = steps + ops.cast(active, "float32")
            # keras.optimizers.Adam, one learning rate per member.
            alpha = adam_rate(learning_rate, steps)
            on = active[:, None]  # (E, 1)
            grads = ops.where(on, grads, ops.zeros_like(grads)) * mask  # (E, P)
            params, moments, velocities = adam_update(
                params, moments, velocities, grads, alpha[:, None], on
            )
            total = total + losses * ops.sum(batch_weights)
            return (params, moments, velocities, steps, active, bad, total)

        zeros = ops.zeros_like(best_loss)
        carry = (params, moments, velocities, steps, active, ops.zeros_like(active), zeros)
        params, moments, velocities, steps, active, bad, total = ops.fori_loop(
            0, order.shape[0], body, carry
        )
        epoch_loss = total / ops.sum(weights)  # (E,)
        improved = ops.logical_and(
            ops.logical_and(started, ops.logical_not(bad)), epoch_loss < best_loss
        )
        best_params = ops.where(improved[:, None], params, best_params)
        best_loss = ops.where(improved, epoch_loss, best_loss)
        state = (params, moments, velocities, steps, active, best_params, best_loss)
        return state, epoch_loss, bad

    def _evaluate(self, params, x, y, weights):
        """Sums over the weighted samples: ``(Σ MSE, Σ error)``, each ``(E,)``."""
        squared, absolute = self._sample_errors(params, x, y)
        return ops.sum(squared * weights[None], axis=1), ops.sum(absolute * weights[None], axis=1)


# Activation elements (batch · tau · widest layer · members) one gradient
# evaluation may hold before members are processed group by group: larger
# working sets fall out of the CPU caches, and a batched matmul over 16
# members of Fig. 5's size ran ~2x slower per member than over 4.
_GROUP_ELEMENTS = 2**19


def _on_accelerator():
    """Whether the Keras backend computes on a GPU or TPU rather than the CPU."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.default_backend() != "cpu"
    if backend == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))
    return False


def _group_size(size, batch, sequence_length, width):
    """Members per gradient evaluation: the largest divisor of ``size`` within `_GROUP_ELEMENTS`.

    On a GPU or TPU, every member at once: the groups exist for the CPU's
    caches, and on one H100 (JAX) they made a sweep of Fig. 5's size (32
    members, 16,384 steps) take 44 s instead of 32 s, compilation included.
    """
    if _on_accelerator():
        return size
    per_member = max(1, batch * sequence_length * width)
    limit = max(1, _GROUP_ELEMENTS // per_member)
    return max(g for g in range(1, size + 1) if size % g == 0 and g <= limit)


_ENGINES = {}
_ENGINE_CACHE_SIZE = 16


def _engine_for(layout, shapes, options, sequence_length, m_h, size, group):
    """A cached `_Engine`: members of the same shapes reuse one compiled epoch.

    The key holds the backend and, under TensorFlow, `jit_compile_enabled`:
    an engine compiled with XLA is not reused once the setting turns it off.
    """
    backend = keras.backend.backend()
    try:
        key = (
            backend,
            jit_compile_enabled() if backend == "tensorflow" else None,
            layout,
            tuple(tuple(shape) for shape in shapes),
            tuple(sorted(options.items())),
            sequence_length,
            tuple(m_h) if options.get("use_scale") else None,
            size,
            group,
        )
        hash(key)
    except TypeError:  # an option such as a callable activation that does not hash
        return _Engine(layout, shapes, options, sequence_length, m_h, size, group)
    if key not in _ENGINES:
        if len(_ENGINES) >= _ENGINE_CACHE_SIZE:
            _ENGINES.pop(next(iter(_ENGINES)))
        _ENGINES[key] = _Engine(layout, shapes, options, sequence_length, m_h, size, group)
    return _ENGINES[key]


def _pad(arrays):
    """Zero-pad same-rank arrays to their common largest shape and stack them; with masks."""
    shape = tuple(max(sizes) for sizes in zip(*(a.shape for a in arrays)))
    stacked = np.zeros((len(arrays), *shape), dtype="float32")
    mask = np.zeros_like(stacked)
    for i, array in enumerate(arrays):
        region = (i, *(slice(0, s) for s in array.shape))
        stacked[region] = array
        mask[region] = 1.0
    return stacked, mask


def _stack(member_weights):
    """Every member's weights padded and stacked: ``(stacked, flat)``.

    ``stacked`` holds one ``(padded (E, *shape), mask)`` pair per weight;
    ``flat`` is the ``(E, P)`` NumPy vector of the padded weights.
    """
    stacked = [_pad([w[j] for w in member_weights]) for j in range(len(member_weights[0]))]
    size = len(member_weights)
    return stacked, np.concatenate([p.reshape(size, -1) for p, _ in stacked], 1)


def _batches(num_samples, batch_size):
    """``(batches, B)``: batch count and the fixed batch width ``min(batch_size, N)``."""
    width = min(batch_size, num_samples)
    return -(-num_samples // width), width


def _padded_order(order, batch_size):
    """``order`` cut into ``(batches, B)`` rows plus 0/1 sample weights for a short last batch."""
    count, width = _batches(len(order), batch_size)
    padded = np.zeros(count * width, dtype="int32")
    weights = np.zeros(count * width, dtype="float32")
    padded[: len(order)] = order
    weights[: len(order)] = 1.0
    return padded.reshape(count, width), weights.reshape(count, width)


# ----------------------------------------------------------------------------
# Results


@dataclasses.dataclass
class EnsembleResult:
    """What `train_members` returns.

    Attributes:
        records: list of dict, one per member, JSON-ready: ``budget``
            (dict), ``seed``, ``loss`` (training MSE of the kept weights on
            the whole training set), ``error`` (paper A's norm on the
            training set: mean over inputs of Σ_t Σ_o |H_t − Ĥ_t|),
            ``val_loss`` and ``val_error`` (None without validation data),
            ``best_loss`` and ``final_loss`` (epoch-mean training losses),
            ``epochs``, ``stopped`` (``"max_epochs"``, ``"plateau"`` or
            ``"non_finite"``), ``message`` (None unless non-finite),
            ``learning_rate`` (initial) and ``final_learning_rate``,
            ``finisher`` (None, or `tfapprox.finisher.lbfgs`'s ``info``
            when ``finisher_steps`` > 0),
            ``parameter_count``, ``history`` (epoch-mean losses),
            ``seconds`` (the ensemble's wall time divided by its size),
            ``ensemble_seconds``, ``ensemble_size``, ``hyperparameters``,
            ``data`` and ``backend``.
        weights: list (per member) of lists of float32 NumPy arrays: the
            kept weights in ``build_transformer(...).get_weights()`` order.
        model_args: dict. ``sequence_length``, ``input_dim``,
            ``output_dim`` and the `build_transformer` options.
    """

    records: list
    weights: list
    model_args: dict
    padded_weights: list = dataclasses.field(default=None, repr=False, compare=False)
    masks: list = dataclasses.field(default=None, repr=False, compare=False)
    _engine: object = dataclasses.field(default=None, repr=False, compare=False)

    def __len__(self):
        return len(self.records)

    def budget(self, index):
        """The `Budget` of member ``index``."""
        return Budget.from_dict(self.records[index]["budget"])

    def member_model(self, index):
        """Member ``index`` as an ordinary `build_transformer` model with its kept weights."""
        from tfapprox.models import build_transformer

        index = check_int("index", index, minimum=0)
        if index >= len(self.records):
            raise ValueError(
                f"`index` must be < {len(self.records)}, the number of members. "
                f"Received: index={index}"
            )
        args = dict(self.model_args)
        model = build_transformer(
            self.budget(index),
            args.pop("sequence_length"),
            args.pop("input_dim"),
            output_dim=args.pop("output_dim"),
            name=f"member_{index}",
            **args,
        )
        model.set_weights(self.weights[index])
        return model

    def predict(self, x, batch_size=256):
        """Every member's Ĥ on ``x`` by the batched forward pass, ``(E, N, ...)``.

        Uses the padded, kept weights (`padded_weights`); it agrees with
        ``member_model(i).predict(x)`` for every member.
        """
        x = np.asarray(x, dtype="float32")
        expected = (self.model_args["sequence_length"], self.model_args["input_dim"])
        if x.ndim != 3 or x.shape[1:] != expected:
            raise ValueError(
                f"`x` must have shape (N, {expected[0]}, {expected[1]}). Received shape {x.shape}"
            )
        batch_size = check_positive_int("batch_size", batch_size)
        params = ops.convert_to_tensor(
            np.concatenate([w.reshape(len(self), -1) for w in self.padded_weights], axis=1)
        )
        outputs = [
            ops.convert_to_numpy(
                self._engine.predict(params, ops.convert_to_tensor(x[i : i + batch_size]))
            )
            for i in range(0, len(x), batch_size)
        ]
        return np.concatenate(outputs, axis=1)

    def to_dicts(self):
        """The records (JSON-ready dicts), one per member."""
        return [dict(record) for record in self.records]


# ----------------------------------------------------------------------------
# Training


def _label(budget, seed):
    fields = ", ".join(f"{key}={value}" for key, value in budget.to_dict().items())
    return f"budget ({fields}), seed {seed}"


def train_members(
    members,
    data,
    config=None,
    *,
    validation_data=None,
    model_kwargs=None,
    shuffle_seed=0,
    initial_weights=None,
    progress=None,
    finisher_progress=None,
    checkpoint=None,
):
    """Train E members (budget, seed) on the same data at once; keep each one's best weights.

    Member ``(budget, seed)`` starts from the weights of
    ``build_transformer(budget, ..., seed=seed)``: a function of the seed
    alone, so a chunk trained on a Dask worker starts where it would in
    this process. All members see the same batches in the same order (shuffled by
    ``shuffle_seed``, reshuffled each epoch). Each member has its own Adam
    state, learning rate, schedule and early stopping; the kept weights are
    those at the end of its epoch with the lowest finite training loss (or
    its initial weights).

    Args:
        members: list of ``(Budget, seed)`` pairs, or dicts with keys
            ``budget`` (a `Budget` or its dict), ``seed`` and optionally
            ``learning_rate`` (overrides ``config``'s for that member).
            Members may differ in n, m_h, m_v and m_FF, not in ``ff_depth``.
        data: `tfapprox.datasets.Dataset` or an ``(x, y)`` pair with ``x``
            ``(N, tau, d)`` and ``y`` ``(N, tau, d_out)`` (sequence output)
            or ``(N, d_out)`` (pooled output).
        config: training hyperparameters, see `training_config`. Defaults
            to `fit`'s.
        validation_data: Optional held-out data like ``data``; its loss and
            error are reported and do not steer training. Defaults to None.
        model_kwargs: dict or None. `build_transformer` options shared by
            every member: ``position_encoding``, ``projection_dim``,
            ``activation``, ``output_activation``, ``use_scale``,
            ``causal``, ``kink_range`` (``output`` follows ``y``'s shape).
            Defaults to None:
            ``config.model_kwargs`` (a different non-empty dict in both
            places is a ``ValueError``).
        shuffle_seed: int. Seed of the batch order. Defaults to 0.
        initial_weights: None, or a list with, per member, None or a list of
            arrays in ``get_weights()`` order to start from. Defaults to None.
        progress: callable or None. Called after every epoch as
            ``progress(epoch, states)`` (epoch counts from 1) with one dict
            per member: ``index``, ``budget``, ``seed``, ``loss`` (this
            epoch's, None once stopped), ``learning_rate``, ``epochs``,
            ``stopped`` (None while training). Defaults to None.
        finisher_progress: callable or None. Called at every batched
            evaluation of the L-BFGS finisher as ``finisher_progress(round,
            running)``: the rounds so far, this one included (about one per
            iteration of the slowest member), and the members it evaluates.
            Defaults to None.
        checkpoint: str, path-like or None. A ``.npz`` file that keeps the
            training state (weights, Adam moments, the recipe's counters and
            the batch order's generator) after an epoch, at most every
            `CHECKPOINT_EVERY` seconds, and when the epochs end. If the file
            holds the state of the same call (members, initial weights, data,
            settings and ``shuffle_seed``), training continues from it, so an
            interrupted call run again ends with the result an uninterrupted
            one has. During the L-BFGS finisher it is written again each
            time a member stops, with that member's result: run again, those
            members keep it, and the ones still running start again from the
            end of the epochs (L-BFGS from the same point takes the same
            steps; it cannot be continued mid-run with them). A file of
            another call is overwritten. The caller removes it when done.
            Defaults to None.

    Returns:
        `EnsembleResult`.

    Example:

    >>> members = [(Budget(n=8, m_h=m_h, m_ff=16), 0) for m_h in (1, 2, 4)]  # doctest: +SKIP
    >>> result = train_members(members, (x, y), {"epochs": 50})  # doctest: +SKIP
    >>> [record["error"] for record in result.records]  # doctest: +SKIP
    """
    start = time.perf_counter()
    members = _members(members)
    dataset = _dataset(data, "data")
    validation = None if validation_data is None else _dataset(validation_data, "validation_data")
    config = _as_config(config)
    if config.model_kwargs:
        # The config's model options apply unless the caller gives the same ones.
        if model_kwargs is not None and dict(model_kwargs) != dict(config.model_kwargs):
            raise ValueError(
                f"`model_kwargs` {model_kwargs!r} differs from `config.model_kwargs` "
                f"{config.model_kwargs!r}; give the model options in one place"
            )
        model_kwargs = dict(config.model_kwargs)
    config = training_config(config)
    options = _model_options(model_kwargs, dataset)
    shuffle_seed = check_seed("shuffle_seed", shuffle_seed)
    if progress is not None and not callable(progress):
        raise TypeError(f"`progress` must be callable or None. Received: {progress!r}")
    if checkpoint is not None:
        if not isinstance(checkpoint, (str, os.PathLike)) or not os.fspath(checkpoint):
            raise TypeError(f"`checkpoint` must be a file path or None. Received: {checkpoint!r}")
        checkpoint = os.fspath(checkpoint)
    if finisher_progress is not None and not callable(finisher_progress):
        raise TypeError(
            f"`finisher_progress` must be callable or None. Received: {finisher_progress!r}"
        )
    if validation is not None and (
        validation.x.shape[1:] != dataset.x.shape[1:]
        or validation.y.shape[1:] != dataset.y.shape[1:]
    ):
        raise ValueError(
            "`validation_data` must have the training data's shapes per sample: x "
            f"{dataset.x.shape[1:]}, y {dataset.y.shape[1:]}. Received: x "
            f"{validation.x.shape[1:]}, y {validation.y.shape[1:]}"
        )
    size = len(members)
    if initial_weights is not None and (
        not isinstance(initial_weights, (list, tuple)) or len(initial_weights) != size
    ):
        raise ValueError(
            f"`initial_weights` must be None or a list with one entry per member ({size})"
        )

    from tfapprox.models import build_transformer

    tau, input_dim, output_dim = dataset.sequence_length, dataset.input_dim, dataset.output_dim
    model_args = {
        "sequence_length": tau,
        "input_dim": input_dim,
        "output_dim": output_dim,
        **options,
    }
    member_weights, layout = [], None
    for index, (budget, seed, _) in enumerate(members):
        model = build_transformer(
            budget, tau, input_dim, output_dim=output_dim, seed=seed, **options
        )
        if layout is None:
            layout = _layout(model)
        weights = model.get_weights()
        given = None if initial_weights is None else initial_weights[index]
        if given is not None:
            if len(given) != len(weights) or any(
                np.shape(g) != w.shape for g, w in zip(given, weights)
            ):
                raise ValueError(
                    f"`initial_weights[{index}]` must match the shapes of the member's model: "
                    f"{[w.shape for w in weights]}"
                )
            weights = [np.asarray(g, dtype="float32") for g in given]
        member_weights.append(weights)
        del model
    stacked, flat = _stack(member_weights)
    shapes = [p.shape[1:] for p, _ in stacked]
    params = ops.convert_to_tensor(flat)
    mask = ops.convert_to_tensor(np.concatenate([m.reshape(size, -1) for _, m in stacked], 1))
    # Effective (unmasked) parameters: equals Budget.parameter_count.
    counts = [int(sum(m[i].sum() for _, m in stacked)) for i in range(size)]
    m_h = [budget.m_h for budget, _, _ in members]
    width = max(max(shape) for shape in shapes)
    group = _group_size(size, min(config["batch_size"], dataset.num_samples), tau, width)
    engine = _engine_for(layout, shapes, options, tau, m_h, size, group)

    x = ops.convert_to_tensor(dataset.x.astype("float32"))
    y = ops.convert_to_tensor(dataset.y.astype("float32"))
    base_rates = np.asarray(
        [config["learning_rate"] if rate is None else rate for _, _, rate in members],
        dtype="float64",
    )
    state = (
        params,
        ops.zeros_like(params),
        ops.zeros_like(params),
        ops.zeros((size,), dtype="float32"),
        ops.ones((size,), dtype="bool"),
        params,
        ops.full((size,), np.inf, dtype="float32"),
    )

    rng = np.random.default_rng(shuffle_seed)
    recipe = Recipe(
        config,
        base_rates,
        [f"Member {i} ({_label(budget, seed)})" for i, (budget, seed, _) in enumerate(members)],
    )
    first_epoch, adam_done, kept = 0, False, None
    if checkpoint is not None:
        key = _checkpoint_key(members, dataset, config, options, shuffle_seed, flat)
        resumed = _resume(checkpoint, key, rng, recipe)
        if resumed is not None:
            arrays, first_epoch, adam_done, seconds, kept = resumed
            state = tuple(ops.convert_to_tensor(a) for a in arrays)
            start -= seconds
        saved_at = time.perf_counter()

    def save(epoch, done, finisher=None):
        seconds = time.perf_counter() - start
        _keep(checkpoint, key, state, epoch, done, rng, recipe, seconds, finisher)

    for epoch in range(first_epoch, 0 if adam_done else config["epochs"]):
        order, weights = _padded_order(rng.permutation(dataset.num_samples), config["batch_size"])
        params_, m_, v_, steps_, _, best_params_, best_loss_ = state
        state = (
            params_,
            m_,
            v_,
            steps_,
            ops.convert_to_tensor(recipe.active),
            best_params_,
            best_loss_,
        )
        state, epoch_loss, bad = engine.run_epoch(
            state,
            mask,
            ops.convert_to_tensor(recipe.rates.astype("float32")),
            ops.convert_to_tensor(order),
            ops.convert_to_tensor(weights),
            x,
            y,
        )
        losses = recipe.end_epoch(
            epoch,
            ops.convert_to_numpy(epoch_loss).astype("float64"),
            ops.convert_to_numpy(bad),
        )
        if checkpoint is not None and time.perf_counter() - saved_at >= CHECKPOINT_EVERY:
            save(epoch + 1, False)
            saved_at = time.perf_counter()
        if progress is not None:
            progress(
                epoch + 1,
                [
                    {
                        **recipe.state(i, loss),
                        "budget": members[i][0].to_dict(),
                        "seed": members[i][1],
                    }
                    for i, loss in enumerate(losses)
                ],
            )
        if not recipe.active.any():
            break
    if checkpoint is not None and not adam_done:
        save(config["epochs"], True)  # the finisher starts from here
    recipe.finish()

    best_params = state[5]
    finished = [None] * size
    if config["finisher_steps"]:
        live = [i for i in range(size) if recipe.stopped[i] != "non_finite"]
        flat = ops.convert_to_numpy(best_params).copy()
        if live:
            stopped = on_stop = None
            if checkpoint is not None:
                # The members whose L-BFGS had stopped keep their result;
                # the others start again from the end of the epochs.
                stopped = _stopped_for(kept, live)

                def on_stop(results):
                    save(config["epochs"], True, (live, results))

            flat[live], infos = _finish_members(
                engine,
                flat[live],
                ops.convert_to_numpy(mask)[live],
                engine.scale[live],
                dataset,
                config["finisher_steps"],
                finisher_progress,
                stopped=stopped,
                on_stop=on_stop,
            )
            for i, info in zip(live, infos):
                finished[i] = info
        best_params = ops.convert_to_tensor(flat)
    best_numpy = [ops.convert_to_numpy(p) for p in engine.unflatten(best_params)]
    member_weights = [
        [
            p[i][tuple(slice(0, s) for s in w.shape)].copy()
            for p, w in zip(best_numpy, member_weights[i])
        ]
        for i in range(size)
    ]
    eval_batch = max(config["batch_size"], 256)
    train_scores = _scores(engine, best_params, dataset, eval_batch)
    val_scores = (
        None if validation is None else _scores(engine, best_params, validation, eval_batch)
    )
    elapsed = time.perf_counter() - start
    summary = {
        "sequence_length": int(tau),
        "input_dim": int(input_dim),
        "output_dim": int(output_dim),
        "task": dataset.task,
        "num_samples": int(dataset.num_samples),
    }
    records = []
    for i, (budget, seed, _) in enumerate(members):
        records.append(
            {
                "budget": budget.to_dict(),
                "seed": seed,
                "loss": float(train_scores[0][i]),
                "error": float(train_scores[1][i]),
                "val_loss": None if val_scores is None else float(val_scores[0][i]),
                "val_error": None if val_scores is None else float(val_scores[1][i]),
                **recipe.summary(i),
                "finisher": finished[i],
                "parameter_count": counts[i],
                "seconds": elapsed / size,
                "ensemble_seconds": elapsed,
                "ensemble_size": size,
                "hyperparameters": {
                    **config,
                    "shuffle_seed": shuffle_seed,
                    "model_kwargs": dict(model_kwargs or {}),
                },
                "data": dict(summary),
                "backend": keras.backend.backend(),
            }
        )
    return EnsembleResult(
        records=records,
        weights=member_weights,
        model_args=model_args,
        padded_weights=best_numpy,
        masks=[m for _, m in stacked],
        _engine=engine,
    )


# Samples per gradient evaluation of the L-BFGS finisher (as `finish_model`).
_FINISHER_CHUNK = 4096


# Seconds between two checkpoints of `train_members` (each writes four
# (E, P) arrays: the weights, Adam's two moments and the best weights).
CHECKPOINT_EVERY = 30.0


def _checkpoint_key(members, dataset, config, options, shuffle_seed, flat):
    """SHA-256 of everything that decides a `train_members` call's trajectory."""
    import hashlib
    import json

    from tfapprox import results

    identity = {
        "members": [[budget.to_dict(), seed, rate] for budget, seed, rate in members],
        "data": results.data_fingerprint(dataset),
        "config": config,
        "options": options,
        "shuffle_seed": shuffle_seed,
        "backend": keras.backend.backend(),
    }
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode())
    digest.update(np.ascontiguousarray(flat, dtype="float32").tobytes())  # the initial weights
    return digest.hexdigest()


def _load_checkpoint(path, key):
    """``(state arrays, meta, finisher)`` from a checkpoint of the call ``key``, or None.

    ``finisher`` is None, or ``(members, stopped)`` as `_keep` was given it.
    """
    import json
    import zipfile

    if not os.path.exists(path):
        return None
    try:
        with np.load(path, allow_pickle=False) as file:
            meta = json.loads(str(file["meta"]))
            if meta.get("key") != key:
                return None
            arrays = [file[f"state_{i}"] for i in range(meta["arrays"])]
            saved, finisher = meta.get("finisher"), None
            if saved is not None:
                stopped = [
                    None if info is None else (file[f"finisher_{j}"], info)
                    for j, info in enumerate(saved["infos"])
                ]
                finisher = (saved["members"], stopped)
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
        return None  # unreadable (a foreign or damaged file): start afresh
    return arrays, meta, finisher


def _save_checkpoint(path, key, state, meta, extra=None):
    """Write the training ``state``, ``meta`` and ``extra`` named arrays to ``path`` atomically."""
    import json

    from tfapprox import _io

    arrays = {f"state_{i}": ops.convert_to_numpy(a) for i, a in enumerate(state)}
    meta = {**meta, "key": key, "arrays": len(arrays)}
    _io.atomic_save_npz(path, meta=np.asarray(json.dumps(meta)), **arrays, **(extra or {}))


def _resume(path, key, rng, recipe):
    """Continue from ``path``'s checkpoint of the call ``key``, if there is one.

    Sets the batch-order generator ``rng`` and the host-side ``recipe`` to
    their saved states and returns ``(state arrays, first epoch, adam_done,
    seconds so far, finisher)`` (``finisher``: see `_load_checkpoint`);
    None (nothing changed) without a usable checkpoint.
    """
    saved = _load_checkpoint(path, key)
    if saved is None:
        return None
    arrays, meta, finisher = saved
    rng.bit_generator.state = meta["rng"]
    recipe.load_state(meta["recipe"])
    return arrays, meta["epoch"], meta["adam_done"], meta["seconds"], finisher


def _stopped_for(finisher, members):
    """The finisher results a checkpoint kept for ``members``, or None if it kept none for them."""
    if finisher is None or finisher[0] != list(members):
        return None
    return finisher[1]


def _keep(path, key, state, epoch, done, rng, recipe, seconds, finisher=None):
    """Checkpoint a training call after ``epoch`` (``done``: its epochs are over).

    ``finisher``: None, or ``(members, stopped)``: the members the L-BFGS
    finisher runs on and, per member, None or the ``(weights, info)`` it
    stopped with (`_finish_members`' ``on_stop``).
    """
    meta = {
        "epoch": epoch,
        "adam_done": done,
        "rng": rng.bit_generator.state,
        "recipe": recipe.to_state(),
        "seconds": seconds,
    }
    extra = {}
    if finisher is not None:
        members, stopped = finisher
        meta["finisher"] = {
            "members": list(members),
            "infos": [None if result is None else result[1] for result in stopped],
        }
        for j, result in enumerate(stopped):
            if result is not None:
                extra[f"finisher_{j}"] = np.asarray(result[0], dtype="float32")
    _save_checkpoint(path, key, state, meta, extra)


def _finisher_sizes(size):
    """The member counts the finisher evaluates at: ``size``, then halved (rounded up) to 1.

    As members stop, the running ones are padded to the next of these, so
    the compiled evaluation is traced at most ``log2(size) + 2`` times (once
    per number of running members, it was traced up to ``size`` times, each
    a few seconds on a CPU) and does at most twice the needed work.

    >>> _finisher_sizes(12)
    [12, 6, 3, 2, 1]
    """
    sizes = [size]
    while sizes[-1] > 1:
        sizes.append(-(-sizes[-1] // 2))
    return sizes


def _finish_members(
    engine, flat, mask, scale, dataset, steps, progress=None, stopped=None, on_stop=None
):
    """Full-batch L-BFGS on the members ``flat`` of ``engine``'s layout at once.

    `tfapprox.finisher.lbfgs_members` runs one L-BFGS per member; each round
    evaluates the members still running in one compiled call of the
    engine's per-member loss and gradient (the members are independent, so
    the gradient of their summed losses is each one's own) over the whole
    training set, in chunks of `_FINISHER_CHUNK` samples. The call is
    traced once per size of `_finisher_sizes`. Gradients are masked, so
    padded weights stay zero: each member's iterates are those of L-BFGS
    on its own model (`tfapprox.finisher.finish_model`).

    Args:
        engine: the `_Engine` that trained them.
        flat, mask: NumPy ``(E, P)``: the members' padded weights and 0/1 masks.
        scale: NumPy ``(E,)``: their logit factors.
        dataset: the training `Dataset`.
        steps: int. The most L-BFGS iterations per member.
        progress: callable ``(round, running)`` or None, called at each
            batched evaluation.
        stopped: None, or per member None or the ``(weights, info)`` it
            stopped with in an interrupted call: those members keep it, and
            the others run as in an uninterrupted call.
        on_stop: callable or None, given that list (NumPy ``(P,)`` weights)
            whenever a member has stopped since the last call.

    Returns:
        ``(flat, infos)``: the finished weights ``(E, P)`` and `lbfgs`'s
        ``info`` per member.
    """
    from tfapprox.finisher import lbfgs_members

    _, compile_ = _backend_tools()
    rows = min(_FINISHER_CHUNK, dataset.num_samples)
    width = max(max(shape) for shape in engine.shapes)

    def member_gradients(params, member_scale, x, y, weights):
        group = _group_size(params.shape[0], rows, dataset.sequence_length, width)
        return engine._gradients(params, x, y, weights, member_scale, group)

    gradients = compile_(member_gradients)
    order, row_weights = _padded_order(np.arange(dataset.num_samples), rows)
    x = dataset.x.astype("float32")
    y = dataset.y.astype("float32")
    chunks = [
        (
            ops.convert_to_tensor(x[chunk]),
            ops.convert_to_tensor(y[chunk]),
            ops.convert_to_tensor(weights),
            float(weights.sum()),
        )
        for chunk, weights in zip(order, row_weights)
    ]
    size = len(flat)
    results = [None] * size if stopped is None else list(stopped)
    todo = [i for i in range(size) if results[i] is None]
    mask = np.asarray(mask, dtype="float64")[todo]
    scale = np.asarray(scale, dtype="float32")[todo]

    rounds = [0]
    sizes = _finisher_sizes(max(1, len(todo)))

    def value_and_grads(points, members):
        rounds[0] += 1
        if progress is not None:
            progress(rounds[0], len(members))
        # Padded to a size of `sizes` with copies of the last point (their
        # results are dropped), so the call compiles a few times, not once
        # per number of running members.
        count = len(members)
        padded = list(members) + [members[-1]] * (min(s for s in sizes if s >= count) - count)
        points = np.concatenate([points, np.repeat(points[-1:], len(padded) - count, axis=0)])
        params = ops.convert_to_tensor(points.astype("float32"))
        member_scale = ops.convert_to_tensor(scale[padded])
        losses, grads = 0.0, 0.0
        for x_chunk, y_chunk, weights, rows_in in chunks:
            # `_loss` averages over the chunk's samples: weight by their count.
            chunk_losses, chunk_grads = gradients(params, member_scale, x_chunk, y_chunk, weights)
            losses = losses + rows_in * ops.convert_to_numpy(chunk_losses).astype("float64")
            grads = grads + rows_in * ops.convert_to_numpy(chunk_grads).astype("float64")
        losses, grads = losses[:count], grads[:count]
        return losses / dataset.num_samples, mask[members] * grads / dataset.num_samples

    seen = [sum(r is not None for r in results)]

    def on_round(now):
        for i, result in zip(todo, now):
            if result is not None:
                results[i] = result
        count = sum(r is not None for r in results)
        if count > seen[0]:
            seen[0] = count
            on_stop(list(results))

    if todo:
        weights, infos = lbfgs_members(
            value_and_grads,
            np.asarray(flat)[todo],
            steps,
            on_round=None if on_stop is None else on_round,
        )
        for row, i in enumerate(todo):
            results[i] = (weights[row], infos[row])
    weights = np.stack([np.asarray(w, dtype="float32") for w, _ in results])
    return weights, [info for _, info in results]


def _scores(engine, params, dataset, batch_size):
    """Per member over ``dataset``: (mean MSE, mean Σ_t Σ_o |H − Ĥ|), NumPy ``(E,)`` each."""
    return mean_scores(
        lambda x, y, weights: engine.evaluate(params, x, y, weights),
        dataset.x.astype("float32"),
        dataset.y.astype("float32"),
        batch_size,
    )


def mean_scores(evaluate, x, y, batch_size):
    """Means over the samples of the two weighted sums ``evaluate(x, y, weights)`` returns.

    ``evaluate`` maps a batch of ``batch_size`` rows (a short last batch is
    padded, with 0/1 sample ``weights``) to two per-model sums ``(K,)``;
    the result is two NumPy ``(K,)`` float64 arrays, each divided by N.
    """
    order, weights = _padded_order(np.arange(len(x)), batch_size)
    first = second = 0.0
    for rows, row_weights in zip(order, weights):
        a, b = evaluate(
            ops.convert_to_tensor(x[rows]),
            ops.convert_to_tensor(y[rows]),
            ops.convert_to_tensor(row_weights),
        )
        first = first + ops.convert_to_numpy(a).astype("float64")
        second = second + ops.convert_to_numpy(b).astype("float64")
    return first / len(x), second / len(x)


def __getattr__(name):
    # `train_models` (any Keras models) lives in tfapprox.group, which imports this module.
    if name == "train_models":
        from tfapprox.group import train_models

        return train_models
    raise AttributeError(f"module 'tfapprox.engine' has no attribute {name!r}")
