"""The feed-forward rate α: train `FeedForward` networks of several widths.

Jiang & Li (2024), Thm 4.2: the second term of the bound is
``C_α m_h^{α+1} / m_FF^α``, where α is the rate at which a feed-forward
network of width m_FF approximates the POD basis functions (α = 1/2 for
Barron-class targets). `ff_rate` measures it for a function: it trains one
network per width and fits ``error ≈ C_α m_FF^{−α}`` (`tfapprox.fits`).

Unlike `tfapprox.pod` (spectra of kernels, NumPy only), this trains Keras
models; Keras is imported inside `ff_rate`.
"""

import dataclasses
import math

import numpy as np

from tfapprox import fits
from tfapprox._checks import check_int, check_real
from tfapprox.quadrature import parse_domain

__all__ = ["FFRate", "ff_rate"]


@dataclasses.dataclass(frozen=True)
class FFRate:
    """``error(m_FF) ≈ C_α m_FF^{−α}`` fitted over widths (see `ff_rate`).

    Attributes:
        alpha, c_alpha: float. The fit.
        alpha_ci, c_alpha_ci: tuple. Bootstrap percentile intervals.
        widths: tuple of int. The widths m_FF trained.
        errors: tuple of tuples. RMS test error per width and repeat.
        settings: dict. Training settings (for the record).
    """

    alpha: float
    c_alpha: float
    alpha_ci: tuple
    c_alpha_ci: tuple
    widths: tuple
    errors: tuple
    settings: dict

    def to_dict(self):
        return dataclasses.asdict(self)


def ff_rate(
    func,
    widths,
    *,
    input_dim=None,
    domain=None,
    depth=3,
    activation="relu",
    num_samples=1024,
    num_test=1024,
    epochs=200,
    batch_size=64,
    learning_rate=1e-2,
    repeats=1,
    n_bootstrap=1000,
    confidence=0.95,
    seed=0,
    verbose=0,
):
    """Feed-forward rate: fit `FeedForward` networks of several widths to ``func``.

    For each width ``m`` a ``tfapprox.layers.FeedForward(m, k, depth)``
    network is trained (Adam, cosine-decayed learning rate, MSE; inputs
    mapped affinely to ``[−1, 1]^d`` and outputs standardised, which the
    first and last layers absorb) on ``num_samples`` uniform points of the
    domain and its RMS error
    ``e(m) = (mean ‖func(x) − FF(x)‖²)^{1/2}`` is measured on ``num_test``
    fresh points. Then ``log e = log C_α − α log m`` is fitted by least
    squares. Intervals: with ``repeats ≥ 2`` (independent initialisations)
    the repeats of each width are resampled; otherwise the widths are
    (pairs bootstrap, needs ≥ 3 widths; NaN intervals with 2).

    Jiang & Li (2024), Thm 4.2: the second term of the bound is
    ``C_α m_h^{α+1} / m_FF^α``; α = 1/2 for Barron-class targets.

    Args:
        func: callable. NumPy ``(N, d) → (N,)`` or ``(N, k)``: F, f or a POD
            basis function.
        widths: sequence of int. At least 2 distinct widths m_FF.
        input_dim: int or None. d; needed unless ``domain`` gives it.
        domain: Domain of the inputs (intervals only). Defaults to
            ``[0, 1]^d``.
        depth: int. Hidden layers. Defaults to 3.
        activation: Hidden activation. Defaults to ``"relu"``.
        num_samples: int. Training points. Defaults to 1024.
        num_test: int. Test points. Defaults to 1024.
        epochs: int. Defaults to 200.
        batch_size: int. Defaults to 64.
        learning_rate: float. Initial Adam learning rate. Defaults to 1e-2.
        repeats: int. Initialisations per width. Defaults to 1.
        n_bootstrap: int. Defaults to 1000.
        confidence: float. Defaults to 0.95.
        seed: int. Seeds the data, the initialisations and Keras' global
            seed (so the shuffling too). Defaults to 0.
        verbose: int. Keras verbosity. Defaults to 0.

    Returns:
        `FFRate`.
    """
    if not callable(func):
        raise TypeError(f"`func` must be callable. Received: func of type {type(func).__name__}")
    try:
        widths = tuple(check_int("widths", w) for w in widths)
    except TypeError as err:
        if "widths" in str(err):
            raise
        raise TypeError(
            f"`widths` must be a sequence of ints. Received: widths={widths!r}"
        ) from None
    if len(set(widths)) < 2:
        raise ValueError(f"`widths` needs at least 2 distinct widths. Received: widths={widths!r}")
    if domain is None:
        if input_dim is None:
            raise ValueError(
                "`input_dim` is required when `domain` is None. Received: input_dim=None"
            )
        axes = parse_domain(check_int("input_dim", input_dim))
    else:
        axes = parse_domain(domain)
        if input_dim is not None and check_int("input_dim", input_dim) != len(axes):
            raise ValueError(
                f"`input_dim`={input_dim} does not match the {len(axes)} axes of `domain`={domain!r}"
            )
    if any(axis == "normal" for axis in axes):
        raise ValueError("`domain` of ff_rate must be a box of intervals. Received: 'normal' axis")
    depth = check_int("depth", depth)
    num_samples = check_int("num_samples", num_samples)
    num_test = check_int("num_test", num_test)
    epochs = check_int("epochs", epochs)
    batch_size = check_int("batch_size", batch_size)
    learning_rate = check_real("learning_rate", learning_rate, low=0, low_open=True)
    repeats = check_int("repeats", repeats)
    n_bootstrap = check_int("n_bootstrap", n_bootstrap)
    confidence = check_real("confidence", confidence, low=0, high=1, low_open=True, high_open=True)

    import keras

    from tfapprox.layers import FeedForward

    rng = np.random.default_rng(seed)
    low = np.array([a for a, _ in axes])
    width_box = np.array([b - a for a, b in axes])

    def sample(count):
        x = low + rng.random((count, len(axes))) * width_box
        y = np.asarray(func(x), dtype=np.float64)
        if y.ndim == 1:
            y = y[:, None]
        if y.shape[0] != count or y.ndim != 2 or not np.all(np.isfinite(y)):
            raise ValueError(
                f"`func` must map (N, d) to finite (N,) or (N, k) values. Received shape {y.shape}"
            )
        return x, y

    x_train, y_train = sample(num_samples)
    x_test, y_test = sample(num_test)
    # Affine pre/post-processing (absorbed by the first and last layers, so
    # the width is unchanged): inputs to [-1, 1]^d, outputs standardised.
    center, half = low + width_box / 2.0, width_box / 2.0
    y_mean, y_scale = y_train.mean(axis=0), y_train.std(axis=0) + 1e-12

    def scaled(x):
        return ((x - center) / half).astype("float32")

    steps = epochs * math.ceil(num_samples / batch_size)
    errors = np.empty((len(widths), repeats))
    for i, width in enumerate(widths):
        for r in range(repeats):
            init_seed = int(rng.integers(2**31 - 64))
            keras.utils.set_random_seed(init_seed)
            network = keras.Sequential(
                [
                    keras.Input((len(axes),)),
                    FeedForward(width, y_train.shape[1], depth=depth, activation=activation),
                ]
            )
            schedule = keras.optimizers.schedules.CosineDecay(learning_rate, steps, alpha=1e-2)
            network.compile(optimizer=keras.optimizers.Adam(schedule), loss="mse")
            network.fit(
                scaled(x_train),
                ((y_train - y_mean) / y_scale).astype("float32"),
                epochs=epochs,
                batch_size=batch_size,
                verbose=verbose,
            )
            prediction = keras.ops.convert_to_numpy(network(scaled(x_test), training=False))
            prediction = prediction.astype(np.float64) * y_scale + y_mean
            errors[i, r] = math.sqrt(float(np.mean((prediction - y_test) ** 2)))
    if np.any(errors <= 0):
        raise ValueError("ff_rate: a network fitted `func` exactly (zero error); no rate to fit")

    log_errors = np.log(errors)
    mean_errors = np.exp(log_errors.mean(axis=1))
    boot_rng = np.random.default_rng(seed)
    samples = None
    if repeats >= 2:
        picks = boot_rng.integers(0, repeats, size=(n_bootstrap, len(widths), repeats))
        samples = np.take_along_axis(log_errors[None].repeat(n_bootstrap, 0), picks, 2).mean(axis=2)
    fit = fits.power_law(
        np.asarray(widths, dtype=np.float64),
        mean_errors,
        log_y_samples=samples,
        n_bootstrap=n_bootstrap,
        confidence=confidence,
        seed=boot_rng,
        fit_range=(1, len(widths)),
    )
    rate_ci, constant_ci = fit.rate_ci, fit.constant_ci
    if repeats < 2 and len(widths) < 3:
        rate_ci = constant_ci = (math.nan, math.nan)
    settings = dict(
        depth=depth,
        activation=str(activation),
        num_samples=num_samples,
        num_test=num_test,
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        repeats=repeats,
        optimizer="adam+cosine",
        error="rms",
        seed=seed,
        domain=[list(a) for a in axes],
    )
    return FFRate(
        alpha=fit.rate,
        c_alpha=fit.constant,
        alpha_ci=rate_ci,
        c_alpha_ci=constant_ci,
        widths=widths,
        errors=tuple(tuple(float(e) for e in row) for row in errors),
        settings=settings,
    )
