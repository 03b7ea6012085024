"""The README's quick start stays in step with CI and the CLI."""

import pathlib
import re
import shlex

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def quick_start_commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)\n```", section, flags=re.S)


def test_quick_start_is_exactly_two_commands():
    commands = quick_start_commands()
    assert len(commands) == 2
    assert all("\n" not in command for command in commands)


def test_ci_runs_both_readme_commands_in_order():
    main_job, test_command = quick_start_commands()
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    # `set -e` ignores a failed install before `&&`: every step ends `|| exit 1`.
    steps = [line for line in lines if line.startswith("pip install")]
    assert steps and all(line.endswith(" || exit 1") for line in steps)
    commands = [line.removesuffix(" || exit 1") for line in lines]
    # A second editable install on top of the first is what a new user does.
    assert commands.index(main_job) < commands.index(test_command) == len(lines) - 1


def test_main_job_is_the_check_on_a_bundled_target():
    main_job, _ = quick_start_commands()
    install, _, job = main_job.partition(" && ")
    assert install == "pip install -e ."
    assert shlex.split(job) == ["tfapprox", "check"]
    # The command line parses (without training), and its default target is bundled.
    from tfapprox import workflow
    from tfapprox.targets import load_preset
    from tfapprox_cli.main import main

    context = main.get_command(None, "check").make_context("check", [])
    assert context.params["results_path"] is None  # the main job, not a re-check
    target = load_preset(workflow.DEFAULT_TARGET)
    assert str(target.rank) == "inf" and target.beta > 0.5  # a measurable rate


def python_tour():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Python tour", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)\n```", section, flags=re.S)


# The tour as written trains for minutes; the test runs the same code on less
# data and fewer epochs (every substitution must match, so the tour and the
# test cannot drift apart silently).
TOUR_SHRINK = {
    "target.sample(4000, seed=0)": "target.sample(64, seed=0)",
    "epochs=200, restarts=2": "epochs=1, restarts=2, jit_compile=False, verbose=0",
}


# The shrunken tour's model (one epoch on 64 samples) has a rough learned ρ̂
# whose spectrum the Gauss rule does not resolve within its default points;
# `tfapprox.pod` says so with a RuntimeWarning, which is expected here.
@pytest.mark.filterwarnings("ignore:kernel_spectrum. the Gauss rule did not converge")
def test_python_tour_runs(tmp_path, monkeypatch):
    tour, paper_b, layers_example = python_tour()
    for old, new in TOUR_SHRINK.items():
        assert tour.count(old) == 1, f"the README tour no longer contains {old!r}"
        tour = tour.replace(old, new)
    monkeypatch.chdir(tmp_path)
    # The tour builds its model unseeded; seed Keras so the test does not
    # depend on what earlier tests drew from the global generator.
    import keras

    keras.utils.set_random_seed(0)
    scope = {}
    exec(compile(tour, "README.md (Python tour)", "exec"), scope)
    # The values the tour's comments state.
    assert scope["budget"].parameter_count(sequence_length=16, input_dim=1) == (
        scope["model"].count_params()
    )
    estimate = scope["estimate"]
    assert round(estimate.beta_, 6) == 1.0 and estimate.rank_ == 6
    assert scope["bound"].integer_m_h(128) == 2
    assert (tmp_path / "model.keras").exists() and (tmp_path / "saved_model").is_dir()
    exec(compile(paper_b, "README.md (paper B)", "exec"), scope)
    assert scope["model_b"].count_params() == scope["budget_b"].parameter_count(
        32, 1, **scope["options"]
    )
    assert scope["logits_b"].shape == (2, 2, 4, 32, 32)
    assert tuple(scope["logits"].shape) == (2, 4, 32, 32)
    exec(compile(layers_example, "README.md (layers)", "exec"), {})


def test_targets_section_names_every_bundled_preset():
    from tfapprox import targets

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Targets and presets", 1)[1].split("\n## ", 1)[0]
    listed = set(re.findall(r"`([a-z0-9.-]+)`", section))
    assert set(targets.preset_names()) <= listed
    assert set(targets.FAMILIES) <= listed
