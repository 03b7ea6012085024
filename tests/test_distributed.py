"""Chunks of a sweep run inline or on a Dask LocalCluster, and survive a dying worker."""

import os
import pathlib
import socket
import warnings

import pytest

from tfapprox import distributed


def square_all(chunk):
    return [value * value for value in chunk]


def die_once(chunk):
    """Kill the worker process the first time it runs chunk ``("die", path)``."""
    tag, marker = chunk
    if tag == "die" and not os.path.exists(marker):
        pathlib.Path(marker).write_text("died")
        os._exit(1)
    return tag


@pytest.mark.parametrize(
    "spec, expected",
    [
        (None, ("inline", None)),
        ("inline", ("inline", None)),
        ("local:3", ("local", 3)),
        ("tcp://127.0.0.1:8786", ("address", "tcp://127.0.0.1:8786")),
        ("tls://scheduler.example", ("address", "tls://scheduler.example")),
    ],
)
def test_parse_scheduler_accepts_the_documented_forms(spec, expected):
    assert distributed.parse_scheduler(spec) == expected


@pytest.mark.parametrize("spec", ["local:0", "local", "local:-1", "http://x:1", "", 3])
def test_parse_scheduler_rejects_other_values_naming_them(spec):
    with pytest.raises(ValueError, match="scheduler"):
        distributed.parse_scheduler(spec)


def test_inline_runs_every_chunk_in_order():
    seen = []
    count = distributed.map_chunks(square_all, [[1, 2], [3], []], lambda i, r: seen.append((i, r)))
    assert count == 3
    assert seen == [(0, [1, 4]), (1, [9]), (2, [])]


@pytest.fixture
def light_workers(monkeypatch):
    """Workers unpickle this module's functions; spare them the Keras import."""
    monkeypatch.setenv("TFAPPROX_LAZY_IMPORT", "1")


def test_local_cluster_runs_chunks_and_the_driver_gets_every_result(light_workers):
    seen = {}
    distributed.map_chunks(square_all, [[1, 2], [3], [4, 5]], seen.__setitem__, scheduler="local:2")
    assert seen == {0: [1, 4], 1: [9], 2: [16, 25]}


def test_a_local_cluster_does_not_need_the_default_dashboard_port(light_workers):
    # Two sweeps on one machine (or two test workers) must not fight over
    # Dask's port 8787: hold it, and the cluster must start without a warning.
    holder = socket.socket()
    try:
        holder.bind(("", 8787))
        holder.listen()
    except OSError:
        pass  # someone else holds it already: the same situation
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            seen = {}
            distributed.map_chunks(square_all, [[2]], seen.__setitem__, scheduler="local:1")
    finally:
        holder.close()
    assert seen == {0: [4]}
    assert not [w for w in caught if "already in use" in str(w.message)]


def test_a_dying_worker_loses_only_its_chunk_which_is_run_again(tmp_path, light_workers):
    marker = str(tmp_path / "died")
    chunks = [("a", marker), ("die", marker), ("b", marker)]
    seen = {}
    distributed.map_chunks(die_once, chunks, seen.__setitem__, scheduler="local:2")
    assert pathlib.Path(marker).read_text() == "died"  # the worker really died once
    assert seen == {0: "a", 1: "die", 2: "b"}


def test_an_unreachable_scheduler_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match="tcp://127.0.0.1:1"):
        distributed.map_chunks(
            square_all, [[1]], lambda i, r: None, scheduler="tcp://127.0.0.1:1", connect_timeout=2
        )


def tensorflow_loader(chunk):
    """The loader class of TensorFlow's module, as the worker's first import finds it."""
    import tensorflow

    return type(tensorflow.__spec__.loader).__name__


def test_local_workers_import_tensorflow_with_its_start_up_lines_filtered():
    # The preload (tfapprox._quiet.dask_setup) installs the filter before the
    # worker imports TensorFlow; without it the loader would be TensorFlow's own.
    seen = {}
    distributed.map_chunks(tensorflow_loader, [None], seen.__setitem__, scheduler="local:1")
    assert seen == {0: "_QuietLoader"}
