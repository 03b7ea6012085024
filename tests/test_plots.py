"""tfapprox.plots: spectrum and rate plots written as image files."""

import os
import subprocess
import sys

import pytest

from tfapprox import plots
from tfapprox.check import check_errors

PNG = b"\x89PNG\r\n\x1a\n"


def test_spectrum_plot_writes_a_png(tmp_path):
    summary = {
        "all_values": [1.0, 0.5, 0.3, 0.25, 0.0],
        "noise_floor": 1e-8,
        "beta": 1.0,
        "c_beta": 1.0,
        "fit_range": [1, 4],
    }
    path = plots.spectrum_plot(tmp_path / "spectrum.png", summary, "title")
    assert open(path, "rb").read()[:8] == PNG


def test_rate_plot_accepts_a_report_or_its_dict(tmp_path):
    runs = [{"m_h": k, "m_ff": m, "error": 2.0 / k + k / m} for k in range(1, 6) for m in (64, 512)]
    report = check_errors(runs, 4, 0.5, 1.0, n_bootstrap=20)
    plots.rate_plot(tmp_path / "a.png", report)
    plots.rate_plot(tmp_path / "b.png", report.to_dict())
    # PNGs carry no time stamp: the same figure gives the same bytes.
    assert (tmp_path / "a.png").read_bytes()[:8] == PNG
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_an_unknown_image_format_is_a_value_error_naming_the_file(tmp_path):
    summary = {"all_values": [1.0, 0.5], "noise_floor": 0.0, "beta": None}
    with pytest.raises(ValueError, match="cannot write plot .*plot.xyz"):
        plots.spectrum_plot(tmp_path / "plot.xyz", summary)
    assert not os.path.exists(tmp_path / "plot.xyz")


def test_importing_plots_does_not_import_matplotlib():
    code = "import sys, tfapprox.plots; print('matplotlib' in sys.modules)"
    env = {**os.environ, "TFAPPROX_LAZY_IMPORT": "1"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "False"
