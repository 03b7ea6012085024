"""Every docstring example in the library and in `analysis` runs and gives the output it shows."""

import doctest
import importlib
import os
import pkgutil

import pytest

import analysis
import tfapprox

MODULES = sorted(
    f"{package.__name__}.{info.name}"
    for package in (tfapprox, analysis)
    for info in pkgutil.iter_modules(package.__path__)
    if info.name != "__main__"
)


def test_every_library_module_is_collected():
    assert {"tfapprox.results", "tfapprox.config", "tfapprox.theory"} <= set(MODULES)
    assert {"analysis._convergence", "analysis._experiment", "analysis.fig5"} <= set(MODULES)


@pytest.mark.parametrize("name", ["tfapprox", *MODULES])
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    environment = dict(os.environ)
    module = importlib.import_module(name)
    result = doctest.testmod(
        module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"
    # An example that sets a variable (``TFAPPROX_JIT_COMPILE``, say) must
    # put it back: the tests after it would run under its setting.
    assert dict(os.environ) == environment
