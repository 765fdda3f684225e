"""Dask overhead: one rf_ridge cell through rmtbench's LocalCluster against the same math in plain numpy.

The numpy version runs in this process with as many BLAS threads as the cluster has workers: per seed,
the weights of the same panels, ``F = phi(W X)`` block by block, ``G += F^T F`` in place by ``dsyrk``,
``C += F^T phi(W X_test)``, then ``eigh(G/n)`` and :func:`rmtbench.ridge.ridge_mse` for the gamma grid;
no graph, no worker processes, no transfers. The numbers agree with rmtbench's to round-off (checked).

Usage::

    python bench/dask_overhead.py           # n = 2048, d = 8192, 3 seeds, n_test = 512
    python bench/dask_overhead.py --quick   # n = 1024, d = 4096
"""
from __future__ import annotations

import numpy as np

from common import Table, best, interleaved, local_cluster, median, parser, rf_cell, verdict, worker_pids

TARGET = 1.15


def plain_numpy(cell, data, *, threads: int, block_rows: int = 4096) -> dict[str, np.ndarray]:
    """The cell's seeds in plain numpy (one process, ``threads`` BLAS threads, no Dask)."""
    from scipy.linalg.blas import dsyrk
    from threadpoolctl import threadpool_limits

    from rmtbench.activations import get_activation
    from rmtbench.experiments.common import data_key, width
    from rmtbench.ridge import ridge_mse
    from rmtbench.weights import weight_law, weight_rows

    law, d = weight_law(cell["weights"]), width(cell)
    phi = get_activation(cell["activation"]).phi
    X, X_test = data.X, data.X_test
    p, n = X.shape
    out: dict[str, list] = {"train_mse": [], "test_mse": [], "eigenvalues": []}
    with threadpool_limits(limits=threads):
        for seed in range(int(cell["seeds"])):
            key = ("rf", data_key(cell), law.label, seed)
            G = np.zeros((n, n), order="F")
            C = np.zeros((n, X_test.shape[1]))
            for start in range(0, d, block_rows):
                W = weight_rows(law, root_seed=cell.root_seed, key=key, start=start, stop=min(start + block_rows, d), columns=p)
                F = np.ascontiguousarray(phi(W @ X))
                dsyrk(1.0, F.T, trans=0, lower=0, c=G, beta=1.0, overwrite_c=1)
                C += F.T @ phi(W @ X_test)
            G = np.triu(G)
            G += np.triu(G, 1).T
            lam, U = np.linalg.eigh(G / n)
            res = ridge_mse(lam, U, data.y, C / n, data.y_test, np.asarray(cell["gamma"], dtype=float))
            out["train_mse"].append(res.train_mse)
            out["test_mse"].append(res.test_mse)
            out["eigenvalues"].append(lam)
    return {k: np.array(v) for k, v in out.items()}


def _on_thread(record: list[float], fn):
    """Run ``fn()`` and append the CPU seconds of the calling thread to ``record``."""
    import time

    t0 = time.thread_time()
    out = fn()
    record.append(time.thread_time() - t0)
    return out


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--n", type=int)
    p.add_argument("--d-over-n", type=float, default=4.0)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--block-rows", type=int, default=1024, help="compute.block_rows (the rf_ridge Gram ignores it: fixed stripes)")
    p.add_argument("--rounds", type=int, default=2)
    args = p.parse_args()
    n = args.n or (1024 if args.quick else 2048)

    from rmtbench.experiments.base import RunContext
    from rmtbench.experiments.common import cell_data

    kind, cell = rf_cell(n=n, d_over_n=args.d_over_n, seeds=args.seeds, gammas=(0.1, 0.01))
    table = Table(f"dask-overhead: one rf_ridge cell through the LocalCluster vs plain numpy (n = {n}, "
                  f"d = {int(args.d_over_n * n)}, p = 784, n_test = 512, {args.seeds} seeds)",
                  ["path", "wall s (best)", "wall s (median)", "CPU s (best)", "ratio to numpy (best wall)", "ratio (best CPU)"])
    table.notes.append(f"rmtbench: LocalCluster of {args.workers} single-threaded workers, Gram in fixed stripes of 8192 rows, "
                       f"data generated inside the cell; numpy: {args.workers} BLAS threads, 4096-row blocks, data generated "
                       f"inside the timed call too; {args.rounds} interleaved rounds after a warm-up")
    thread_cpu: list[float] = []
    with local_cluster(args.workers) as client:
        ctx = RunContext(data_dir=".", client=client, block_rows=args.block_rows)
        calls = {
            "rmtbench (Dask LocalCluster)": lambda: kind.simulate(cell, ctx),
            "plain numpy": lambda: plain_numpy(cell, cell_data(cell, ctx), threads=args.workers),
            "plain numpy, 1 BLAS thread": lambda: _on_thread(thread_cpu, lambda: plain_numpy(cell, cell_data(cell, ctx), threads=1)),
        }
        warm = {name: fn() for name, fn in calls.items()}
        thread_cpu.clear()  # drop the warm-up
        timings = interleaved(calls, rounds=args.rounds, pids=worker_pids(client))
    for t, cpu in zip(timings["plain numpy, 1 BLAS thread"], thread_cpu):
        t.cpu = cpu  # its own thread only: idle Dask workers and scheduler do not count against it
    ours, ref = warm["rmtbench (Dask LocalCluster)"], warm["plain numpy"]
    err = max(float(np.max(np.abs(ours[k].values - ref[k]) / np.abs(ref[k]).max())) for k in ("train_mse", "test_mse", "eigenvalues"))
    table.notes.append(f"largest relative difference of the two results (MSEs, eigenvalues): {err:.1e}")
    base = timings["plain numpy"]
    for name, t in timings.items():
        table.add(name, best(t), median(t), best(t, "cpu"), best(t) / best(base), best(t, "cpu") / best(base, "cpu"))
    ratio = best(timings["rmtbench (Dask LocalCluster)"]) / best(base)
    cpu_ratio = best(timings["rmtbench (Dask LocalCluster)"], "cpu") / best(timings["plain numpy, 1 BLAS thread"], "cpu")
    table.notes.append("the 1-thread numpy row does the same work on one core: CPU(rmtbench, client + workers) over its CPU "
                       "is Dask's overhead in work done, free of how well multi-threaded BLAS copes with a busy machine")
    table.print(f"**dask-overhead: time(rmtbench) / time(plain numpy) = {ratio:.3f} wall; CPU(rmtbench) / CPU(numpy, 1 thread) "
                f"= {cpu_ratio:.3f} (target <= {TARGET}: {verdict(ratio, TARGET, at_most=True)} wall, "
                f"{verdict(cpu_ratio, TARGET, at_most=True)} CPU)**")


if __name__ == "__main__":
    main()
