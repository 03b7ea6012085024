"""The ``tfapprox`` command line (installed as the package ``tfapprox_cli``).

Thin click commands over library functions. Command modules import only
click and the standard library at import time; TensorFlow, Keras and
scikit-learn are imported inside the commands that need them, so
``tfapprox --help`` and ``tfapprox bound`` start fast.
"""
