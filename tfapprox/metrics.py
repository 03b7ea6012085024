"""Error norms of a model against a target, and the truncation error.

Jiang & Li (2024) measure the error of Ĥ against H over sequences x by

    ‖H − Ĥ‖ = E_x Σ_t |H_t(x) − Ĥ_t(x)|

(summed over the output dimensions too): `paper_error`. Their bound
τ²(C_β m_h^{1−2β} + C_α m_h^{α+1} m_FF^{−α}) is a bound in that norm, so
`tfapprox check` works in it. `mse` is the mean squared error that training
minimises.

`truncation_errors` gives the error of the construction behind the bound:
the target with ρ replaced by its best rank-k approximation
(`Target.truncated`). A trained error far above it at m_h = k means the
optimiser or the feed-forward parts limit the model; one below it means the
model found something the construction does not use.
"""

import numpy as np


def _pair(y_true, y_pred):
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    if y_true.shape != y_pred.shape:
        raise ValueError(
            f"`y_true` and `y_pred` must have the same shape. "
            f"Received: {y_true.shape} and {y_pred.shape}"
        )
    if y_true.ndim != 3:
        raise ValueError(f"expected sequences (N, tau, d_out). Received shape {y_true.shape}")
    return y_true, y_pred


def paper_error(y_true, y_pred):
    """Paper A's norm: the mean over sequences of ``Σ_t Σ_j |H_t,j − Ĥ_t,j|``.

    >>> paper_error(np.zeros((2, 3, 1)), np.full((2, 3, 1), 0.5))
    1.5
    """
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.mean(np.sum(np.abs(y_true - y_pred), axis=(1, 2))))


def mse(y_true, y_pred):
    """Mean squared error over every sequence, position and output.

    >>> mse(np.zeros((2, 3, 1)), np.full((2, 3, 1), 0.5))
    0.25
    """
    y_true, y_pred = _pair(y_true, y_pred)
    return float(np.mean((y_true - y_pred) ** 2))


def truncation_errors(target, x, ranks):
    """Errors of ``target`` with ρ cut to rank k, for every k in ``ranks``.

    Args:
        target: `tfapprox.targets.Target` with a known POD (one with
            ``truncated``: the fig5 and positional families).
        x: array ``(N, τ, d)`` of inputs.
        ranks: iterable of int ≥ 0.

    Returns:
        dict ``{k: {"paper_error": ..., "mse": ...}}``.

    >>> from tfapprox.targets import fig5_target
    >>> target = fig5_target(beta=1.0, rank=2)
    >>> x = np.random.default_rng(0).uniform(size=(200, 16, 1))
    >>> errors = truncation_errors(target, x, [1, 2, 3])
    >>> errors[2]["mse"] == errors[3]["mse"] == 0.0, errors[1]["mse"] > 0
    (True, True)
    """
    if not hasattr(target, "truncated"):
        raise TypeError(
            f"`target` must have a known POD (a fig5 or positional target). "
            f"Received: {type(target).__name__}"
        )
    y = target(x)
    out = {}
    for rank in ranks:
        y_k = target.truncated(rank)(x)
        out[int(rank)] = {"paper_error": paper_error(y, y_k), "mse": mse(y, y_k)}
    return out
