"""The convergence check of paper B's experiments: retrain a cell with twice the epochs.

An error is evidence about a model class only if training reached its
floor. Each experiment trains the cells its claims are read from (a few,
not all) again with twice the epochs and records per cell the relative
change ``(e_2x − e_1x) / e_1x``; a cell is ``converged`` when the change is
at most `THRESHOLD` in absolute value. A claim read from any unconverged
(or unchecked) cell is reported as ``"not converged"``, never as held or
failed.
"""

THRESHOLD = 0.10
"""Largest ``|e_2x − e_1x| / e_1x`` of a converged cell."""


def check(error_1x, error_2x, epochs_2x, threshold=THRESHOLD):
    """The doubling record of one cell: both errors, the relative change, ``converged``.

    A zero first error counts as converged only if the second is zero too.

    >>> check(0.5, 0.48, 40)
    {'error_2x': 0.48, 'epochs': 40, 'relative_change': -0.04, 'converged': True}
    >>> check(0.5, 0.3, 40)["converged"]
    False
    """
    error_1x, error_2x = float(error_1x), float(error_2x)
    if error_1x == 0:
        change = 0.0 if error_2x == 0 else float("inf")
    else:
        change = (error_2x - error_1x) / error_1x
    change = round(change, 12)  # so that a change of exactly 10% counts as 10%
    return {
        "error_2x": error_2x,
        "epochs": int(epochs_2x),
        "relative_change": change,
        "converged": bool(abs(change) <= threshold),
    }


def verdict(held, cells):
    """``"held"``, ``"failed"`` or ``"not converged"`` for a claim read off ``cells``.

    ``cells`` are dicts; a cell counts as converged when its ``"doubled"``
    record says so (a cell without one was not checked).

    >>> verdict(True, [{"doubled": {"converged": True}}])
    'held'
    >>> verdict(False, [{"doubled": {"converged": True}}, {}])
    'not converged'
    """
    if not all(cell.get("doubled", {}).get("converged", False) for cell in cells):
        return "not converged"
    return "held" if held else "failed"


def column(cell):
    """The table's convergence column of a cell: its 2× error and change, or empty.

    >>> column({"doubled": {"error_2x": 0.25, "relative_change": -0.5, "converged": False}})
    '0.25 (-50%, not converged)'
    """
    doubled = cell.get("doubled")
    if not doubled:
        return ""
    state = "converged" if doubled["converged"] else "not converged"
    return f"{doubled['error_2x']:.3g} ({doubled['relative_change']:+.0%}, {state})"


def training_config(settings, epochs):
    """The `TrainingConfig` of a group: Adam, 5% warm-up, cosine decay to 0, no early stop.

    ``settings`` gives ``batch_size`` and ``learning_rate``; the schedule
    spans ``epochs``, so the doubled run decays over twice the epochs.
    """
    from tfapprox.config import TrainingConfig

    return TrainingConfig(
        epochs=epochs,
        batch_size=settings["batch_size"],
        learning_rate=settings["learning_rate"],
        schedule="cosine",
        warmup_epochs=max(1, int(round(0.05 * epochs))),
        min_learning_rate=0.0,
        patience=epochs,
    )
