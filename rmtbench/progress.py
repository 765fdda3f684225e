"""Progress of long computations: a bar on a terminal, plain log lines in batch jobs and log files.

Experiment kinds call :func:`compute` instead of :func:`rmtbench.parallel.compute` (same arguments,
plus a ``label``). The mode comes from ``RMTBENCH_PROGRESS`` (``auto``, ``bar``, ``log``, ``off``);
``auto`` draws a bar when stderr is a terminal outside a batch system and writes a log line every
``RMTBENCH_PROGRESS_INTERVAL`` seconds (default 30) otherwise, which is what a Snakemake job's log
file or a SLURM job's output should hold. Progress never changes a number: the same graphs are
computed on the same client either way.
"""
from __future__ import annotations

import logging
import os
import sys
import time
from typing import Any, Literal, TextIO

log = logging.getLogger("rmtbench.progress")

Mode = Literal["auto", "bar", "log", "off"]
BATCH_VARIABLES = ("SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID", "JOB_ID")
"""Environment variables that mark a batch job (SLURM, PBS/Torque, LSF, SGE)."""
DEFAULT_INTERVAL = 30.0


def in_batch_job(environ: dict[str, str] | None = None) -> bool:
    """Whether the process runs under a batch system.

    Examples
    --------
    >>> in_batch_job({"SLURM_JOB_ID": "123"}), in_batch_job({})
    (True, False)
    """
    env = os.environ if environ is None else environ
    return any(env.get(name) for name in BATCH_VARIABLES)


def resolve_mode(mode: Mode | None = None, *, stream: TextIO | None = None) -> Literal["bar", "log", "off"]:
    """The effective mode: ``mode``, else ``RMTBENCH_PROGRESS``, with ``auto`` decided by the terminal.

    Examples
    --------
    >>> import io
    >>> resolve_mode("auto", stream=io.StringIO())  # not a terminal
    'log'
    >>> resolve_mode("off")
    'off'
    """
    chosen = mode or os.environ.get("RMTBENCH_PROGRESS", "auto") or "auto"
    if chosen not in ("auto", "bar", "log", "off"):
        raise ValueError(f"progress mode must be auto, bar, log or off, got {chosen!r} (RMTBENCH_PROGRESS)")
    if chosen != "auto":
        return chosen  # type: ignore[return-value]
    stream = sys.stderr if stream is None else stream
    is_tty = bool(getattr(stream, "isatty", lambda: False)())
    return "bar" if is_tty and not in_batch_job() else "log"


def _interval(interval: float | None) -> float:
    if interval is not None:
        return float(interval)
    return float(os.environ.get("RMTBENCH_PROGRESS_INTERVAL", DEFAULT_INTERVAL))


class _Reporter:
    """Turns (done, total) updates into a bar or into log lines at most every ``interval`` seconds."""

    def __init__(self, label: str, mode: str, interval: float, stream: TextIO, width: int = 30) -> None:
        self.label, self.mode, self.interval, self.stream, self.width = label, mode, interval, stream, width
        self.start = time.perf_counter()
        self.last_log = self.start
        self.total = 0
        self.done = 0

    def begin(self, total: int) -> None:
        self.total = total
        self.start = self.last_log = time.perf_counter()
        if self.mode == "log":
            log.info("%s: started, %d task(s)", self.label, total)

    def update(self, done: int, total: int | None = None) -> None:
        self.done = done
        if total is not None:
            self.total = total
        now = time.perf_counter()
        if self.mode == "bar":
            frac = done / self.total if self.total else 1.0
            bar = "#" * int(self.width * frac)
            self.stream.write(f"\r{self.label} [{bar:<{self.width}}] {100 * frac:5.1f}% {done}/{self.total} tasks {now - self.start:7.1f} s")
            self.stream.flush()
        elif self.mode == "log" and now - self.last_log >= self.interval:
            self.last_log = now
            log.info("%s: %d/%d tasks done (%.0f%%) after %.0f s", self.label, done, self.total,
                     100.0 * done / self.total if self.total else 100.0, now - self.start)

    def finish(self, status: str = "finished") -> None:
        elapsed = time.perf_counter() - self.start
        if self.mode == "bar":
            self.stream.write("\n")
            self.stream.flush()
        if self.mode in ("bar", "log"):
            log.info("%s: %s, %d task(s) in %.1f s", self.label, status, self.total, elapsed)


def _compute_local(graphs: tuple[Any, ...], reporter: _Reporter) -> tuple[Any, ...]:
    """Synchronous scheduler with a callback counting finished tasks."""
    import dask
    from dask.callbacks import Callback

    class _Count(Callback):
        def _start_state(self, dsk: Any, state: Any) -> None:
            reporter.begin(sum(len(state[k]) for k in ("ready", "waiting", "running", "finished")))

        def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, worker_id: Any) -> None:
            reporter.update(len(state["finished"]))

    with _Count():
        results = dask.compute(*graphs, scheduler="synchronous")
    reporter.finish()
    return results


def _compute_distributed(client: Any, graphs: tuple[Any, ...], reporter: _Reporter) -> tuple[Any, ...]:
    """Futures on the client; the scheduler feeds (remaining, all) counts to the reporter."""
    from distributed.diagnostics.progressbar import TextProgressBar

    class _Feed(TextProgressBar):
        started = False

        def _draw_bar(self, remaining: int, all: int, **kwargs: Any) -> None:  # noqa: A002 (distributed's name)
            if not self.started:
                self.started = True
                reporter.begin(all)
            reporter.update(all - remaining, all)

        def _draw_stop(self, **kwargs: Any) -> None:
            reporter.finish(kwargs.get("status", "finished"))

    futures = client.compute(list(graphs))
    # The feed blocks until the scheduler reports completion, which it does on its next tick: the
    # interval is latency added to every compute (one second per cell would dominate small cells).
    _Feed(futures, interval="50ms", complete=True, start=True)
    return tuple(client.gather(futures))


def compute(client: Any, *graphs: Any, label: str = "compute", mode: Mode | None = None,
            interval: float | None = None, stream: TextIO | None = None) -> tuple[Any, ...]:
    """Compute Dask graphs like :func:`rmtbench.parallel.compute`, showing progress.

    Parameters
    ----------
    client
        A ``distributed.Client``, or None for the synchronous scheduler.
    *graphs
        Dask collections or ``Delayed`` objects.
    label
        What is computed, e.g. ``"rf_ridge/relu-gaussian-gmm2-n512-d_over_n0.5"``.
    mode
        ``"bar"``, ``"log"``, ``"off"`` or ``"auto"``; None reads ``RMTBENCH_PROGRESS`` (default auto).
    interval
        Seconds between log lines in ``"log"`` mode (None: ``RMTBENCH_PROGRESS_INTERVAL`` or 30).
    stream
        Where the bar is drawn (default stderr).

    Returns
    -------
    tuple
        The computed values, in the order of ``graphs``.

    Examples
    --------
    >>> import dask
    >>> compute(None, dask.delayed(sum)([1, 2, 3]), label="demo", mode="off")
    (6,)
    """
    stream = sys.stderr if stream is None else stream
    chosen = resolve_mode(mode, stream=stream)
    if chosen == "off":
        from rmtbench.parallel import compute as plain

        return plain(client, *graphs)
    reporter = _Reporter(label, chosen, _interval(interval), stream)
    if client is None:
        return _compute_local(graphs, reporter)
    return _compute_distributed(client, graphs, reporter)
