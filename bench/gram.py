"""Gram stage at BLAS speed: effective rate of rmtbench's Dask Gram over numpy's float64 matmul rate.

One cell's Gram stage, ``upper(Phi^T Phi)`` with ``Phi = phi(W X)``, through
:func:`rmtbench.empirical.gram_graph` on a LocalCluster of single-threaded workers (as ``rmtbench``
runs it), for relu and erf, against a square float64 ``numpy`` matmul with as many BLAS threads as
there are workers, measured in the same run and interleaved.

Flop count (the issue's): ``2 d p n`` for ``W X`` plus ``2 d n^2`` for the Gram. The Gram is
accumulated with ``dsyrk``, which computes only the upper triangle and so does about half of those
``2 d n^2`` flops: the effective rate can exceed the machine's matmul rate, up to about
``(2dpn + 2dn^2) / (2dpn + dn^2)`` times it (1.72 at the default sizes). Weight generation, the
activation and the stripe folds are not counted: they are overhead the rate has to absorb.

Usage::

    python bench/gram.py            # n = 4096, p = 784, d = 16384 (the issue's sizes)
    python bench/gram.py --quick    # n = 2048, d = 8192
"""
from __future__ import annotations

import time

from common import (
    Table, best, gflops, interleaved, local_cluster, matmul_call, parser, verdict, worker_pids,
)

TARGET = 0.8


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--n", type=int)
    p.add_argument("--p", type=int, default=784)
    p.add_argument("--d", type=int)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--activations", default="relu,erf")
    args = p.parse_args()
    n = args.n or (2048 if args.quick else 4096)
    d = args.d or (8192 if args.quick else 16384)

    import dask
    import numpy as np

    from rmtbench.data import make_dataset
    from rmtbench.empirical import RandomFeatureMap, gram_graph
    from rmtbench.reduction import REDUCTION_ROWS, STRIPE_UNITS
    from rmtbench.parallel import compute
    from rmtbench.weights import WeightLaw

    data = make_dataset({"kind": "gmm", "p": args.p}, n=n, n_test=1, seed=np.random.SeedSequence(0))
    X = data.X
    flops = 2.0 * d * args.p * n + 2.0 * d * n * n
    activations = args.activations.split(",")
    table = Table(f"gram: Gram-stage rate over float64 matmul rate (n = {n}, p = {args.p}, d = {d})",
                  ["what", "wall s (best)", "GFLOP/s wall", "ratio wall", "CPU s (best)", "GFLOP/s per CPU-s", "ratio CPU"])
    table.notes += [
        f"Dask LocalCluster, {args.workers} single-threaded worker processes (one BLAS thread per task), "
        f"one task per stripe of {STRIPE_UNITS * REDUCTION_ROWS} feature rows; reference: {n}x{n} @ {n}x{n} float64 numpy matmul with {args.workers} BLAS threads",
        "flops counted: 2dpn (W X) + 2dn^2 (Gram), though dsyrk does about half of the Gram's; "
        f"{args.rounds} interleaved rounds, best of each",
    ]
    with local_cluster(args.workers) as client:
        pids = worker_pids(client)
        Xd = dask.delayed(X)

        def gram(act: str):
            fmap = RandomFeatureMap(act, WeightLaw("gaussian"), d, 1, ("bench-gram", act))
            return lambda: compute(client, gram_graph(fmap, Xd, None, in_flight=max(2, args.workers)))

        # warm-up: imports and the first task on every worker
        warm = RandomFeatureMap("erf", WeightLaw("gaussian"), 1024, 1, ("warm",))
        compute(client, gram_graph(warm, Xd, None))
        matmul, matmul_flops = matmul_call(n, threads=args.workers)
        single, _ = matmul_call(n, threads=1)
        thread_cpu: list[float] = []

        def single_on_this_thread() -> None:
            # its CPU on the calling thread alone: idle Dask threads and spinning BLAS threads do not count
            t0 = time.thread_time()
            single()
            thread_cpu.append(time.thread_time() - t0)

        calls = {"matmul": matmul, "matmul1": single_on_this_thread, **{act: gram(act) for act in activations}}
        timings = interleaved(calls, rounds=args.rounds, pids=pids)

    ref_wall = gflops(matmul_flops, best(timings["matmul"]))
    # per core: the workers run single-threaded BLAS, so their CPU-second rate is held against a
    # single-threaded matmul's (CPU time is what each process got, whatever the load)
    ref_cpu = gflops(matmul_flops, min(thread_cpu))
    table.add(f"numpy matmul, {args.workers} threads (wall reference)", best(timings["matmul"]), ref_wall, 1.0,
              best(timings["matmul"], "cpu"), gflops(matmul_flops, best(timings["matmul"], "cpu")), "")
    table.add("numpy matmul, 1 thread (per-core reference; CPU of its own thread)", best(timings["matmul1"]),
              gflops(matmul_flops, best(timings["matmul1"])), "", min(thread_cpu), ref_cpu, 1.0)
    walls, cpus = [], []
    for act in activations:
        wall, cpu = best(timings[act]), best(timings[act], "cpu")
        walls.append(gflops(flops, wall) / ref_wall)
        cpus.append(gflops(flops, cpu) / ref_cpu)
        table.add(f"Gram stage, {act}", wall, gflops(flops, wall), walls[-1], cpu, gflops(flops, cpu), cpus[-1])
    table.notes.append("ratio wall: Gram flops per wall second over the multi-threaded matmul's; ratio CPU: Gram flops per "
                       "CPU second (client, scheduler and workers, idle time included) over a single-threaded matmul's flops "
                       "per CPU second of its own thread, i.e. per-core efficiency, which a busy machine disturbs far less")
    table.print(f"**gram: worst effective rate / matmul rate = {min(walls):.2f} wall, {min(cpus):.2f} per core (CPU time) "
                f"(target >= {TARGET}: {verdict(min(walls), TARGET, at_most=False)} wall, "
                f"{verdict(min(cpus), TARGET, at_most=False)} per core)**")


if __name__ == "__main__":
    main()
