"""Nested budgets: the best loss cannot rise with a width, and warm starts that use it.

At fixed n, m_v and depth, the hypothesis space at (m_h, m_FF) contains
every one at (m_h' ≤ m_h, m_FF' ≤ m_FF):

- a zero column j of W_Q adds ``(W_Q[:, j] · x_t)(W_K[:, j] · x_s) = 0`` to
  every attention logit ``q_tᵀ k_s``, whatever column j of W_K holds;
- a feed-forward unit whose outgoing weights are zero adds nothing to the
  next layer, whatever its incoming weights are.

So the *best* training loss of a budget is at most that of every budget it
contains. `violations` finds budgets whose trained runs break this (their
runs missed the budget's best model), and `embed_weights` puts a contained
budget's trained weights into the larger model without changing its
function, so `warm_start` can continue from there with L-BFGS (whose line
search never raises the loss). The new columns of W_K and the new incoming
weights keep the larger model's own random values, so the gradient reaches
the added width at once.
"""

import hashlib
import math
import os

import numpy as np

__all__ = ["best_runs", "embed_weights", "violations", "warm_start", "weights_path"]


def best_runs(runs, key="loss"):
    """Per budget ``(m_h, m_ff)``: the run with the lowest finite ``run[key]``.

    >>> runs = [{"budget": {"m_h": 1, "m_ff": 8}, "loss": v, "seed": s} for s, v in enumerate([3.0, 2.0])]
    >>> best_runs(runs)[(1, 8)]["seed"]
    1
    """
    best = {}
    for run in runs:
        value = run.get(key)
        if value is None or not math.isfinite(value):
            continue
        budget = (run["budget"]["m_h"], run["budget"]["m_ff"])
        if budget not in best or value < best[budget][key]:
            best[budget] = run
    return best


def violations(runs, rtol):
    """Budgets whose best training loss is above that of a budget they contain.

    A budget whose best loss is above a contained budget's by more than
    ``rtol`` (relative to its own) was not trained to its best model.

    Args:
        runs: list of run records of one n, m_v and depth.
        rtol: float. The relative excess that counts.

    Returns:
        list of dicts in (m_FF, m_h) order, one per such budget: ``m_h``,
        ``m_ff``, ``loss``, ``contained`` (the contained budget with the
        lowest loss: ``m_h``, ``m_ff``, ``loss``) and ``excess`` =
        (loss − contained loss) / loss.

    >>> runs = [{"budget": {"m_h": k, "m_ff": 8}, "loss": v} for k, v in [(1, 4.0), (2, 2.0), (3, 3.0)]]
    >>> [(v["m_h"], v["contained"]["m_h"], v["excess"]) for v in violations(runs, 0.1)]
    [(3, 2, 0.3333333333333333)]
    """
    best = {budget: run["loss"] for budget, run in best_runs(runs).items()}
    found = []
    for (m_h, m_ff), loss in sorted(best.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        contained = [
            (other_loss, other)
            for other, other_loss in best.items()
            if other != (m_h, m_ff) and other[0] <= m_h and other[1] <= m_ff
        ]
        if not contained or loss <= 0:
            continue
        lowest, (other_m_h, other_m_ff) = min(contained)
        excess = (loss - lowest) / loss
        if excess > rtol:
            found.append(
                {
                    "m_h": m_h,
                    "m_ff": m_ff,
                    "loss": loss,
                    "contained": {"m_h": other_m_h, "m_ff": other_m_ff, "loss": lowest},
                    "excess": excess,
                }
            )
    return found


def embed_weights(small, large, paths):
    """The weights of a larger model that computes what the smaller model computes.

    Every array of ``small`` goes into the leading block of the same-named
    array of ``large``; the rest of ``large`` keeps its values except

    - the new columns of ``attention/query_kernel`` (W_Q), which become
      zero, so every logit ``q_tᵀ k_s`` is unchanged;
    - the new rows of every other ``kernel`` (the incoming weights of a
      layer, from the new units of the layer before), which become zero,
      so the new units change no output.

    Args:
        small: list of arrays: the contained model's weights, in
            ``get_weights()`` order.
        large: list of arrays: the larger model's (fresh) weights, in the
            same order.
        paths: list of str: the variables' paths (``v.path`` of
            ``model.weights``), in the same order.

    Returns:
        list of float32 arrays shaped like ``large``.

    >>> small = [np.ones((2, 1)), np.ones((2, 1))]
    >>> large = [np.full((2, 2), 5.0), np.full((2, 2), 5.0)]
    >>> paths = ["attention/query_kernel", "attention/key_kernel"]
    >>> [w.tolist() for w in embed_weights(small, large, paths)]
    [[[1.0, 0.0], [1.0, 0.0]], [[1.0, 5.0], [1.0, 5.0]]]
    """
    if not (len(small) == len(large) == len(paths)):
        raise ValueError(
            "`small`, `large` and `paths` must have one entry per weight. Received "
            f"{len(small)}, {len(large)} and {len(paths)}"
        )
    embedded = []
    for a, b, path in zip(small, large, paths):
        a, b = np.asarray(a, dtype="float32"), np.array(b, dtype="float32")
        if a.ndim != b.ndim or any(i > j for i, j in zip(a.shape, b.shape)):
            raise ValueError(
                f"weight {path!r} of shape {a.shape} does not fit in shape {b.shape}: "
                "the small budget must be contained in the large one (same n, m_v and depth)"
            )
        b[tuple(slice(0, i) for i in a.shape)] = a
        if path.endswith("attention/query_kernel"):
            b[..., a.shape[-1] :] = 0.0
        elif path.endswith("kernel") and a.ndim == 2:
            b[a.shape[0] :, :] = 0.0
        embedded.append(b)
    return embedded


def weights_path(folder, run):
    """Where the trained weights of ``run`` are kept: one ``.npz`` per run key.

    The name is the first 16 hex digits of the SHA-256 of
    `tfapprox.results.run_key`, so it is the same for the same run and
    differs for another seed, budget, setting or start.

    >>> run = {"budget": {"m_h": 1}, "seed": 0, "hyperparameters": {}}
    >>> path = weights_path("w", run)
    >>> path == weights_path("w", dict(run)), path == weights_path("w", {**run, "seed": 1})
    (True, False)
    >>> len(os.path.basename(path))
    20
    """
    from tfapprox import results

    digest = hashlib.sha256(results.run_key(run).encode()).hexdigest()[:16]
    return os.path.join(os.fspath(folder), f"{digest}.npz")


def save_weights(folder, run, weights):
    """Write ``weights`` (a list of arrays) for ``run`` atomically; return the path."""
    from tfapprox import _io

    os.makedirs(folder, exist_ok=True)
    path = weights_path(folder, run)
    _io.atomic_save_npz(path, **{f"w{i:03d}": np.asarray(w) for i, w in enumerate(weights)})
    return path


def load_weights(folder, run):
    """The weights saved for ``run`` (a list of arrays), or None if there are none."""
    path = weights_path(folder, run)
    if not os.path.exists(path):
        return None
    with np.load(path, allow_pickle=False) as archive:
        return [archive[name] for name in sorted(archive.files)]


def warm_start(
    budget,
    source,
    source_budget,
    data,
    steps,
    *,
    validation_data=None,
    seed=0,
    model_kwargs=None,
    perturbation=0.0,
):
    """Train ``budget`` from a contained budget's weights with full-batch L-BFGS.

    The model of ``budget`` (built with ``seed``, which sets the values of
    the added width) starts as the function of ``source`` (`embed_weights`),
    so its training loss starts at the source's, and L-BFGS
    (`tfapprox.finisher.finish_model`) never raises it.

    A source trained to its stop is (nearly) stationary in the larger space
    too, so L-BFGS from the exact embedding may stop at once. With
    ``perturbation`` = ε > 0 the new columns of W_Q start at ε times their
    fresh values instead of zero (a nearby start that can use the added
    width); if L-BFGS ends above the exact embedding's loss, the embedding
    is returned (``finisher["kept"] == "embedding"``), so the loss is never
    above the source's either way.

    Args:
        budget: `tfapprox.Budget`. The larger budget.
        source: list of arrays: the trained weights of ``source_budget``.
        source_budget: `tfapprox.Budget` contained in ``budget``.
        data, validation_data: `tfapprox.datasets.Dataset` or ``(x, y)``
            with sequence outputs ``(N, tau, d_out)``.
        steps: int >= 1. The most L-BFGS iterations.
        seed: int. The seed of the larger model's fresh weights.
        model_kwargs: dict or None. `build_transformer` options.
        perturbation: float >= 0. The scale ε of the new W_Q columns at the
            start. Defaults to 0 (the exact embedding).

    Returns:
        ``(record, weights)``: a run record (``loss`` and ``val_loss`` are
        mean squared errors, ``error`` and ``val_error`` paper A's norm,
        ``start`` names the source, ``finisher`` is L-BFGS's account) and
        the trained weights.
    """
    from tfapprox import metrics
    from tfapprox._checks import check_positive_int, check_real
    from tfapprox.datasets import as_dataset
    from tfapprox.finisher import finish_model
    from tfapprox.models import build_transformer

    steps = check_positive_int("steps", steps)
    perturbation = check_real("perturbation", perturbation, low=0)
    if (budget.n, budget.m_v, budget.ff_depth) != (
        source_budget.n,
        source_budget.m_v,
        source_budget.ff_depth,
    ):
        raise ValueError(
            f"`source_budget` {source_budget} is not contained in `budget` {budget}: "
            "n, m_v and ff_depth must be equal"
        )
    if source_budget.m_h > budget.m_h or source_budget.m_ff > budget.m_ff:
        raise ValueError(
            f"`source_budget` {source_budget} is not contained in `budget` {budget}: "
            "its m_h and m_FF must not be larger"
        )
    train = as_dataset(data)
    if train.task != "sequence":
        raise ValueError("warm starts need sequence outputs `y` of shape (N, tau, d_out)")
    model = build_transformer(
        budget,
        train.sequence_length,
        train.input_dim,
        output_dim=train.output_dim,
        seed=seed,
        **dict(model_kwargs or {}),
    )
    paths = [v.path for v in model.weights]
    fresh = model.get_weights()
    embedded = embed_weights(source, fresh, paths)
    start = [w.copy() for w in embedded]
    if perturbation:
        query = paths.index(next(p for p in paths if p.endswith("attention/query_kernel")))
        width = np.shape(source[query])[-1]
        start[query][..., width:] = perturbation * fresh[query][..., width:]
    model.set_weights(start)
    info = finish_model(model, train.x, train.y, steps)

    def scores(dataset):
        predicted = np.asarray(model.predict(dataset.x, batch_size=1024, verbose=0))
        y = dataset.y.astype("float32")
        return metrics.mse(y, predicted), metrics.paper_error(y, predicted)

    loss, error = scores(train)
    if perturbation:
        trained = model.get_weights()
        model.set_weights(embedded)
        exact = scores(train)
        if exact[0] < loss:
            loss, error = exact
            info = {**info, "kept": "embedding"}
        else:
            model.set_weights(trained)
    weights = [np.asarray(w, dtype="float32") for w in model.get_weights()]
    val_loss = val_error = None
    if validation_data is not None:
        val_loss, val_error = scores(as_dataset(validation_data, "validation_data"))
    record = {
        "budget": budget.to_dict(),
        "seed": int(seed),
        "start": {"budget": source_budget.to_dict()},
        "loss": float(loss),
        "error": float(error),
        "val_loss": None if val_loss is None else float(val_loss),
        "val_error": None if val_error is None else float(val_error),
        "finisher": info,
    }
    return record, weights
