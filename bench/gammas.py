"""The gamma grid comes almost free: one rf_ridge cell with 1 and with 100 ridge values.

One eigendecomposition of G per seed serves every gamma (:func:`rmtbench.ridge.ridge_mse`): after the
projections ``U^T y`` and ``U^T C`` each gamma costs O(n n_test). The two cells differ only in their gamma
list; both run through ``RandomFeaturesRidge.simulate`` on rmtbench's LocalCluster, interleaved.

Usage::

    python bench/gammas.py            # n = 2048, d = 4096, 3 seeds, n_test = 512
    python bench/gammas.py --quick    # n = 1024, d = 2048
"""
from __future__ import annotations

import numpy as np

from common import Table, best, interleaved, local_cluster, median, parser, rf_cell, verdict, worker_pids

TARGET = 1.05


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--n", type=int)
    p.add_argument("--d-over-n", type=float, default=2.0)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--rounds", type=int, default=3)
    args = p.parse_args()
    n = args.n or (1024 if args.quick else 2048)

    from rmtbench.experiments.base import RunContext

    grids = {"1 gamma": [0.1], "100 gammas": list(np.geomspace(1e-4, 10.0, 100))}
    cells = {name: rf_cell(n=n, d_over_n=args.d_over_n, seeds=args.seeds, gammas=g) for name, g in grids.items()}
    table = Table(f"gammas: one rf_ridge cell with 1 and with 100 ridge values (n = {n}, d = {int(args.d_over_n * n)}, "
                  f"p = 784, n_test = 512, {args.seeds} seeds)",
                  ["gamma grid", "wall s (best)", "wall s (median)", "CPU s (best)", "ratio to 1 gamma (best wall)", "ratio (best CPU)"])
    table.notes.append(f"LocalCluster of {args.workers} single-threaded workers, block_rows = 1024; "
                       f"{args.rounds} interleaved rounds after a warm-up run")
    with local_cluster(args.workers) as client:
        ctx = RunContext(data_dir=".", client=client)
        calls = {name: (lambda kc=kc: kc[0].simulate(kc[1], ctx)) for name, kc in cells.items()}
        calls["1 gamma"]()  # warm-up: imports on the workers, data cache
        timings = interleaved(calls, rounds=args.rounds, pids=worker_pids(client))
    one = timings["1 gamma"]
    for name, t in timings.items():
        table.add(name, best(t), median(t), best(t, "cpu"), best(t) / best(one), best(t, "cpu") / best(one, "cpu"))
    ratio = best(timings["100 gammas"]) / best(one)
    table.print(f"**gammas: time(100 gammas) / time(1 gamma) = {ratio:.3f} (target <= {TARGET}: {verdict(ratio, TARGET, at_most=True)})**")


if __name__ == "__main__":
    main()
