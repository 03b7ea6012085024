"""Tests of `tfapprox.memory`: paper B's sparse-memory targets (Types I, II, III)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from tests.helpers import assert_one_line_error, run_cli, run_cli_json
from tfapprox import datasets, memory, targets

MEMORY_PRESETS = [
    "memory-relu-1",
    "memory-sum-3",
    "memory-relu-3",
    "memory-parity-3",
    "adaptive-g",
    "adaptive-nested-2",
    "kernel-power-0.5",
    "kernel-exp-5",
]


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


def signs(rng, shape):
    return rng.choice([-1.0, 1.0], size=shape)


# ------------------------------------------------------- brute-force references


def fixed_reference(meta, x):
    """Type I by loops, from the metadata alone (lags, readout, ReLU weights)."""
    lags, readout = meta["memory"]["lags"], meta["memory"]["readout"]
    n, tau, d = x.shape
    out = np.zeros((n, tau, meta["output_dim"]))
    for i in range(n):
        for t in range(tau):
            mems = [x[i, t - lag] if t - lag >= 0 else np.zeros(d) for lag in lags]
            if readout == "sum":
                out[i, t] = sum(mems)
            elif readout == "parity":
                out[i, t] = np.prod([np.sign(m[0]) for m in mems])
            else:
                z = np.concatenate(mems)
                out[i, t, 0] = sum(
                    max(float(np.dot(w, z)), 0.0) for w in meta["memory"]["relu_weights"]
                )
    return out


def adaptive_reference(meta, x):
    """Type II by loops: follow the chain t_1 = g_1(x_t), t_{k+1} = t_k + hop_k(x_{t-t_k})."""
    spec = meta["memory"]
    n, tau, _ = x.shape
    out = np.zeros((n, tau, 1))
    for i in range(n):
        seq = x[i, :, 0]

        def token(s, seq=seq):
            return seq[s] if s >= 0 else 0.0

        for t in range(tau):
            lag = spec["lag_map"][int(seq[t]) + 1]
            read = [token(t - lag)]
            for hop in spec["hops"]:
                lag += hop[int(read[-1]) + 1]
                read.append(token(t - lag))
            out[i, t, 0] = read[-1] if spec["readout"] == "last" else sum(read)
    return out


def kernel_rho(kind, decay, s):
    return np.exp(-decay * s) if kind == "exp" else (s + 1.0) ** (-decay)


def kernel_reference(meta, x):
    """Type III by loops with ρ from the closed forms and the metadata's weights."""
    spec = meta["memory"]
    n, tau, d = x.shape
    out = np.zeros((n, tau, meta["output_dim"]))
    for i in range(n):
        for t in range(tau):
            convs = [
                sum(x[i, t - s] * kernel_rho(k["kind"], k["decay"], s) for s in range(t + 1))
                for k in spec["kernels"]
            ]
            if spec["readout"] == "linear":
                out[i, t] = sum(convs)
            else:
                z = np.concatenate(convs)
                out[i, t, 0] = sum(max(float(np.dot(w, z)), 0.0) for w in spec["relu_weights"])
    return out


# ------------------------------------------------------------------ Type I


@pytest.mark.parametrize(
    ("readout", "d", "lags"),
    [("relu", 1, [0, 3, 7]), ("relu", 2, [2, 5]), ("sum", 1, [1, 4, 8]), ("sum", 3, [0, 9])],
)
def test_fixed_memory_matches_brute_force(readout, d, lags, rng):
    width = 5 if readout == "relu" else None
    target = memory.fixed_memory_target(
        tau=10, lags=lags, readout=readout, d=d, width=width, seed=3
    )
    x = rng.uniform(-1, 1, size=(3, 10, d))
    # Same sums in another order: agreement to rounding.
    np.testing.assert_allclose(
        target(x), fixed_reference(target.metadata, x), rtol=1e-12, atol=1e-12
    )


def test_fixed_memory_parity_matches_brute_force(rng):
    target = memory.fixed_memory_target(tau=9, lags=[1, 3, 6], readout="parity")
    x = signs(rng, (4, 9, 1))
    y = target(x)
    np.testing.assert_array_equal(y, fixed_reference(target.metadata, x))
    assert np.all(y[:, :6] == 0) and set(np.unique(y[:, 6:])) <= {-1.0, 1.0}


def test_fixed_memory_relu_weights_are_the_seeded_gaussians():
    target = memory.fixed_memory_target(tau=8, lags=[2, 5], width=4, seed=7)
    expected = np.random.default_rng(7).standard_normal((4, 2))
    np.testing.assert_array_equal(target.metadata["memory"]["relu_weights"], expected.tolist())


def test_fixed_memory_memories_are_the_lagged_tokens(rng):
    target = memory.fixed_memory_target(tau=6, lags=[0, 2], readout="sum", d=2)
    x = rng.normal(size=(2, 6, 2))
    mems = target.memories(x)
    np.testing.assert_array_equal(mems[:, :, 0], x)
    np.testing.assert_array_equal(mems[:, 2:, 1], x[:, :4])
    np.testing.assert_array_equal(mems[:, :2, 1], 0.0)


# ----------------------------------------------------------------- Type II


def test_adaptive_smallest_example_by_hand():
    # y_t = x_{t-g(x_t)}, g(-1) = 0, g(0) = 1, g(1) = 2; tokens before t = 0 read as 0.
    target = targets.load_preset("adaptive-g")
    seq = [1, 0, -1, 1, 0, -1, -1, 1] + [0] * 24
    x = np.array(seq, dtype=np.float64).reshape(1, 32, 1)
    assert target(x)[0, :8, 0].tolist() == [0.0, 1.0, -1.0, 0.0, 1.0, -1.0, -1.0, -1.0]
    assert target.memory_lags(x)[0, :8, 0].tolist() == [2, 1, 0, 2, 1, 0, 0, 2]


@pytest.mark.parametrize(
    ("hops", "readout"),
    [([], "last"), ([], "sum"), ([[1, 2, 3]], "last"), ([[0, 2, 4], [3, 1, 2]], "sum")],
)
def test_adaptive_memory_matches_brute_force(hops, readout, rng):
    target = memory.adaptive_memory_target(tau=14, lag_map=[2, 0, 5], hops=hops, readout=readout)
    x = rng.integers(-1, 2, size=(4, 14, 1)).astype(np.float64)
    np.testing.assert_array_equal(target(x), adaptive_reference(target.metadata, x))
    assert target.levels == len(hops)


def test_adaptive_nested_preset_matches_brute_force_and_its_lags():
    target = targets.load_preset("adaptive-nested-2")
    assert target.levels == 2
    x = target.sample(3, seed=5).x.astype(np.float64)
    np.testing.assert_array_equal(target(x), adaptive_reference(target.metadata, x))
    lags = target.memory_lags(x)  # (N, tau, 3)
    t = np.arange(64)
    source = t - lags[..., -1]
    read = np.where(source >= 0, np.take_along_axis(x[..., 0], np.clip(source, 0, None), 1), 0)
    np.testing.assert_array_equal(target(x)[..., 0], read)
    assert np.all(np.diff(lags, axis=-1) > 0)  # each hop reaches further back (hops > 0)


def test_adaptive_memory_refuses_non_ternary_tokens():
    target = memory.adaptive_memory_target(tau=4)
    with pytest.raises(ValueError, match="`x`"):
        target(np.full((1, 4, 1), 0.5))


# ---------------------------------------------------------------- Type III


@pytest.mark.parametrize(
    ("kernels", "readout", "d"),
    [
        ([{"kind": "power", "decay": 0.5}], "linear", 1),
        ([{"kind": "exp", "decay": 0.7}], "linear", 2),
        ([{"kind": "exp", "decay": 0.3}, {"kind": "power", "decay": 1.5}], "relu", 1),
        ([{"kind": "power", "decay": 2.0}, {"kind": "exp", "decay": 1.0}], "relu", 2),
    ],
)
def test_kernel_memory_matches_brute_force(kernels, readout, d, rng):
    target = memory.kernel_memory_target(
        tau=9, kernels=kernels, readout=readout, d=d, width=None if readout == "linear" else 6
    )
    x = rng.uniform(-1, 1, size=(3, 9, d))
    np.testing.assert_allclose(
        target(x), kernel_reference(target.metadata, x), rtol=1e-12, atol=1e-12
    )


def test_kernel_values_in_the_metadata_reproduce_the_outputs(rng):
    target = targets.load_preset("kernel-power-0.5")
    rho = np.array(target.metadata["memory"]["kernels"][0]["values"])
    np.testing.assert_allclose(rho, (np.arange(64) + 1.0) ** -0.5, rtol=1e-15)
    x = rng.uniform(-1, 1, size=(2, 64, 1))
    expected = np.stack([np.convolve(seq, rho)[:64] for seq in x[..., 0]])[..., None]
    np.testing.assert_allclose(target(x), expected, rtol=1e-12, atol=1e-12)


def test_kernel_exp_linear_equals_the_linear_memory_target(rng):
    # Two implementations of Σ_{s≤t} e^{-βs} x_{t-s}: Type III and paper A's Table 2 family.
    x = rng.uniform(-1, 1, size=(3, 20, 1))
    ours = memory.kernel_memory_target(tau=20, kernels=[{"kind": "exp", "decay": 1.3}])
    theirs = targets.linear_memory_target(tau=20, kernel="exp", decay=1.3)
    np.testing.assert_allclose(ours(x), theirs(x), rtol=1e-12, atol=1e-14)


def test_kernel_exp_5_is_nearly_the_current_token(rng):
    target = targets.load_preset("kernel-exp-5")
    x = rng.uniform(-1, 1, size=(2, 64, 1))
    # |y_t - x_t| ≤ Σ_{s≥1} e^{-5s} = 1/(e^5 - 1) for |x| ≤ 1.
    assert np.max(np.abs(target(x) - x)) <= 1.0 / (np.exp(5.0) - 1.0)


# ------------------------------------------------------------------ presets


@pytest.mark.parametrize(
    ("name", "family", "truth"),
    [
        ("memory-relu-1", "fixed-memory", {"lags": [57], "readout": "relu"}),
        ("memory-sum-3", "fixed-memory", {"lags": [12, 28, 57], "readout": "sum"}),
        ("memory-relu-3", "fixed-memory", {"lags": [12, 28, 57], "readout": "relu"}),
        ("adaptive-g", "adaptive-memory", {"lag_map": [0, 1, 2], "hops": [], "levels": 0}),
        ("adaptive-nested-2", "adaptive-memory", {"levels": 2}),
        ("kernel-power-0.5", "kernel-memory", {"readout": "linear"}),
        ("kernel-exp-5", "kernel-memory", {"readout": "linear"}),
    ],
)
def test_preset_records_its_true_memory(name, family, truth):
    meta = targets.load_preset(name).metadata
    assert meta["family"] == family and meta["sequence_length"] in (32, 64)
    for key, value in truth.items():
        assert meta["memory"][key] == value, key
    assert "scaled" in meta["description"] or name.startswith("adaptive")
    json.dumps(meta, allow_nan=False)  # strict JSON


@pytest.mark.parametrize("name", MEMORY_PRESETS)
def test_preset_round_trips_through_to_dict_and_from_dict(name):
    target = targets.load_preset(name)
    rebuilt = targets.Target.from_dict(json.loads(json.dumps(target.to_dict())))
    assert type(rebuilt) is type(target) and rebuilt.metadata == target.metadata
    data = target.sample(3, seed=2)
    rebuilt_from_data = targets.from_dict(data.metadata)
    np.testing.assert_array_equal(rebuilt_from_data(data.x), target(data.x))


@pytest.mark.parametrize(
    ("name", "values"),
    [("memory-sum-3", {-1.0, 1.0}), ("adaptive-g", {-1.0, 0.0, 1.0})],
)
def test_sample_draws_from_the_target_input_distribution(name, values):
    target = targets.load_preset(name)
    data = target.sample(50, seed=4)
    assert set(np.unique(data.x)) == values
    assert data.metadata["input_distribution"] == target.input_distribution
    np.testing.assert_array_equal(data.y, target(data.x).astype(np.float32))
    np.testing.assert_array_equal(data.x, target.sample(50, seed=4).x)


def test_uniform_inputs_are_centred_in_minus_one_one():
    data = targets.load_preset("kernel-power-0.5").sample(64, seed=0)
    assert data.x.min() >= -1.0 and data.x.max() <= 1.0 and data.x.min() < -0.9
    assert data.metadata["input_distribution"] == "uniform[-1,1]"


def test_families_are_in_the_target_registry():
    assert {"fixed-memory", "adaptive-memory", "kernel-memory"} <= set(targets.FAMILIES)
    made = targets.make_target("fixed-memory", {"tau": 8, "lags": [1, 4], "readout": "sum"})
    assert made.metadata["memory"]["lags"] == [1, 4]


def test_memory_module_is_imported_by_the_registry_on_first_use():
    code = (
        "import sys, tfapprox.targets as t; before = 'tfapprox.memory' in sys.modules; "
        "'fixed-memory' in t.FAMILIES; print(before, 'tfapprox.memory' in sys.modules)"
    )
    env = {**os.environ, "TFAPPROX_LAZY_IMPORT": "1"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.stdout.split() == ["False", "True"], out.stderr


def test_memory_target_has_no_closed_form_kernel():
    target = targets.load_preset("memory-sum-3")
    x = target.sample(1).x
    for method in (target.rho, target.logits, target.representation, target.attention):
        with pytest.raises(ValueError, match="no closed-form kernel"):
            method(x)
    assert target.beta is None and target.rank is None and not target.exact_representation


# ------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"lags": [-1, 3]}, "`lags`"),
        ({"lags": [3, 10]}, "`lags`"),
        ({"lags": [4, 4]}, "`lags`"),
        ({"lags": []}, "`lags`"),
        ({"readout": "max"}, "`readout`"),
        ({"inputs": "gauss"}, "`inputs`"),
        ({"readout": "sum", "width": 8}, "`width`"),
        ({"width": 0}, "`width`"),
        ({"readout": "parity", "inputs": "uniform"}, "parity"),
        ({"tau": 0}, "`tau`"),
    ],
)
def test_fixed_memory_bad_argument_is_a_value_error_naming_it(kwargs, name):
    with pytest.raises(ValueError, match=name):
        memory.fixed_memory_target(**{"tau": 10, "lags": [1, 5], **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"lag_map": [0, -1, 2]}, "`lag_map`"),
        ({"lag_map": [0, 1]}, "`lag_map`"),
        ({"lag_map": [0, 1, 8]}, "`lag_map`"),
        ({"hops": [[1, 2, -3]]}, "`hops`"),
        ({"hops": [[4, 4, 4], [3, 3, 3]]}, "`hops`"),
        ({"readout": "first"}, "`readout`"),
    ],
)
def test_adaptive_memory_bad_argument_is_a_value_error_naming_it(kwargs, name):
    with pytest.raises(ValueError, match=name):
        memory.adaptive_memory_target(**{"tau": 8, **kwargs})


@pytest.mark.parametrize(
    ("kernels", "name"),
    [
        ([], "`kernels`"),
        ([{"kind": "gauss", "decay": 1.0}], "kind"),
        ([{"kind": "exp", "decay": 0.0}], "decay"),
        ([{"kind": "exp"}], "`kernels`"),
    ],
)
def test_kernel_memory_bad_kernel_is_a_value_error_naming_it(kernels, name):
    with pytest.raises(ValueError, match=name):
        memory.kernel_memory_target(tau=8, kernels=kernels)


def test_kernel_memory_unknown_readout_is_a_value_error():
    with pytest.raises(ValueError, match="`readout`"):
        memory.kernel_memory_target(tau=8, readout="square")


def test_make_target_unknown_parameter_names_the_family():
    with pytest.raises(ValueError, match="kernel-memory"):
        targets.make_target("kernel-memory", {"beta": 1.0})


# ---------------------------------------------------------------------- CLI


def test_cli_make_memory_preset_writes_the_library_sample(tmp_path):
    path = tmp_path / "relu3.npz"
    output = run_cli(
        "target", "make", "memory-relu-3", "--samples", "3", "--seed", "2", "--out", path
    ).output
    assert "memory-relu-3" in output and "type I" in output
    loaded = datasets.load_dataset(path)
    expected = targets.load_preset("memory-relu-3").sample(3, seed=2)
    np.testing.assert_array_equal(loaded.x, expected.x)
    np.testing.assert_array_equal(loaded.y, expected.y)
    assert loaded.metadata["target"]["memory"]["lags"] == [12, 28, 57]
    rebuilt = targets.from_dict(loaded.metadata)
    np.testing.assert_array_equal(rebuilt(loaded.x).astype(np.float32), loaded.y)


def test_cli_list_shows_every_memory_preset():
    rows = {row["name"]: row for row in run_cli_json("target", "list")}
    assert set(MEMORY_PRESETS) <= set(rows)
    lines = run_cli("target", "list").output.splitlines()
    assert {line.split()[0] for line in lines[1:]} >= set(MEMORY_PRESETS)


def test_cli_make_json_summary_of_an_adaptive_preset(tmp_path):
    out = run_cli_json(
        "target", "make", "adaptive-g", "--samples", "2", "--out", tmp_path / "g.npz"
    )
    assert out["x_shape"] == [2, 32, 1] and out["target"]["memory"]["lag_map"] == [0, 1, 2]


@pytest.mark.parametrize(
    ("args", "code", "fragment"),
    [
        (["target", "make", "memory-relu-99", "--samples", "2"], 1, "memory-relu-99"),
        (["target", "make", "memory-sum-3", "--samples", "0"], 2, "--samples"),
        (["target", "make", "--family", "fixed-memory"], 2, "--family"),
        (["estimate", "kernel-exp-5"], 1, "no closed-form kernel"),
    ],
)
def test_cli_bad_input_is_one_line_and_non_zero(tmp_path, args, code, fragment):
    out = tmp_path / "x.npz"
    extra = ["--out", out] if args[0] == "target" else []
    result = run_cli(*args, *extra, expect_exit=code)
    assert_one_line_error(result, fragment)
    assert not out.exists()
