"""The library's bad arguments: a ValueError/TypeError naming them, before any work.

Each case here once hung, trained before failing, dropped results, or
failed deep inside NumPy or Keras.
"""

import numpy as np
import pytest

from tfapprox import check, datasets, fits, layers, pod, quadrature, sweeps, theory, workflow
from tfapprox.budget import Budget
from tfapprox.config import TrainingConfig
from tfapprox.targets import load_preset, make_target


def test_allocation_of_a_huge_budget_refuses_instead_of_searching_for_minutes():
    bound = theory.Bound(tau=16, alpha=5, beta=0.6)
    with pytest.raises(ValueError, match="too large to search m_h exactly"):
        bound.allocate(10**16, input_dim=1, m_v=4)
    # Below the limit the search is exact as before: m_h* ≈ 2.2 at 50k parameters.
    assert theory.Bound(tau=16, alpha=0.5, beta=1.0).allocate(50000, input_dim=1, n=32).m_h == 2


@pytest.mark.parametrize("domain", [10**7, [(0, 1)] * 65])
def test_a_domain_of_too_many_axes_is_refused(domain):
    with pytest.raises(ValueError, match="domain"):
        quadrature.parse_domain(domain)


def test_rules_past_the_memory_are_refused():
    with pytest.raises(ValueError, match="order"):
        quadrature.gauss_rule(20, 100)
    with pytest.raises(ValueError, match="num_points"):
        quadrature.halton(10**13, 1)


def test_fixed_qmc_points_respect_max_points():
    with pytest.raises(ValueError, match="max_points"):
        pod.kernel_spectrum(lambda u, v: u[..., 0] * v[..., 0], 1, method="qmc", num_points=3000)


@pytest.mark.parametrize(
    "options, name",
    [({"rank_rtol": float("nan")}, "rank_rtol"), ({"allow_short": "no"}, "allow_short")],
)
def test_pod_complexity_checks_its_options(options, name):
    with pytest.raises((ValueError, TypeError), match=name):
        pod.PODComplexity(domain=1, **options).fit(lambda u, v: np.minimum(u, v)[..., 0])


@pytest.mark.parametrize(
    "options, name",
    [
        ({"force": "no"}, "force"),
        ({"progress": "no"}, "progress"),
        ({"config": 5}, "config"),
    ],
)
def test_run_sweep_checks_its_options_before_touching_the_file(tmp_path, options, name):
    data = load_preset("fig5b-r2").sample(8)
    members = [(Budget(n=4, m_h=1, m_ff=4), 0)]
    with pytest.raises((ValueError, TypeError), match=name):
        sweeps.run_sweep(data, members, tmp_path / "r.json", progress=False, **options)
    assert not (tmp_path / "r.json").exists()


def test_run_sweep_checks_the_weights_folder_before_training(tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    data = load_preset("fig5b-r2").sample(8)
    members = [(Budget(n=4, m_h=1, m_ff=4), 0)]
    with pytest.raises(ValueError, match="weights folder"):
        sweeps.run_sweep(data, members, tmp_path / "r.json", weights_dir=blocker, progress=False)
    assert not (tmp_path / "r.json").exists()


@pytest.mark.parametrize(
    "options, error, name",
    [
        ({"config": {"epochs": 1}}, None, None),  # a dict of settings is a config
        ({"config": 5}, TypeError, "config"),
        ({"retrain": -1}, ValueError, "retrain"),
    ],
)
def test_run_check_takes_configs_as_fit_does(tmp_path, monkeypatch, options, error, name):
    # Stop right after the arguments are read (before any training).
    def stop(*args, **kwargs):
        raise RuntimeError("reached training")

    monkeypatch.setattr(sweeps, "run_sweep", stop)
    expected = pytest.raises(RuntimeError) if error is None else pytest.raises(error, match=name)
    with expected:
        workflow.run_check(m_h=[1], m_ff=[4], n=4, out=tmp_path, progress=False, **options)


def test_run_check_names_a_target_that_is_not_one(tmp_path):
    with pytest.raises(TypeError, match="`target`"):
        workflow.run_check(5, out=tmp_path)


def test_training_config_coerce():
    assert TrainingConfig.coerce({"epochs": 3}) == TrainingConfig(epochs=3)
    with pytest.raises(TypeError, match="config"):
        TrainingConfig.coerce([("epochs", 3)])


@pytest.mark.parametrize(
    "options, name",
    [
        ({"n_bootstrap": -1}, "n_bootstrap"),
        ({"confidence": 1.5}, "confidence"),
        ({"seed": -1}, "seed"),
        ({"log_y_samples": np.zeros((3, 2))}, "log_y_samples"),
    ],
)
def test_power_law_checks_its_options(options, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        fits.power_law([1, 2, 4], [1.0, 0.5, 0.25], **options)


@pytest.mark.parametrize(
    "options, name",
    [
        ({"floor_rtol": 5}, "floor_rtol"),
        ({"n_bootstrap": -5}, "n_bootstrap"),
        ({"seed": -1}, "seed"),
    ],
)
def test_check_errors_checks_its_options(options, name):
    runs = [
        {"budget": Budget(n=8, m_h=k, m_ff=32).to_dict(), "seed": 0, "loss": 1 / k, "error": 1 / k}
        for k in (1, 2, 4)
    ]
    check.check_errors(runs, tau=16, alpha=0.5, beta=1.0, n_bootstrap=10)  # the runs are fine
    with pytest.raises(ValueError, match=f"`{name}`"):
        check.check_errors(runs, tau=16, alpha=0.5, beta=1.0, **options)


@pytest.mark.parametrize("seed", [-1, 2**32])
def test_seeds_are_in_numpys_range(seed):
    with pytest.raises(ValueError, match="seed"):
        datasets.digits_patches(2, seed=seed)
    with pytest.raises(ValueError, match="seed"):
        datasets.character_windows("abcdefgh", 3, 2, seed=seed)


def test_a_sequence_too_long_to_evaluate_is_refused_before_drawing():
    with pytest.raises(ValueError, match="τ = 10000000"):
        make_target("fig5", {"tau": 10**7}).sample(1)


def test_layers_called_again_with_another_width_name_the_shape():
    attention = layers.SingleHeadAttention(2)
    attention(np.zeros((1, 4, 3), "float32"))
    with pytest.raises(ValueError, match="axis -1"):
        attention(np.zeros((1, 4, 5), "float32"))
    with pytest.raises(ValueError, match="`mask` must have shape"):
        attention(np.zeros((1, 4, 3), "float32"), mask=np.ones((1, 5), bool))
    with pytest.raises(ValueError, match="`mask` must have shape"):
        attention(np.zeros((1, 4, 3), "float32"), mask=np.ones((4,), bool))
    assert attention(np.zeros((2, 6, 3), "float32")).shape == (2, 6, 3)  # another τ is fine
    encoding = layers.PositionEncoding(4)
    encoding(np.zeros((1, 4, 2), "float32"))
    with pytest.raises(ValueError, match="sequence_length"):
        encoding(np.zeros((1, 8, 2), "float32"))
    with pytest.raises(ValueError, match="axis -1"):
        encoding(np.zeros((1, 4, 3), "float32"))


@pytest.mark.parametrize(
    "call, name",
    [
        (lambda: layers.sinusoidal_encoding(4, -1), "dim"),
        (lambda: layers.causal_blocks(4, 0), "block"),
        (lambda: layers.t5_relative_position_bucket(np.arange(3), num_buckets=1), "num_buckets"),
        (lambda: layers.t5_relative_position_bucket(np.arange(3), max_distance=0), "max_distance"),
        (lambda: TrainingConfig(schedule="cosine").scheduled_rate(-5), "epoch"),
        (lambda: make_target(["fig5"]), "family"),
        (lambda: datasets.Dataset(np.zeros((2, 0, 1)), np.zeros((2, 0, 1))), "tau, d >= 1"),
        (lambda: datasets.Dataset(np.zeros((2, 3, 1)), np.zeros((2, 3, 0))), "d_out >= 1"),
        (lambda: theory.parameter_count_expression(ff_depth=0), "ff_depth"),
        (lambda: theory.parameter_count_expression(output_dim=-1), "output_dim"),
    ],
)
def test_degenerate_values_are_refused_naming_them(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_a_string_where_a_list_belongs_is_a_type_error():
    from tfapprox import results

    with pytest.raises(TypeError, match="paths"):
        results.merge("r.json")
    with pytest.raises(TypeError, match="modules"):
        datasets.python_source_text(100, modules="argparse.py")


def test_singular_values_must_be_finite_and_non_negative():
    from tfapprox.targets import Target

    def same(*args):
        return args[0]

    for values in ([float("nan"), 1.0], [1.0, -1.0]):
        with pytest.raises(ValueError, match="singular_values"):
            Target(
                same,
                same,
                same,
                sequence_length=4,
                input_dim=1,
                output_dim=1,
                singular_values=values,
            )


def test_fit_refuses_callbacks_that_are_not_callbacks():
    from tfapprox.training import fit

    with pytest.raises(TypeError, match="callbacks"):
        fit(Budget(n=4, m_h=1, m_ff=4), load_preset("fig5b-r2").sample(8), callbacks="abc")


def test_a_target_names_non_finite_inputs():
    target = load_preset("fig5b-r2")
    with pytest.raises(ValueError, match="`x` holds 16 non-finite"):
        target(np.full((1, 16, 1), np.nan))


def test_results_metadata_must_be_a_dict(tmp_path):
    from tfapprox import results

    with pytest.raises(TypeError, match="`metadata`"):
        results.write(tmp_path / "r.json", [], metadata="abc")
    assert not (tmp_path / "r.json").exists()


def test_an_unknown_activation_is_named():
    from tfapprox.models import build_transformer

    with pytest.raises(ValueError, match="`activation`.*'nope'"):
        build_transformer(Budget(n=4, m_h=1, m_ff=4), 4, 1, activation="nope")


def test_a_warm_up_longer_than_the_schedule_is_refused():
    with pytest.raises(ValueError, match="warmup_epochs=12, epochs=10"):
        TrainingConfig(epochs=10, warmup_epochs=12, schedule="cosine")
    # As long as the schedule is allowed: the rate then ramps up over every epoch.
    config = TrainingConfig(epochs=10, warmup_epochs=10, schedule="cosine", learning_rate=1e-2)
    assert config.scheduled_rate(9) == pytest.approx(1e-2)


def test_reading_a_folder_as_a_results_file_names_it(tmp_path):
    from tfapprox import results

    with pytest.raises(ValueError, match=f"{tmp_path} is a folder"):
        results.read(tmp_path)


@pytest.mark.parametrize(
    "run, error", [({}, ValueError), ({"seed": 0}, ValueError), ([1], TypeError)]
)
def test_run_key_refuses_what_is_not_a_run(run, error):
    from tfapprox import results

    with pytest.raises(error, match="run"):
        results.run_key(run)


def test_dataset_subset_checks_its_indices():
    data = datasets.Dataset(np.arange(8.0).reshape(4, 2, 1), np.zeros((4, 2, 1)))
    # The same rows as NumPy's fancy indexing, negative indices and slices included.
    np.testing.assert_array_equal(data.subset([-1, 0]).x, data.x[[-1, 0]])
    np.testing.assert_array_equal(data.subset(slice(1, 3)).x, data.x[1:3])
    assert data.subset([]).num_samples == 0
    with pytest.raises(ValueError, match=r"\[-4, 4\).*from 0 to 4"):
        data.subset([0, 4])
    with pytest.raises(TypeError, match="indices"):
        data.subset([0.5])
    with pytest.raises(TypeError, match="indices"):
        data.subset([True, False, True, True])
