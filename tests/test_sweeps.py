"""tfapprox.sweeps: resumable sweeps over budgets into a results file."""

import numpy as np
import pytest

from tfapprox import Budget, results
from tfapprox.config import TrainingConfig
from tfapprox.datasets import Dataset
from tfapprox.sweeps import sweep

BUDGET = Budget(n=4, m_h=2, m_ff=8)


@pytest.fixture(scope="module")
def data():
    """y_t = the sequence mean of x."""
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(256, 6, 1)).astype("float32")
    return Dataset(x, np.repeat(x.mean(axis=1, keepdims=True), 6, axis=1), {"target": "mean"})


def test_sweep_resumes_without_retraining_finished_runs(data, tmp_path, monkeypatch, capsys):
    import tfapprox.training as training

    calls = []
    real_fit = training.fit

    def counting_fit(budget, *args, **kwargs):
        calls.append((budget, kwargs["seed"]))
        return real_fit(budget, *args, **kwargs)

    monkeypatch.setattr(training, "fit", counting_fit)
    small, other = Budget(n=4, m_h=1, m_ff=8), Budget(n=4, m_h=2, m_ff=8)
    options = dict(epochs=2, batch_size=64, jit_compile=False)
    path = tmp_path / "sweep.json"

    # "Interrupted" sweep: only the first budget finished.
    sweep(data, [small], path, seeds=(0,), **options)
    first = results.read(path)["runs"]
    assert len(first) == 1 and len(calls) == 1

    runs = sweep(data, [small, other], path, seeds=(0,), **options)
    assert calls == [(small, 0), (other, 0)]  # the finished run was not retrained
    stored = results.read(path)
    assert stored["runs"][0] == first[0]
    assert [run["budget"]["m_h"] for run in runs] == [1, 2]
    assert stored["metadata"]["sequence_length"] == 6
    assert len({results.run_key(run) for run in stored["runs"]}) == 2

    sweep(data, [small, other], path, seeds=(0,), **options)
    assert len(calls) == 2  # everything already done
    progress = capsys.readouterr().err
    assert "[2/2] n=4 m_h=2 m_v=4 m_ff=8 ff_depth=3 seed=0: loss" in progress and "ETA" in progress
    assert "[1/2] n=4 m_h=1 m_v=4 m_ff=8 ff_depth=3 seed=0: already in results" in progress


def test_sweep_refuses_a_results_file_of_other_data(data, tmp_path):
    path = tmp_path / "sweep.json"
    results.write(path, [], {"data_sha256": "0" * 64})
    with pytest.raises(ValueError, match="holds runs on different data"):
        sweep(data, [BUDGET], path, epochs=1)


def test_sweep_records_the_config_and_retrains_when_it_changes(data, tmp_path, monkeypatch):
    import tfapprox.training as training

    calls = []
    real_fit = training.fit

    def counting_fit(budget, *args, **kwargs):
        calls.append(kwargs["config"])
        return real_fit(budget, *args, **kwargs)

    monkeypatch.setattr(training, "fit", counting_fit)
    path = tmp_path / "sweep.json"
    config = TrainingConfig(epochs=1, batch_size=128)
    (run,) = sweep(data, [BUDGET], path, config=config, jit_compile=False, progress=False)
    assert run["hyperparameters"] == config.to_dict()
    sweep(data, [BUDGET], path, config=config.to_dict(), jit_compile=False, progress=False)
    assert len(calls) == 1  # the same settings as a dict: already done
    sweep(data, [BUDGET], path, config=config, epochs=2, jit_compile=False, progress=False)
    assert [c.epochs for c in calls] == [1, 2]  # a keyword setting overrides the config
    assert len(results.read(path)["runs"]) == 2


def test_sweep_rejects_a_seed_keyword(data, tmp_path):
    with pytest.raises(TypeError, match="seeds"):
        sweep(data, [BUDGET], tmp_path / "s.json", seed=1)
