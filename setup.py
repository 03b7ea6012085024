"""Install tfapprox: ``pip install -e .`` (or ``pip install -e ".[test]"``)."""

import pathlib
import re

from setuptools import setup

HERE = pathlib.Path(__file__).parent
VERSION = re.search(
    r'^__version__ = "([^"]+)"', (HERE / "tfapprox" / "__init__.py").read_text(), re.M
).group(1)

setup(
    name="tfapprox",
    version=VERSION,
    description="Approximation theory of Transformers (Jiang & Li, 2024) as a Keras toolkit",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # The library, the CLI (folder cli/, imported as tfapprox_cli) and the
    # bundled data (folder data/, imported as tfapprox_data for
    # importlib.resources), so a non-editable install carries everything.
    packages=["tfapprox", "tfapprox_cli", "tfapprox_data", "tfapprox_analysis"],
    package_dir={
        "tfapprox": "tfapprox",
        "tfapprox_cli": "cli",
        "tfapprox_data": "data",
        "tfapprox_analysis": "analysis",
    },
    package_data={"tfapprox_data": ["*.json", "*.npz", "*.md"]},
    include_package_data=True,
    install_requires=[
        "keras>=3.0",
        "tensorflow>=2.16",
        "sympy>=1.12",
        "numpy>=1.24",
        "scikit-learn>=1.3",
        "click>=8.1",
        "matplotlib>=3.7",
        # Linear programs (the envelope constants of `tfapprox check`).
        "scipy>=1.10",
        # One BLAS thread around fit_kernel's L-BFGS (3x faster on 2 cores).
        "threadpoolctl>=3.1",
    ],
    extras_require={
        "test": [
            "pytest>=7",
            "pytest-xdist>=3.5",
            "ruff==0.17.6",
            "jax[cpu]>=0.4.30",
            "dask[distributed]>=2024.1",
        ],
        "gpu": ["tensorflow[and-cuda]>=2.16"],
        "distributed": ["dask[distributed]>=2024.1"],
        # tfapprox.engine also trains under KERAS_BACKEND=jax.
        "jax": ["jax[cpu]>=0.4.30"],
    },
    entry_points={"console_scripts": ["tfapprox=tfapprox_cli.main:main"]},
)
