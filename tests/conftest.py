"""Shared test set-up: quiet TensorFlow, import path for analysis/, fixtures."""

import os
import pathlib
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Tiny models and short runs: TensorFlow's graph mode compiles a training
# group in 40-60 % of XLA's time, which outweighs XLA's faster steps
# here. `tests/test_engine.py` checks that both give the same training.
os.environ.setdefault("TFAPPROX_JIT_COMPILE", "0")

ROOT = pathlib.Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))  # for `import analysis.<script>`

import numpy as np  # noqa: E402
import pytest  # noqa: E402


def pytest_configure(config):
    # Keras' TensorFlow backend calls np.array(tensor), which NumPy 2 reports
    # as deprecated because TensorFlow's __array__ has no `copy` keyword. The
    # warning comes from inside Keras, not from tfapprox; any other warning
    # still shows in the summary.
    config.addinivalue_line(
        "filterwarnings",
        "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning",
    )


@pytest.fixture
def rng():
    """A seeded NumPy generator: tests are reproducible."""
    return np.random.default_rng(0)
