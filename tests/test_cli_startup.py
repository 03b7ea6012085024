"""`tfapprox --help` and `tfapprox bound` start without TensorFlow, Keras or scikit-learn.

Each command runs in a fresh interpreter, ``python -X importtime -m
tfapprox_cli ...`` (the same entry point as the console script), and the
import log on stderr is read for the heavy packages. No timing thresholds:
the timings are in ``analysis/bench_cli.py``.
"""

import os
import subprocess
import sys

import pytest

from tfapprox import _io, theory

HEAVY = {"tensorflow", "keras", "sklearn"}
BOUND = ["bound", "--tau", "16", "--beta", "1.0", "--alpha", "0.5", "--m-ff", "128"]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory):
    """The session's derivation cache folder, filled (derived at most once per session)."""
    folder = str(tmp_path_factory.getbasetemp() / "tfapprox-cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TFAPPROX_CACHE_DIR", folder)
        if theory._read_cache(theory.cache_path()) is None:
            _io.atomic_write_json(theory.cache_path(), theory._load())
    return folder


def imported_packages(args, cache_dir):
    """Run ``tfapprox ARGS`` in a fresh interpreter; return its stdout and top-level imports."""
    env = {key: value for key, value in os.environ.items() if key != "TFAPPROX_LAZY_IMPORT"}
    env["TFAPPROX_CACHE_DIR"] = cache_dir
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "tfapprox_cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    packages = set()
    for line in done.stderr.splitlines():
        if line.startswith("import time:") and line.count("|") == 2:
            name = line.rsplit("|", 1)[1].strip()
            packages.add(name.split(".")[0])
    assert "tfapprox_cli" in packages  # the log was read
    return done.stdout, packages


def test_help_imports_no_tensorflow_keras_or_sklearn(cache_dir):
    stdout, packages = imported_packages(["--help"], cache_dir)
    assert "bound" in stdout
    assert not packages & HEAVY, sorted(packages & HEAVY)


def test_bound_imports_no_tensorflow_keras_or_sklearn(cache_dir):
    stdout, packages = imported_packages(BOUND, cache_dir)
    assert "m_h*(m_FF = 128)" in stdout
    assert not packages & HEAVY, sorted(packages & HEAVY)


def test_bound_params_json_imports_no_tensorflow_keras_or_sklearn(cache_dir):
    args = [
        "bound",
        "--tau",
        "16",
        "--beta",
        "1.0",
        "--alpha",
        "0.5",
        "--params",
        "50000",
        "--d",
        "1",
        "--json",
    ]
    stdout, packages = imported_packages(args, cache_dir)
    assert '"params_used"' in stdout
    assert not packages & HEAVY, sorted(packages & HEAVY)


def test_bound_with_warm_cache_does_not_import_sympy(cache_dir):
    _, packages = imported_packages(BOUND, cache_dir)
    assert "sympy" not in packages
    assert "tfapprox" in packages


def test_bound_with_empty_cache_reads_the_bundled_derivation(tmp_path):
    stdout, packages = imported_packages(BOUND, str(tmp_path))
    assert "m_h*(m_FF = 128)" in stdout
    assert "sympy" not in packages  # the derivation shipped in tfapprox_data
    assert not packages & HEAVY, sorted(packages & HEAVY)
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize(
    "args",
    [
        ["bound", "--memory", "48,56,99", "--rpe", "log", "--heads", "32", "--json"],
        ["bound", "--kernel", "exp:5,power:0.5", "--heads", "8"],
    ],
)
def test_bound_paper_b_imports_neither_sympy_nor_heavy_packages(args, tmp_path):
    stdout, packages = imported_packages(args, str(tmp_path))
    assert "heads" in stdout
    assert not packages & (HEAVY | {"sympy"}), sorted(packages & (HEAVY | {"sympy"}))


def test_native_stderr_filter_drops_start_up_noise_and_keeps_the_rest(capfd):
    from tfapprox._quiet import native_stderr_filtered

    with native_stderr_filtered():
        os.write(2, b"I0000 00:00 1 cudart_stub.cc:31] Could not find cuda drivers\n")
        os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called\n")
        os.write(2, b"a real error\n")
    assert capfd.readouterr().err == "a real error\n"


def test_tensorflow_imports_without_its_start_up_lines():
    # A fresh interpreter: the first `import tensorflow` after `quiet_tensorflow`
    # runs under the filter; TensorFlow works as usual afterwards.
    script = (
        "from tfapprox._quiet import quiet_tensorflow\n"
        "quiet_tensorflow()\n"
        "import tensorflow as tf\n"
        "assert int(tf.constant(2) + 1) == 3\n"
        "assert tf.__spec__.loader.is_package('tensorflow')\n"
        "import sys; print('kept', file=sys.stderr)\n"
    )
    env = {**os.environ, "TFAPPROX_LAZY_IMPORT": "1"}  # as the CLI: `import tfapprox` stays light
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stderr == "kept\n"
