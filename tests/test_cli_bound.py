"""Tests of `tfapprox bound`: paper A's bound and paper B's rates (--memory, --kernel)."""

import json
import re

import pytest
from helpers import assert_usage_error, run_cli, run_cli_json

from tfapprox import memory_theory, theory
from tfapprox.budget import count_parameters

BOUND = ["bound", "--tau", "16", "--beta", "1.0", "--alpha", "0.5"]
JSON_KEYS = {"m_h_opt", "m_h", "m_ff", "bound", "attention_term", "ff_term", "formula"}
MEMORY = ["bound", "--memory", "48,56,99", "--heads", "32"]


@pytest.fixture(autouse=True)
def _session_cache(tmp_path_factory, monkeypatch):
    """One derivation cache folder for the whole test session (sympy derives once)."""
    monkeypatch.setenv("TFAPPROX_CACHE_DIR", str(tmp_path_factory.getbasetemp() / "tfapprox-cache"))


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


def test_bound_requires_tau_and_alpha_for_paper_a():
    result = run_cli("bound", "--beta", "1.0", "--alpha", "0.5", "--m-ff", "8", expect_exit=2)
    assert_usage_error(result, "--tau")
    result = run_cli("bound", "--tau", "16", "--beta", "1.0", "--m-ff", "8", expect_exit=2)
    assert_usage_error(result, "--alpha")


# --------------------------------------------------------------------------
# bound --memory (paper B, Type I)


def test_memory_json_allocation_has_one_entry_per_memory_summing_to_heads():
    out = run_cli_json(*MEMORY, "--rpe", "log", "--width", "256")
    assert [entry["lag"] for entry in out["allocation"]] == [48, 56, 99]
    assert sum(entry["heads"] for entry in out["allocation"]) == 32
    split = memory_theory.allocate_heads([48, 56, 99], 32, rpe="log")
    assert [entry["heads"] for entry in out["allocation"]] == list(split.heads)
    assert out["rpe"] == "log" and out["rpe_source"] == "given"


def test_memory_json_bounds_match_the_library():
    out = run_cli_json(*MEMORY, "--rate", "2", "--width", "64", "--c-n", "0.5", "--lip", "3")
    for rpe in ("lin", "log"):
        attention = memory_theory.type1_attention_error([48, 56, 99], 32, rpe=rpe, rate=2, c_n=0.5)
        assert out["bounds"][rpe]["attention"] == pytest.approx(attention, rel=1e-15)
        assert out["bounds"][rpe]["total"] == pytest.approx(1 / 8 + 3 * attention, rel=1e-15)
    assert out["preferred"] == "lin" == out["rpe"]
    ratio = out["bounds"]["lin"]["attention"] / out["bounds"]["log"]["attention"]
    assert out["bound_ratio"] == pytest.approx(ratio, rel=1e-12)


def test_memory_text_shows_split_bounds_and_preference():
    out = run_cli(*MEMORY, "--rpe", "log").output
    split = memory_theory.allocate_heads([48, 56, 99], 32, rpe="log")
    for lag, heads in zip((48, 56, 99), split.heads):
        assert re.search(rf"lag +{lag}: +{heads} heads", out), out
    assert "bound lin" in out and "bound log" in out
    assert "prefers    lin RPE" in out


def test_memory_far_lags_prefer_log():
    out = run_cli_json("bound", "--memory", "700,2000", "--heads", "4")
    assert out["preferred"] == "log" == out["rpe"]


def test_kernel_names_the_rpe_type_for_each_kernel():
    out = run_cli_json("bound", "--kernel", "exp:5", "--kernel", "power:0.5", "--heads", "8")
    assert [(k["kind"], k["rpe"]) for k in out["kernels"]] == [("exp", "lin"), ("power", "log")]
    assert out["attention"] == pytest.approx(2**2 / 8, rel=1e-15)
    same = run_cli_json("bound", "--kernel", "exp:5,power:0.5", "--heads", "8")
    assert same == out


def test_kernel_text_says_why():
    out = run_cli("bound", "--kernel", "power:0.5", "--heads", "1").output
    assert "log RPE" in out and "s^(-0.5) exactly" in out
    assert "C(n) M^(n+1) / H^n = 1" in out


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--memory", "0,5", "--heads", "4"], "--memory"),
        (["--memory", "5,3", "--heads", "4"], "strictly increasing"),
        (["--memory", "5,5", "--heads", "4"], "strictly increasing"),
        (["--memory", "5,x", "--heads", "4"], "--memory"),
        (["--memory", "3,5", "--heads", "0"], "--heads"),
        (["--memory", "3,5,8", "--heads", "2"], "heads"),
        (["--memory", "3,5"], "needs --heads"),
        (["--kernel", "foo:1", "--heads", "2"], "--kernel"),
        (["--kernel", "exp:-1", "--heads", "2"], "--kernel"),
        (["--kernel", "exp:1,power:2", "--heads", "1"], "heads"),
        (["--memory", "3,5", "--heads", "4", "--rate", "0"], "--rate"),
        (["--memory", "3,5", "--heads", "4", "--c-n", "0"], "c_n"),
    ],
)
def test_paper_b_bad_input_is_one_line_exit_2(args, fragment):
    result = run_cli("bound", *args, expect_exit=2)
    assert_usage_error(result, fragment)


@pytest.mark.parametrize(
    "args, fragment",
    [
        ([*MEMORY, "--tau", "16"], "--tau"),
        ([*MEMORY, "--m-ff", "128", "--latex"], "--m-ff, --latex"),
        (["bound", "--kernel", "exp:1", "--heads", "2", "--alpha", "0.5"], "--alpha"),
        ([*MEMORY, "--kernel", "exp:1"], "not both"),
        (["bound", "--kernel", "exp:1", "--heads", "2", "--rpe", "lin"], "--rpe"),
        ([*BOUND, "--m-ff", "128", "--heads", "32"], "--heads"),
        ([*BOUND, "--m-ff", "128", "--rpe", "log", "--width", "8"], "--rpe, --width"),
    ],
)
def test_paper_a_and_paper_b_options_do_not_mix(args, fragment):
    result = run_cli(*args, expect_exit=2)
    assert_usage_error(result, fragment)
