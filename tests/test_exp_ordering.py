"""analysis/ordering.py --quick: RNN vs Transformer under reordering and mixing (paper A Tables 2-3)."""

import json
import os

import numpy as np
import pytest

from analysis import _convergence, ordering
from analysis._convergence import CONVERGENCE_TOLERANCE


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    import contextlib
    import io

    out = tmp_path_factory.mktemp("ordering")
    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        result = ordering.main(["--quick", "--out", str(out), "--json"])
    return result, stdout.getvalue(), out


def test_json_has_one_entry_per_cell_with_mse_per_seed(run):
    result, printed, _ = run
    parsed = json.loads(printed)
    cells = {(c["table"], c["model"], c["data"]): c for c in parsed["cells"]}
    expected = {
        (2, m, d) for m in ("rnn", "transformer") for d in ("original", "ordering", "mixing")
    }
    expected |= {(3, m, d) for m in ("rnn", "transformer") for d in ("original", "permuted")}
    assert set(cells) == expected
    for cell in cells.values():
        assert len(cell["mse"]) == len(result["settings"]["seeds"])
        assert all(np.isfinite(v) and v > 0 for v in cell["mse"])
        assert cell["paper_mse"] > 0


def test_paper_numbers_sit_beside_ours(run):
    result, _, _ = run
    cell = next(
        c for c in result["cells"] if (c["table"], c["model"], c["data"]) == (2, "rnn", "ordering")
    )
    assert cell["paper_mse"] == 3.57e-2


def test_reordering_hurts_the_rnn_more_than_the_transformer(run):
    # The swapped inputs put x(0..9) after the outputs that need them: a causal
    # RNN cannot reach them at any training length, the Transformer can.
    claims = run[0]["claims"]
    assert claims["ordering_hurts_rnn_more"]
    assert claims["ordering_cost_rnn"] > 10


def test_claims_are_ratios_of_the_cells_geometric_mean_mse(run):
    result = run[0]
    claims = result["claims"]
    geomean = {
        (c["table"], c["model"], c["data"]): float(np.exp(np.mean(np.log(c["mse"]))))
        for c in result["cells"]
    }

    def cost(table, model, data, base="original"):
        return geomean[table, model, data] / geomean[table, model, base]

    assert claims["ordering_cost_rnn"] == pytest.approx(cost(2, "rnn", "ordering"), rel=1e-9)
    tf_order = cost(2, "transformer", "ordering")
    assert claims["ordering_cost_transformer"] == pytest.approx(tf_order, rel=1e-9)
    assert claims["ordering_hurts_rnn_more"] == (cost(2, "rnn", "ordering") > tf_order)
    rnn_mix, tf_mix = cost(2, "rnn", "mixing"), cost(2, "transformer", "mixing")
    assert claims["mixing_cost_rnn"] == pytest.approx(rnn_mix, rel=1e-9)
    assert claims["mixing_cost_transformer"] == pytest.approx(tf_mix, rel=1e-9)
    assert claims["mixing_hurts_transformer_more"] == (tf_mix > rnn_mix)
    orderless = [
        geomean[3, "rnn", d] / geomean[3, "transformer", d] for d in ("original", "permuted")
    ]
    np.testing.assert_allclose(claims["orderless_rnn_over_transformer"], orderless, rtol=1e-9)


def test_outputs_are_written(run):
    result, _, out = run
    for key in ("result", "table", "figure"):
        assert os.path.isfile(result["outputs"][key])
    assert json.loads((out / "result.json").read_text())["cells"] == json.loads(
        json.dumps(result["cells"])
    )


def test_swap_and_filter_helpers():
    assert ordering.swap_permutation(32, 10)[:10].tolist() == list(range(22, 32))
    x = np.random.default_rng(0).random((3, 8, 1))
    theta = ordering.random_filter(5, seed=1)
    assert abs(theta.sum() - 1) < 1e-12
    y = ordering.causal_filter(x, theta)
    direct = sum(theta[j] * x[0, 6 - j, 0] for j in range(5))
    assert abs(y[0, 6, 0] - direct) < 1e-12


def test_every_cell_reports_its_convergence_and_the_table_shows_it(run):
    result, _, out = run
    half = result["settings"]["epochs"] // 2
    for cell in result["cells"]:
        check = cell["convergence"]
        assert len(check["runs"]) == len(result["settings"]["seeds"])
        for record in check["runs"]:
            # e_1x and e_2x are the best epoch losses of the first half and of the whole run.
            assert record["half_epochs"] == half
            assert record["error_2x"] <= record["error_1x"]
            change = (record["error_2x"] - record["error_1x"]) / record["error_1x"]
            assert record["relative_change"] == pytest.approx(change)
            assert record["converged"] == (abs(change) <= CONVERGENCE_TOLERANCE)
        assert check["converged"] == all(r["converged"] for r in check["runs"])
    assert result["settings"]["convergence_tolerance"] == CONVERGENCE_TOLERANCE
    assert "converged (2× epochs)" in (out / "table.md").read_text()


def test_a_claim_read_from_an_unconverged_cell_is_not_converged(run):
    result, _, _ = run
    claims = result["claims"]
    converged = {
        (c["table"], c["model"], c["data"]): c["convergence"]["converged"] for c in result["cells"]
    }
    holds = {
        "ordering": claims["ordering_hurts_rnn_more"]
        and claims["ordering_costs_rnn_orders_of_magnitude"],
        "mixing": claims["mixing_hurts_transformer_more"],
        "orderless": claims["orderless_transformer_wins_by_orders_of_magnitude"],
    }
    for name, cells in claims["claim_cells"].items():
        if all(converged[tuple(key)] for key in cells):
            assert claims["verdicts"][name] == ("held" if holds[name] else "failed")
        else:
            assert claims["verdicts"][name] == "not converged"


def test_convergence_reads_half_the_run_as_the_shorter_run():
    # A run stopped early on a plateau: doubling the epochs changes nothing.
    assert _convergence.from_history([3.0, 1.0, 1.0], 4)["relative_change"] == 0.0
    record = _convergence.from_history([3.0, 2.0, 1.0, 0.5], 2)
    assert (record["error_1x"], record["error_2x"], record["converged"]) == (2.0, 0.5, False)
    assert _convergence.verdict(False, [record]) == "not converged"
    assert _convergence.verdict(False, [_convergence.check(1.0, 0.95)]) == "failed"
    assert not _convergence.check(float("nan"), 1.0)["converged"]


def test_an_interrupted_run_continues_from_its_checkpoints(run, tmp_path, monkeypatch):
    # Ctrl-C in the second training group, then the same command: the first
    # group's epochs are not run again, the second continues from its
    # checkpoint, and the numbers are those of an uninterrupted run.
    import contextlib
    import io

    import tfapprox.engine
    import tfapprox.group

    monkeypatch.setattr(tfapprox.engine, "CHECKPOINT_EVERY", 0.0)  # after every epoch
    train_models = tfapprox.group.train_models
    calls, interrupt_at = [], {"group": 2, "epoch": 3}

    def watched(*args, progress=None, **kwargs):
        calls.append({"epochs": [], "checkpoint": kwargs.get("checkpoint")})
        index = len(calls)

        def report(epoch, states):
            calls[-1]["epochs"].append(epoch)
            if (index, epoch) == (interrupt_at["group"], interrupt_at["epoch"]):
                raise KeyboardInterrupt
            progress(epoch, states)

        return train_models(*args, progress=report, **kwargs)

    monkeypatch.setattr(tfapprox.group, "train_models", watched)
    out = tmp_path / "ordering"
    with contextlib.redirect_stdout(io.StringIO()), pytest.raises(KeyboardInterrupt):
        ordering.main(["--quick", "--out", str(out), "--json"])
    assert sorted(os.listdir(out / "checkpoints")) == ["group-001.npz", "group-002.npz"]
    first = calls[0]["epochs"]

    calls.clear()
    interrupt_at["group"] = None
    with contextlib.redirect_stdout(io.StringIO()):
        resumed = ordering.main(["--quick", "--out", str(out), "--json"])
    assert calls[0]["epochs"] == [] and len(first) > 0  # the finished group: no epoch again
    assert calls[1]["epochs"][0] == 4  # epochs 1-3 came from the checkpoint
    assert [c["checkpoint"] for c in calls[:2]] == [
        str(out / "checkpoints" / "group-001.npz"),
        str(out / "checkpoints" / "group-002.npz"),
    ]
    assert not (out / "checkpoints").exists()  # removed with the result written
    plain = {(c["table"], c["model"], c["data"]): c["mse"] for c in run[0]["cells"]}
    again = {(c["table"], c["model"], c["data"]): c["mse"] for c in resumed["cells"]}
    assert again == plain
