"""Shared helpers of the benchmarks: the machine, timing, rates, peak memory and the printed table.

The machines these scripts run on are shared and noisy, so every benchmark measures the quantities it
compares *in one run*, interleaved (A, B, A, B, ...), and reports their ratio. Each table states the
machine, its load (``os.getloadavg``) before and after, the BLAS kernel in use, and the sizes; its last
line is the headline ratio and the target it is held against.

Two clocks are kept. *Wall* time is what a user waits for and what the targets mean. *CPU* time
(user + system, summed over this process and any worker processes named) is less disturbed by other
jobs on the machine, and a ratio of CPU rates is printed beside the wall ratio as a cross-check: when
the two disagree, the machine was too busy for the wall number to mean much.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import platform
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

# rf_ridge ships its data inside the graph (one copy per cell); distributed warns about graphs > 10 MB
warnings.filterwarnings("ignore", message=".*Sending large graph.*")

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run as `python bench/<name>.py` from anywhere, without installing bench/
    sys.path.insert(0, str(ROOT))


# -- the machine --------------------------------------------------------------------------------------
def blas_description() -> str:
    """The BLAS library, kernel architecture and thread count numpy uses (threadpoolctl)."""
    from threadpoolctl import threadpool_info

    parts = []
    for info in threadpool_info():
        if info.get("user_api") == "blas":
            parts.append(f"{info.get('internal_api')} {info.get('version')} {info.get('architecture', '?')} "
                         f"({info.get('num_threads')} threads)")
    return "; ".join(parts) or "no BLAS found by threadpoolctl"


def cpu_model() -> str:
    """The CPU model name from /proc/cpuinfo (or platform.processor())."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def load() -> str:
    """The 1/5/15-minute load averages, e.g. ``"3.1 2.9 2.5"``."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def machine_lines() -> list[str]:
    """Lines describing the machine and environment, printed above each table."""
    import scipy

    env = {k: os.environ[k] for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "OMP_NUM_THREADS") if k in os.environ}
    return [
        f"machine: {cpu_model()}, {os.cpu_count()} cores, {_memory_gib():.0f} GiB; python {platform.python_version()}, "
        f"numpy {np.__version__}, scipy {scipy.__version__}",
        f"BLAS: {blas_description()}; env: {env or 'no OPENBLAS_CORETYPE/OPENBLAS_L2_SIZE/OMP_NUM_THREADS'}",
    ]


def _memory_gib() -> float:
    import psutil

    return psutil.virtual_memory().total / 2**30


# -- clocks -------------------------------------------------------------------------------------------
def cpu_seconds(pids: Iterable[int] = ()) -> float:
    """User + system CPU seconds of this process and of the processes ``pids`` (e.g. Dask workers)."""
    import psutil

    total = 0.0
    for pid in {os.getpid(), *pids}:
        with contextlib.suppress(psutil.NoSuchProcess):
            t = psutil.Process(pid).cpu_times()
            total += t.user + t.system
    return total


@dataclass
class Timing:
    """Wall and CPU seconds of one measured call, and its return value."""

    wall: float
    cpu: float
    value: Any = None


def timed(fn: Callable[[], Any], *, pids: Iterable[int] = ()) -> Timing:
    """Run ``fn()`` once and return its wall and CPU time (CPU summed over this process and ``pids``)."""
    pids = list(pids)
    c0, t0 = cpu_seconds(pids), time.perf_counter()
    value = fn()
    t1, c1 = time.perf_counter(), cpu_seconds(pids)
    return Timing(wall=t1 - t0, cpu=c1 - c0, value=value)


def interleaved(calls: dict[str, Callable[[], Any]], *, rounds: int, pids: Iterable[int] = ()) -> dict[str, list[Timing]]:
    """Time each of ``calls`` once per round, in turn (A, B, C, A, B, C, ...), so that slow phases of a
    busy machine fall on all of them alike."""
    out: dict[str, list[Timing]] = {name: [] for name in calls}
    pids = list(pids)
    for _ in range(rounds):
        for name, fn in calls.items():
            out[name].append(timed(fn, pids=pids))
    return out


def best(timings: Sequence[Timing], clock: str = "wall") -> float:
    """The shortest time of repeated runs: the run least disturbed by other jobs."""
    return min(getattr(t, clock) for t in timings)


def median(timings: Sequence[Timing], clock: str = "wall") -> float:
    """The median time of repeated runs."""
    return float(np.median([getattr(t, clock) for t in timings]))


# -- reference rate -----------------------------------------------------------------------------------
def matmul_call(size: int, *, threads: int | None = None, seed: int = 0) -> tuple[Callable[[], Any], float]:
    """A float64 ``size x size`` matrix product through numpy with ``threads`` BLAS threads, and its flops.

    The operands are drawn once; the returned callable multiplies them (``2 size^3`` flops).
    """
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(seed)
    a, b = rng.standard_normal((size, size)), rng.standard_normal((size, size))

    def run() -> None:
        with threadpool_limits(limits=threads):
            a @ b

    return run, 2.0 * size**3


# -- peak memory --------------------------------------------------------------------------------------
class PeakMemory:
    """Sample the resident memory of this process and all its descendants; keep the peak of the sum.

    Use as a context manager; ``peak`` (bytes) and ``baseline`` (bytes at entry) are set on exit. RSS
    of several processes is summed, so shared library pages count once per process: a constant
    offset, the same for every size compared.
    """

    def __init__(self, *, interval: float = 0.02) -> None:
        self.interval = interval
        self.peak = 0
        self.baseline = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @staticmethod
    def current() -> int:
        """Bytes resident now in this process and its descendants."""
        import psutil

        me = psutil.Process()
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
                total += proc.memory_info().rss
        return total

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.current())
            self._stop.wait(self.interval)

    def __enter__(self) -> "PeakMemory":
        self.baseline = self.peak = self.current()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join()
        self.peak = max(self.peak, self.current())


# -- dask ---------------------------------------------------------------------------------------------
@contextlib.contextmanager
def local_cluster(workers: int) -> Iterator[Any]:
    """rmtbench's LocalCluster (``workers`` single-threaded processes, one BLAS thread per task)."""
    from rmtbench.parallel import dask_client

    with dask_client({"mode": "local", "workers": workers}, threads=workers) as client:
        yield client


def worker_pids(client: Any) -> list[int]:
    """Process ids of the Dask workers behind ``client``."""
    if client is None:
        return []
    return list(client.run(os.getpid).values())


# -- the printed table --------------------------------------------------------------------------------
@dataclass
class Table:
    """A Markdown table with a title, context lines, rows, and a headline line printed last."""

    title: str
    columns: list[str]
    rows: list[list[Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    load_before: str = field(default_factory=load)

    def add(self, *values: Any) -> None:
        self.rows.append(list(values))

    def render(self, headline: str) -> str:
        lines = [f"## {self.title}", "", *[f"- {line}" for line in machine_lines()],
                 f"- load average (1/5/15 min): {self.load_before} before, {load()} after; command: `{command_line()}`",
                 *[f"- {note}" for note in self.notes], ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        for row in self.rows:
            lines.append("| " + " | ".join(_cell(v) for v in row) + " |")
        lines += ["", headline]
        return "\n".join(lines)

    def print(self, headline: str) -> None:
        print(self.render(headline), flush=True)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e4 else f"{value:.3e}"
    return str(value)


def command_line() -> str:
    """The command that ran this benchmark (relative script path and arguments)."""
    env = " ".join(f"{k}={os.environ[k]}" for k in ("OPENBLAS_CORETYPE",) if k in os.environ)
    script = os.path.relpath(sys.argv[0], ROOT) if sys.argv and sys.argv[0] else "?"
    return " ".join(filter(None, [env, "python", script, *sys.argv[1:]]))


def verdict(value: float, target: float, *, at_most: bool) -> str:
    """``"meets"`` or ``"misses"`` the target (``at_most``: smaller is better)."""
    ok = value <= target if at_most else value >= target
    return "meets" if ok else "MISSES"


def parser(description: str) -> argparse.ArgumentParser:
    """An argument parser with the ``--quick`` flag every benchmark has."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="smaller sizes (a minute or two on a busy 2-core machine)")
    return p


def gflops(flops: float, seconds: float) -> float:
    """GFLOP/s."""
    return flops / seconds / 1e9


def gib(nbytes: float) -> float:
    """Bytes in GiB."""
    return nbytes / 2**30


# -- rf_ridge cells -----------------------------------------------------------------------------------
def rf_cell(*, n: int, d_over_n: float, seeds: int = 1, gammas: Sequence[float] = (0.1,), n_test: int = 512,
            activation: str = "relu", dataset: dict[str, Any] | None = None, seed: int = 20250422) -> tuple[Any, Any]:
    """``(kind, cell)`` of one ``rf_ridge`` cell built through the config loader, as the pipeline builds it."""
    from rmtbench.config import load_sweep

    config = {
        "sweep": "bench", "seed": seed,
        "datasets": {"data": dataset or {"kind": "gmm", "p": 784}},
        "experiments": [{
            "name": "rf", "kind": "rf_ridge", "seeds": seeds, "gamma": [float(g) for g in gammas], "n_test": n_test,
            "grid": {"activation": [activation], "weights": ["gaussian"], "dataset": ["data"], "n": [n], "d_over_n": [d_over_n]},
        }],
    }
    plan = load_sweep(config).experiments["rf"]
    return plan.kind, plan.cells[0]


def rmtbench_location() -> str:
    """Where the imported rmtbench lives (benchmarks of a patched tree say so)."""
    import rmtbench

    location = Path(rmtbench.__file__).resolve().parent
    # relative to the checkout when it is this one: tables are committed, machine paths are not
    return str(location.relative_to(ROOT)) if location.is_relative_to(ROOT) else str(location)
