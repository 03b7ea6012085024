"""Plots: POD spectra and errors against the bound, as image files.

Every function writes one figure to a path (png, pdf or svg, from the
suffix) atomically with `tfapprox._io` and returns the path. matplotlib is
imported inside the functions, with the non-interactive Agg backend, so
importing this module costs nothing and plotting needs no display.
"""

import io
import os

from tfapprox import _io

__all__ = ["pyplot", "rate_plot", "save_figure", "spectrum_plot"]


def pyplot():
    """`matplotlib.pyplot` on the Agg backend (files only, no display), imported on first use."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path):
    """Write a matplotlib figure atomically, in the format of ``path``'s suffix, and close it."""
    plt = pyplot()
    suffix = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
    buffer = io.BytesIO()
    try:
        fig.savefig(buffer, format=suffix, dpi=120)
    except ValueError as err:
        raise ValueError(f"cannot write plot {path}: {err}") from None
    finally:
        plt.close(fig)
    _io.atomic_write_bytes(path, buffer.getvalue())


def spectrum_plot(path, summary, title=""):
    """Write the log-log plot of a POD spectrum and its fitted decay to ``path``.

    ``summary`` is `tfapprox.pod.PODComplexity.summary` with the key
    ``all_values`` (every singular value); the fit is drawn over its
    ``fit_range`` when ``beta`` is not None. The format follows ``path``'s
    suffix (png, pdf, svg). Returns ``path``.

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "spectrum.png")
    >>> summary = {"all_values": [1.0, 0.5, 0.25, 0.125], "noise_floor": 1e-8,
    ...            "beta": 1.0, "c_beta": 1.0, "fit_range": [1, 4]}
    >>> spectrum_plot(path, summary, "example") == path and os.path.getsize(path) > 0
    True
    """
    plt = pyplot()
    import numpy as np

    values = np.asarray(summary["all_values"])
    k = np.arange(1, values.size + 1)
    positive = values > 0
    fig, ax = plt.subplots(figsize=(5.5, 4.0))
    ax.loglog(k[positive], values[positive], "o", ms=3, label=r"$\sigma_k$")
    ax.axhline(summary["noise_floor"], color="grey", ls=":", lw=1, label="noise floor")
    if summary["beta"] is not None:
        start, stop = summary["fit_range"]
        kk = np.arange(start, stop + 1)
        ax.loglog(
            kk,
            summary["c_beta"] * kk ** -summary["beta"],
            "-",
            color="C3",
            label=rf"${summary['c_beta']:.3g}\,k^{{-{summary['beta']:.3f}}}$ (fit)",
        )
    ax.set_xlabel("k")
    ax.set_ylabel(r"singular value $\sigma_k$")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path)
    return path


def rate_plot(path, report):
    """Write the log-log plot of measured errors, the bound and the fitted slope.

    ``report`` is a `tfapprox.check.CheckReport` (or its ``to_dict()``):
    per m_FF the errors of every seed, their minimum and the bound with the
    report's constants; the fitted slope of the headline rate in black.
    Returns ``path``.

    >>> import os, tempfile
    >>> from tfapprox.check import check_errors
    >>> runs = [{"m_h": k, "m_ff": 64, "error": 2.0 / k} for k in (1, 2, 3, 4)]
    >>> report = check_errors(runs, tau=4, alpha=0.5, beta=1.0, n_bootstrap=0)
    >>> path = os.path.join(tempfile.mkdtemp(), "rate.svg")
    >>> rate_plot(path, report) == path and os.path.getsize(path) > 0
    True
    """
    plt = pyplot()
    import numpy as np

    from tfapprox import theory

    if hasattr(report, "to_dict"):
        report = report.to_dict()

    params = report["parameters"]
    constants = report["constants"]
    groups = {}
    for point in report["points"]:
        groups.setdefault(point["m_ff"], []).append(point)
    fig, ax = plt.subplots(figsize=(6.0, 4.2))
    for index, (m_ff, group) in enumerate(sorted(groups.items())):
        color = f"C{index % 10}"
        group = sorted(group, key=lambda p: p["m_h"])
        for point in group:
            seeds = [e for e in point["errors"] if e > 0]
            ax.scatter([point["m_h"]] * len(seeds), seeds, s=8, color=color, alpha=0.35)
        shown = [p for p in group if p["error"] > 0]
        ax.loglog(
            [p["m_h"] for p in shown],
            [p["error"] for p in shown],
            "o-",
            ms=4,
            color=color,
            label=f"min over seeds, m_FF={m_ff}",
        )
        if constants["c_alpha"] > 0 or constants["c_beta"] > 0:
            grid = np.geomspace(group[0]["m_h"], group[-1]["m_h"], 100)
            unit = theory.Bound(
                tau=params["tau"], alpha=params["alpha"], beta=params["beta"], c_0=params["c_0"]
            )
            curve = [
                constants["c_beta"] * unit.terms(k, m_ff).attention_term
                + constants["c_alpha"] * unit.terms(k, m_ff).ff_term
                for k in grid
            ]
            ax.loglog(
                grid, curve, "--", color=color, lw=1, label=f"least-squares bound, m_FF={m_ff}"
            )
        envelope = report.get("envelope")
        if envelope and (envelope["c_alpha"] > 0 or envelope["c_beta"] > 0):
            grid = np.geomspace(group[0]["m_h"], group[-1]["m_h"], 100)
            unit = theory.Bound(
                tau=params["tau"], alpha=params["alpha"], beta=params["beta"], c_0=params["c_0"]
            )
            curve = [
                envelope["c_beta"] * unit.terms(k, m_ff).attention_term
                + envelope["c_alpha"] * unit.terms(k, m_ff).ff_term
                for k in grid
            ]
            ax.loglog(
                grid, curve, "-", color=color, lw=2, alpha=0.5, label=f"envelope bound, m_FF={m_ff}"
            )
            optimum = next((o for o in report.get("optima", []) if o["m_ff"] == m_ff), None)
            if optimum and optimum.get("envelope_m_h_opt"):
                ax.axvline(
                    optimum["envelope_m_h_opt"],
                    color=color,
                    ls=":",
                    lw=1,
                    label=f"m_h* = {optimum['envelope_m_h_opt']:.2f}",
                )
    rate = report["rate"]
    if rate["slope"] is not None:
        low, high = rate["m_h_range"]
        grid = np.geomspace(low, high, 20)
        ax.loglog(
            grid,
            np.exp(rate["intercept"]) * grid ** rate["slope"],
            "-",
            color="black",
            lw=1.5,
            label=f"fit slope {rate['slope']:.3g} (predicted {rate['predicted']:.3g})",
        )
    from matplotlib.ticker import FixedFormatter, FixedLocator, NullFormatter, NullLocator

    widths = sorted({point["m_h"] for point in report["points"]})  # integer ticks, not 2×10^0
    ax.xaxis.set_major_locator(FixedLocator(widths))
    ax.xaxis.set_major_formatter(FixedFormatter([str(m) for m in widths]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("m_h")
    ax.set_ylabel("error")
    ax.set_title(
        f"errors vs the bound (τ={params['tau']}, β={params['beta']:g}, α={params['alpha']:g})",
        fontsize=9,
    )
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)
    return path
