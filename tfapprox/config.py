"""`TrainingConfig`: the training hyperparameters of `tfapprox.training.fit`, in one place.

Every setting that shapes how a model is trained lives here once, with its
default, its valid range and its help text (in the field's metadata). The
rest of tfapprox reads it from here:

- `tfapprox.training.fit` takes ``config=`` (or the same names as keyword
  arguments, which override it);
- `tfapprox.sweeps.sweep` trains every run of a sweep with one config;
- a results file records ``config.to_dict()`` as each run's
  ``"hyperparameters"``, which with the budget and the seed is the run's key
  (`tfapprox.results.run_key`);
- ``tfapprox train`` generates one command-line option per field
  (`cli_options`), with the field's help text and range.

Adding a setting is adding a field here (with a default, so results files
written before it still resolve to the same keys; see
`tfapprox.results.run_key`).

This module imports only the standard library.

Example:

>>> config = TrainingConfig(epochs=50)
>>> config.epochs, config.batch_size, config.schedule
(50, 32, 'cosine')
>>> config.replace(patience=9).to_dict()["reduce_lr_patience"]  # max(1, patience // 3)
3
>>> TrainingConfig.from_dict({"epochs": 0})
Traceback (most recent call last):
...
ValueError: `epochs` must be a positive int. Received: epochs=0
"""

import dataclasses
import json

from tfapprox._checks import check_int, check_real

__all__ = ["SCHEDULES", "TrainingConfig", "cli_options"]

# How the learning rate moves: reduced on plateaus of the training loss,
# cosine decay (after an optional linear warm-up), or constant.
SCHEDULES = ("plateau", "cosine", "constant")


def _setting(default=None, *, help, kind, default_factory=None, **rule):
    """A dataclass field with its help text and validation rule in the metadata.

    ``kind`` is ``"int"`` (``minimum``, ``optional``), ``"real"`` (``low``,
    ``high``, ``low_open``, ``high_open``), ``"choice"`` (``choices``) or
    ``"dict"``; ``cli`` (default True except for dicts) says whether
    ``tfapprox train`` offers it as an option.
    """
    metadata = {"help": help, "kind": kind, "cli": rule.pop("cli", kind != "dict"), **rule}
    if default_factory is not None:
        return dataclasses.field(default_factory=default_factory, metadata=metadata)
    return dataclasses.field(default=default, metadata=metadata)


def _check(field, value):
    """Validate one field's value by its metadata rule; return it normalised."""
    rule = field.metadata
    name = field.name
    if rule["kind"] == "int":
        return check_int(
            name, value, minimum=rule.get("minimum", 1), allow_none=rule.get("optional", False)
        )
    if rule["kind"] == "choice":
        from tfapprox._checks import check_choice

        return check_choice(name, value, rule["choices"])
    if rule["kind"] == "real":
        value = check_real(name, value, low=rule.get("low"), low_open=rule.get("low_open", False))
        high = rule.get("high")
        if high is not None and (value >= high if rule.get("high_open") else value > high):
            sign = "<" if rule.get("high_open") else "<="
            raise ValueError(f"`{name}` must be {sign} {high:g}. Received: {name}={value!r}")
        return value
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise TypeError(f"`{name}` must be a dict. Received: {type(value).__name__}")
    try:
        json.dumps(value)
    except (TypeError, ValueError) as err:
        raise TypeError(f"`{name}` must be JSON-serialisable: {err}") from None
    return dict(value)


@dataclasses.dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    """How `tfapprox.training.fit` trains: optimiser, schedule, stopping and restarts.

    Adam from ``learning_rate``, moved by ``schedule``: by default a linear
    warm-up over ``warmup_epochs``, then cosine decay to
    ``min_learning_rate`` at the last of the ``epochs``; with ``"plateau"``
    the learning rate is instead multiplied by ``reduce_lr_factor`` after
    ``reduce_lr_patience`` epochs without improvement of the training loss
    (down to ``min_learning_rate``). With a ``patience``, a restart stops
    after that many epochs without improvement, where an epoch improves on
    the reference loss L when its loss is below ``L · (1 − min_rel_delta) −
    min_delta``; by default it runs every epoch (a schedule is worth
    finishing: early stopping ends cosine runs at their noisy high-rate
    start). ``restarts`` independent initialisations are trained and the
    best is kept; every restart keeps the weights of its best epoch.

    The defaults (Adam 3e-3, 5 warm-up epochs, cosine, batch 32, 300
    epochs, no early stop) are the recipe measured in
    ``analysis/RECIPE.md`` ("The sweep's default recipe") against the
    former ones (Adam 1e-3 on plateaus, batch 64, up to 500 epochs,
    patience 30) on paper A's Fig. 5 model.

    Every argument is keyword-only and validated on construction
    (`TypeError`/`ValueError` naming it). The config is frozen: use
    `replace` for a changed copy.

    Args:
        epochs: int. Maximum epochs per restart (the cosine schedule's
            length). Defaults to 300.
        batch_size: int. Defaults to 32.
        learning_rate: float > 0. Initial (peak) Adam learning rate.
            Defaults to 3e-3.
        restarts: int. Independent initialisations; the best is kept.
            Defaults to 1.
        patience: int or None. Epochs without improvement before stopping;
            None never stops early. Defaults to None.
        min_delta: float >= 0. Smallest absolute loss decrease that counts
            as an improvement. Defaults to 0.0.
        min_rel_delta: float in [0, 1). Smallest relative decrease that
            counts. Defaults to 1e-3: a loss creeping down by less than 0.1%
            in ``patience`` epochs is a plateau.
        reduce_lr_factor: float in (0, 1). Learning-rate factor on a
            plateau. Defaults to 0.5.
        reduce_lr_patience: int or None. Epochs without improvement before
            reducing the learning rate; None means ``max(1, patience // 3)``,
            or 10 without a ``patience``. Defaults to None.
        min_learning_rate: float >= 0. Floor of the learning rate.
            Defaults to 1e-6.
        schedule: str. ``"plateau"`` (multiply by ``reduce_lr_factor`` on a
            plateau), ``"cosine"`` (per epoch ``lr_min + (lr − lr_min)(1 +
            cos(π e / E))/2`` after the warm-up) or ``"constant"``. Defaults
            to ``"cosine"``.
        warmup_epochs: int >= 0 or None. Linear warm-up epochs (not with
            ``"plateau"``); None means ``min(5, epochs)`` for the cosine schedule
            and 0 for the others. Defaults to None.
        model_kwargs: dict. Extra `tfapprox.models.build_transformer`
            arguments (e.g. ``position_encoding``) when `fit` builds the
            model from a budget. Defaults to ``{}``.
        finisher_steps: int >= 0. Full-batch L-BFGS iterations on the
            mean squared error from the kept weights after the epochs
            (`tfapprox.finisher`; not for class labels); 0 runs none.
            Defaults to 0.
    """

    epochs: int = _setting(300, kind="int", help="Maximum epochs per restart.")
    batch_size: int = _setting(32, kind="int", help="Batch size.")
    learning_rate: float = _setting(
        3e-3, kind="real", low=0, low_open=True, help="Initial (peak) Adam learning rate."
    )
    restarts: int = _setting(1, kind="int", help="Independent initialisations; the best is kept.")
    patience: int = _setting(
        None,
        kind="int",
        optional=True,
        help="Epochs without improvement before stopping.  [default: none, every epoch runs]",
    )
    min_delta: float = _setting(
        0.0, kind="real", low=0, help="Smallest absolute loss decrease that counts."
    )
    min_rel_delta: float = _setting(
        1e-3,
        kind="real",
        low=0,
        high=1,
        high_open=True,
        help="Smallest relative loss decrease that counts.",
    )
    reduce_lr_factor: float = _setting(
        0.5,
        kind="real",
        low=0,
        low_open=True,
        high=1,
        high_open=True,
        help="Learning-rate factor on a plateau.",
    )
    reduce_lr_patience: int = _setting(
        None,
        kind="int",
        optional=True,
        help="Epochs without improvement before reducing the learning rate.  "
        "[default: max(1, PATIENCE // 3)]",
    )
    min_learning_rate: float = _setting(
        1e-6, kind="real", low=0, help="Floor of the learning rate."
    )
    schedule: str = _setting(
        "cosine",
        kind="choice",
        choices=SCHEDULES,
        help="Learning-rate schedule: cosine, plateau (reduce on plateau) or constant.",
    )
    warmup_epochs: int = _setting(
        None,
        kind="int",
        minimum=0,
        optional=True,
        help="Epochs of linear learning-rate warm-up (cosine and constant schedules).  "
        "[default: min(5, EPOCHS) for cosine, else 0]",
    )
    model_kwargs: dict = _setting(
        kind="dict",
        default_factory=dict,
        help="Extra build_transformer arguments when fit builds the model from a budget.",
    )
    finisher_steps: int = _setting(
        0,
        kind="int",
        minimum=0,
        help="Full-batch L-BFGS iterations after the epochs (mean squared error; 0: none).",
    )

    def __post_init__(self):
        for field in dataclasses.fields(self):
            object.__setattr__(self, field.name, _check(field, getattr(self, field.name)))
        if self.warmup_epochs is None:
            return
        if self.warmup_epochs and self.schedule == "plateau":
            raise ValueError(
                "`warmup_epochs` applies to the 'cosine' and 'constant' schedules only. "
                f"Received: warmup_epochs={self.warmup_epochs} with schedule='plateau'"
            )
        if self.warmup_epochs > self.epochs:
            raise ValueError(
                "`warmup_epochs` must be at most `epochs` (the warm-up is part of the "
                f"schedule). Received: warmup_epochs={self.warmup_epochs}, epochs={self.epochs}"
            )

    def scheduled_rate(self, epoch, base=None):
        """The learning rate of ``epoch`` (0-based) under the cosine or constant schedule.

        Linear warm-up over ``warmup_epochs``, then constant, or cosine decay
        from ``base`` (default ``learning_rate``) to ``min_learning_rate``
        at the last epoch. The plateau schedule has no fixed rate per epoch
        (it reacts to the loss): this returns ``base`` for it.

        >>> config = TrainingConfig(epochs=4, warmup_epochs=0, min_learning_rate=0.0)
        >>> [round(config.scheduled_rate(e, 1.0), 3) for e in range(4)]
        [1.0, 0.854, 0.5, 0.146]
        >>> [round(config.replace(warmup_epochs=None).scheduled_rate(e, 1.0), 3) for e in range(4)]
        [0.25, 0.5, 0.75, 1.0]
        """
        import math

        if epoch < 0:
            raise ValueError(f"`epoch` is 0-based and must be >= 0. Received: epoch={epoch!r}")
        base = self.learning_rate if base is None else base
        if self.schedule == "plateau":
            return base
        warmup = self.effective_warmup_epochs
        if epoch < warmup:
            return base * (epoch + 1) / warmup
        if self.schedule == "constant":
            return base
        span = max(1, self.epochs - warmup)
        floor = min(self.min_learning_rate, base)
        return floor + (base - floor) * 0.5 * (1.0 + math.cos(math.pi * (epoch - warmup) / span))

    @property
    def effective_reduce_lr_patience(self):
        """``reduce_lr_patience``, or ``max(1, patience // 3)`` (10 without a patience) when None."""
        if self.reduce_lr_patience is None:
            return 10 if self.patience is None else max(1, self.patience // 3)
        return self.reduce_lr_patience

    @property
    def effective_warmup_epochs(self):
        """``warmup_epochs``, or when it is None ``min(5, epochs)`` for cosine, else 0.

        >>> TrainingConfig(epochs=3).effective_warmup_epochs
        3
        >>> TrainingConfig(schedule="constant").effective_warmup_epochs
        0
        """
        if self.warmup_epochs is not None:
            return self.warmup_epochs
        return min(5, self.epochs) if self.schedule == "cosine" else 0

    @classmethod
    def names(cls):
        """The field names, in order.

        >>> TrainingConfig.names()[:3]
        ('epochs', 'batch_size', 'learning_rate')
        """
        return tuple(field.name for field in dataclasses.fields(cls))

    def to_dict(self):
        """The settings as a JSON-ready dict, as results files record them.

        ``reduce_lr_patience`` and ``warmup_epochs`` are resolved (the
        numbers of epochs used), so the dict says exactly how the model was
        trained.

        >>> settings = TrainingConfig().to_dict()
        >>> settings["reduce_lr_patience"], settings["warmup_epochs"], settings["patience"]
        (10, 5, None)
        """
        out = {name: getattr(self, name) for name in self.names()}
        out["reduce_lr_patience"] = self.effective_reduce_lr_patience
        out["warmup_epochs"] = self.effective_warmup_epochs
        out["model_kwargs"] = dict(self.model_kwargs)
        return out

    @classmethod
    def from_dict(cls, config):
        """A config from a dict of settings (missing ones take their defaults).

        Raises:
            TypeError: ``config`` is not a dict.
            ValueError: unknown keys (named), or a bad value.

        >>> TrainingConfig.from_dict({"epochs": 5, "speed": 2})
        Traceback (most recent call last):
        ...
        ValueError: Unknown TrainingConfig settings ['speed']; known: epochs, batch_size, learning_rate, restarts, patience, min_delta, min_rel_delta, reduce_lr_factor, reduce_lr_patience, min_learning_rate, schedule, warmup_epochs, model_kwargs, finisher_steps
        """
        if not isinstance(config, dict):
            raise TypeError(f"`config` must be a dict. Received: {type(config).__name__}")
        unknown = sorted(set(config) - set(cls.names()))
        if unknown:
            raise ValueError(
                f"Unknown TrainingConfig settings {unknown}; known: {', '.join(cls.names())}"
            )
        return cls(**config)

    @classmethod
    def coerce(cls, config):
        """``config`` as a `TrainingConfig`: None (the defaults), a dict of settings, or one.

        >>> TrainingConfig.coerce({"epochs": 5}).epochs, TrainingConfig.coerce(None).epochs
        (5, 300)
        >>> TrainingConfig.coerce(5)
        Traceback (most recent call last):
        ...
        TypeError: `config` must be a TrainingConfig, a dict of its settings or None. Received: int
        """
        if config is None:
            return cls()
        if isinstance(config, dict):
            return cls.from_dict(config)
        if not isinstance(config, cls):
            raise TypeError(
                "`config` must be a TrainingConfig, a dict of its settings or None. "
                f"Received: {type(config).__name__}"
            )
        return config

    def replace(self, **changes):
        """A copy with ``changes`` applied (validated like the constructor).

        >>> TrainingConfig().replace(epochs=3).epochs
        3
        """
        unknown = sorted(set(changes) - set(self.names()))
        if unknown:
            raise TypeError(
                f"Unknown TrainingConfig settings {unknown}; known: {', '.join(self.names())}"
            )
        return dataclasses.replace(self, **changes)


def cli_options():
    """The settings offered on the command line, as plain dicts.

    One dict per field with ``metadata["cli"]``: ``name`` (the field),
    ``flag`` (``--batch-size``), ``kind``, ``default``, ``help`` and the
    range (``minimum`` or ``low``/``high``/``low_open``/``high_open``). The
    CLI turns them into click options, so the help text, the default and the
    range are written once, here.

    >>> [option["flag"] for option in cli_options()][:3]
    ['--epochs', '--batch-size', '--learning-rate']
    """
    options = []
    for field in dataclasses.fields(TrainingConfig):
        if not field.metadata.get("cli"):
            continue
        options.append(
            {
                **{key: value for key, value in field.metadata.items() if key != "cli"},
                "name": field.name,
                "flag": "--" + field.name.replace("_", "-"),
                "default": field.default,
            }
        )
    return options
