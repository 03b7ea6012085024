"""Scripts that reproduce the papers and benchmark tfapprox.

Each script has ``main(argv) -> dict`` and runs as ``python -m analysis.NAME``
from the repository root; ``--quick`` runs a tiny version that the tests call.
"""
