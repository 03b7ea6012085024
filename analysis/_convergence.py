"""Is a trained error at its floor? Double the training and compare.

An error read off a trained model is evidence about approximation only if
training reached its floor. Each experiment compares, per cell, the error
after the full training with the error after half of it: the relative change
``(e_2x − e_1x) / e_1x``; a cell is *converged* when ``|change| ≤
CONVERGENCE_TOLERANCE``. A claim read from an unconverged cell is reported
as ``"not converged"``, never as held or failed.

`from_history` reads both errors off one run of ``2E`` epochs: the best
epoch-mean training loss of its first ``E`` epochs and of all ``2E``. Under
the ``"plateau"`` schedule (learning-rate cuts and early stopping look only
at past epochs) and a fixed batch order, the first ``E`` epochs of that run
*are* the run with ``E`` epochs, so this is the retraining with twice the
epochs without training anything twice.
"""

import math

# A cell whose error moves by at most this fraction when the training is
# doubled is at its floor.
CONVERGENCE_TOLERANCE = 0.10

HELD, FAILED, NOT_CONVERGED, UNDECIDED = "held", "failed", "not converged", "undecided"

# What results files record under "convergence".
DESCRIPTION = (
    "per run, the best epoch-mean training loss after epochs/2 and after epochs (the first "
    "half of the run is the run with half the epochs: plateau schedule, fixed batch order); "
    "relative change (e_2x - e_1x)/e_1x; a cell is converged when every seed's |change| <= "
    "convergence_tolerance"
)


def training_config(settings, epoch_factor=1):
    """The `TrainingConfig` of an experiment's ``settings``, with the ``"plateau"`` schedule.

    ``settings`` holds ``epochs``, ``batch_size``, ``learning_rate`` and
    ``patience``; ``epoch_factor`` multiplies the epochs and the patience
    (2: the doubled run of the convergence check). The plateau schedule
    looks only at past epochs, which `from_history` relies on.
    """
    from tfapprox.config import TrainingConfig

    return TrainingConfig(
        epochs=settings["epochs"] * epoch_factor,
        batch_size=settings["batch_size"],
        learning_rate=settings["learning_rate"],
        patience=settings["patience"] * epoch_factor,
        schedule="plateau",
    )


def check(error_1x, error_2x, tolerance=CONVERGENCE_TOLERANCE, floor=None):
    """The convergence record of one cell.

    ``relative_change = (e_2x − e_1x) / e_1x``; ``converged`` when its size
    is at most ``tolerance``. An error that is exactly 0 and stays 0 has
    converged; a non-finite error, or one that leaves 0, has not. With a
    ``floor``, two errors both at most ``floor`` have converged too (noise
    at float precision is not training progress); the record then carries
    ``at_floor``.

    >>> check(0.20, 0.19)["converged"], round(check(0.20, 0.19)["relative_change"], 3)
    (True, -0.05)
    >>> check(0.20, 0.10)["converged"], check(0.0, 0.0)["converged"], check(0.0, 0.1)["converged"]
    (False, True, False)
    >>> check(1e-12, 3e-13, floor=1e-9)["converged"], check(0.2, 0.1, floor=1e-9)["converged"]
    (True, False)
    """
    error_1x, error_2x = float(error_1x), float(error_2x)
    finite = math.isfinite(error_1x) and math.isfinite(error_2x) and error_1x >= 0
    if not finite or (error_1x == 0 and error_2x != 0):
        change = None
    else:
        change = 0.0 if error_1x == 0 else (error_2x - error_1x) / error_1x
    record = {
        "error_1x": error_1x,
        "error_2x": error_2x,
        "relative_change": change,
        "converged": bool(change is not None and abs(change) <= tolerance),
    }
    if floor is not None:
        record["at_floor"] = bool(finite and max(error_1x, error_2x) <= floor)
        record["converged"] = record["converged"] or record["at_floor"]
    return record


def from_history(history, half, tolerance=CONVERGENCE_TOLERANCE):
    """`check` of the best finite epoch loss in ``history[:half]`` against all of ``history``.

    >>> from_history([4.0, 2.0, 1.9, 1.85], 2)["converged"]
    True
    >>> from_history([4.0, 2.0, 1.0, 0.5], 2)["relative_change"]
    -0.75
    """
    first = [h for h in history[:half] if math.isfinite(h)]
    every = [h for h in history if math.isfinite(h)]
    record = check(min(first), min(every), tolerance) if first else check(math.nan, math.nan)
    return {**record, "half_epochs": int(half), "epochs": len(history)}


def worst(records):
    """One cell's record from its runs' (seeds'): the largest ``|change|``; converged if all are.

    >>> cell = worst([check(1.0, 0.95), check(1.0, 0.8)])
    >>> round(cell["relative_change"], 3), cell["converged"], len(cell["runs"])
    (-0.2, False, 2)
    """

    def size(record):
        change = record["relative_change"]
        return math.inf if change is None else abs(change)

    record = max(records, key=size)
    return {
        **record,
        "converged": all(r["converged"] for r in records),
        "runs": [dict(r) for r in records],
    }


def verdict(holds, checks):
    """A claim's verdict from the cells it is read from.

    ``"not converged"`` unless every record in ``checks`` converged; then
    ``"held"`` or ``"failed"`` from ``holds``, or ``"undecided"`` when
    ``holds`` is None (the numbers cannot decide the claim).

    >>> verdict(True, [{"converged": True}]), verdict(True, [{"converged": False}])
    ('held', 'not converged')
    >>> verdict(False, [{"converged": True}]), verdict(None, [{"converged": True}])
    ('failed', 'undecided')
    """
    if not all(c["converged"] for c in checks):
        return NOT_CONVERGED
    if holds is None:
        return UNDECIDED
    return HELD if holds else FAILED


def doubled(cells):
    """The doubling records of ``cells`` (dicts with a ``"doubled"`` record; unchecked: unconverged).

    >>> [r["converged"] for r in doubled([{"doubled": {"converged": True}}, {}])]
    [True, False]
    """
    return [cell.get("doubled") or {"converged": False} for cell in cells]


def cosine_config(settings, epochs):
    """A group's `TrainingConfig`: Adam, 5% warm-up, cosine decay to 0 over ``epochs``, no early stop.

    ``settings`` gives ``batch_size`` and ``learning_rate``. The schedule
    spans ``epochs``, so a doubled run decays over twice the epochs (unlike
    `from_history`, it is a second training, not the first half of one).
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


def describe(record):
    """A table entry: ``"yes (+3.1%)"``, ``"no (−42%)"``, or ``"–"`` for an unchecked cell.

    >>> describe(check(1.0, 1.031)), describe(None)
    ('yes (+3.1%)', '–')
    """
    if record is None:
        return "–"
    change = record["relative_change"]
    amount = "n/a" if change is None else f"{100 * change:+.2g}%"
    return f"{'yes' if record['converged'] else 'no'} ({amount})"
