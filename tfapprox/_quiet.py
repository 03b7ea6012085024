"""TensorFlow's C++ start-up lines, kept off the terminal.

On a machine without CUDA, ``import tensorflow`` and its first device
discovery write lines such as ``Could not find cuda drivers`` and ``failed
call to cuInit: ... UNKNOWN ERROR (303)`` to file descriptor 2, before its
logging reads ``TF_CPP_MIN_LOG_LEVEL``. The command line (and the Dask
workers that ``--scheduler local:N`` starts) call `quiet_tensorflow` first;
a library user who imports TensorFlow sees TensorFlow's own behaviour.

This module imports only the standard library.
"""

import contextlib
import os
import sys

__all__ = ["START_UP_NOISE", "dask_setup", "native_stderr_filtered", "quiet_tensorflow"]

# TensorFlow's C++ start-up lines on a machine without CUDA. They are
# written before its logging reads TF_CPP_MIN_LOG_LEVEL, and a user of the
# command line needs none of them.
START_UP_NOISE = (
    "absl::InitializeLog",
    "cudart_stub.cc",
    "cuda_platform.cc",
    "cuda_executor.cc",
    "Unable to register cu",
    "computation_placer.cc",
    "TF-TRT Warning",
    "oneDNN custom operations",
    "This TensorFlow binary is optimized",
    "To enable the following instructions",
)


def quiet_tensorflow():
    """Silence TensorFlow's C++ start-up logging (call before importing it).

    Sets ``TF_CPP_MIN_LOG_LEVEL=2`` (unless set) and, unless TensorFlow is
    already imported, installs `_QuietImport`: the first ``import
    tensorflow``, and its device discovery, run with the process's stderr
    (file descriptor 2) caught; lines that match `START_UP_NOISE` are
    dropped and every other line is written back, so a real error stays
    visible.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    if "tensorflow" not in sys.modules and not any(
        isinstance(finder, _QuietImport) for finder in sys.meta_path
    ):
        sys.meta_path.insert(0, _QuietImport())


@contextlib.contextmanager
def native_stderr_filtered(noise=START_UP_NOISE):
    """Catch what native code writes to file descriptor 2; write back all but ``noise`` lines."""
    import tempfile

    sys.stderr.flush()
    with tempfile.TemporaryFile() as caught:
        saved = os.dup(2)
        os.dup2(caught.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            kept = [
                line
                for line in caught.read().decode("utf-8", "replace").splitlines(keepends=True)
                if not any(pattern in line for pattern in noise)
            ]
            if kept:
                sys.stderr.write("".join(kept))
                sys.stderr.flush()


class _QuietImport:
    """A `sys.meta_path` finder that imports TensorFlow once under `native_stderr_filtered`."""

    def find_spec(self, name, path=None, target=None):
        import importlib.util

        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once; the real finders do the finding
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        spec.loader = _QuietLoader(spec.loader)
        return spec


class _QuietLoader:
    """Runs the real loader, and TensorFlow's device discovery, with native stderr filtered."""

    def __init__(self, loader):
        self.loader = loader

    def __getattr__(self, name):  # is_package, get_resource_reader, ...: the real loader's
        return getattr(self.loader, name)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        with native_stderr_filtered():
            self.loader.exec_module(module)
            with contextlib.suppress(Exception):
                module.config.list_physical_devices()  # CUDA's probe logs here


def dask_setup(worker=None):
    """Dask's preload hook: `quiet_tensorflow` in a worker process before it trains.

    `tfapprox.distributed` preloads this module into the workers of a
    ``local:N`` cluster; for workers started by hand, ``dask worker ADDRESS
    --preload tfapprox._quiet`` does the same.
    """
    quiet_tensorflow()
