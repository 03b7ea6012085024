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
