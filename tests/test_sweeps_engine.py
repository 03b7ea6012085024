"""Batched sweeps: the grid, chunks, resume, settings, Dask, and `tfapprox sweep`."""

import json
import pathlib

import pytest

from tests.helpers import assert_one_line_error, run_cli, run_cli_json
from tfapprox import results, sweeps
from tfapprox.config import TrainingConfig
from tfapprox.targets import load_preset

TINY = dict(n=4, ff_depth=1)
CONFIG = TrainingConfig(epochs=3, batch_size=16)


@pytest.fixture(scope="module")
def data():
    target = load_preset("default")
    return target.sample(48, seed=0), target.sample(16, seed=1)


def test_plan_members_orders_m_ff_then_m_h_then_seed():
    members = sweeps.plan_members([2, 1], [8, 4], [0, 1], n=4)
    assert [(b.m_ff, b.m_h, s) for b, s in members] == [
        (8, 2, 0), (8, 2, 1), (8, 1, 0), (8, 1, 1), (4, 2, 0), (4, 2, 1), (4, 1, 0), (4, 1, 1),
    ]  # fmt: skip
    assert all(b.n == 4 and b.m_v == 4 for b, _ in members)


@pytest.mark.parametrize("name", ["m_h", "m_ff", "seeds"])
def test_plan_members_rejects_an_empty_list(name):
    args = {"m_h": [1], "m_ff": [4], "seeds": [0], name: []}
    with pytest.raises(ValueError, match=name):
        sweeps.plan_members(args["m_h"], args["m_ff"], args["seeds"], n=4)


def test_chunks_keep_one_m_ff_each_and_cover_every_member_once():
    members = sweeps.plan_members(range(1, 6), [4, 8], [0, 1], n=4)
    chunks = sweeps.chunk_members(members, 3)
    assert all(len(chunk) <= 3 for chunk in chunks)
    assert all(len({b.m_ff for b, _ in chunk}) == 1 for chunk in chunks)
    assert [m for chunk in chunks for m in chunk] == members


def test_progress_shows_where_a_running_chunk_is(tmp_path, data, capsys, monkeypatch):
    train, _ = data
    monkeypatch.setattr(sweeps.SweepProgress, "LOG_EVERY", 0.0)  # every epoch and round
    members = sweeps.plan_members([1, 2], [8], [0], **TINY)
    config = TrainingConfig(epochs=2, batch_size=16, finisher_steps=3)
    sweeps.run_sweep(train, members, tmp_path / "r.json", config=config)
    lines = capsys.readouterr().err.splitlines()
    within = [line for line in lines if "running chunk" in line]
    assert within[0].startswith("sweep 0/2 runs, running chunk: epoch 1/2, ")
    assert any("running chunk: epoch 2/2" in line for line in within)
    assert any(
        "running chunk: L-BFGS round 1, 2 running (≤ 3 iterations each)" in line for line in within
    )
    assert lines[-1].startswith("sweep [") and "2/2 runs" in lines[-1]


@pytest.fixture
def every_epoch(monkeypatch):
    """A checkpoint and a progress line after every epoch."""
    import tfapprox.engine

    monkeypatch.setattr(tfapprox.engine, "CHECKPOINT_EVERY", 0.0)
    monkeypatch.setattr(sweeps.SweepProgress, "LOG_EVERY", 0.0)


def _interrupted_at(text):
    """`SweepProgress.within` that raises KeyboardInterrupt (Ctrl-C) when shown ``text``."""
    within = sweeps.SweepProgress.within

    def interrupt(self, line):
        if line == text:
            raise KeyboardInterrupt
        within(self, line)

    return interrupt


def test_an_interrupted_chunk_continues_from_its_checkpoint(
    tmp_path, data, capsys, monkeypatch, every_epoch
):
    train, held = data
    members = sweeps.plan_members([1, 2], [8], [0], **TINY)
    config = TrainingConfig(epochs=4, batch_size=16)
    whole = sweeps.run_sweep(
        train, members, tmp_path / "a.json", config=config, validation_data=held, progress=False
    )
    path = tmp_path / "b.json"
    with monkeypatch.context() as patch:
        patch.setattr(sweeps.SweepProgress, "within", _interrupted_at("epoch 3/4"))
        with pytest.raises(KeyboardInterrupt):
            sweeps.run_sweep(train, members, path, config=config, validation_data=held)
    folder = tmp_path / "b.checkpoints"
    assert results.read(path)["runs"] == [] and len(list(folder.iterdir())) == 1
    capsys.readouterr()
    resumed = sweeps.run_sweep(train, members, path, config=config, validation_data=held)
    err = capsys.readouterr().err
    assert f"continuing a chunk of 2 runs from {folder}" in err
    assert "epoch 1/4" not in err and "epoch 4/4" in err  # epochs 1-3 were kept
    for a, b in zip(whole["runs"], resumed["runs"]):
        assert (a["loss"], a["val_error"], a["history"]) == (
            b["loss"],
            b["val_error"],
            b["history"],
        )
    assert not folder.exists()  # removed with the chunk's last checkpoint


def _rewrite_checkpoint(path, change):
    """Apply ``change(meta)`` to a chunk checkpoint's metadata, in place."""
    import numpy as np

    from tfapprox import _io

    with np.load(path) as file:
        arrays = {name: file[name] for name in file.files}
    meta = json.loads(str(arrays.pop("meta")))
    change(meta)
    _io.atomic_save_npz(path, meta=np.asarray(json.dumps(meta)), **arrays)


def test_a_dask_worker_continues_a_chunk_from_its_checkpoint(
    tmp_path, data, capsys, monkeypatch, every_epoch
):
    train, _ = data
    members = sweeps.plan_members([1, 2], [8], [0], **TINY)
    config = TrainingConfig(epochs=4, batch_size=16)
    whole = sweeps.run_sweep(train, members, tmp_path / "a.json", config=config, progress=False)
    path = tmp_path / "b.json"
    with monkeypatch.context() as patch:
        patch.setattr(sweeps.SweepProgress, "within", _interrupted_at("epoch 3/4"))
        with pytest.raises(KeyboardInterrupt):
            sweeps.run_sweep(train, members, path, config=config)
    (checkpoint,) = (tmp_path / "b.checkpoints").iterdir()
    # Mark the saved history: only a run that read the file can report it.
    _rewrite_checkpoint(checkpoint, lambda meta: meta["recipe"]["history"][0].__setitem__(0, 123.0))
    capsys.readouterr()
    resumed = sweeps.run_sweep(train, members, path, config=config, scheduler="local:1")
    assert f"continuing a chunk of 2 runs from {checkpoint}" in capsys.readouterr().err
    first, second = resumed["runs"]
    assert first["history"][0] == 123.0
    assert first["history"][1:] == pytest.approx(whole["runs"][0]["history"][1:], rel=1e-4)
    assert second["loss"] == pytest.approx(whole["runs"][1]["loss"], rel=1e-4)
    assert not checkpoint.parent.exists()  # removed once the chunk is in the file


def _chunks_of(monkeypatch, tmp_path, train, members, config):
    """The chunks `run_sweep` hands to the scheduler, not trained."""
    from tfapprox import distributed

    seen = []

    class Handed(Exception):
        pass

    def hand_over(fn, chunks, on_result, **options):
        seen.extend(chunks)
        raise Handed

    with monkeypatch.context() as patch:
        patch.setattr(distributed, "map_chunks", hand_over)
        with pytest.raises(Handed):
            sweeps.run_sweep(train, members, tmp_path / "r.json", config=config, progress=False)
    return seen


def test_a_worker_keeps_the_chunk_checkpoint_only_where_it_sees_the_results_folder(
    tmp_path, data, monkeypatch, every_epoch
):
    import tfapprox.engine

    train, _ = data
    members = sweeps.plan_members([1], [8], [0], **TINY)
    config = TrainingConfig(epochs=3, batch_size=16)
    (chunk,) = _chunks_of(monkeypatch, tmp_path, train, members, config)
    path = tmp_path / "r.checkpoints" / pathlib.Path(chunk["checkpoint"]).name
    assert chunk["checkpoint"] == str(path)  # absolute: a worker's folder is its own
    keep = tfapprox.engine._keep

    def keep_then_die(*args):
        keep(*args)
        raise KeyboardInterrupt  # the worker dies after its first checkpoint

    with monkeypatch.context() as patch:
        patch.setattr(tfapprox.engine, "_keep", keep_then_die)
        with pytest.raises(KeyboardInterrupt):
            sweeps.train_chunk(chunk)
    assert path.exists()
    elsewhere = {**chunk, "checkpoint": str(tmp_path / "absent" / "r.checkpoints" / "c.npz")}
    (run,) = sweeps.train_chunk(elsewhere)  # another machine: trained, nothing written
    assert run["epochs"] == 3 and not (tmp_path / "absent").exists()


def test_progress_lines_are_spaced_out_in_a_log():
    import io

    stream = io.StringIO()
    bar = sweeps.SweepProgress(4, stream=stream)
    bar.within("epoch 1/9")  # at once: not LOG_EVERY seconds after the start
    assert stream.getvalue() == ""
    bar.shown -= bar.LOG_EVERY
    bar.within("epoch 2/9")
    bar.within("epoch 3/9")  # too soon after the last line
    assert stream.getvalue().count("\n") == 1 and "epoch 2/9" in stream.getvalue()


def test_sweep_records_every_run_and_a_rerun_trains_nothing(tmp_path, data):
    train, held = data
    members = sweeps.plan_members([1, 2], [8], [0], **TINY)
    path = tmp_path / "results.json"
    first = sweeps.run_sweep(
        train, members, path, config=CONFIG, validation_data=held, progress=False
    )
    assert (first["trained"], first["skipped"]) == (2, 0)
    stored = results.read(path)
    assert [r["budget"]["m_h"] for r in stored["runs"]] == [1, 2]
    for run in stored["runs"]:
        assert run["hyperparameters"] == CONFIG.to_dict()
        assert run["error"] > 0 and run["val_error"] > 0 and run["epochs"] == 3
    json.loads(path.read_text())  # strict JSON
    again = sweeps.run_sweep(train, members, path, config=CONFIG, progress=False)
    assert (again["trained"], again["skipped"]) == (0, 2)
    assert again["runs"] == stored["runs"]


def test_an_interrupted_sweep_keeps_finished_chunks_and_resumes(tmp_path, data, monkeypatch):
    train, _ = data
    members = sweeps.plan_members([1, 2, 3], [8], [0], **TINY)
    path = tmp_path / "results.json"
    real = sweeps.train_chunk
    calls = []

    def interrupted(payload, **options):
        calls.append(payload["members"])
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(payload, **options)

    monkeypatch.setattr(sweeps, "train_chunk", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sweeps.run_sweep(train, members, path, config=CONFIG, chunk_size=1, progress=False)
    assert [r["budget"]["m_h"] for r in results.read(path)["runs"]] == [1]
    monkeypatch.setattr(sweeps, "train_chunk", real)
    resumed = sweeps.run_sweep(train, members, path, config=CONFIG, chunk_size=1, progress=False)
    assert (resumed["trained"], resumed["skipped"]) == (2, 1)
    assert [r["budget"]["m_h"] for r in results.read(path)["runs"]] == [1, 2, 3]


def test_other_settings_are_refused_and_force_replaces_them(tmp_path, data):
    train, _ = data
    members = sweeps.plan_members([1], [8], [0], **TINY)
    path = tmp_path / "results.json"
    sweeps.run_sweep(train, members, path, config=CONFIG, progress=False)
    longer = CONFIG.replace(epochs=4)
    with pytest.raises(ValueError, match="other settings.*epochs 3 there, 4 here") as refused:
        sweeps.run_sweep(train, members, path, config=longer, progress=False)
    assert isinstance(refused.value, sweeps.SettingsMismatchError)
    # The default warm-up, min(5, epochs), is resolved in the record, so it differs too.
    detail = "epochs 3 there, 4 here, warmup_epochs 3 there, 4 here"
    assert refused.value.path == str(path) and refused.value.detail == detail
    forced = sweeps.run_sweep(train, members, path, config=longer, force=True, progress=False)
    assert forced["trained"] == 1
    assert [r["epochs"] for r in results.read(path)["runs"]] == [4]


def test_a_results_file_of_other_data_is_refused(tmp_path, data):
    train, held = data
    members = sweeps.plan_members([1], [8], [0], **TINY)
    path = tmp_path / "results.json"
    sweeps.run_sweep(train, members, path, config=CONFIG, progress=False)
    with pytest.raises(ValueError, match="different data"):
        sweeps.run_sweep(held, members, path, config=CONFIG, progress=False)


def test_members_must_be_budgets(tmp_path, data):
    with pytest.raises(TypeError, match="members"):
        sweeps.run_sweep(data[0], [({"m_h": 1}, 0)], tmp_path / "r.json", progress=False)


def test_a_dask_local_cluster_gives_the_runs_of_the_inline_sweep(tmp_path, data):
    train, _ = data
    members = sweeps.plan_members([1, 2], [8], [0], **TINY)
    inline = sweeps.run_sweep(train, members, tmp_path / "a.json", config=CONFIG, progress=False)
    dask = sweeps.run_sweep(
        train,
        members,
        tmp_path / "b.json",
        config=CONFIG,
        chunk_size=1,
        scheduler="local:2",
        progress=False,
    )
    assert dask["trained"] == 2
    for a, b in zip(inline["runs"], dask["runs"]):
        assert a["budget"] == b["budget"]
        # Same seeds, data order and arithmetic: equal up to float rounding.
        assert b["loss"] == pytest.approx(a["loss"], rel=1e-4), (
            a["history"],
            b["history"],
            b["backend"],
        )


# ----------------------------------------------------------------------------
# CLI


SWEEP = ["sweep", "default", "--n", "4", "--ff-depth", "1", "--samples", "32", "--epochs", "2"]


def test_cli_sweep_trains_the_grid_and_resumes(tmp_path):
    out = tmp_path / "run"
    first = run_cli_json(*SWEEP, "--m-h", "1:2", "--m-ff", "8", "--out", out)
    assert (first["trained"], first["skipped"]) == (2, 0)
    assert [r["budget"]["m_h"] for r in first["runs"]] == [1, 2]
    again = run_cli_json(*SWEEP, "--m-h", "1,2", "--m-ff", "8", "--out", out)
    assert (again["trained"], again["skipped"]) == (0, 2)
    text = run_cli(*SWEEP, "--m-h", "1", "--m-ff", "8", "--out", out).output
    assert "0 runs trained, 1 already done" in text and "error" in text


def test_cli_sweep_interrupted_says_how_to_continue_and_continues(
    tmp_path, monkeypatch, every_epoch
):
    out = tmp_path / "run"
    args = [*SWEEP[:-1], "4", "--m-h", "1:2", "--m-ff", "8", "--out", out]
    with monkeypatch.context() as patch:
        patch.setattr(sweeps.SweepProgress, "within", _interrupted_at("epoch 3/4"))
        result = run_cli(*args, expect_exit=130)
    assert "Traceback" not in result.output
    assert f"Interrupted. The finished runs and the checkpoints are kept in {out}; the same" in (
        " ".join(result.stderr.split())
    )
    again = run_cli(*args)
    assert "continuing a chunk of 2 runs" in again.stderr and "2 runs trained" in again.stdout
    assert "epoch 2/4" not in again.stderr and "epoch 4/4" in again.stderr


def test_cli_sweep_refuses_changed_settings_in_one_line(tmp_path):
    out = tmp_path / "run"
    run_cli(*SWEEP, "--m-h", "1", "--m-ff", "8", "--out", out)
    result = run_cli(*SWEEP[:-1], "3", "--m-h", "1", "--m-ff", "8", "--out", out, expect_exit=1)
    assert_one_line_error(result, "other settings", "--force")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["--m-h", "0:3"], "positive"),
        (["--m-h", "4:1"], "4:1"),
        (["--m-h", "a"], "'a'"),
        (["--m-h", "1", "--scheduler", "local:0"], "local:0"),
    ],
)
def test_cli_sweep_rejects_bad_widths_and_schedulers(tmp_path, args, fragment):
    result = run_cli(*SWEEP, "--m-ff", "8", *args, "--out", tmp_path, expect_exit=2)
    assert_one_line_error(result, fragment)


def test_cli_sweep_rejects_an_unknown_preset_and_a_file_as_output(tmp_path):
    result = run_cli("sweep", "nope", "--m-h", "1", "--m-ff", "8", "--out", tmp_path, expect_exit=2)
    assert_one_line_error(result, "nope")
    afile = tmp_path / "file"
    afile.write_text("x")
    result = run_cli(*SWEEP, "--m-h", "1", "--m-ff", "8", "--out", afile, expect_exit=2)
    assert_one_line_error(result, "file")


def test_a_member_can_continue_a_saved_run_under_its_own_key(tmp_path, data):
    from tfapprox import nesting

    train, held = data
    members = sweeps.plan_members([2], [8], [0], **TINY)
    path, folder = tmp_path / "results.json", tmp_path / "weights"
    first = sweeps.run_sweep(
        train, members, path, config=CONFIG, validation_data=held, weights_dir=folder,
        progress=False,
    )  # fmt: skip
    source = first["runs"][0]
    weights = nesting.load_weights(folder, source)
    label = {"continues": results.run_key(source)}
    # A learning rate of ~0 keeps the start: the continued run is the saved one.
    still = CONFIG.replace(learning_rate=1e-12, min_learning_rate=0.0)
    later = tmp_path / "continued.json"
    continued = sweeps.run_sweep(
        train, members, later, config=still, validation_data=held, starts=[(label, weights)],
        progress=False,
    )  # fmt: skip
    run = continued["runs"][0]
    assert run["start"] == label
    assert run["val_error"] == pytest.approx(source["val_error"], rel=1e-4)
    # The start is part of the key: a rerun skips the continued run, not the fresh one.
    again = sweeps.run_sweep(
        train, members, later, config=still, starts=[(label, weights)], progress=False
    )
    assert (again["trained"], again["skipped"]) == (0, 1)
    fresh = sweeps.run_sweep(train, members, later, config=still, progress=False)
    assert (fresh["trained"], fresh["skipped"]) == (1, 0)
    assert fresh["runs"][0]["val_error"] != pytest.approx(run["val_error"], rel=1e-2)
    assert len({results.run_key(r) for r in results.read(later)["runs"]}) == 2


def test_bad_starts_are_named(tmp_path, data):
    train, _ = data
    members = sweeps.plan_members([1, 2], [8], [0], **TINY)
    with pytest.raises(ValueError, match="`starts` must be None or a list with one entry"):
        sweeps.run_sweep(train, members, tmp_path / "r.json", config=CONFIG, starts=[None])
    with pytest.raises(TypeError, match=r"`starts\[1\]` must be None or a pair"):
        sweeps.run_sweep(train, members, tmp_path / "r.json", config=CONFIG, starts=[None, "w"])
