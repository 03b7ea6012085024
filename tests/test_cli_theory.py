"""Tests of `tfapprox check` (`tfapprox bound` is in test_cli_bound.py)."""

import pytest
from helpers import assert_one_line_error, assert_usage_error, run_cli, run_cli_json

from tfapprox import _io, theory


@pytest.fixture(autouse=True)
def _session_cache(tmp_path_factory, monkeypatch):
    """One derivation cache folder for the whole test session (sympy derives once)."""
    monkeypatch.setenv("TFAPPROX_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "tfapprox-cache"))


# --------------------------------------------------------------------------
# check


def _results_file(path, *, metadata=True, c_beta=2.0, c_alpha=0.5, planted=None):
    b = theory.Bound(tau=8, alpha=0.5, beta=1.0, c_alpha=c_alpha, c_beta=c_beta)
    runs = []
    for m_ff in (32, 512):
        for m_h in range(1, 9):
            for seed, factor in enumerate((1.0, 1.1, 1.3)):
                loss = b(m_h, m_ff) * factor * (planted.get(m_h, 1.0) if planted else 1.0)
                runs.append(
                    {
                        "budget": {"n": 16, "m_h": m_h, "m_v": 16, "m_ff": m_ff, "ff_depth": 3},
                        "loss": loss,
                        "seed": seed,
                    }
                )
    _io.atomic_write_json(
        path, {"runs": runs, "metadata": {"sequence_length": 8} if metadata else {}}
    )
    return path


def test_check_json_reports_constants_rate_and_optima(tmp_path):
    path = _results_file(tmp_path / "results.json")
    out = run_cli_json("check", "--results", path, "--beta", "1.0", "--alpha", "0.5")
    assert out["parameters"]["tau"] == 8  # from the metadata
    assert out["fitted"]["c_beta"] == pytest.approx(2.0, rel=1e-9)
    assert out["fitted"]["c_alpha"] == pytest.approx(0.5, rel=1e-9)
    assert out["violations"] == []
    assert out["rate"]["m_ff"] == 512
    assert {opt["m_ff"] for opt in out["optima"]} == {32, 512}


def test_check_flags_violations_of_given_constants(tmp_path):
    path = _results_file(tmp_path / "results.json", planted={4: 3.0})
    out = run_cli_json(
        "check",
        "--results",
        path,
        "--beta",
        "1.0",
        "--alpha",
        "0.5",
        "--c-beta",
        "2",
        "--c-alpha",
        "0.5",
    )
    assert out["given_bound_all"] is False
    assert {(v["m_h"], v["m_ff"]) for v in out["violations"]} == {(4, 32), (4, 512)}


def test_check_text_report_and_plot(tmp_path):
    path = _results_file(tmp_path / "results.json")
    plot = tmp_path / "rate.png"
    out = run_cli(
        "check", "--results", path, "--beta", "1.0", "--alpha", "0.5", "--plot", plot
    ).output
    assert "fitted     C_beta = 2" in out
    assert "slope of log error vs log m_h" in out
    assert "violations none" in out
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_check_requires_tau_without_metadata(tmp_path):
    path = _results_file(tmp_path / "results.json", metadata=False)
    result = run_cli("check", "--results", path, "--beta", "1.0", "--alpha", "0.5", expect_exit=2)
    assert_usage_error(result, "--tau")
    run_cli("check", "--results", path, "--beta", "1.0", "--alpha", "0.5", "--tau", "8")


def test_check_rejects_beta_at_one_half(tmp_path):
    path = _results_file(tmp_path / "results.json")
    result = run_cli("check", "--results", path, "--beta", "0.5", "--alpha", "0.5", expect_exit=2)
    assert_usage_error(result, "diverges")


def test_check_corrupt_results_is_a_one_line_error(tmp_path):
    path = tmp_path / "results.json"
    path.write_text('{"runs": [{"budget": {"m_h": 1}, "loss": 1.0, "seed": 0}]}')
    result = run_cli(
        "check", "--results", path, "--beta", "1.0", "--alpha", "0.5", "--tau", "8", expect_exit=1
    )
    assert_one_line_error(result, "results.json", "budget")
