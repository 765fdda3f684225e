"""Job resources (threads, memory, runtime) estimated from a cell's sizes, for Snakemake and SLURM.

Estimates are deliberately generous, and grow with the retry attempt so that a job killed for memory
or time is resubmitted with more.
"""
from __future__ import annotations

import math
from typing import Any

BYTES = 8
FLOPS_PER_SECOND = 2e9
"""A conservative single-core float64 rate for runtime estimates (a 2-core laptop reaches ~20 GFLOP/s)."""


def _input_dim(cell: Any) -> int:
    spec = cell.options.get("dataset_spec", {})
    if spec.get("p") is not None:
        return int(spec["p"])
    if spec.get("p_over_n") is not None:
        return max(1, int(round(float(spec["p_over_n"]) * int(cell.get("n", 1)))))
    return 784


def job_resources(kind: Any, cells: list[Any], *, step: str, attempt: int = 1, block_rows: int = 1024) -> dict[str, int]:
    """Threads, ``mem_mb`` and ``runtime`` (minutes) for a ``simulate`` or ``theory`` job.

    Parameters
    ----------
    kind
        The experiment kind (unused for now beyond its name; kinds may specialise later).
    cells
        The cell (simulate) or the cells of a theory group.
    step
        ``"simulate"`` or ``"theory"``.
    attempt
        Snakemake's retry attempt (1 for the first try); memory and time scale with it.
    """
    cell = cells[0]
    n = int(cell.get("n", 1024))
    n_test = int(cell.get("n_test", 0) or 0)
    p = _input_dim(cell)
    seeds = int(cell.get("seeds", 1) or 1)
    d = max((int(round(float(c.get("d_over_n", 1.0)) * n)) for c in cells), default=n)
    big = n >= 4096 or d * n >= 2**26
    threads = 4 if (big and step == "simulate") else 1
    if step == "simulate":
        per_worker = BYTES * (4 * n * (n + n_test) + 3 * min(block_rows, d) * (n + n_test + p) + p * (n + n_test))
        memory = threads * per_worker + BYTES * 3 * n * n
        flops = seeds * (2 * d * p * (n + n_test) + d * n * n + 2 * d * n * n_test + 10 * n**3)
        seconds = flops / (FLOPS_PER_SECOND * threads)
    else:
        memory = BYTES * 6 * n * (n + n_test)
        seconds = (n * (n + n_test) * 2500 + 10 * n**3 * max(1, len(cells))) / FLOPS_PER_SECOND
    mem_mb = int(math.ceil((memory / 2**20 + 600) * attempt))
    runtime = int(max(10, math.ceil(3 * seconds / 60)) * attempt)
    return {"threads": threads, "mem_mb": mem_mb, "runtime": runtime}
