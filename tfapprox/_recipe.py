"""The host-side training recipe of the batched trainers, one state per model.

`tfapprox.engine.train_members` (padded members of paper A's model) and
`tfapprox.group.train_models` (any Keras models) both run a whole epoch in
one compiled call and then, on the host, decide per model what happens
next. That decision is the recipe of `tfapprox.config.TrainingConfig`,
written once here:

- the learning rate of the next epoch: ``"plateau"`` (reduce on a plateau of
  the training loss, as `keras.callbacks.ReduceLROnPlateau`), ``"cosine"``
  or ``"constant"`` (with the linear warm-up), `TrainingConfig.scheduled_rate`;
- early stopping (with a ``patience``; None runs every epoch): a model
  stops after ``patience`` epochs whose loss is not below
  ``L · (1 − min_rel_delta) − min_delta`` (L the reference loss), as
  `tfapprox.training.fit`'s guard; a stopped model is frozen;
- a NaN/inf loss stops only that model, with a `RuntimeWarning` saying which
  weights are kept;
- the epoch-mean loss history and the best epoch.

This module imports only NumPy and the standard library.
"""

import math
import warnings

import numpy as np


def _schedule_rate(config, base, epoch):
    """The learning rate of ``epoch`` (0-based): `TrainingConfig.scheduled_rate`."""
    from tfapprox.config import TrainingConfig

    return TrainingConfig.from_dict(config).scheduled_rate(epoch, base)


def _reduce_on_plateau(i, loss, rates, best, wait, config):
    """`keras.callbacks.ReduceLROnPlateau` (monitor the training loss, no cooldown)."""
    if loss < best[i] - config["min_delta"]:
        best[i], wait[i] = loss, 0
        return rates[i]
    wait[i] += 1
    if wait[i] >= config["reduce_lr_patience"] and rates[i] > np.float32(
        config["min_learning_rate"]
    ):
        wait[i] = 0
        return max(rates[i] * config["reduce_lr_factor"], config["min_learning_rate"])
    return rates[i]


class Recipe:
    """Per-model schedules, early stopping and non-finite stops, updated once per epoch.

    Args:
        config: dict of settings (`tfapprox.engine.training_config`).
        base_rates: sequence of float. Each model's initial learning rate.
        labels: sequence of str. How a message names each model, e.g.
            ``"Model 1 ('rnn')"``.

    Attributes:
        rates: float64 array ``(K,)``. The learning rates of the next epoch.
        active: bool array ``(K,)``. Models still training.
        stopped: list. None while training, then ``"plateau"``,
            ``"non_finite"`` or (after `finish`) ``"max_epochs"``.
        messages, epochs, history: per model: the non-finite message (or
            None), epochs run, finite epoch-mean losses.

    Example:

    >>> config = {"schedule": "constant", "warmup_epochs": 0, "epochs": 5, "patience": 2,
    ...           "min_delta": 0.0, "min_rel_delta": 0.0}
    >>> recipe = Recipe(config, [1e-3, 1e-3], ["a", "b"])
    >>> for epoch, losses in enumerate([[1.0, 1.0], [1.0, 0.5], [1.0, 0.4]]):
    ...     _ = recipe.end_epoch(epoch, losses, [False, False])
    >>> recipe.stopped, recipe.epochs, recipe.active.tolist()
    (['plateau', None], [3, 3], [False, True])
    """

    def __init__(self, config, base_rates, labels):
        self.config = config
        self.base_rates = np.asarray(base_rates, dtype="float64")
        self.labels = list(labels)
        size = len(self.base_rates)
        self.rates = self.base_rates.copy()
        if config["schedule"] != "plateau":
            self.rates = np.asarray([_schedule_rate(config, r, 0) for r in self.base_rates])
        self.active = np.ones(size, dtype=bool)
        self.stopped = [None] * size
        self.messages = [None] * size
        self.epochs = [0] * size
        self.history = [[] for _ in range(size)]
        self._best_epoch = [None] * size
        self._best_seen = [math.inf] * size
        self._reference = [math.inf] * size
        self._wait = [0] * size
        self._lr_best = [math.inf] * size
        self._lr_wait = [0] * size

    def end_epoch(self, epoch, epoch_loss, bad):
        """Update every active model after ``epoch`` (0-based).

        Args:
            epoch: int. The epoch that just ran.
            epoch_loss: sequence of float, the epoch-mean losses.
            bad: sequence of bool, True for a model whose loss turned
                non-finite during the epoch.

        Returns:
            list: per model, the epoch's loss, or None if it was not training.
        """
        config = self.config
        out = []
        for i in range(len(self.active)):
            if not self.active[i]:
                out.append(None)
                continue
            self.epochs[i] = epoch + 1
            loss = float(epoch_loss[i])
            out.append(loss)
            if bad[i] or not math.isfinite(loss):
                self._stop_non_finite(i, epoch, loss)
            else:
                self.history[i].append(loss)
                if loss < self._best_seen[i]:
                    self._best_seen[i], self._best_epoch[i] = loss, epoch
                # Early stopping (as fit's guard).
                if (
                    loss
                    < self._reference[i] * (1.0 - config["min_rel_delta"]) - config["min_delta"]
                ):
                    self._reference[i], self._wait[i] = loss, 0
                else:
                    self._wait[i] += 1
                    if config["patience"] is not None and self._wait[i] >= config["patience"]:
                        self.stopped[i] = "plateau"
                if config["schedule"] == "plateau":
                    self.rates[i] = _reduce_on_plateau(
                        i, loss, self.rates, self._lr_best, self._lr_wait, config
                    )
                else:
                    self.rates[i] = _schedule_rate(config, self.base_rates[i], epoch + 1)
            self.active[i] = self.stopped[i] is None
        return out

    # The attributes that change while training: what a checkpoint keeps.
    _PROGRESS = (
        "rates",
        "active",
        "stopped",
        "messages",
        "epochs",
        "history",
        "_best_epoch",
        "_best_seen",
        "_reference",
        "_wait",
        "_lr_best",
        "_lr_wait",
    )

    def to_state(self):
        """The recipe's progress as a JSON-ready dict (±inf as strings), for `load_state`.

        >>> config = {"schedule": "constant", "warmup_epochs": 0, "epochs": 5, "patience": 2,
        ...           "min_delta": 0.0, "min_rel_delta": 0.0}
        >>> recipe = Recipe(config, [1e-3], ["a"])
        >>> _ = recipe.end_epoch(0, [2.0], [False])
        >>> again = Recipe(config, [1e-3], ["a"])
        >>> again.load_state(recipe.to_state())
        >>> again.history, again.epochs, again._reference
        ([[2.0]], [1], [2.0])
        """

        def plain(value):
            if isinstance(value, np.ndarray):
                return [plain(v) for v in value.tolist()]
            if isinstance(value, list):
                return [plain(v) for v in value]
            if isinstance(value, float) and math.isinf(value):
                return "inf" if value > 0 else "-inf"
            return value

        return {name: plain(getattr(self, name)) for name in self._PROGRESS}

    def load_state(self, state):
        """Continue from a `to_state` dict of a recipe with the same models."""

        def number(value):
            if isinstance(value, list):
                return [number(v) for v in value]
            return float(value) if value in ("inf", "-inf") else value

        for name in self._PROGRESS:
            value = number(state[name])
            if name == "rates":
                value = np.asarray(value, dtype="float64")
            elif name == "active":
                value = np.asarray(value, dtype=bool)
            setattr(self, name, value)

    def state(self, i, loss):
        """Model ``i``'s progress dict: ``index``, ``loss``, ``learning_rate``, ``epochs``, ``stopped``."""
        return {
            "index": i,
            "loss": loss,
            "learning_rate": float(self.rates[i]),
            "epochs": self.epochs[i],
            "stopped": self.stopped[i],
        }

    def finish(self):
        """Mark the models that never stopped as ``"max_epochs"``."""
        self.stopped = ["max_epochs" if s is None else s for s in self.stopped]

    def summary(self, i):
        """The recipe's part of model ``i``'s record (JSON-ready)."""
        finite = [h for h in self.history[i] if math.isfinite(h)]
        return {
            "best_loss": min(finite) if finite else math.nan,
            "final_loss": finite[-1] if finite else math.nan,
            "epochs": self.epochs[i],
            "stopped": self.stopped[i],
            "message": self.messages[i],
            "learning_rate": float(self.base_rates[i]),
            "final_learning_rate": float(self.rates[i]),
            "history": list(self.history[i]),
        }

    def _stop_non_finite(self, i, epoch, loss):
        if self._best_epoch[i] is None:
            kept = "keeping the initial weights"
        else:
            kept = (
                f"keeping the weights of epoch {self._best_epoch[i] + 1} "
                f"(loss {self._best_seen[i]:.6g})"
            )
        self.stopped[i] = "non_finite"
        self.messages[i] = (
            f"{self.labels[i]} stopped in epoch {epoch + 1}: the training loss is {loss}; "
            f"{kept}. Lower its learning rate or rescale the data."
        )
        warnings.warn(self.messages[i], RuntimeWarning, stacklevel=4)
