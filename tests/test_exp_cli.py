"""tfapprox experiment: the paper-A experiments are listed, and user mistakes give one line."""

from helpers import assert_one_line_error, run_cli, run_cli_json

PAPER_A = {"ordering", "permutation", "mixing", "attention-rank"}


def test_experiment_list_names_the_paper_a_experiments():
    listed = run_cli_json("experiment", "list")
    assert set(listed) >= PAPER_A
    text = run_cli("experiment", "list").output
    for name in PAPER_A:
        assert any(line.startswith(name + " ") for line in text.splitlines()), text


def test_unknown_experiment_lists_the_known_ones_and_exits_2():
    result = run_cli("experiment", "no-such-thing", expect_exit=2)
    assert "unknown experiment 'no-such-thing'" in result.output
    for name in PAPER_A:
        assert name in result.output


def test_output_folder_that_is_a_file_is_one_line_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_cli("experiment", "ordering", "--quick", "--out", blocker, expect_exit=2)
    assert_one_line_error(result, "a-file")


def test_output_folder_that_cannot_be_created_is_one_line_error(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    result = run_cli("experiment", "mixing", "--quick", "--out", blocker / "below", expect_exit=1)
    assert_one_line_error(result, "cannot create the output folder")


def test_ctrl_c_says_how_to_continue_and_exits_130(tmp_path, monkeypatch):
    import importlib

    module = importlib.import_module("tfapprox_analysis.ordering")

    def interrupted(argv):
        raise KeyboardInterrupt

    monkeypatch.setattr(module, "main", interrupted)
    out = tmp_path / "ordering"
    result = run_cli("experiment", "ordering", "--quick", "--out", out, expect_exit=130)
    assert "Traceback" not in result.output
    assert f"Interrupted. The finished runs and the checkpoints are kept in {out}; the same" in (
        " ".join(result.stderr.split())
    )


def test_every_experiment_forgets_its_checkpoint_folder_when_it_ends(tmp_path, monkeypatch):
    # However an experiment ends (here: Ctrl-C just after `start`), training
    # run later in the same process must not keep checkpoints in its folder.
    import importlib

    import pytest

    from analysis import EXPERIMENTS, _experiment

    start = _experiment.start

    def start_then_interrupt(*args, **kwargs):
        start(*args, **kwargs)
        assert _experiment._CHECKPOINTS["folder"] is not None  # the run's folder is named
        raise KeyboardInterrupt

    monkeypatch.setattr(_experiment, "start", start_then_interrupt)
    for name, (module_name, _) in EXPERIMENTS.items():
        module = importlib.import_module(f"analysis.{module_name}")
        with pytest.raises(KeyboardInterrupt):
            module.main(["--quick", "--out", str(tmp_path / name)])
        assert _experiment.checkpoint() is None, name


def test_long_goes_to_the_experiments_that_have_it(tmp_path, monkeypatch):
    import importlib

    module = importlib.import_module("tfapprox_analysis.fig5")
    seen = []
    monkeypatch.setattr(module, "main", seen.append)
    run_cli("experiment", "fig5", "--long", "--out", tmp_path / "f")
    assert seen == [[f"--out={tmp_path / 'f'}", "--long"]]
    result = run_cli("experiment", "ordering", "--long", "--out", tmp_path / "o", expect_exit=2)
    assert "experiment 'ordering' has no --long size" in result.output
    result = run_cli("experiment", "fig5", "--quick", "--long", expect_exit=2)
    assert "--quick and --long exclude each other" in result.output
    assert seen == [[f"--out={tmp_path / 'f'}", "--long"]]
