"""Tests of `tfapprox bound` and `tfapprox check`."""

import json

import pytest
from helpers import assert_one_line_error, run_cli, run_cli_json

from tfapprox import _io, theory
from tfapprox.budget import count_parameters

BOUND = ["bound", "--tau", "16", "--beta", "1.0", "--alpha", "0.5"]
JSON_KEYS = {"m_h_opt", "m_h", "m_ff", "bound", "attention_term", "ff_term", "formula"}


@pytest.fixture(autouse=True)
def _session_cache(tmp_path_factory, monkeypatch):
    """One derivation cache folder for the whole test session (sympy derives once)."""
    monkeypatch.setenv("TFAPPROX_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "tfapprox-cache"))


def assert_usage_error(result, *fragments):
    """Exit 2, no traceback, and the message on a single ``Error:`` line."""
    assert result.exit_code == 2, result.output
    assert_one_line_error(result, *fragments)
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1, result.output
    for fragment in fragments:
        assert fragment in errors[0]


# --------------------------------------------------------------------------
# bound


def test_bound_json_has_exactly_the_documented_keys():
    out = run_cli_json(*BOUND, "--m-ff", "128")
    assert set(out) == JSON_KEYS


def test_bound_json_matches_the_library():
    out = run_cli_json(*BOUND, "--c-beta", "2", "--c-alpha", "0.5", "--m-ff", "128")
    b = theory.Bound(tau=16, alpha=0.5, beta=1.0, c_beta=2.0, c_alpha=0.5)
    assert out["m_h_opt"] == pytest.approx(b.optimal_m_h(128), rel=1e-14)
    assert out["m_h"] == b.integer_m_h(128)
    assert out["m_ff"] == 128
    assert out["bound"] == pytest.approx(b(out["m_h"], 128), rel=1e-14)
    assert out["attention_term"] + out["ff_term"] == pytest.approx(out["bound"], rel=1e-14)
    assert out["formula"] == theory.render("error_bound", "text")


def test_bound_with_given_m_h_evaluates_it():
    out = run_cli_json(*BOUND, "--m-ff", "128", "--m-h", "7")
    assert out["m_h"] == 7
    assert out["bound"] == pytest.approx(theory.Bound(tau=16, alpha=0.5, beta=1.0)(7, 128))


def test_bound_c0_scales_the_bound():
    one = run_cli_json(*BOUND, "--m-ff", "64")
    three = run_cli_json(*BOUND, "--m-ff", "64", "--c0", "3")
    assert three["bound"] == pytest.approx(3 * one["bound"], rel=1e-14)
    assert three["m_h"] == one["m_h"]


def test_bound_text_shows_formula_optimum_terms_and_table():
    out = run_cli(*BOUND, "--m-ff", "128").output
    assert theory.render("error_bound", "text") in out
    assert "m_h*(m_FF = 128) = 2.24391" in out
    assert "attention term 128" in out and "feed-forward term 64" in out
    table = [line.split() for line in out.splitlines() if line.strip().endswith("<")]
    assert table == [["2", "128", "128", "64", "192", "<"]]


def test_bound_params_json_matches_the_library_allocation():
    out = run_cli_json(*BOUND, "--params", "50000", "--d", "1", "--n", "32", "--m-v", "32")
    assert set(out) == JSON_KEYS | {"params_used", "params_budget"}
    got = theory.Bound(tau=16, alpha=0.5, beta=1.0).allocate(50_000, input_dim=1, n=32, m_v=32)
    assert (out["m_h"], out["m_ff"]) == (got.m_h, got.m_ff)
    assert out["params_used"] == got.params_used <= out["params_budget"] == 50_000


def test_bound_params_ties_n_by_default():
    out = run_cli_json(*BOUND, "--params", "50000", "--d", "1")
    got = theory.Bound(tau=16, alpha=0.5, beta=1.0).allocate(50_000, input_dim=1, m_v=32)
    assert got.tied
    assert (out["m_h"], out["m_ff"], out["params_used"]) == (got.m_h, got.m_ff, got.params_used)


def test_bound_latex_prints_latex():
    out = run_cli(*BOUND, "--m-ff", "128", "--latex").output
    assert theory.render("optimal_m_h", "latex") in out
    assert r"\frac{256}{m_{h}}" in out


def test_bound_from_estimate_reads_beta_and_c_beta(tmp_path):
    path = tmp_path / "est.json"
    path.write_text(json.dumps({"beta": 0.9, "c_beta": 2.0, "rank": 7}))
    out = run_cli_json(
        "bound", "--from-estimate", path, "--tau", "16", "--alpha", "0.5", "--m-ff", "128"
    )
    b = theory.Bound(tau=16, alpha=0.5, beta=0.9, c_beta=2.0)
    assert out["m_h_opt"] == pytest.approx(b.optimal_m_h(128), rel=1e-14)


@pytest.mark.parametrize(
    "content, fragment",
    [
        ('{"beta": 0.9', "not valid JSON"),
        ('{"beta": 0.9}', "c_beta"),
        ('{"beta": null, "c_beta": 1.0}', "beta"),
        ("[1, 2]", "JSON object"),
        ('{"beta": 0.4, "c_beta": 1.0}', "diverges"),
    ],
)
def test_bound_from_bad_estimate_is_a_one_line_error(tmp_path, content, fragment):
    path = tmp_path / "est.json"
    path.write_text(content)
    result = run_cli(
        "bound",
        "--from-estimate",
        path,
        "--tau",
        "16",
        "--alpha",
        "0.5",
        "--m-ff",
        "128",
        expect_exit=2,
    )
    assert_usage_error(result, fragment)


def test_bound_from_estimate_conflicts_with_beta(tmp_path):
    path = tmp_path / "est.json"
    path.write_text(json.dumps({"beta": 0.9, "c_beta": 2.0}))
    result = run_cli(*BOUND, "--from-estimate", path, "--m-ff", "128", expect_exit=2)
    assert_usage_error(result, "--beta")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--beta", "0.5"], "diverges"),
        (["--beta", "0.3"], "diverges"),
        (["--alpha", "0"], "alpha"),
        (["--alpha", "-1"], "alpha"),
        (["--c-beta", "0"], "c_beta"),
        (["--c-alpha", "-2"], "c_alpha"),
        (["--c0", "0"], "c_0"),
        (["--tau", "0"], "tau"),
        (["--beta", "nan"], "finite"),
        (["--alpha", "inf"], "finite"),
        (["--c-beta", "inf"], "finite"),
        (["--c-alpha", "nan"], "finite"),
    ],
)
def test_bound_rejects_bad_values(args, fragment):
    result = run_cli(*BOUND, "--m-ff", "128", *args, expect_exit=2)
    assert_usage_error(result, fragment)


def test_bound_rejects_m_ff_with_params():
    result = run_cli(*BOUND, "--m-ff", "128", "--params", "50000", "--d", "1", expect_exit=2)
    assert_usage_error(result, "exactly one of --m-ff")


def test_bound_rejects_neither_m_ff_nor_params():
    result = run_cli(*BOUND, expect_exit=2)
    assert_usage_error(result, "exactly one of --m-ff")


def test_bound_rejects_missing_beta():
    result = run_cli("bound", "--tau", "16", "--alpha", "0.5", "--m-ff", "8", expect_exit=2)
    assert_usage_error(result, "--beta")


def test_bound_params_needs_d():
    result = run_cli(*BOUND, "--params", "50000", expect_exit=2)
    assert_usage_error(result, "--d")


def test_bound_rejects_budget_options_without_params():
    result = run_cli(*BOUND, "--m-ff", "128", "--n", "32", expect_exit=2)
    assert_usage_error(result, "--n")


def test_bound_too_small_budget_says_the_minimum():
    minimum = count_parameters(
        n=32, m_h=1, m_v=32, m_ff=1, ff_depth=3, sequence_length=16, input_dim=1
    )
    result = run_cli(*BOUND, "--params", minimum - 1, "--d", "1", "--n", "32", expect_exit=2)
    assert_usage_error(result, f"needs at least {minimum} parameters")
    run_cli(*BOUND, "--params", minimum, "--d", "1", "--n", "32")


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
