"""Run the chunks of a sweep in this process or on a Dask cluster.

A sweep is cut into *chunks* (each a list of runs the batched engine trains
together). `map_chunks` runs a picklable function on every chunk and hands
each finished chunk's result to a callback **in the driver**, so exactly one
process writes the results file whatever the scheduler:

- ``None`` or ``"inline"``: in this process, one chunk after another;
- ``"local:N"``: a `dask.distributed.LocalCluster` of N single-threaded
  worker processes started for the sweep and closed after it;
- ``"tcp://HOST:PORT"`` (or ``tls://``): a running Dask scheduler, e.g. one
  started by ``dask-jobqueue`` on SLURM, or ``dask scheduler`` plus one
  ``dask worker --nthreads 1`` per GPU with ``CUDA_VISIBLE_DEVICES`` set.

A worker that dies loses only the chunk it was running: the Dask scheduler
gives that task to another worker (up to Dask's
``distributed.scheduler.allowed-failures``), and every chunk finished before
is already in the driver's hands. Dask is optional
(``pip install ".[distributed]"``) and imported only when a scheduler is
named.
"""

import re

SCHEDULER_FORMS = ("inline", "local:N", "tcp://HOST:PORT", "tls://HOST:PORT")

_LOCAL = re.compile(r"^local:(\d+)$")
_ADDRESS = re.compile(r"^(tcp|tls)://[^\s/:]+(:\d+)?$")


def parse_scheduler(scheduler):
    """Validate a scheduler spec; return ``("inline", None)``, ``("local", N)`` or ``("address", spec)``.

    >>> parse_scheduler(None)
    ('inline', None)
    >>> parse_scheduler("local:2")
    ('local', 2)
    >>> parse_scheduler("tcp://10.0.0.5:8786")
    ('address', 'tcp://10.0.0.5:8786')
    >>> parse_scheduler("local:0")
    Traceback (most recent call last):
    ...
    ValueError: `scheduler` must be inline, local:N (N >= 1), tcp://HOST:PORT or tls://HOST:PORT. Received: scheduler='local:0'
    """
    if scheduler is None or scheduler == "inline":
        return "inline", None
    if isinstance(scheduler, str):
        match = _LOCAL.match(scheduler)
        if match and int(match.group(1)) >= 1:
            return "local", int(match.group(1))
        if _ADDRESS.match(scheduler):
            return "address", scheduler
    raise ValueError(
        "`scheduler` must be inline, local:N (N >= 1), tcp://HOST:PORT or tls://HOST:PORT. "
        f"Received: scheduler={scheduler!r}"
    )


def _import_distributed():
    try:
        import distributed
    except ImportError:
        raise ValueError(
            "a Dask scheduler needs dask.distributed: pip install 'tfapprox[distributed]' "
            "(or pip install 'dask[distributed]')"
        ) from None
    return distributed


def _client(kind, value, connect_timeout):
    """A `distributed.Client` (and the cluster it owns, or None)."""
    distributed = _import_distributed()
    if kind == "local":
        cluster = distributed.LocalCluster(
            n_workers=value,
            threads_per_worker=1,
            processes=True,
            # Any free port: Dask serves its health routes even without a
            # dashboard, and two clusters on port 8787 would warn.
            dashboard_address=":0",
            # Each worker runs `tfapprox._quiet.dask_setup` first, so its
            # TensorFlow start-up lines stay off the terminal; importing
            # tfapprox for it must not import TensorFlow already.
            preload=["tfapprox._quiet"],
            env={"TFAPPROX_LAZY_IMPORT": "1"},
        )
        return distributed.Client(cluster), cluster
    try:
        client = distributed.Client(value, timeout=connect_timeout)
    except (OSError, TimeoutError) as err:
        raise ValueError(
            f"cannot reach the Dask scheduler at {value} within {connect_timeout} s: "
            f"{' '.join(str(err).split())}"
        ) from None
    return client, None


def map_chunks(fn, chunks, on_result, *, scheduler=None, retries=1, connect_timeout=10):
    """Run ``fn(chunk)`` for every chunk; call ``on_result(index, result)`` in this process.

    Results arrive in completion order (``index`` says which chunk). A chunk
    whose function raises is retried ``retries`` times on Dask (a worker
    that dies is handled by Dask itself); the error then propagates, after
    every chunk finished so far was handed to ``on_result``. Interrupting
    (Ctrl-C) cancels the chunks still running; the finished ones were
    already handed over.

    Args:
        fn: A picklable function of one chunk (a module-level function).
        chunks: list. The chunks, each picklable.
        on_result: Callable ``(index, result)``, run in the driver.
        scheduler: None, ``"inline"``, ``"local:N"`` or a scheduler address.
            Defaults to None (this process).
        retries: int. Extra tries of a chunk whose function raised, on
            Dask. Defaults to 1.
        connect_timeout: float. Seconds to wait for a remote scheduler.
            Defaults to 10.

    Returns:
        int, the number of chunks run.

    >>> seen = []
    >>> map_chunks(sum, [[1, 2], [3]], lambda i, r: seen.append((i, r)))
    2
    >>> seen
    [(0, 3), (1, 3)]
    """
    kind, value = parse_scheduler(scheduler)
    chunks = list(chunks)
    if kind == "inline":
        for index, chunk in enumerate(chunks):
            on_result(index, fn(chunk))
        return len(chunks)

    distributed = _import_distributed()
    client, cluster = _client(kind, value, connect_timeout)
    futures = {}
    try:
        for index, chunk in enumerate(chunks):
            future = client.submit(fn, chunk, pure=False, retries=retries)
            futures[future] = index
        for future in distributed.as_completed(list(futures)):
            on_result(futures[future], future.result())
    finally:
        pending = [future for future in futures if not future.done()]
        if pending:
            client.cancel(pending)
        client.close()
        if cluster is not None:
            cluster.close()
    return len(chunks)
