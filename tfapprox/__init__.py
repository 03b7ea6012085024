"""tfapprox: the approximation theory of Transformers, as a Keras toolkit.

Jiang & Li (NeurIPS 2024) bound the error of a one-layer, one-head
Transformer by

    τ² · ( C_β / m_h^{2β−1} + C_α · m_h^{α+1} / m_FF^α )

tfapprox implements that hypothesis space as Keras layers (`tfapprox.layers`,
`tfapprox.models`), targets with a controlled POD spectrum
(`tfapprox.targets`) and with sparse memory (`tfapprox.memory`, paper B:
Wang & E, NeurIPS 2024), complexity estimators (`tfapprox.pod`), the bound
in sympy (`tfapprox.theory`) and the check of measured errors against it
(`tfapprox.check`), paper B's sparse-memory rates (`tfapprox.memory_theory`),
training (`tfapprox.config`, `tfapprox.training`, `tfapprox.sweeps`,
`tfapprox.results`) and export.

Importing tfapprox registers its Keras layers, so ``keras.saving.load_model``
reads tfapprox models after ``import tfapprox``. With the environment variable
``TFAPPROX_LAZY_IMPORT=1`` (the CLI sets it) the Keras parts are imported only
on first use, so `tfapprox.theory` and `tfapprox.Budget` start without
TensorFlow.
"""

import importlib
import os

from tfapprox.budget import Budget

__version__ = "0.1.0"

_SUBMODULES = (
    "check",
    "config",
    "construction",
    "datasets",
    "distributed",
    "engine",
    "export",
    "ffrate",
    "finisher",
    "fits",
    "group",
    "layers",
    "memory",
    "memory_theory",
    "metrics",
    "models",
    "nesting",
    "plots",
    "pod",
    "quadrature",
    "results",
    "sweeps",
    "targets",
    "theory",
    "training",
    "workflow",
)

# Public names re-exported from submodules, imported on first access.
_EXPORTS = {
    "build_transformer": "models",
    "fit": "training",
    "load_dataset": "datasets",
    "load_model": "export",
    "load_preset": "targets",
    "MultiHeadAttention": "layers",
    "TrainingConfig": "config",
    "train_members": "engine",
    "train_models": "group",
}

__all__ = ["Budget", "__version__", *_SUBMODULES, *_EXPORTS]


def __getattr__(name):
    if name in _SUBMODULES:
        return importlib.import_module(f"tfapprox.{name}")
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"tfapprox.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'tfapprox' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(__all__))


if os.environ.get("TFAPPROX_LAZY_IMPORT", "").lower() not in ("1", "true", "yes"):
    # Registers the Keras classes with `keras.saving`.
    from tfapprox import layers, models  # noqa: E402,F401
