"""Extreme and malformed input across the commands: one line naming the value, never a traceback.

Each case here once ended in a traceback, a hang, a message about the wrong
value or a silent success.
"""

import importlib
import json
import math
import os
import types
from fractions import Fraction

import pytest
from helpers import assert_one_line_error, assert_usage_error, run_cli

from tfapprox import memory_theory, theory
from tfapprox.targets import load_preset

BOUND = ("bound", "--tau", 16, "--beta", 1, "--alpha", 0.5, "--m-ff", 128)


# ----------------------------------------------------------------------------
# Numbers past float64


@pytest.mark.parametrize(
    "args, named",
    [
        (("bound", "--tau", 16, "--beta", 1, "--alpha", 400, "--m-ff", 128), "alpha=400.0"),
        ((*BOUND, "--c-beta", 1e308), "c_beta=1e+308"),
        ((*BOUND, "--c0", 1e308, "--json"), "c_0=1e+308"),
        ((*BOUND[:-2], "--params", 100000, "--d", 2, "--c0", 1e308), "c_0=1e+308"),
    ],
)
def test_a_bound_past_float64_is_one_line_naming_the_parameters(args, named):
    result = run_cli(*args, expect_exit=1 if "--params" not in args else 2)
    assert_one_line_error(result, "overflows float64", named)
    assert "Infinity" not in result.output


def test_the_library_raises_instead_of_returning_inf():
    bound = theory.Bound(tau=16, alpha=0.5, beta=1.0, c_alpha=1.0, c_beta=1.0, c_0=1e308)
    with pytest.raises(ValueError, match="c_0=1e"):
        bound(2, 128)
    # Finite values are untouched: B = τ² C_0 (C_β m_h^{1−2β} + C_α m_h^{α+1} m_FF^{−α}).
    plain = theory.Bound(tau=16, alpha=0.5, beta=1.0, c_alpha=1.0, c_beta=1.0, c_0=1.0)
    assert plain(2, 128) == pytest.approx(256 * (1 / 2 + 2**1.5 / 128**0.5), rel=1e-12)


@pytest.mark.parametrize("rate", [1, 3, 40])
def test_head_allocation_in_logs_equals_the_exact_sum(rate):
    # Σ_k p_k^{n+1} / H_k^n against the continuous optimum 1 / H^n, in exact
    # fractions of the same shares (the log-sum-exp route must agree).
    split = memory_theory.allocate_heads([3, 5, 9], 6, rpe="log", rate=rate)
    shares = [Fraction(q) / 6 for q in split.quotas]
    exact = sum(p ** (rate + 1) / Fraction(k) ** rate for p, k in zip(shares, split.heads))
    assert split.ratio == pytest.approx(float(exact * Fraction(6) ** rate), rel=1e-9)


def test_a_huge_memory_rate_answers_at_once():
    # n = 10¹¹ once built integers with 10¹¹ digits; in logs it is immediate.
    result = run_cli("bound", "--memory", "3,5", "--heads", 4, "--rate", 99999999999)
    assert "bound at this split = inf" in result.output
    split = memory_theory.allocate_heads([3, 5], 4, rpe="lin", rate=10**11)
    assert split.bound == 0.0 and math.isinf(split.ratio)
    assert memory_theory.type3_attention_error(2, 8, rate=10**11) == 0.0
    assert memory_theory.type3_attention_error(8, 2, rate=10**11) == math.inf
    assert memory_theory.type3_attention_error(2, 8, rate=2) == 0.125  # exact below


# ----------------------------------------------------------------------------
# Sizes past the memory


@pytest.mark.parametrize(
    "args, fragments",
    [
        (("target", "make", "fig5b-r6", "--samples", 99999999999999), ["num_samples"]),
        (("target", "make", "--tau", 99999999999), ["τ = 99999999999", "too long"]),
        (("target", "make", "--rank", 99999999999), ["rank", "99999999999"]),
        (("target", "make", "--rank", "inf", "--truncation", 99999999999), ["truncation"]),
        (("target", "make", "--d", 99999999999, "--samples", 16), ["`d`", "99999999999"]),
        (("estimate", "fig5b-r6", "--order", 99999999), ["order", "max_points"]),
    ],
)
def test_sizes_past_the_memory_are_one_line_errors(tmp_path, args, fragments):
    if args[:2] == ("target", "make"):
        args = (*args, "--out", tmp_path / "x.npz")
    result = run_cli(*args, expect_exit=1)
    assert_one_line_error(result, *fragments)


def test_sample_refuses_an_array_past_the_limit_before_drawing():
    with pytest.raises(ValueError, match="num_samples"):
        load_preset("fig5b-r6").sample(10**9)


@pytest.mark.parametrize(
    "args, flag",
    [
        (("sweep", "data.npz", "--m-h", "1:99999999999", "--m-ff", 4, "--out", "o"), "--m-h"),
        (("sweep", "data.npz", "--m-h", 1, "--m-ff", 99999999999, "--out", "o"), "--m-ff"),
        (("check", "--quick", "--m-h", 0), "--m-h"),
        (("check", "--quick", "--m-ff", "1:99999999999"), "--m-ff"),
        ((*BOUND, "--rows", 1001), "--rows"),
        (("check", "--beta", 1, "--bootstrap", 10**11, "--results", "r.json"), "--bootstrap"),
    ],
)
def test_option_limits_name_the_option(args, flag):
    assert_usage_error(run_cli(*args, expect_exit=2), flag)


# ----------------------------------------------------------------------------
# Values that passed as something else


def test_nan_is_not_a_number_in_range():
    result = run_cli("estimate", "fig5b-r6", "--rank-rtol", "nan", expect_exit=2)
    assert_usage_error(result, "--rank-rtol", "'nan' is not a finite number")


def test_a_negative_bootstrap_seed_is_blamed_on_seed_not_on_the_file(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"format": "tfapprox-results", "runs": []}))
    result = run_cli("check", "--results", path, "--beta", 1, "--seed", -1, expect_exit=2)
    assert_usage_error(result, "--seed", "-1")


def test_out_with_results_is_refused_not_ignored(tmp_path):
    path = tmp_path / "r.json"
    path.write_text(json.dumps({"format": "tfapprox-results", "runs": []}))
    result = run_cli(
        "check", "--results", path, "--beta", 1, "--out", tmp_path / "o", expect_exit=2
    )
    assert_usage_error(result, "--out", "--plot")
    assert not (tmp_path / "o").exists()


def test_truncation_needs_an_infinite_rank(tmp_path):
    out = tmp_path / "x.npz"
    result = run_cli("target", "make", "--rank", 5, "--truncation", 5, "--out", out, expect_exit=2)
    assert_usage_error(result, "--truncation", "--rank inf")
    assert not out.exists()


# ----------------------------------------------------------------------------
# Paths


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux's /proc")
def test_an_unwritable_path_is_named_not_its_temporary_file():
    result = run_cli(
        "target", "make", "fig5b-r6", "--samples", 4, "--out", "/proc/x.npz", expect_exit=1
    )
    assert_one_line_error(result, "cannot write /proc/x.npz")
    assert ".tmp-" not in result.output


def test_an_empty_output_path_is_refused(tmp_path):
    result = run_cli("target", "make", "fig5b-r6", "--samples", 4, "--out", "", expect_exit=1)
    assert_one_line_error(result, "path=''")


def test_train_checks_its_output_folder_before_training(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    args = ("--n", 4, "--m-h", 1, "--m-ff", 4, "--epochs", 1, "--no-jit")
    result = run_cli(
        "train", "fig5b-r2", "--samples", 8, *args, "--out", blocker / "o", expect_exit=1
    )
    assert_one_line_error(result, "cannot create the output folder", "a-file")


def test_an_experiment_folder_may_start_with_a_dash(monkeypatch):
    seen = {}
    real = importlib.import_module

    def fake(name, *args):
        if name.startswith("tfapprox_analysis."):
            return types.SimpleNamespace(main=lambda argv: seen.setdefault("argv", argv))
        return real(name, *args)

    monkeypatch.setattr(importlib, "import_module", fake)
    run_cli("experiment", "fig5", "--quick", "--out", "-foo")
    assert seen["argv"] == ["--out=-foo", "--quick"]


# ----------------------------------------------------------------------------
# The environment, and a bare group


def test_a_backend_that_is_not_installed_is_one_line_naming_keras_backend(tmp_path, monkeypatch):
    import importlib.util

    if importlib.util.find_spec("torch") is not None:
        pytest.skip("torch is installed: KERAS_BACKEND=torch would load")
    # A fresh process: Keras reads KERAS_BACKEND once, at its import.
    import subprocess
    import sys

    (tmp_path / "model.keras").write_bytes(b"not read: the backend fails first")
    env = {**os.environ, "KERAS_BACKEND": "torch"}
    code = "from tfapprox_cli.main import main; main(['info', 'model.keras'])"
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "KERAS_BACKEND='torch'" in errors[0], done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("args", [(), ("target",), ("experiment",)])
def test_a_bare_group_prints_its_help(args):
    result = run_cli(*args, expect_exit=2)
    assert result.output.startswith("Usage: ")  # "tfapprox", or click's test runner's name
    assert "Commands:" in result.output and "Error:" not in result.output


def test_sweep_refuses_restarts_it_would_ignore(tmp_path):
    # The engine trains one start per (budget, seed); --seeds gives more starts.
    args = ("--m-h", 1, "--m-ff", 4, "--n", 4, "--samples", 8, "--restarts", 3)
    result = run_cli("sweep", "fig5b-r2", *args, "--out", tmp_path / "o", expect_exit=1)
    assert_one_line_error(result, "restarts=3", "--seeds")
    assert not (tmp_path / "o" / "results.json").exists()
