"""Flat memory in d: peak resident memory of one rf_ridge cell at n = 4096 for d = 4096, 16384, 65536.

Each width runs in a fresh Python process that starts rmtbench's LocalCluster (2 single-threaded worker
processes) and simulates one cell (one seed, n_test = 512, one gamma) through
``RandomFeaturesRidge.simulate``, exactly as ``rmtbench simulate`` does. A sampler adds up the resident
memory of that process and all its workers every 20 ms; the table shows the memory after the cluster
started (baseline), the peak during the cell, and its growth over the smallest width.

Usage::

    python bench/memory.py                 # n = 4096, d = 4096, 16384, 65536
    python bench/memory.py --quick         # n = 2048, d = 2048, 8192, 32768 (the same d/n ratios)
"""
from __future__ import annotations

import json
import subprocess
import sys
import time

from common import PeakMemory, Table, gib, local_cluster, parser, rf_cell, rmtbench_location, verdict

TARGET = 0.10


def one_cell(n: int, d: int, workers: int, block_rows: int) -> dict:
    """Run in a child process: peak memory of one cell."""
    from rmtbench.experiments.base import RunContext

    kind, cell = rf_cell(n=n, d_over_n=d / n, seeds=1, gammas=(0.1,), n_test=512)
    with local_cluster(workers) as client:
        with PeakMemory() as mem:
            t0 = time.perf_counter()
            kind.simulate(cell, RunContext(data_dir=".", client=client, block_rows=block_rows))
            wall = time.perf_counter() - t0
    return {"baseline": mem.baseline, "peak": mem.peak, "wall": wall}


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--n", type=int)
    p.add_argument("--widths", help="comma-separated d values")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--block-rows", type=int, default=1024, help="compute.block_rows (the rf_ridge Gram ignores it: fixed stripes)")
    p.add_argument("--child", help="internal: run one cell n,d and print JSON")
    args = p.parse_args()
    if args.child:
        n, d = map(int, args.child.split(","))
        print(json.dumps(one_cell(n, d, args.workers, args.block_rows)))
        return
    n = args.n or (2048 if args.quick else 4096)
    widths = [int(w) for w in args.widths.split(",")] if args.widths else [n, 4 * n, 16 * n]
    table = Table(f"memory: peak resident memory of one rf_ridge cell (n = {n}, n_test = 512, p = 784, 1 seed)",
                  ["d", "units of 512 rows", "baseline GiB", "peak GiB", "peak - baseline GiB", "growth of peak", "wall s"])
    table.notes += [f"LocalCluster of {args.workers} single-threaded workers, Gram in fixed stripes of 8192 rows; "
                    f"RSS summed over the process and its workers, sampled every 20 ms; rmtbench from {rmtbench_location()}",
                    f"one n x n float64 matrix is {gib(8 * n * n):.3f} GiB"]
    results = []
    for d in widths:
        out = subprocess.run([sys.executable, __file__, "--child", f"{n},{d}", "--workers", str(args.workers),
                              "--block-rows", str(args.block_rows)], capture_output=True, text=True, check=True)
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
    first = results[0]["peak"]
    for d, r in zip(widths, results):
        table.add(d, -(-d // 512), gib(r["baseline"]), gib(r["peak"]), gib(r["peak"] - r["baseline"]),
                  f"{r['peak'] / first - 1:+.1%}", r["wall"])
    growth = results[-1]["peak"] / first - 1
    table.print(f"**memory: peak growth from d = {widths[0]} to d = {widths[-1]} = {growth:+.1%} "
                f"(target <= {TARGET:.0%}: {verdict(growth, TARGET, at_most=True)})**")


if __name__ == "__main__":
    main()
