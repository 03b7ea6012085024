"""Bundled data of tfapprox (installed as the package ``tfapprox_data``).

Read files with ``importlib.resources.files("tfapprox_data") / NAME``.
"""
