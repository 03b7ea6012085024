"""analysis/bench_cli.py --quick: the cold-start benchmark runs and reports consistently."""

from analysis import bench_cli


def test_quick_benchmark_reports_every_command_and_ratios(capsys):
    result = bench_cli.main(["--quick", "--repeats", "1"])
    timings = result["timings"]
    assert set(timings) >= {
        "python -c 'import tensorflow'",
        "tfapprox --help",
        "tfapprox bound --m-ff 128",
        "tfapprox bound --memory (paper B)",
        "tfapprox bound --kernel --json (paper B)",
        "tfapprox bound, empty user cache",
        "sympy derivation from scratch",
    }
    reference = timings["python -c 'import tensorflow'"]["median_s"]
    for name, timing in timings.items():
        assert 0 < timing["min_s"] <= timing["median_s"] <= timing["max_s"]
        assert result["ratio_to_import_tensorflow"][name] == timing["median_s"] / reference
    assert result["bound_seconds"] == timings["tfapprox bound --m-ff 128"]["median_s"]
    assert "tfapprox bound:" in capsys.readouterr().out
