"""Dask on the tasks of one multi-task SLURM job: one cell too large for one node.

Inside an allocation of N tasks with T CPUs each (``sbatch --ntasks=N --cpus-per-task=T``)::

    python -m rmtbench.slurm simulate --sweep S --experiment E --cell C --out O

starts the real Dask tools on the allocation: ``dask scheduler --scheduler-file F`` in the calling
process's step (it only coordinates), then ``srun --overlap --ntasks=N dask worker --scheduler-file F
--nworkers T --nthreads 1``, one worker process per allocated CPU on whichever nodes SLURM gave, waits
until all N x T have joined, and computes the cell with the Dask settings ``{mode: scheduler_file,
scheduler_file: F}`` (see :func:`rmtbench.parallel.dask_client`). Results do not depend on the number
of workers (fixed reduction tree, one BLAS thread per task), so the store equals a local run's.
``--overlap`` lets the worker step share CPUs with the step that runs this command, which is how
Snakemake's SLURM executor starts a rule (``srun -n1`` inside the job). Outside a multi-task
allocation the command is exactly ``python -m rmtbench simulate``.

The scheduler file and the workers' scratch live in ``.rmtbench-dask/<job id>`` under the working
directory (a shared file system on clusters: every node must read the file); it is removed at the end.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from rmtbench.parallel import WORKER_MALLOC_ENV, quiet_cluster_env

log = logging.getLogger("rmtbench.slurm")

WORKER_ENV = {
    "PYTHONHASHSEED": "0",
    "OMP_NUM_THREADS": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "DASK_LOGGING__DISTRIBUTED": "warning",
}
"""Environment of the scheduler and workers: one BLAS thread per worker, quiet logs."""


@dataclass(frozen=True)
class Allocation:
    """The part of a SLURM job allocation that sizes a Dask cluster."""

    job_id: str
    ntasks: int
    cpus_per_task: int
    nodes: int

    @property
    def workers(self) -> int:
        """Worker processes: one per allocated CPU."""
        return self.ntasks * self.cpus_per_task


def parse_scontrol(text: str, job_id: str) -> Allocation:
    """The allocation described by ``scontrol show job -o <id>`` output.

    Examples
    --------
    >>> parse_scontrol("JobId=7 JobName=x NumNodes=2 NumCPUs=8 NumTasks=4 CPUs/Task=2 ReqB:S:C:T=0:0:*:*", "7")
    Allocation(job_id='7', ntasks=4, cpus_per_task=2, nodes=2)
    """
    fields = dict(re.findall(r"(\S+?)=(\S*)", text))

    def number(key: str, default: int) -> int:
        value = fields.get(key, "")
        match = re.match(r"\d+", value)
        return int(match.group()) if match else default

    return Allocation(job_id=job_id, ntasks=number("NumTasks", 1), cpus_per_task=number("CPUs/Task", 1), nodes=number("NumNodes", 1))


def current_allocation(environ: dict[str, str] | None = None) -> Allocation | None:
    """The allocation this process runs in (``None`` outside SLURM).

    Asks ``scontrol`` rather than reading ``SLURM_NTASKS``: Snakemake's SLURM executor removes every
    ``SLURM_*`` variable but the job id before it starts a rule.
    """
    env = os.environ if environ is None else environ
    job_id = env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID")
    if not job_id or shutil.which("scontrol") is None:
        return None
    result = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=60)
    if result.returncode != 0:
        log.warning("scontrol show job %s failed (%s); running without a task cluster", job_id, result.stderr.strip())
        return None
    return parse_scontrol(result.stdout, job_id)


def _python_dask(*args: str) -> list[str]:
    return [sys.executable, "-m", "dask", *args]


def _stop(proc: subprocess.Popen, timeout: float = 20) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


@contextlib.contextmanager
def task_cluster(
    allocation: Allocation, *, workdir: str | Path | None = None, memory_limit: str = "auto",
    interface: str | None = None, timeout: float = 300,
) -> Iterator[dict[str, str]]:
    """A Dask cluster made of the tasks of ``allocation``; yields the ``dask`` settings to connect.

    Parameters
    ----------
    allocation
        The job allocation (:func:`current_allocation`).
    workdir
        Shared folder for the scheduler file (default ``.rmtbench-dask/<job id>`` in the working
        directory); removed at the end.
    memory_limit
        Per-worker memory limit (Dask syntax); ``auto`` divides the node's memory.
    interface
        Network interface for scheduler and workers (e.g. ``ib0``); default: Dask's choice.
    timeout
        Seconds to wait for the scheduler and for all workers.

    Raises
    ------
    RuntimeError
        When the scheduler or the workers do not come up in time (with the tail of their output).
    """
    from distributed import Client

    folder = Path(workdir) if workdir else Path.cwd() / ".rmtbench-dask" / f"{allocation.job_id}-{os.getpid()}"
    folder.mkdir(parents=True, exist_ok=True)
    scheduler_file = folder / "scheduler.json"
    # malloc as on a LocalCluster, unless the job's environment sets its own
    env = {**WORKER_MALLOC_ENV, **os.environ, **WORKER_ENV, **quiet_cluster_env()}
    net = ["--interface", interface] if interface else []
    scheduler_log = open(folder / "scheduler.log", "w")
    workers_log = open(folder / "workers.log", "w")
    scheduler = subprocess.Popen(
        _python_dask("scheduler", "--scheduler-file", str(scheduler_file), "--port", "0", "--dashboard-address", ":0", *net),
        env=env, stdout=scheduler_log, stderr=subprocess.STDOUT,
    )
    workers: subprocess.Popen | None = None
    try:
        deadline = time.monotonic() + timeout
        while not scheduler_file.exists() and scheduler.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        if not scheduler_file.exists():
            raise RuntimeError(f"dask scheduler did not start: {_tail(folder / 'scheduler.log')}")
        srun = [
            "srun", "--overlap", f"--jobid={allocation.job_id}", f"--ntasks={allocation.ntasks}",
            f"--cpus-per-task={allocation.cpus_per_task}", "--kill-on-bad-exit=1",
        ]
        workers = subprocess.Popen(
            srun + _python_dask(
                "worker", "--scheduler-file", str(scheduler_file), "--nworkers", str(allocation.cpus_per_task),
                "--nthreads", "1", "--memory-limit", memory_limit, "--local-directory", str(folder / "workers"),
                "--no-dashboard", *net,
            ),
            env=env, stdout=workers_log, stderr=subprocess.STDOUT,
        )
        with Client(scheduler_file=str(scheduler_file), timeout=f"{int(timeout)}s") as client:
            try:
                client.wait_for_workers(allocation.workers, timeout=timeout)
            except TimeoutError:
                raise RuntimeError(
                    f"{len(client.scheduler_info()['workers'])} of {allocation.workers} Dask workers joined in "
                    f"{timeout:.0f} s: {_tail(folder / 'workers.log')}"
                ) from None
            tasks = sorted(set(client.run(task_identity).values()))
            log.info("Dask cluster of %d workers on %d task(s) of SLURM job %s: %s", allocation.workers, allocation.ntasks,
                     allocation.job_id, scheduler_file)
            for task in tasks:
                log.info("  workers in %s", task)
            for settings in sorted(set(client.run(worker_settings).values())):
                log.info("  worker environment: %s", settings)
        yield {"mode": "scheduler_file", "scheduler_file": str(scheduler_file)}
    finally:
        with contextlib.suppress(Exception):
            with Client(scheduler_file=str(scheduler_file), timeout="10s") as client:
                client.shutdown()
        if workers is not None:
            _stop(workers)
        _stop(scheduler)
        scheduler_log.close()
        workers_log.close()
        shutil.rmtree(folder, ignore_errors=True)
        with contextlib.suppress(OSError):
            folder.parent.rmdir()


def task_identity() -> str:
    """Where a worker runs: host, SLURM job, step and task rank (run on each worker by the client)."""
    import socket

    env = os.environ
    return (f"host={socket.gethostname()} job={env.get('SLURM_JOB_ID', '-')} step={env.get('SLURM_STEP_ID', '-')} "
            f"task={env.get('SLURM_PROCID', '-')}")


def worker_settings() -> str:
    """The malloc and BLAS-thread variables a worker runs with (run on each worker by the client)."""
    names = (*WORKER_MALLOC_ENV, "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
    return " ".join(f"{name}={os.environ.get(name, '-')}" for name in names)


def _tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def simulate_on_allocation(args: argparse.Namespace, allocation: Allocation) -> int:
    """Compute one cell on a :func:`task_cluster` of ``allocation`` and write its store."""
    from rmtbench.config import load_sweep
    from rmtbench.experiments.base import RunContext
    from rmtbench.parallel import dask_client
    from rmtbench.store import write_dataset

    sweep = load_sweep(args.sweep, project_dir=Path.cwd(), kind_checks=False)  # checked when the workflow wrote it
    plan = sweep.experiments[args.experiment]
    cell = plan.cell(args.cell)
    start = time.perf_counter()
    with task_cluster(allocation, memory_limit=args.memory or "auto", interface=args.interface) as settings:
        log.info("simulate %s/%s (%s) on %d Dask workers", args.experiment, cell.id, cell.label, allocation.workers)
        with dask_client(settings) as client:
            context = RunContext(data_dir=sweep.data_dir, client=client, block_rows=args.block_rows or sweep.compute["block_rows"])
            dataset = plan.kind.simulate(cell, context)
    write_dataset(dataset, args.out)
    log.info("wrote %s in %.1f s", args.out, time.perf_counter() - start)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m rmtbench.slurm", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="verb", required=True)
    p = sub.add_parser("simulate", help="one cell on a Dask cluster made of this SLURM job's tasks")
    p.add_argument("--sweep", required=True, help="config file (YAML or JSON)")
    p.add_argument("--experiment", required=True)
    p.add_argument("--cell", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=1, help="used only outside a multi-task allocation")
    p.add_argument("--memory", default=None, help="per-worker memory limit, e.g. 4GiB")
    p.add_argument("--block-rows", type=int, default=None, help="override compute.block_rows")
    p.add_argument("--interface", default=None, help="network interface for Dask, e.g. ib0")
    p.add_argument("--min-tasks", type=int, default=2, help="use a task cluster from this many tasks on (default 2)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m rmtbench.slurm``; returns the exit status."""
    from rmtbench.config import ConfigError

    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    allocation = current_allocation()
    if allocation is None or allocation.ntasks < args.min_tasks:
        from rmtbench.cli import main as cli_main

        argv_simulate = ["simulate", "--sweep", args.sweep, "--experiment", args.experiment, "--cell", args.cell,
                         "--out", args.out, "--threads", str(args.threads)]
        if args.memory:
            argv_simulate += ["--memory", args.memory]
        if args.block_rows:
            argv_simulate += ["--block-rows", str(args.block_rows)]
        return cli_main(argv_simulate)
    log.info("SLURM job %s: %d task(s) x %d CPU(s) on %d node(s)", allocation.job_id, allocation.ntasks,
             allocation.cpus_per_task, allocation.nodes)
    try:
        return simulate_on_allocation(args, allocation)
    except (ConfigError, FileNotFoundError, KeyError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"rmtbench: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
