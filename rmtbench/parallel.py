"""Dask clients from the config, and BLAS threading kept deterministic.

Each worker computes with one BLAS thread: parallelism comes from tasks, and a result never depends on
how many threads a library chose to use.
"""
from __future__ import annotations

import contextlib
import functools
import os
from typing import Any, Iterator, Mapping


QUIET_CLUSTER_CONFIG = {
    "distributed.worker.profile.enabled": False,
    "distributed.admin.tick.interval": "1s",
    "distributed.admin.system-monitor.interval": "2s",
    "distributed.worker.memory.monitor-interval": "500ms",
    "distributed.scheduler.work-stealing-interval": "500ms",
}
"""Dask settings of rmtbench's clusters: no statistical profiler, slower housekeeping ticks.

With distributed's defaults an idle 2-worker LocalCluster and its client use about 0.15 CPU-seconds
per second (the profiler samples every thread each 10 ms, the event loop's watchdog ticks every 20 ms):
a sixth of a core taken from the computation on a 2-core machine. With these it uses about 0.015
(``bench/README.md``). What is lost: the dashboard's profile page, and event-loop stall warnings and
memory-limit checks react within 0.5-1 s instead of 20-100 ms. Work stealing still runs.
"""


WORKER_MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(16 * 2**20), "MALLOC_TRIM_THRESHOLD_": str(32 * 2**20)}
"""glibc's malloc settings in every worker process (bytes).

distributed gives its workers ``MALLOC_TRIM_THRESHOLD_=65536`` so that freed memory goes back to the
system at once. Any explicit threshold also freezes glibc's mmap threshold at 128 KiB, so every feature
block of a stripe (megabytes) was a fresh mmap whose pages were faulted in and zeroed again at each
allocation: about a sixth of the default sweep's rf_ridge simulation time. With these, blocks up to
16 MiB come from the heap and are reused, free heap beyond 32 MiB still goes back to the system, and
larger arrays (the n x n Gram at paper sizes) are mapped and unmapped as before. Measured in
``bench/README.md``: the memory benchmark's growth in d stays within its 10% (larger thresholds kept
too much heap per worker thread and did not).
"""


def quiet_cluster_env() -> dict[str, str]:
    """:data:`QUIET_CLUSTER_CONFIG` as ``DASK_...`` environment variables.

    For schedulers and workers started as commands (the SLURM task clusters of :mod:`rmtbench.slurm`).
    """
    def name(key: str) -> str:
        return "DASK_" + "__".join(part.upper().replace("-", "_") for part in key.split("."))

    return {name(key): str(value) for key, value in QUIET_CLUSTER_CONFIG.items()}


SHARED_CLUSTER_ENV = "RMTBENCH_SHARED_SCHEDULER_FILE"
"""Set by ``rmtbench run``: jobs in ``local`` mode join the sweep's LocalCluster through this file."""


@functools.lru_cache(maxsize=1)
def _blas_controller() -> Any:
    """One threadpoolctl controller per process, made after numpy's and scipy's BLAS are loaded.

    ``threadpool_limits`` scans the process's shared libraries on every call (about 1.5 ms); a cell
    enters a one-thread block per stripe and per seed, so the scan is done once and reused. Thread
    pools loaded after the first call (none of rmtbench's own) are not limited by it.
    """
    import numpy  # noqa: F401  (load both BLAS libraries before the scan)
    import scipy.linalg  # noqa: F401
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def blas_threads(limit: int) -> contextlib.AbstractContextManager[Any]:
    """A context manager limiting the BLAS/OpenMP threads of numpy and scipy to ``limit``.

    Parameters
    ----------
    limit
        Threads allowed inside the block (at least 1).
    """
    return _blas_controller().limit(limits=max(1, int(limit)))


@contextlib.contextmanager
def single_blas_thread() -> Iterator[None]:
    """Run the block with BLAS/OpenMP limited to one thread."""
    with blas_threads(1):
        yield


@contextlib.contextmanager
def dask_client(settings: Mapping[str, Any], *, threads: int = 1, memory_limit: str | None = None) -> Iterator[Any]:
    """A Dask client as the config's ``dask`` block asks (``None`` for synchronous mode).

    Parameters
    ----------
    settings
        The validated ``dask`` block: ``mode`` is ``local`` (embedded LocalCluster with worker
        processes), ``address``, ``scheduler_file`` or ``synchronous``.
    threads
        Threads granted to the job (Snakemake's ``{threads}``): the LocalCluster gets that many worker
        processes with one thread each, unless ``settings['workers']`` says otherwise.
    memory_limit
        Per-worker memory limit for the LocalCluster (Dask syntax, e.g. ``"4GiB"``).
    """
    mode = settings.get("mode", "local")
    shared = os.environ.get(SHARED_CLUSTER_ENV)
    if mode == "local" and shared:
        # `rmtbench run` started one LocalCluster for the whole sweep: join it instead of paying
        # seconds of worker start-up per cell. Numbers do not depend on which cluster computes them.
        mode, settings = "scheduler_file", {"scheduler_file": shared}
    if mode == "synchronous":
        yield None
        return
    from distributed import Client

    if mode == "address":
        with Client(settings["address"]) as client:
            yield client
        return
    if mode == "scheduler_file":
        with Client(scheduler_file=settings["scheduler_file"]) as client:
            yield client
        return
    workers = int(settings.get("workers") or max(1, threads))
    os.environ.setdefault("PYTHONHASHSEED", "0")
    with _local_cluster(workers, memory_limit=memory_limit or "auto") as client:
        yield client


@contextlib.contextmanager
def _local_cluster(workers: int, **options: Any) -> Iterator[Any]:
    """A client of a LocalCluster of ``workers`` single-threaded processes, with rmtbench's Dask and malloc settings."""
    import dask
    from distributed import Client, LocalCluster

    malloc = {f"distributed.nanny.pre-spawn-environ.{name}": value for name, value in WORKER_MALLOC_ENV.items()}
    before = dict(os.environ)
    with dask.config.set({**QUIET_CLUSTER_CONFIG, **malloc}), LocalCluster(
        n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40, **options,
    ) as cluster, Client(cluster) as client:
        # The nannies put their workers' variables (malloc, one BLAS thread) into this process's
        # os.environ before spawning; taken back, so that processes started here later (theory jobs,
        # Snakemake under `rmtbench run`) do not inherit them. A nanny restarting a worker sets them again.
        _restore_environment(before)
        yield client


def _restore_environment(saved: Mapping[str, str]) -> None:
    """Make ``os.environ`` equal to ``saved`` again (variables added since are removed).

    Parameters
    ----------
    saved
        A copy of ``os.environ`` taken earlier.
    """
    for name in set(os.environ) - set(saved):
        del os.environ[name]
    for name, value in saved.items():
        if os.environ.get(name) != value:
            os.environ[name] = value


@contextlib.contextmanager
def shared_local_cluster(workers: int, scheduler_file: str) -> Iterator[Any]:
    """Start a LocalCluster of ``workers`` single-threaded processes and publish its scheduler file."""
    with _local_cluster(workers) as client:
        client.write_scheduler_file(scheduler_file)
        yield client


def compute(client: Any, *graphs: Any) -> tuple[Any, ...]:
    """Compute Dask graphs on ``client`` (or synchronously when ``client`` is None)."""
    import dask

    if client is None:
        return dask.compute(*graphs, scheduler="synchronous")
    futures = client.compute(list(graphs))
    return tuple(client.gather(futures))
