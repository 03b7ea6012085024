"""Experiments that reproduce the papers, and benchmarks of tfapprox.

Each script has ``main(argv) -> dict`` and a ``--quick`` mode that the tests
call. The experiments run as ``tfapprox experiment NAME`` (the package is
installed as ``tfapprox_analysis``, so a non-editable install carries them)
or as ``python -m analysis.NAME`` from the repository root; the benchmarks
as ``python -m analysis.bench_NAME``.

`EXPERIMENTS` names every experiment and the module that runs it. It is read
by ``tfapprox experiment list`` without importing the modules (which import
Keras).
"""

# name -> (module in this package, one-line description)
EXPERIMENTS = {}
