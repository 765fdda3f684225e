"""Theory share: time of the theory step over time of the simulation step on the default sweep.

Every cell of ``config/config.yaml`` (or ``--config``) is simulated through its kind's ``simulate`` on one
LocalCluster of single-threaded workers (as ``rmtbench run`` shares one cluster between its jobs), and
every theory key through the kind's ``theory`` on ``--theory-jobs`` processes of one BLAS thread each
(default: as many as simulate workers). That is how the pipeline runs them: the theory rule asks for one
thread, so ``rmtbench run --cores N`` runs N theory jobs side by side. ``--theory-jobs 1`` computes the
keys one after another in one process instead (the serial figure of earlier tables). CPU time is summed
over this process and the workers or theory processes, whatever the parallelism.

Both sides start warm: the data sets of every cell are loaded, and the modules imported, before any
clock starts (in this process for the simulation, in each theory process for the theory), so the
share compares computation, not file parsing or imports that both sides pay alike. Nothing is
written to disk.

Usage::

    python bench/theory_share.py                       # the default sweep
    python bench/theory_share.py --quick               # only the first two theory keys and their cells
    python bench/theory_share.py --theory-jobs 1       # theory keys one after another on one thread
    python bench/theory_share.py --config config/paper.yaml
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from common import ROOT, Table, local_cluster, parser, timed, verdict, worker_pids

TARGET = 0.10

_SWEEP: Any = None
_CONTEXT: Any = None
_BARRIER: Any = None


def _load(config: str) -> tuple[Any, Any]:
    from rmtbench.config import load_sweep
    from rmtbench.experiments.base import RunContext

    sweep = load_sweep(config, project_dir=ROOT)
    return sweep, RunContext(data_dir=sweep.data_dir, client=None, block_rows=sweep.compute["block_rows"])


def _warm_data(sweep: Any, context: Any) -> None:
    """Load every cell's data set into this process's cache (kinds without a data set are skipped)."""
    from rmtbench.experiments.common import cell_data

    for plan in sweep.experiments.values():
        for cell in plan.cells:
            if "dataset_spec" in cell.options:
                cell_data(cell, context)


def _import_everything() -> None:
    """Import every rmtbench module and the scipy parts they import lazily (a one-off cost per process)."""
    import importlib
    import pkgutil

    import rmtbench

    for name in ("dask.array", "xarray", "scipy.optimize", "scipy.special", "scipy.integrate", "scipy.interpolate",
                 "scipy.sparse.linalg", "scipy.stats"):
        importlib.import_module(name)
    for module in pkgutil.walk_packages(rmtbench.__path__, "rmtbench."):
        if not module.name.endswith("__main__"):  # that one runs the command line
            importlib.import_module(module.name)


def _start_theory_process(config: str, barrier: Any) -> None:
    """Pool initializer: the sweep, its data and the theory modules, before the clock starts."""
    global _SWEEP, _CONTEXT, _BARRIER
    _BARRIER = barrier
    _import_everything()
    _SWEEP, _CONTEXT = _load(config)
    _warm_data(_SWEEP, _CONTEXT)


def _theory(experiment: str, key: str) -> int:
    """One theory key on one BLAS thread, as the theory rule computes it; returns this process id."""
    from rmtbench.parallel import single_blas_thread

    plan = _SWEEP.experiments[experiment]
    with single_blas_thread():
        plan.kind.theory(plan.theory_groups()[key], _CONTEXT)
    return os.getpid()


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--theory-jobs", type=int, default=0, help="theory processes side by side (default: --workers)")
    args = p.parse_args()
    jobs = args.theory_jobs or args.workers

    from rmtbench.experiments.base import RunContext

    sweep, context = _load(args.config)
    config = Path(args.config).resolve()
    shown = config.relative_to(ROOT) if config.is_relative_to(ROOT) else config  # no machine paths in recorded tables
    table = Table(f"theory-share: theory time / simulation time on the sweep {sweep.name!r} ({shown})",
                  ["experiment", "cells", "theory keys", "simulate wall s", "theory wall s", "simulate CPU s", "theory CPU s",
                   "share (wall)", "share (CPU)"])
    table.notes.append(f"simulate: LocalCluster of {args.workers} single-threaded workers, block_rows = "
                       f"{sweep.compute['block_rows']}, cells one after another; theory: "
                       + (f"{jobs} processes side by side (as `rmtbench run --cores {jobs}` runs theory jobs), one BLAS thread each"
                          if jobs > 1 else "one process, one BLAS thread, keys one after another")
                       + "; data sets loaded and modules imported before the clocks start, on both sides")
    totals = [0.0, 0.0, 0.0, 0.0]
    spawn = multiprocessing.get_context("spawn")
    barrier = spawn.Barrier(jobs)
    with local_cluster(args.workers) as client, \
            ProcessPoolExecutor(jobs, mp_context=spawn, initializer=_start_theory_process, initargs=(args.config, barrier)) as pool:
        theory_pids = set(pool.map(_pid, range(jobs)))  # every process started, warm, and its pid known
        assert len(theory_pids) == jobs
        _import_everything()
        _warm_data(sweep, context)  # the simulation side starts warm too
        pids = worker_pids(client)
        for name, plan in sweep.experiments.items():
            groups = plan.theory_groups()
            keys = [k for k in (list(groups)[:2] if args.quick else list(groups)) if k is not None]
            cells = [c for c in plan.cells if not args.quick or plan.kind.theory_key(c) in keys]
            ctx = RunContext(data_dir=sweep.data_dir, client=client if plan.kind.uses_dask else None,
                             block_rows=sweep.compute["block_rows"])
            sim = timed(lambda: [plan.kind.simulate(c, ctx) for c in cells], pids=pids)
            th = timed(lambda: list(pool.map(_theory, [name] * len(keys), keys)), pids=theory_pids)
            table.add(name, len(cells), len(keys), sim.wall, th.wall, sim.cpu, th.cpu, th.wall / sim.wall, th.cpu / sim.cpu)
            for i, v in enumerate((sim.wall, th.wall, sim.cpu, th.cpu)):
                totals[i] += v
    share = totals[1] / totals[0]
    table.add("**all**", "", "", totals[0], totals[1], totals[2], totals[3], share, totals[3] / totals[2])
    table.print(f"**theory-share: theory / simulation = {share:.3f} wall, {totals[3] / totals[2]:.3f} CPU "
                f"(target <= {TARGET}: {verdict(share, TARGET, at_most=True)})**")


def _pid(_: int) -> int:
    """This process's id, once every process of the pool holds one such task (so each pid comes once)."""
    _BARRIER.wait()
    return os.getpid()


if __name__ == "__main__":
    main()
