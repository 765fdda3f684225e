"""Job resources (threads, memory, runtime) estimated from a cell's sizes, for Snakemake and SLURM.

Estimates are deliberately generous, and grow with the retry attempt so that a job killed for memory
or time is resubmitted with more. Cells whose first attempt is estimated to be small join the
Snakemake group :data:`BATCH_GROUP`; on a cluster the profile batches such jobs (``group-components``)
so that a sweep of thousands of tiny cells becomes tens of SLURM jobs, not thousands. Locally groups
are ignored.

The rules look cells up through :func:`rule_resources` and :func:`rule_group`, which index the sweep
once: Snakemake evaluates resources for every job, and a linear search per job makes a dry run of a
paper-scale sweep quadratic (minutes instead of seconds).
"""
from __future__ import annotations

import math
from typing import Any

BYTES = 8
FLOPS_PER_SECOND = 2e9
"""A conservative single-core float64 rate for runtime estimates (a 2-core laptop reaches ~20 GFLOP/s)."""
BLAS3_FLOPS_PER_SECOND = 1e10
"""A conservative single-core rate for work that is all matrix-matrix products and factorisations
(a current core reaches 30 to 60 GFLOP/s in float64 dgemm); kinds whose cost model counts only such
work use it."""
OVERHEAD_MB = 600
"""Python, NumPy, Dask and a worker process before any array is allocated."""
MIN_RUNTIME = 10
"""Minutes: the floor of a job's time limit (start-up, imports, writing the store)."""

BATCH_GROUP = "batch"
"""Snakemake group of small jobs; ``group-components: batch=K`` in a profile puts K of them in one job."""
BATCH_MAX_SECONDS = 600.0
"""A job joins :data:`BATCH_GROUP` when its estimated compute (one attempt) is below this ..."""
BATCH_MAX_MB = 3000
"""... its memory below this (MB) ..."""
BATCH_MAX_THREADS = 1
"""... and it needs one thread."""


def input_dim(cell: Any) -> int:
    """Input dimension p of a cell's data: the data set's ``p``, or ``p_over_n`` x n, else 784."""
    spec = cell.options.get("dataset_spec", {})
    if spec.get("p") is not None:
        return int(spec["p"])
    if spec.get("p_over_n") is not None:
        return max(1, int(round(float(spec["p_over_n"]) * int(cell.get("n", 1)))))
    return 784


def _width(cell: Any, n: int) -> int:
    """Features d of a cell: ``d_over_n`` x n, or an explicit width (``d``, ``n_features``), else n.

    An infinite ``d_over_n`` (kernel_linearization's ``inf``: the expected kernel itself, no random
    features) costs like d = n: one n x n matrix and its eigendecomposition.
    """
    ratio = cell.get("d_over_n")
    if ratio is not None:
        try:
            ratio = float(ratio)
        except (TypeError, ValueError):
            return n
        widest = max(cell.get("width_profile") or [1.0])  # deep nets: per-layer multipliers
        return max(1, int(round(ratio * n * widest))) if math.isfinite(ratio) else n
    for key in ("d", "n_features", "width"):
        if cell.get(key) is not None:
            return int(cell.get(key))
    return n


def _depth(cell: Any) -> int:
    """Layers: a ``depth`` option, or the length of a per-layer ``activations`` list, else 1."""
    if cell.get("depth") is not None:
        return max(1, int(cell.get("depth")))
    activations = cell.get("activations")
    return max(1, len(activations)) if isinstance(activations, (list, tuple)) else 1


def estimate(cells: list[Any], *, step: str, block_rows: int = 1024) -> dict[str, float]:
    """Threads, memory (bytes) and compute (seconds) of one attempt of a ``simulate`` or ``theory`` job.

    Memory counts the n-by-n Gram and its eigendecomposition, the train/test cross products, and per
    worker the feature blocks (``block_rows`` rows of the (n + n_test)-column feature matrix and of
    the weights); deep models (``depth`` > 1) hold two layers of features. Compute counts the
    feature products, the Gram accumulation and the eigendecompositions, for every seed, at
    :data:`FLOPS_PER_SECOND` per thread. Large cells (n >= 4096, or d n >= 2^26) get four threads:
    Dask workers for ``simulate``, BLAS threads for ``theory``.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> cell = SimpleNamespace(options={"dataset_spec": {"p": 100}}, get={"n": 256, "d_over_n": 1.0, "seeds": 1}.get)
    >>> est = estimate([cell], step="simulate")
    >>> est["threads"], est["seconds"] < 10
    (1, True)
    """
    cell = cells[0]
    n = int(cell.get("n", 1024))
    n_test = int(cell.get("n_test", 0) or 0)
    p = input_dim(cell)
    seeds = int(cell.get("seeds", 1) or 1)
    depth = _depth(cell)
    d = max((_width(c, n) for c in cells), default=n)
    m = n + n_test
    big = n >= 4096 or d * n >= 2**26
    threads = 4 if big else 1
    if step == "simulate":
        per_worker = BYTES * (4 * n * m + 3 * min(block_rows, d) * (m + p) + p * m)
        memory = threads * per_worker + BYTES * 3 * n * n
        flops = seeds * (2 * d * p * m + d * n * n + 2 * d * n * n_test + 10 * n**3)
        if depth > 1:
            # two layers of features; the seed sums and pair fluctuations hold about four draws' stacked kernels
            memory += BYTES * 2 * d * m + BYTES * 4 * (depth + 1) * n * n
            flops += seeds * (depth - 1) * 2 * d * d * m
        seconds = flops / (FLOPS_PER_SECOND * threads)
    else:
        # the expected kernel by quadrature (per layer), one eigendecomposition, then cheap fixed points
        # per cell of the group
        memory = BYTES * 6 * n * m
        flops = depth * n * m * 2500 + 10 * n**3 + max(1, len(cells)) * 100 * n * m
        if cell.get("per_pair_correction"):
            # deep_ck's per-pair finite-width term: ~16 kernel maps and two fourth moments per layer, about
            # 40 n-by-n arrays at the peak, and a float32 n-by-n shift and variance per width and layer in the store;
            # the time is that of tanh on Fashion-MNIST (4% of its pairs take the 2-D rules), with a margin
            widths = len({c.get("d_over_n") for c in cells})
            memory += BYTES * (40 + 2 * depth) * n * n + 4 * 2 * widths * depth * n * n  # 2 fourth moments kept per layer
            # the NTK's mean and variance: the derivative kernels' 10 arrays and 3 mixed moments per layer, kept for every
            # layer, and its per-pair state (13 n-by-n); two float32 n-by-n per width in the store
            memory += BYTES * (14 * depth + 13) * n * n + 4 * 2 * widths * n * n
            if any(law != "gaussian" for law in str(cell.get("weights", "gaussian")).split("+")):
                # the responses to each layer's kurtosis, for every width: L(L+1)/2 float64 n-by-n, L² float32 in the store
                memory += BYTES * depth * (depth + 1) // 2 * n * n + 4 * depth * depth * n * n
                memory += BYTES * 2 * depth * n * n + 4 * depth * n * n  # the NTK's responses (last layer kept)
                # the variance's response to the first law: the later layers' sensitivities at two moved kernels
                # (17 n-by-n each), three fourth-moment maps' stencils; L float32 n-by-n per width in the store
                memory += BYTES * (34 * depth + 20) * n * n + 4 * widths * depth * n * n
                # and the NTK's: the derivative kernels' too (14 n-by-n per layer and move), four more moment maps'
                # stencils; one float32 n-by-n per width in the store
                memory += BYTES * (28 * depth + 20) * n * n + 4 * widths * n * n
                flops += depth * n * n * 300000
            flops += depth * n * n * 300000  # the NTK's mean about doubles it (docs/findings.md)
        seconds = flops / (FLOPS_PER_SECOND * threads)
    return {"threads": threads, "memory": float(memory), "seconds": float(seconds)}


NODE_BUDGET_MINUTES = 240
"""Estimated single-node runtime above which a Dask cell is spread over several SLURM tasks."""
MAX_TASKS = 16


def job_resources(kind: Any, cells: list[Any], *, step: str, attempt: int = 1, block_rows: int = 1024,
                  node_minutes: float = NODE_BUDGET_MINUTES, max_tasks: int = MAX_TASKS) -> dict[str, int]:
    """Threads, ``mem_mb`` and ``runtime`` (minutes) for a ``simulate`` or ``theory`` job.

    Parameters
    ----------
    kind
        The experiment kind; its ``resource_estimate`` replaces the generic :func:`estimate` when it
        returns one.
    cells
        The cell (simulate) or the cells of a theory group.
    step
        ``"simulate"`` or ``"theory"``.
    attempt
        Snakemake's retry attempt (1 for the first try); memory and time scale with it.
    block_rows
        Feature rows per Dask task (``compute.block_rows``).
    node_minutes, max_tasks
        A Dask cell estimated to run longer than ``node_minutes`` on one node becomes a multi-task job
        of up to ``max_tasks`` tasks (``compute.slurm_node_minutes``, ``compute.slurm_max_tasks``).
    """
    est = _estimate(kind, cells, step=step, block_rows=block_rows)
    mem_mb = int(math.ceil((est["memory"] / 2**20 + OVERHEAD_MB) * attempt))
    minutes = int(max(MIN_RUNTIME, math.ceil(3 * est["seconds"] / 60)))
    # A Dask cell longer than one node's budget runs as a multi-task job whose tasks form its Dask
    # cluster (rmtbench.slurm); the feature units spread over the tasks' workers.
    tasks = 1
    if step == "simulate" and getattr(kind, "uses_dask", False) and minutes > node_minutes:
        tasks = max(1, min(int(max_tasks), math.ceil(minutes / node_minutes)))
    runtime = int(math.ceil(minutes / tasks) * attempt)
    return {"threads": int(est["threads"]), "mem_mb": mem_mb, "runtime": max(MIN_RUNTIME, runtime), "tasks": tasks}


def _estimate(kind: Any, cells: list[Any], *, step: str, block_rows: int) -> dict[str, float]:
    """The kind's own :meth:`~rmtbench.experiments.base.Experiment.resource_estimate`, else :func:`estimate`."""
    own = None if kind is None else kind.resource_estimate(cells, step=step)
    return own if own is not None else estimate(cells, step=step, block_rows=block_rows)


def batch_group(cells: list[Any], *, step: str, block_rows: int = 1024, kind: Any = None) -> str | None:
    """:data:`BATCH_GROUP` for a small job (see the thresholds above), else ``None`` (a job of its own)."""
    est = _estimate(kind, cells, step=step, block_rows=block_rows)
    small = (
        est["seconds"] < BATCH_MAX_SECONDS
        and est["memory"] / 2**20 + OVERHEAD_MB < BATCH_MAX_MB
        and est["threads"] <= BATCH_MAX_THREADS
    )
    return BATCH_GROUP if small else None


# --------------------------------------------------------------------------------------------------
# lookups for the Snakemake rules
# --------------------------------------------------------------------------------------------------
class _SweepIndex:
    """Cells by id per experiment, and each job's resources once computed, built once per sweep.

    Snakemake asks for a job's threads, memory, runtime, tasks and group through separate lambdas:
    the estimate behind them is computed once per job and attempt.
    """

    def __init__(self, sweep: Any) -> None:
        self.sweep = sweep
        self.cells = {name: {c.id: c for c in plan.cells} for name, plan in sweep.experiments.items()}
        self.resources: dict[tuple[str, str, str, int], dict[str, int]] = {}

    def job_cells(self, step: str, experiment: str, name: str) -> list[Any]:
        if step == "simulate":
            try:
                return [self.cells[experiment][name]]
            except KeyError:
                raise KeyError(f"experiment {experiment!r} has no cell {name!r}") from None
        try:
            return self.sweep.experiments[experiment].theory_groups()[name]
        except KeyError:
            raise KeyError(f"experiment {experiment!r} has no theory key {name!r}") from None


_INDEXES: dict[int, _SweepIndex] = {}


def _index(sweep: Any) -> _SweepIndex:
    entry = _INDEXES.get(id(sweep))
    if entry is None or entry.sweep is not sweep:
        entry = _INDEXES[id(sweep)] = _SweepIndex(sweep)
    return entry


def rule_resources(sweep: Any, step: str, experiment: str, name: str, attempt: int = 1) -> dict[str, int]:
    """:func:`job_resources` of the job computing cell (``simulate``) or theory key (``theory``) ``name``.

    Parameters
    ----------
    sweep
        The validated :class:`rmtbench.config.Sweep`.
    step
        ``"simulate"`` or ``"theory"``.
    experiment, name
        The rule's wildcards: experiment name and cell id or theory key.
    attempt
        Snakemake's retry attempt.
    """
    index = _index(sweep)
    key = (step, experiment, name, attempt)
    if key not in index.resources:
        cells = index.job_cells(step, experiment, name)
        compute = sweep.compute
        index.resources[key] = job_resources(
            sweep.experiments[experiment].kind, cells, step=step, attempt=attempt, block_rows=compute["block_rows"],
            node_minutes=compute["slurm_node_minutes"], max_tasks=compute["slurm_max_tasks"])
    return dict(index.resources[key])


def rule_tasks(sweep: Any, experiment: str, name: str) -> int | None:
    """SLURM tasks of the cell's job when it spans several, else ``None`` (no ``tasks`` resource at all).

    A single-task job declares no ``tasks``: Snakemake sums the resource over the jobs that share a
    batch group, and the SLURM executor would then ask for tasks x threads CPUs (4 on a 2-CPU node
    for two one-thread cells: a batch job that never starts).
    """
    tasks = rule_resources(sweep, "simulate", experiment, name)["tasks"]
    return tasks if tasks > 1 else None


def rule_group(sweep: Any, step: str, experiment: str, name: str) -> str | None:
    """The Snakemake group of the job computing ``name`` (:func:`batch_group`); used on clusters only."""
    if rule_resources(sweep, step, experiment, name)["tasks"] > 1:
        return None  # a multi-task job is a SLURM job of its own
    cells = _index(sweep).job_cells(step, experiment, name)
    return batch_group(cells, step=step, block_rows=sweep.compute["block_rows"], kind=sweep.experiments[experiment].kind)
