"""Export: ``.keras`` files, TensorFlow SavedModels, and checks that they serve.

- `save_model` / `load_model`: the native ``.keras`` format. Loading needs
  only ``import tfapprox`` (which registers the tfapprox layers); `load_model`
  does that import itself.
- `export_saved_model`: a TensorFlow SavedModel with a ``serve`` endpoint
  (and the ``serving_default`` signature), written by ``model.export``. It
  loads with ``tf.saved_model.load(path).serve(x)`` in a process that has
  never heard of tfapprox (TF Serving, TFLite converters, other languages).
- `verify_export`: proves it, by loading the export in a fresh Python process
  and comparing with ``model.predict`` at two batch sizes.

Both writers are atomic: the export is written next to its destination and
moved into place, so a reader never sees a half-written model.
"""

import json
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np

from tfapprox import _io


class ExportVerificationError(ValueError):
    """An exported model does not reproduce the original model's predictions."""


def _check_model(model):
    import keras

    if not isinstance(model, keras.Model):
        raise TypeError(f"`model` must be a keras.Model. Received: {type(model).__name__}")
    return model


def save_model(model, path):
    """Save ``model`` to ``path`` (``.keras``) atomically.

    Args:
        model: `keras.Model`.
        path: str. Destination; must end with ``.keras``.

    Returns:
        The path, as a str.
    """
    _check_model(model)
    path = os.fspath(path)
    if not path.endswith(".keras"):
        raise ValueError(f"`path` must end with '.keras'. Received: path={path!r}")
    with _io.atomic_path(path) as tmp:
        model.save(tmp)
    return path


def load_model(path, compile=True):
    """Load a ``.keras`` model that uses tfapprox layers.

    Args:
        path: str. A file written by `save_model` (or ``model.save``).
        compile: bool. Restore the optimizer and loss too (as
            ``keras.saving.load_model`` does). Defaults to True.

    Returns:
        `keras.Model`.

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ValueError: ``path`` is a folder or not a readable ``.keras`` file.
    """
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"model file not found: {path}")
    if os.path.isdir(path):
        raise ValueError(
            f"{path} is a folder, not a .keras model file "
            "(a SavedModel folder loads with tf.saved_model.load)"
        )
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a readable .keras model file (not a zip archive)")
    import keras

    import tfapprox.layers  # noqa: F401  (registers the layers for deserialisation)
    import tfapprox.models  # noqa: F401

    try:
        return keras.saving.load_model(path, compile=compile)
    except (
        zipfile.BadZipFile,
        ValueError,
        KeyError,
        TypeError,
        OSError,
        json.JSONDecodeError,
    ) as err:
        detail = " ".join(str(err).split())[:300]
        raise ValueError(f"{path} is not a readable .keras model file ({detail})") from None


def export_saved_model(model, path):
    """Export ``model`` as a TensorFlow SavedModel folder, atomically.

    Uses ``model.export(path, format="tf_saved_model")``: the SavedModel has
    an endpoint ``serve`` taking a float32 batch ``(batch, tau, d)`` (any
    batch size) and the ``serving_default`` signature.

    Args:
        model: `keras.Model`.
        path: str. Destination folder (replaced if it exists).

    Returns:
        The path, as a str.
    """
    _check_model(model)
    path = os.fspath(path)
    with _io.atomic_directory(path) as staged:
        model.export(staged, format="tf_saved_model", verbose=False)
    return path


# Runs in a fresh interpreter. The SavedModel script imports TensorFlow only;
# the .keras script imports tfapprox (the one import a user needs) and Keras.
_SERVE_SCRIPT = r"""
import json, sys
import numpy as np
import tensorflow as tf
request = json.load(sys.stdin)
served = tf.saved_model.load(request["path"])
outputs = {}
for name, x in request["inputs"].items():
    y = served.serve(tf.constant(np.asarray(x, dtype="float32")))
    if isinstance(y, dict):
        y = next(iter(y.values()))
    outputs[name] = np.asarray(y, dtype="float64").tolist()
imported = sorted(m for m in sys.modules if m == "tfapprox" or m.startswith("tfapprox."))
print(json.dumps({"outputs": outputs, "tfapprox_modules": imported}))
"""

_KERAS_SCRIPT = r"""
import json, sys
import numpy as np
import tfapprox
import keras
request = json.load(sys.stdin)
model = keras.saving.load_model(request["path"])
outputs = {}
for name, x in request["inputs"].items():
    y = model.predict(np.asarray(x, dtype="float32"), verbose=0)
    outputs[name] = np.asarray(y, dtype="float64").tolist()
print(json.dumps({"outputs": outputs, "tfapprox_modules": ["tfapprox"]}))
"""


def _default_inputs(model, batch_size=8, seed=0):
    shape = tuple(model.input_shape)
    if len(shape) != 3:
        raise ValueError(
            f"`model` must take one input of shape (batch, tau, d). Received input_shape={shape}"
        )
    tau = shape[1] or 8
    dim = shape[2] or 1
    return np.random.default_rng(seed).uniform(size=(batch_size, tau, dim)).astype("float32")


def _run_fresh_python(script, request, timeout):
    env = dict(os.environ)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    env.pop("TFAPPROX_LAZY_IMPORT", None)
    try:
        completed = subprocess.run(
            [sys.executable, "-c", script],
            input=json.dumps(request),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=tempfile.gettempdir(),
            env=env,
        )
    except subprocess.TimeoutExpired:
        raise ExportVerificationError(
            f"loading {request['path']} in a fresh process took over {timeout} s"
        ) from None
    lines = completed.stdout.strip().splitlines()
    if completed.returncode != 0 or not lines:
        tail = [line for line in completed.stderr.strip().splitlines() if line.strip()]
        reason = tail[-1] if tail else f"exit code {completed.returncode}"
        raise ExportVerificationError(
            f"{request['path']} does not load in a fresh process: {reason}"
        )
    return json.loads(lines[-1])


def verify_export(model, path, x=None, *, atol=1e-5, rtol=1e-5, timeout=600):
    """Check in a fresh process that an export reproduces ``model.predict``.

    A SavedModel folder is loaded with ``tf.saved_model.load(path).serve(x)``
    in a Python process that does not import tfapprox (checked); a ``.keras``
    file with ``import tfapprox; keras.saving.load_model(path)``. The
    predictions for the first row of ``x`` (batch size 1) and for all of
    ``x`` must match ``model.predict`` to ``|served − predicted| ≤ atol +
    rtol·|predicted|`` (float32 round-off across graph compilations is
    ~1e-7 relative).

    Args:
        model: `keras.Model`. The model that was exported.
        path: str. A SavedModel folder or a ``.keras`` file.
        x: array ``(N, tau, d)`` with N ≥ 2, or None for 8 seeded uniform
            sequences. Defaults to None.
        atol: float. Defaults to 1e-5.
        rtol: float. Defaults to 1e-5.
        timeout: float. Seconds allowed for the fresh process. Defaults to 600.

    Returns:
        dict: ``format``, ``path``, ``batch_sizes``, ``max_abs_diff`` (per
        batch size, keys are strings), ``atol``, ``rtol``,
        ``tfapprox_imported`` (False for a SavedModel).

    Raises:
        FileNotFoundError: ``path`` does not exist.
        ExportVerificationError (a `ValueError`): the export does not load,
            imports tfapprox, or its predictions differ.
    """
    _check_model(model)
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"export not found: {path}")
    export_format = "saved_model" if os.path.isdir(path) else "keras"
    x = _default_inputs(model) if x is None else np.asarray(x, dtype="float32")
    if x.ndim != 3 or len(x) < 2:
        raise ValueError(
            f"`x` must have shape (N, tau, d) with N >= 2 (two batch sizes are checked). "
            f"Received shape {x.shape}"
        )
    batches = {"1": x[:1], str(len(x)): x}
    request = {
        "path": os.path.abspath(path),
        "inputs": {name: batch.astype("float64").tolist() for name, batch in batches.items()},
    }
    script = _SERVE_SCRIPT if export_format == "saved_model" else _KERAS_SCRIPT
    reply = _run_fresh_python(script, request, timeout)
    if export_format == "saved_model" and reply["tfapprox_modules"]:
        raise ExportVerificationError(
            f"serving {path} imported {reply['tfapprox_modules']}; a SavedModel must serve "
            "without tfapprox"
        )
    report = {
        "format": export_format,
        "path": path,
        "batch_sizes": [int(name) for name in batches],
        "max_abs_diff": {},
        "atol": atol,
        "rtol": rtol,
        "tfapprox_imported": bool(reply["tfapprox_modules"]),
    }
    for name, batch in batches.items():
        expected = np.asarray(model.predict(batch, verbose=0), dtype="float64")
        served = np.asarray(reply["outputs"][name], dtype="float64")
        if served.shape != expected.shape:
            raise ExportVerificationError(
                f"{path} returns shape {served.shape} for a batch of {name}; "
                f"the model returns {expected.shape}"
            )
        difference = np.abs(served - expected)
        report["max_abs_diff"][name] = float(difference.max()) if difference.size else 0.0
        excess = difference - (atol + rtol * np.abs(expected))
        if not np.all(np.isfinite(served)) or (excess.size and excess.max() > 0):
            raise ExportVerificationError(
                f"{path} does not reproduce model.predict at batch size {name}: "
                f"max |diff| {report['max_abs_diff'][name]:.3g} exceeds atol={atol}, rtol={rtol}"
            )
    return report
