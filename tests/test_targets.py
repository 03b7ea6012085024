"""Tests for tfapprox.targets: the representation form, known POD spectra, presets, sampling."""

import importlib.resources
import json
import math

import numpy as np
import pytest

from tfapprox import datasets, targets

FIG5_PRESETS = ("fig5a-r2", "fig5a-r6", "fig5a-rinf", "fig5b-r2", "fig5b-r6", "fig5b-rinf")
# The paper's Table 2 "ordering altered": swap the first 10 and the last 10 inputs.
SWAP_TEN = np.r_[22:32, 10:22, 0:10]


def preset_files():
    """``{name: recipe}`` read straight from the JSON files bundled in ``tfapprox_data``."""
    recipes = {}
    for entry in importlib.resources.files("tfapprox_data").iterdir():
        if entry.name.endswith(".json"):
            recipe = json.loads(entry.read_text(encoding="utf-8"))
            if recipe.get("format") == "tfapprox-target-preset":
                recipes[recipe["name"]] = recipe
    return recipes


# ------------------------------------------------------------ NumPy references


def stable_softmax(logits):
    """Row softmax; ``-inf`` entries get weight exactly 0."""
    top = logits.max(axis=-1, keepdims=True)
    weights = np.exp(logits - top)
    return weights / weights.sum(axis=-1, keepdims=True)


def reference_representation(target, x):
    """``F(Σ_s softmax_s[ρ(x(t), x(s), t, s)] f(x(s)))`` one token pair at a time."""
    num, tau, _ = x.shape
    out = []
    for n in range(num):
        logits = np.empty((tau, tau))
        for t in range(tau):
            for s in range(tau):
                logits[t, s] = target.rho(x[n, t], x[n, s], t, s)
        weights = stable_softmax(logits)  # (tau, tau)
        values = np.stack([target.f(x[n, s]) for s in range(tau)])  # (tau, n)
        mixed = np.einsum("ts,sk->tk", weights, values)  # (tau, n)
        out.append(np.stack([target.F(mixed[t]) for t in range(tau)]))  # (tau, d_out)
    return np.stack(out)


def fig5_rho(u, v, beta, c_beta, terms):
    """``Σ_{i≤terms} C_β i^{−β} √2 sin(2π i u) √2 sin(2π i v)`` for scalar arrays u, v."""
    i = np.arange(1, terms + 1)
    sigma = c_beta * i ** (-float(beta))
    phi = np.sqrt(2) * np.sin(2 * np.pi * np.multiply.outer(u, i))
    psi = np.sqrt(2) * np.sin(2 * np.pi * np.multiply.outer(v, i))
    return np.sum(sigma * phi * psi, axis=-1)


def fig5_closed_form(x, beta, c_beta, terms):
    """Fig. 5 with F = f = id: ``H_t = Σ_s softmax_s[ρ(x_t, x_s)] x_s`` for d = 1."""
    u = x[..., 0]  # (N, tau)
    logits = fig5_rho(u[:, :, None], u[:, None, :], beta, c_beta, terms)  # (N, tau, tau)
    return np.einsum("nts,ns->nt", stable_softmax(logits), u)[..., None]


def linear_memory_closed_form(x, memory):
    """``H_t = Σ_{k=0..t} m(k) x(t−k)`` with explicit loops."""
    out = np.zeros_like(x)
    for t in range(x.shape[1]):
        for k in range(t + 1):
            out[:, t] += memory[k] * x[:, t - k]
    return out


def positional_basis(label, phases, u, t, tau):
    """``a_k(u) g_j(t)`` from a metadata label ``[k, j]`` (docstring of positional_target)."""
    k, j = label
    if any(k):
        theta = phases[",".join(map(str, k))]
        value = np.sqrt(2) * np.cos(2 * np.pi * (u @ np.asarray(k, float)) + theta)
    else:
        value = np.ones(u.shape[:-1])
    position = np.sqrt(2) * np.cos(np.pi * j * (2 * np.asarray(t) + 1) / (2 * tau)) if j else 1.0
    return value * position


def positional_rho(meta, u, v, t, s):
    """ρ of a positional target rebuilt from its metadata (labels, phases, σ_i)."""
    basis, tau = meta["basis"], meta["sequence_length"]
    total = 0.0
    for i, (phi, psi) in enumerate(zip(basis["phi"], basis["psi"]), start=1):
        sigma = meta["c_beta"] * i ** (-meta["beta"])
        total = total + sigma * positional_basis(phi, basis["phases"], u, t, tau) * (
            positional_basis(psi, basis["phases"], v, s, tau)
        )
    return total


def weighted_kernel_singular_values(target, points_per_axis):
    """Singular values of ρ on an exact quadrature grid for the target's POD measure.

    Midpoint nodes on [0,1]^d (exact for the trigonometric products involved
    when their frequencies stay below ``points_per_axis``) times every position
    (weight 1/τ) when ρ depends on positions.
    """
    d, tau = target.input_dim, target.sequence_length
    axis = (np.arange(points_per_axis) + 0.5) / points_per_axis
    values = np.stack(np.meshgrid(*([axis] * d), indexing="ij"), axis=-1).reshape(-1, d)
    weight = 1.0 / len(values)
    if target.position_dependent:
        positions = np.repeat(np.arange(tau), len(values))
        values = np.tile(values, (tau, 1))
        weight /= tau
        kernel = target.rho(
            values[:, None], values[None, :], positions[:, None], positions[None, :]
        )
    else:
        kernel = target.rho(values[:, None], values[None, :])
    return np.linalg.svd(kernel * weight, compute_uv=False)


# ------------------------------------------------- representation form


@pytest.mark.parametrize("name", ["fig5a-r2", "fig5b-rinf", "positional-d2", "default"])
def test_call_matches_the_representation_form_reference(name, rng):
    target = targets.load_preset(name)
    x = rng.random((2, target.sequence_length, target.input_dim))
    out = target(x)
    assert out.shape == (2, target.sequence_length, target.output_dim)
    assert target.exact_representation
    # Same float64 maths in another order: only rounding differs.
    np.testing.assert_allclose(out, reference_representation(target, x), rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("name", FIG5_PRESETS)
def test_fig5_presets_match_the_closed_form(name, rng):
    target = targets.load_preset(name)
    terms = target.truncation if target.rank == math.inf else target.rank
    x = rng.random((3, 16, 1))
    expected = fig5_closed_form(x, target.beta, target.c_beta, terms)
    np.testing.assert_allclose(target(x), expected, rtol=1e-11, atol=1e-12)


def test_fig5_readout_and_embedding_are_identities(rng):
    target = targets.load_preset("fig5b-r6")
    u = rng.random((5, 1))
    np.testing.assert_array_equal(target.f(u), u)
    np.testing.assert_array_equal(target.F(u), u)


def test_table2_matches_the_exponential_memory_closed_form(rng):
    target = targets.load_preset("table2-exp")
    x = rng.random((3, 32, 1))
    expected = np.zeros_like(x)
    for t in range(32):
        for s in range(t + 1):
            expected[:, t] += math.exp(-s) * x[:, t - s]
    np.testing.assert_allclose(target(x), expected, rtol=1e-12)


def test_table2_rho_is_minus_the_lag_and_masks_the_future():
    target = targets.load_preset("table2-exp")
    t, s = np.meshgrid(np.arange(32), np.arange(32), indexing="ij")
    rho = target.rho(np.zeros((1, 1)), np.zeros((1, 1)), t, s)
    causal = s <= t
    np.testing.assert_allclose(rho[causal], -(t - s)[causal], atol=1e-12)
    assert np.all(rho[~causal] == -np.inf)


@pytest.mark.parametrize("name", ["table2-exp", "table3-random"])
def test_linear_memory_is_the_normaliser_times_the_representation(name, rng):
    target = targets.load_preset(name)
    x = rng.random((2, 32, 1))
    reference = reference_representation(target, x)
    assert not target.exact_representation
    np.testing.assert_allclose(target.representation(x), reference, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(target.normaliser, np.cumsum(target.memory), rtol=1e-12)
    np.testing.assert_allclose(
        target(x), target.normaliser[None, :, None] * reference, rtol=1e-10, atol=1e-14
    )


def test_table3_memory_is_the_documented_seeded_uniform_draw_and_the_closed_form(rng):
    target = targets.load_preset("table3-random")
    recipe = preset_files()["table3-random"]
    memory = np.random.default_rng(recipe["seed"]).random(32)
    np.testing.assert_array_equal(target.memory, memory)
    x = rng.random((3, 32, 1))
    np.testing.assert_allclose(target(x), linear_memory_closed_form(x, memory), rtol=1e-12)


def test_custom_target_from_callables_matches_the_reference(rng):
    def rho(u, v, t, s):
        return np.sin(3 * u[..., 0] * v[..., 1]) + 0.1 * (t - s)

    def f(u):
        return np.concatenate([np.cos(u), u**2, u[..., :1] * u[..., 1:]], axis=-1)  # (..., 5)

    def F(z):
        return np.stack([z.sum(-1), np.tanh(z[..., 0] - z[..., 4])], axis=-1)  # (..., 2)

    target = targets.Target(
        rho,
        f,
        F,
        sequence_length=5,
        input_dim=2,
        output_dim=2,
        embedding_dim=5,
        position_dependent=True,
    )
    x = rng.random((3, 5, 2))
    np.testing.assert_allclose(target(x), reference_representation(target, x), rtol=1e-12)


def test_chunked_evaluation_equals_one_pass(monkeypatch, rng):
    target = targets.load_preset("positional-d2")
    x = rng.random((5, 16, 2))
    whole = target(x)
    # Force about one row per chunk: the chunk loop must stitch rows back in order.
    monkeypatch.setattr(targets, "_CHUNK_ELEMENTS", 1)
    np.testing.assert_array_equal(target(x), whole)


def test_attention_rows_are_probabilities_of_rho(rng):
    target = targets.load_preset("fig5b-r6")
    x = rng.random((2, 16, 1))
    weights = target.attention(x)
    logits = fig5_rho(x[..., 0][:, :, None], x[..., 0][:, None, :], 1.0, 1.0, 6)
    np.testing.assert_allclose(weights, stable_softmax(logits), rtol=1e-11)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-12)


def test_call_rejects_a_batch_of_the_wrong_shape():
    target = targets.load_preset("fig5b-r6")
    with pytest.raises(ValueError, match=r"`x` must have shape \(N, 16, 1\)"):
        target(np.zeros((2, 8, 1)))
    with pytest.raises(ValueError, match="`x`"):
        target(np.zeros((16, 1)))


# ------------------------------------------------------ Fig. 5 kernels


@pytest.mark.parametrize("name", FIG5_PRESETS)
def test_fig5_rho_is_the_power_law_sine_expansion(name, rng):
    target = targets.load_preset(name)
    recipe = preset_files()[name]["params"]
    terms = recipe["truncation"] if recipe["rank"] == "inf" else recipe["rank"]
    u, v = rng.random((2, 50))
    expected = fig5_rho(u, v, recipe["beta"], recipe["c_beta"], terms)
    np.testing.assert_allclose(target.rho(u[:, None], v[:, None]), expected, rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("name", FIG5_PRESETS)
def test_fig5_true_beta_c_beta_and_rank_are_exposed(name):
    target = targets.load_preset(name)
    recipe = preset_files()[name]["params"]
    meta = target.metadata
    assert target.beta == meta["beta"] == recipe["beta"]
    assert target.c_beta == meta["c_beta"] == recipe["c_beta"]
    assert meta["rank"] == recipe["rank"]
    assert target.rank == (math.inf if recipe["rank"] == "inf" else recipe["rank"])
    terms = recipe["truncation"] if recipe["rank"] == "inf" else recipe["rank"]
    sigma = recipe["c_beta"] * np.arange(1, terms + 1) ** (-recipe["beta"])
    np.testing.assert_allclose(target.singular_values, sigma, rtol=1e-15)
    np.testing.assert_allclose(meta["singular_values"], sigma, rtol=1e-15)


@pytest.mark.parametrize("name", ["fig5a-rinf", "fig5b-rinf"])
def test_infinite_rank_is_truncated_at_the_recorded_k(name):
    target = targets.load_preset(name)
    recipe = preset_files()[name]["params"]
    assert target.rank == math.inf and target.metadata["rank"] == "inf"
    assert target.truncation == target.metadata["truncation"] == recipe["truncation"]
    assert target.singular_values.size == recipe["truncation"]


def test_infinite_rank_kernel_is_exactly_the_k_term_partial_sum(rng):
    target = targets.make_target("fig5", {"beta": 0.55, "rank": "inf", "truncation": 5})
    assert target.truncation == 5 and target.metadata["params"]["truncation"] == 5
    u, v = rng.random((2, 40))
    rho = target.rho(u[:, None], v[:, None])
    np.testing.assert_allclose(rho, fig5_rho(u, v, 0.55, 1.0, 5), rtol=1e-12, atol=1e-13)
    # The sixth term is left out (it is far above rounding for these points).
    assert np.max(np.abs(rho - fig5_rho(u, v, 0.55, 1.0, 6))) > 1e-3


def test_finite_rank_ignores_truncation():
    target = targets.fig5_target(beta=1.0, rank=3, truncation=10)
    assert target.truncation is None and target.singular_values.size == 3


@pytest.mark.parametrize(("name", "points"), [("fig5b-r6", 32), ("fig5a-rinf", 256)])
def test_fig5_sigmas_are_the_singular_values_of_rho(name, points):
    target = targets.load_preset(name)
    values = weighted_kernel_singular_values(target, points)
    terms = target.singular_values.size
    # The midpoint rule is exact for these sines: agreement to rounding.
    np.testing.assert_allclose(values[:terms], target.singular_values, rtol=1e-9)
    assert values[terms] < 1e-10


def test_make_target_with_custom_beta_records_it(rng):
    target = targets.make_target("fig5", {"beta": 0.8, "c_beta": 2.0, "rank": 4, "tau": 6})
    assert (target.beta, target.c_beta, target.rank, target.sequence_length) == (0.8, 2.0, 4, 6)
    u, v = rng.random((2, 20))
    np.testing.assert_allclose(
        target.rho(u[:, None], v[:, None]), fig5_rho(u, v, 0.8, 2.0, 4), rtol=1e-12, atol=1e-13
    )


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"beta": 0.0}, "beta"),
        ({"beta": -1.0}, "beta"),
        ({"beta": math.nan}, "beta"),
        ({"c_beta": 0.0}, "c_beta"),
        ({"rank": 0}, "rank"),
        ({"tau": 0}, "tau"),
        ({"rank": "inf", "truncation": 0}, "truncation"),
        ({"seed": -1}, "seed"),
    ],
)
def test_fig5_target_rejects_bad_parameters_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        targets.fig5_target(**kwargs)


def test_make_target_rejects_unknown_family_and_parameter():
    with pytest.raises(ValueError, match="'nope'.*fig5"):
        targets.make_target("nope")
    with pytest.raises(ValueError, match="wibble"):
        targets.make_target("fig5", {"wibble": 1})


# --------------------------------------------- position dependence, order


def test_positional_rho_matches_its_documented_basis(rng):
    target = targets.load_preset("positional-d2")
    meta = target.metadata
    assert len(meta["basis"]["phi"]) == len(meta["basis"]["psi"]) == target.rank == 8
    u, v = rng.random((2, 40, 2))
    t, s = rng.integers(0, 16, (2, 40))
    np.testing.assert_allclose(
        target.rho(u, v, t, s), positional_rho(meta, u, v, t, s), rtol=1e-11, atol=1e-12
    )


def test_positional_psi_labels_are_a_permutation_of_the_phi_labels():
    basis = targets.load_preset("positional-d2").metadata["basis"]
    assert sorted(map(json.dumps, basis["phi"])) == sorted(map(json.dumps, basis["psi"]))


def test_positional_sigmas_are_the_singular_values_of_rho():
    target = targets.load_preset("positional-d2")
    # Frequencies ≤ 2 per axis, so the products have frequencies ≤ 4 per axis:
    # 5 midpoints per axis integrate them exactly.
    values = weighted_kernel_singular_values(target, 5)
    np.testing.assert_allclose(values[:8], target.singular_values, rtol=1e-9)
    assert values[8] < 1e-10


def test_position_dependent_rho_changes_with_positions_for_the_same_values(rng):
    target = targets.load_preset("positional-d2")
    assert target.position_dependent and target.metadata["position_dependent"]
    u, v = rng.random((2, 2))
    t, s = np.meshgrid(np.arange(16), np.arange(16), indexing="ij")
    rho = target.rho(u, v, t, s)  # (16, 16), one value pair at every (t, s)
    assert rho.shape == (16, 16)
    assert np.ptp(rho) > 1e-3
    assert target.rho(u, v, 0, 0) != target.rho(u, v, 3, 0)
    assert target.rho(u, v, 0, 0) != target.rho(u, v, 0, 5)


def test_position_dependent_rho_requires_positions():
    target = targets.load_preset("positional-d2")
    with pytest.raises(ValueError, match="`t` and `s`"):
        target.rho(np.zeros(2), np.zeros(2))
    with pytest.raises(ValueError, match=r"`t`.*\[0, 16\)"):
        target.rho(np.zeros(2), np.zeros(2), 16, 0)


def test_position_independent_rho_ignores_positions(rng):
    target = targets.load_preset("fig5b-r6")
    u, v = rng.random((2, 1))
    assert not target.position_dependent
    assert target.rho(u, v, 0, 0) == target.rho(u, v, 7, 2) == target.rho(u, v)


def test_position_independent_flag_makes_the_positional_rho_value_only(rng):
    target = targets.positional_target(position_dependent=False, rank=5)
    u, v = rng.random((2, 2))
    assert target.rho(u, v) == target.rho(u, v, 3, 9)
    assert all(j == 0 for _, j in target.metadata["basis"]["phi"])


@pytest.mark.parametrize("name", ["table2-exp", "table3-random"])
def test_permuting_the_inputs_of_a_temporal_mixing_target_changes_its_outputs(name, rng):
    target = targets.load_preset(name)
    x = rng.random((3, 32, 1))
    permuted = target(x[:, SWAP_TEN])
    assert np.max(np.abs(permuted - target(x)[:, SWAP_TEN])) > 1e-2
    assert np.max(np.abs(permuted - target(x))) > 1e-2


def test_permuting_the_inputs_of_a_positional_target_changes_its_outputs(rng):
    target = targets.load_preset("positional-d2")
    x = rng.random((3, 16, 2))
    order = np.roll(np.arange(16), 5)
    assert np.max(np.abs(target(x[:, order]) - target(x)[:, order])) > 1e-3


def test_fig5_target_is_permutation_equivariant(rng):
    # The contrast: a position-independent ρ commutes with reordering the tokens.
    target = targets.load_preset("fig5b-rinf")
    x = rng.random((3, 16, 1))
    order = rng.permutation(16)
    np.testing.assert_allclose(target(x[:, order]), target(x)[:, order], rtol=1e-12)


# ------------------------------------------------------------- sampling


@pytest.mark.parametrize("name", ["fig5b-r6", "positional-d2", "table3-random"])
def test_sample_shapes_range_and_labels(name):
    target = targets.load_preset(name)
    data = target.sample(4, seed=3)
    tau, d = target.sequence_length, target.input_dim
    assert isinstance(data, datasets.Dataset)
    assert data.x.shape == (4, tau, d) and data.y.shape == (4, tau, target.output_dim)
    assert data.x.dtype == np.float32 and data.y.dtype == np.float32
    assert data.x.min() >= 0.0 and data.x.max() <= 1.0
    assert data.metadata["input_distribution"] == targets.INPUT_DISTRIBUTION == "uniform[0,1]"
    # y is H on the stored (float32) x, evaluated in float64 and rounded once.
    np.testing.assert_array_equal(data.y, target(data.x.astype(np.float64)).astype(np.float32))
    np.testing.assert_allclose(
        data.y,
        reference_representation(target, data.x.astype(np.float64))
        * (target.normaliser[None, :, None] if not target.exact_representation else 1.0),
        rtol=1e-6,
        atol=1e-6,
    )


def test_sample_draws_x_uniformly_with_the_documented_generator():
    target = targets.load_preset("positional-d2")
    data = target.sample(6, seed=11)
    expected = np.random.default_rng(11).random((6, 16, 2)).astype(np.float32)
    np.testing.assert_array_equal(data.x, expected)


def test_sample_same_seed_gives_identical_file_bytes(tmp_path):
    first, second = tmp_path / "a.npz", tmp_path / "b.npz"
    targets.load_preset("fig5a-rinf").sample(5, seed=7).save(first)
    targets.load_preset("fig5a-rinf").sample(5, seed=7).save(second)
    assert first.read_bytes() == second.read_bytes()


def test_sample_different_seeds_give_different_data(tmp_path):
    target = targets.load_preset("fig5b-r2")
    one, two = target.sample(5, seed=1), target.sample(5, seed=2)
    assert not np.array_equal(one.x, two.x)
    assert not np.array_equal(one.y, two.y)
    one.save(tmp_path / "1.npz")
    two.save(tmp_path / "2.npz")
    assert (tmp_path / "1.npz").read_bytes() != (tmp_path / "2.npz").read_bytes()


def test_sample_metadata_records_target_seed_and_true_spectrum():
    target = targets.load_preset("fig5a-rinf")
    meta = target.sample(3, seed=5).metadata
    assert meta["name"] == "fig5a-rinf" and meta["seed"] == 5 and meta["num_samples"] == 3
    assert meta["beta"] == 0.55 and meta["c_beta"] == 1.0
    assert meta["rank"] == "inf" and meta["truncation"] == target.truncation
    assert meta["target"] == target.metadata
    json.dumps(meta)  # JSON-ready as it stands


def test_sampled_dataset_metadata_rebuilds_the_same_target(tmp_path, rng):
    path = tmp_path / "pos.npz"
    targets.load_preset("positional-d2").sample(2, seed=0).save(path)
    rebuilt = targets.from_dict(datasets.load_dataset(path).metadata)
    x = rng.random((2, 16, 2))
    np.testing.assert_array_equal(rebuilt(x), targets.load_preset("positional-d2")(x))


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [({"num_samples": 0}, "num_samples"), ({"num_samples": 2, "seed": -1}, "seed")],
)
def test_sample_rejects_bad_arguments_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=f"`{name}`"):
        targets.load_preset("fig5b-r2").sample(**kwargs)


# -------------------------------------------------------------- presets


def test_list_presets_names_every_bundled_preset_file():
    names = [row["name"] for row in targets.list_presets()]
    assert names == sorted(preset_files()) == list(targets.preset_names())
    assert {"default", "positional-d2", "table2-exp", "table3-random", *FIG5_PRESETS} <= set(names)


@pytest.mark.parametrize("name", sorted(preset_files()))
def test_every_preset_loads_and_evaluates(name):
    target = targets.load_preset(name)
    assert target.name == name
    x = target.sample(2, seed=0).x.astype(np.float64)  # from the target's own input distribution
    out = target(x)
    assert out.shape == (2, target.sequence_length, target.output_dim)
    assert np.all(np.isfinite(out))


@pytest.mark.parametrize("name", sorted(preset_files()))
def test_every_preset_file_records_seed_and_parameters(name):
    recipe = preset_files()[name]
    assert isinstance(recipe["seed"], int) and recipe["seed"] >= 0
    assert isinstance(recipe["params"], dict) and recipe["params"]
    assert recipe["family"] in targets.FAMILIES and recipe["description"]
    meta = targets.load_preset(name).metadata
    assert meta["seed"] == recipe["seed"] and meta["family"] == recipe["family"]
    for key, value in recipe["params"].items():
        assert meta["params"][key] == value, key


def test_list_presets_rows_agree_with_the_loaded_targets():
    for row in targets.list_presets():
        meta = targets.load_preset(row["name"]).metadata
        for key, value in row.items():
            assert meta[key] == value, (row["name"], key)


def test_unknown_preset_is_a_value_error_naming_it_and_the_known_ones():
    with pytest.raises(ValueError) as info:
        targets.load_preset("no-such-preset")
    message = str(info.value)
    assert "'no-such-preset'" in message
    for name in targets.preset_names():
        assert name in message


def test_load_preset_rejects_a_non_string_name():
    with pytest.raises(TypeError, match="`name`"):
        targets.load_preset(3)


@pytest.mark.parametrize("name", sorted(preset_files()))
def test_target_metadata_round_trips_through_from_dict(name):
    target = targets.load_preset(name)
    rebuilt = targets.from_dict(json.loads(json.dumps(target.to_dict())))
    assert rebuilt.metadata == target.metadata
    x = target.sample(2, seed=1).x.astype(np.float64)  # from the target's own input distribution
    np.testing.assert_array_equal(rebuilt(x), target(x))


def test_custom_target_cannot_be_rebuilt_from_metadata():
    target = targets.Target(
        lambda u, v: u[..., 0] * v[..., 0],
        lambda u: u,
        lambda z: z,
        sequence_length=3,
        input_dim=1,
        output_dim=1,
    )
    with pytest.raises(ValueError, match="custom"):
        targets.from_dict(target.metadata)


def test_target_rejects_a_non_callable_part():
    with pytest.raises(TypeError, match="`rho`"):
        targets.Target(None, lambda u: u, lambda z: z, sequence_length=2, input_dim=1, output_dim=1)


@pytest.mark.parametrize(
    "target",
    [
        targets.fig5_target(beta=1.0, rank=5),
        targets.make_target("positional", {"d": 1, "position_dependent": False, "rank": 4}),
    ],
    ids=["fig5", "positional"],
)
def test_pod_basis_is_orthonormal_and_rebuilds_rho(target):
    # Gauss-Legendre on [0, 1] (the POD measure of U[0,1] tokens, d = 1).
    nodes, weights = np.polynomial.legendre.leggauss(200)
    u, w = (nodes[:, None] + 1) / 2, weights / 2
    basis = target.pod_basis(u)  # (200, r)
    gram = basis.T @ (w[:, None] * basis)
    np.testing.assert_allclose(gram, np.eye(basis.shape[1]), atol=1e-8)
    # ρ(u, v) = Σ_i σ_i φ_i(u) ψ_i(v), ψ a permutation of φ.
    v = np.random.default_rng(0).uniform(size=(7, 1))
    rho = target.rho(u[:7], v)
    left = target.pod_basis(u[:7]) * target.singular_values
    right = target.pod_basis(v)
    pairing = getattr(target, "_pairing", None)
    right = right if pairing is None else right[:, pairing]
    np.testing.assert_allclose(rho, np.sum(left * right, axis=1), atol=1e-10)


def test_pod_basis_of_a_position_dependent_target_needs_positions():
    target = targets.make_target("positional", {"d": 1, "position_dependent": True})
    with pytest.raises(ValueError, match="`t` is required"):
        target.pod_basis(np.zeros((3, 1)))
    assert target.pod_basis(np.zeros((3, 1)), np.array([0, 1, 2])).shape[0] == 3


# ------------------------------------------------------------ bilinear family


def bilinear_closed_form(x, beta, c_beta):
    """H_t = Σ_s softmax_s(Σ_i σ_i φ_i(x_t) φ_i(x_s)) φ(x_s), φ = √3 (2x − 1)."""
    phi = np.sqrt(3.0) * (2.0 * x - 1.0)  # (N, tau, d)
    sigma = c_beta * np.arange(1, x.shape[-1] + 1, dtype=float) ** -beta
    out = np.zeros_like(x)
    for b in range(x.shape[0]):
        for t in range(x.shape[1]):
            logits = np.array([np.sum(sigma * phi[b, t] * phi[b, s]) for s in range(x.shape[1])])
            weights = np.exp(logits - logits.max())
            out[b, t] = (weights / weights.sum()) @ phi[b]
    return out


def test_bilinear_preset_matches_the_closed_form(rng):
    target = targets.load_preset("bilinear-d16")
    assert (target.input_dim, target.output_dim, target.sequence_length) == (16, 16, 8)
    x = rng.random((3, 8, 16))
    np.testing.assert_allclose(
        target(x), bilinear_closed_form(x, target.beta, target.c_beta), rtol=1e-11, atol=1e-12
    )


def test_bilinear_sigmas_are_the_singular_values_of_rho():
    target = targets.bilinear_target(d=3, beta=0.75, c_beta=1.5, tau=4)
    # Tensor Gauss-Legendre on [0,1]^3, 3 nodes an axis: exact for the
    # degree-2 products of affine basis functions, so agreement to rounding.
    nodes, weights = np.polynomial.legendre.leggauss(3)
    nodes, weights = (nodes + 1) / 2, weights / 2
    grid = np.stack(np.meshgrid(nodes, nodes, nodes, indexing="ij"), -1).reshape(-1, 3)
    w = np.prod(np.stack(np.meshgrid(weights, weights, weights, indexing="ij"), -1), -1).ravel()
    kernel = target.rho(grid[:, None], grid[None, :]) * np.sqrt(w[:, None] * w[None, :])
    values = np.linalg.svd(kernel, compute_uv=False)
    np.testing.assert_allclose(values[:3], 1.5 * np.arange(1, 4) ** -0.75, rtol=1e-12)
    assert target.rank == 3 and values[3] < 1e-12


def test_bilinear_truncation_keeps_the_leading_terms(rng):
    target = targets.bilinear_target(d=4, tau=5)
    x = rng.random((2, 5, 4))
    cut = target.truncated(2)
    np.testing.assert_allclose(cut.singular_values, [2.0, 1.0, 0.0, 0.0])
    sigma = cut.singular_values
    phi = np.sqrt(3.0) * (2.0 * x - 1.0)
    logits = np.einsum("bti,bsi,i->bts", phi, phi, sigma)
    weights = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(cut(x), weights @ phi, rtol=1e-12)
    np.testing.assert_array_equal(target.truncated(4)(x), target(x))


@pytest.mark.parametrize(
    ("kwargs", "name"), [({"d": 0}, "d"), ({"beta": -1.0}, "beta"), ({"tau": 0}, "tau")]
)
def test_bilinear_target_rejects_bad_parameters_naming_them(kwargs, name):
    with pytest.raises((ValueError, TypeError), match=f"`{name}`"):
        targets.bilinear_target(**kwargs)


def _gauss_grid(d, nodes_per_axis):
    """Tensor Gauss-Legendre nodes and weights on [0,1]^d."""
    nodes, weights = np.polynomial.legendre.leggauss(nodes_per_axis)
    nodes, weights = (nodes + 1) / 2, weights / 2
    grid = np.stack(np.meshgrid(*[nodes] * d, indexing="ij"), -1).reshape(-1, d)
    w = np.prod(np.stack(np.meshgrid(*[weights] * d, indexing="ij"), -1), -1).ravel()
    return grid, w


def test_bilinear_basis_of_infinite_rank_is_the_tensor_legendre_polynomials():
    target = targets.bilinear_target(d=2, rank="inf", truncation=9)
    assert (target.rank, target.truncation) == (math.inf, 9)
    u = np.random.default_rng(0).random((5, 2))
    a, b = u[:, 0], u[:, 1]

    def l1(x):
        return np.sqrt(3.0) * (2 * x - 1)

    def l2(x):
        return np.sqrt(5.0) * (6 * x**2 - 6 * x + 1)

    def l3(x):
        return np.sqrt(7.0) * (20 * x**3 - 30 * x**2 + 12 * x - 1)

    # Degree 1 (the centred coordinates), then degree 2, then degree 3.
    expected = [
        l1(a),
        l1(b),
        l2(a),
        l1(a) * l1(b),
        l2(b),
        l3(a),
        l2(a) * l1(b),
        l1(a) * l2(b),
        l3(b),
    ]
    np.testing.assert_allclose(target.pod_basis(u), np.stack(expected, -1), rtol=1e-12, atol=1e-12)


def test_bilinear_of_infinite_rank_has_its_sigmas_as_singular_values():
    target = targets.bilinear_target(d=2, rank="inf", truncation=9, beta=0.75, c_beta=1.5)
    # Products of two degree-≤3 polynomials per axis: 4 Gauss nodes are exact.
    grid, w = _gauss_grid(2, 4)
    basis = target.pod_basis(grid)
    np.testing.assert_allclose((basis * w[:, None]).T @ basis, np.eye(9), atol=1e-12)
    kernel = target.rho(grid[:, None], grid[None, :]) * np.sqrt(w[:, None] * w[None, :])
    values = np.linalg.svd(kernel, compute_uv=False)
    np.testing.assert_allclose(values[:9], 1.5 * np.arange(1, 10) ** -0.75, rtol=1e-10)
    assert values[9] < 1e-10


def test_bilinear_of_lower_rank_keeps_the_first_coordinates_and_every_output(rng):
    target = targets.bilinear_target(d=4, rank=2, tau=5)
    x = rng.random((2, 5, 4))
    phi = np.sqrt(3.0) * (2.0 * x - 1.0)
    logits = np.einsum("bti,bsi,i->bts", phi[..., :2], phi[..., :2], [2.0, 1.0])
    weights = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    np.testing.assert_allclose(target(x), weights @ phi, rtol=1e-12)  # all 4 outputs
    assert target.output_dim == 4 and target.singular_values.size == 2


def test_bilinear_rinf_preset_round_trips_through_its_metadata(rng):
    target = targets.load_preset("bilinear-rinf")
    assert (target.input_dim, target.output_dim, target.sequence_length) == (8, 8, 8)
    assert (target.rank, target.truncation, target.beta, target.c_beta) == (math.inf, 64, 1.0, 2.0)
    twin = targets.from_dict(target.metadata)
    x = rng.random((3, 8, 8))
    np.testing.assert_array_equal(twin(x), target(x))
    # Its degree-1 terms are bilinear-d8's ρ; the rest only adds to the logits.
    eight = targets.bilinear_target(d=8)
    np.testing.assert_allclose(target.truncated(8)(x), eight(x), rtol=1e-12)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"rank": 0}, "rank"),
        ({"rank": "many"}, "rank"),
        ({"rank": "inf", "truncation": 0}, "truncation"),
    ],
)
def test_bilinear_rank_and_truncation_are_checked_by_name(kwargs, name):
    with pytest.raises((ValueError, TypeError), match=f"`{name}`"):
        targets.bilinear_target(d=3, **kwargs)
