"""A second-order finisher: full-batch L-BFGS after the stochastic epochs.

Adam with mini-batches approaches the approximation floor of a small model
slowly: on paper A's Fig. 5 targets each doubling of its steps still lowers
the error by 40–60 % after 12,000 steps (``analysis/RECIPE.md``). Once Adam
has found the basin, the training loss

    L(w) = (1/N) Σ_i mean_t |H_t(x_i) − Ĥ_t(x_i; w)|²

over the *whole* training set is a deterministic function of the weights,
and quasi-Newton steps on it converge much faster: L-BFGS (Nocedal &
Wright, *Numerical Optimization*, Alg. 7.5, through
`scipy.optimize.minimize`) from the kept Adam weights of the default
``tfapprox check`` model (m_h = 2) lowered the paper-norm error from 0.158
to 0.076 in 2,000 iterations and to 0.068 after about 5,000, where no step
lowers the loss any more (``analysis/RECIPE.md`` has the evidence: each run
ends at a stationary point, and what remains is the spread between the
minima that different starts reach). `tfapprox.config.TrainingConfig.finisher_steps`
turns it on in `tfapprox.training.fit`, `tfapprox.engine.train_members`
and `tfapprox.group.train_models`.

This module imports only NumPy and the standard library at module level
(SciPy when called).
"""

import math
import threading

import numpy as np

from tfapprox._checks import check_int

__all__ = ["check_mse_only", "finish_model", "lbfgs", "lbfgs_members"]

# Correction pairs kept by L-BFGS (scipy's default is 10; more pairs helped
# on these ill-conditioned networks at no measurable cost).
MEMORY = 30


def check_mse_only(steps, loss):
    """Refuse ``finisher_steps`` > 0 for a loss other than the mean squared error.

    >>> check_mse_only(0, "sparse_categorical_crossentropy")
    >>> check_mse_only(5, "class labels")
    Traceback (most recent call last):
    ...
    ValueError: `finisher_steps` (the L-BFGS finisher) minimises the mean squared error; it does not apply to class labels. Received: finisher_steps=5
    """
    if steps:
        raise ValueError(
            "`finisher_steps` (the L-BFGS finisher) minimises the mean squared error; "
            f"it does not apply to {loss}. Received: finisher_steps={steps}"
        )


def lbfgs(value_and_grad, initial, steps, *, memory=MEMORY):
    """Minimise a smooth loss from ``initial`` with at most ``steps`` L-BFGS iterations.

    Args:
        value_and_grad: callable mapping a float64 vector ``(P,)`` to
            ``(loss, gradient)``: a float and a ``(P,)`` array.
        initial: array-like ``(P,)``. The starting weights.
        steps: int >= 0. The most iterations (each costs about one loss and
            gradient evaluation; the line search may add a few).
        memory: int >= 1. Correction pairs kept. Defaults to `MEMORY`.

    Returns:
        ``(weights, info)``: the float64 weights with the lowest loss seen
        (``initial`` if no iterate improved on it, or if every loss was
        non-finite) and a JSON-ready dict: ``iterations``, ``evaluations``,
        ``loss_before``, ``loss_half`` (the best loss after ``steps // 2``
        iterations, None if it stopped before), ``loss_after`` and scipy's
        ``message``.

    >>> import numpy as np
    >>> scale = np.array([1.0, 100.0])  # an ill-conditioned quadratic
    >>> def quadratic(w):
    ...     return float(0.5 * np.sum(scale * w**2)), scale * w
    >>> weights, info = lbfgs(quadratic, [1.0, 1.0], 50)
    >>> bool(np.abs(weights).max() < 1e-6), info["loss_before"]
    (True, 50.5)
    """
    steps = check_int("steps", steps, minimum=0)
    memory = check_int("memory", memory, minimum=1)
    if not callable(value_and_grad):
        raise TypeError(f"`value_and_grad` must be callable. Received: {value_and_grad!r}")
    start = np.asarray(initial, dtype="float64").ravel().copy()
    best = {"loss": math.inf, "weights": start}
    evaluations = 0

    def tracked(w):
        nonlocal evaluations
        evaluations += 1
        loss, grad = value_and_grad(w)
        loss = float(loss)
        grad = np.asarray(grad, dtype="float64").ravel()
        if not math.isfinite(loss) or not np.all(np.isfinite(grad)):
            # Tell the line search this point is bad without poisoning its state.
            return math.inf, np.zeros_like(grad)
        if loss < best["loss"]:
            best["loss"], best["weights"] = loss, np.array(w, dtype="float64")
        return loss, grad

    loss_before, _ = tracked(start)
    info = {
        "iterations": 0,
        "evaluations": 1,
        "loss_before": loss_before,
        "loss_half": None,
        "loss_after": loss_before,
        "message": "no iterations",
    }
    if steps == 0 or not math.isfinite(loss_before):
        if not math.isfinite(loss_before):
            info["message"] = "the starting loss is not finite"
        return start, info
    from scipy.optimize import minimize

    # gtol = ftol = 0: run the given iterations unless the line search can
    # make no more progress (the step count is the budget, not a tolerance).
    half = {"loss": None}
    done = 0

    def at_iteration(_weights):
        nonlocal done
        done += 1
        if done == max(1, steps // 2):
            half["loss"] = best["loss"]

    result = minimize(
        tracked,
        start,
        jac=True,
        method="L-BFGS-B",
        callback=at_iteration,
        options={"maxiter": steps, "maxcor": memory, "gtol": 0.0, "ftol": 0.0},
    )
    info.update(
        iterations=int(result.nit),
        evaluations=evaluations,
        loss_half=half["loss"],
        loss_after=best["loss"],
        message=str(result.message),
    )
    return best["weights"], info


class _Stopped(Exception):
    """Raised in a member's thread when the shared evaluation failed."""


def lbfgs_members(value_and_grads, initial, steps, *, memory=MEMORY, on_round=None):
    """`lbfgs` on K independent problems at once, their evaluations batched.

    Each row of ``initial`` is minimised by its own `lbfgs` (scipy's
    L-BFGS-B, with its own line search and stop), in its own thread; the
    threads wait for one another, and every round the points of the members
    still running are evaluated together by one ``value_and_grads`` call
    (members that stopped leave the batch, so no work is spent on them).
    Each member sees exactly the losses and gradients a lone `lbfgs` would,
    so its iterates are the same; a batched evaluation (the engine's
    stacked members) costs less than one per member.

    Args:
        value_and_grads: callable ``(points, members) -> (losses,
            gradients)``: ``points`` is a float64 ``(A, P)`` array, the
            points of the A members listed in ``members`` (their row
            indices in ``initial``); it returns ``(A,)`` losses and
            ``(A, P)`` gradients, row a depending on row a alone.
        initial: array-like ``(K, P)``. The starting points.
        steps: int >= 0. The most iterations per member.
        memory: int >= 1. Correction pairs kept. Defaults to `MEMORY`.
        on_round: callable or None. Called in this thread before each
            batched evaluation with, per member, None while it runs or its
            result ``(weights, info)`` once it stopped (what a checkpoint
            keeps: L-BFGS cannot be continued mid-run with the same steps).

    Returns:
        ``(weights, infos)``: the ``(K, P)`` float64 points with each
        member's lowest loss, and `lbfgs`'s ``info`` per member.

    >>> import numpy as np
    >>> scales = np.array([[1.0, 100.0], [3.0, 0.5]])  # two quadratics
    >>> def both(w, members):
    ...     return 0.5 * np.sum(scales[members] * w**2, axis=1), scales[members] * w
    >>> weights, infos = lbfgs_members(both, np.ones((2, 2)), 50)
    >>> bool(np.abs(weights).max() < 1e-6), [info["loss_before"] for info in infos]
    (True, [50.5, 1.75])
    """
    steps = check_int("steps", steps, minimum=0)
    if not callable(value_and_grads):
        raise TypeError(f"`value_and_grads` must be callable. Received: {value_and_grads!r}")
    start = np.array(initial, dtype="float64")
    if start.ndim != 2 or start.shape[0] == 0:
        raise ValueError(
            f"`initial` must be a (K, P) array with K >= 1. Received shape: {start.shape}"
        )
    size = start.shape[0]
    points = start.copy()  # the point each member asked for last
    asking = [False] * size
    answers = [None] * size
    outcome = [None] * size
    failure = []
    stopped = threading.Event()
    turn = threading.Condition()

    def member(k):
        def value_and_grad(w):
            with turn:
                points[k] = w
                asking[k] = True
                turn.notify_all()
                turn.wait_for(lambda: not asking[k] or stopped.is_set())
                if asking[k]:
                    raise _Stopped
                return answers[k]

        def run():
            try:
                outcome[k] = lbfgs(value_and_grad, start[k], steps, memory=memory)
            except _Stopped:
                pass
            except BaseException as err:  # re-raised in the caller
                failure.append(err)
            finally:
                with turn:
                    outcome[k] = outcome[k] or "failed"
                    turn.notify_all()

        return run

    threads = [
        threading.Thread(target=member(k), name=f"lbfgs-member-{k}", daemon=True)
        for k in range(size)
    ]
    for thread in threads:
        thread.start()
    try:
        while True:
            with turn:
                turn.wait_for(lambda: all(outcome[k] is not None or asking[k] for k in range(size)))
                if failure or all(outcome[k] is not None for k in range(size)):
                    break
                members = [k for k in range(size) if asking[k]]
                batch = points[members].copy()
                stopped_now = [None if asking[k] else outcome[k] for k in range(size)]
            if on_round is not None:
                on_round(stopped_now)
            losses, grads = value_and_grads(batch, members)
            losses = np.asarray(losses, dtype="float64").reshape(len(members))
            grads = np.asarray(grads, dtype="float64").reshape(batch.shape)
            with turn:
                for row, k in enumerate(members):
                    answers[k] = (float(losses[row]), grads[row])
                    asking[k] = False
                turn.notify_all()
    finally:
        with turn:
            stopped.set()
            turn.notify_all()
        for thread in threads:
            thread.join()
    if failure:
        raise failure[0]
    weights = np.stack([result[0] for result in outcome])
    return weights, [result[1] for result in outcome]


def finish_model(model, x, y, steps, *, chunk_size=4096, memory=MEMORY):
    """Run `lbfgs` on a built Keras model's mean squared error over all of ``(x, y)``.

    The trainable weights move in place (to the lowest loss seen); the
    gradient comes from the backend (``jax.value_and_grad`` or
    ``tf.GradientTape``, compiled with XLA) through ``model.stateless_call``,
    over the samples in chunks of ``chunk_size``.

    Args:
        model: a built `keras.Model` with outputs shaped like ``y``.
        x, y: arrays ``(N, ...)``: the whole training set.
        steps: int >= 0. The most L-BFGS iterations.
        chunk_size: int >= 1. Samples per gradient evaluation. Defaults to 4096.
        memory: int >= 1. Correction pairs kept. Defaults to `MEMORY`.

    Returns:
        dict: `lbfgs`'s ``info`` (losses are the mean squared error).
    """
    from keras import ops

    from tfapprox._checks import check_positive_int
    from tfapprox.engine import _backend_tools, _padded_order

    chunk_size = check_positive_int("chunk_size", chunk_size)
    x = np.asarray(x, dtype="float32")
    y = np.asarray(y, dtype="float32")
    if len(x) != len(y) or len(x) == 0:
        raise ValueError(
            f"`x` and `y` must hold the same positive number of samples. "
            f"Received: {len(x)} and {len(y)}"
        )
    variables = list(model.trainable_variables)
    shapes = [tuple(v.shape) for v in variables]
    offsets = np.cumsum([0] + [int(np.prod(s)) for s in shapes])
    fixed = [v.value for v in model.non_trainable_variables]
    value_and_grad, compile_ = _backend_tools()

    def loss(params, x_batch, y_batch, weights):
        out, _ = model.stateless_call(params, fixed, x_batch)
        axes = tuple(range(1, len(y_batch.shape)))
        total = ops.sum(ops.mean(ops.square(out - y_batch), axis=axes) * weights)
        return total, total

    step = compile_(value_and_grad(loss))
    order, row_weights = _padded_order(np.arange(len(x)), min(len(x), chunk_size))
    chunks = [
        (ops.convert_to_tensor(x[rows]), ops.convert_to_tensor(y[rows]), ops.convert_to_tensor(w))
        for rows, w in zip(order, row_weights)
    ]

    def unflatten(flat):
        return [
            ops.convert_to_tensor(flat[a:b].reshape(shape).astype("float32"))
            for a, b, shape in zip(offsets[:-1], offsets[1:], shapes)
        ]

    def evaluate(flat):
        params = unflatten(flat)
        total, grads = 0.0, 0.0
        for x_batch, y_batch, weights in chunks:
            (value, _), parts = step(params, x_batch, y_batch, weights)
            total += float(ops.convert_to_numpy(value))
            grads = grads + np.concatenate(
                [ops.convert_to_numpy(g).astype("float64").ravel() for g in parts]
            )
        return total / len(x), grads / len(x)

    initial = np.concatenate([ops.convert_to_numpy(v.value).ravel() for v in variables])
    weights, info = lbfgs(evaluate, initial, steps, memory=memory)
    for variable, value in zip(variables, unflatten(weights)):
        variable.assign(value)
    return info
