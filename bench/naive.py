"""Naive baseline: the default sweep's double-descent numbers by a plain script, against rmtbench.

The plain script is written the way a research notebook does it (the style of the book's notebooks):
for each cell and seed it forms the features ``Phi = phi(W X)`` whole, and for each ridge value solves
the ridge system ``(Phi Phi^T / n + gamma I_d) beta = Phi y / n`` and evaluates the training and test
errors from their definitions. To compare numbers, it uses rmtbench's data and weight draws (the same
seeds), nothing else from rmtbench. rmtbench computes the same cells through ``simulate`` on its
LocalCluster (one eigendecomposition per seed for all gammas, the Gram by syrk over feature units).
The two must agree to 1e-8 relative on every training and test MSE of the figure.

Usage::

    python bench/naive.py                  # every rf_ridge cell of config/config.yaml
    python bench/naive.py --quick          # one activation and one data set of it
    python bench/naive.py --gammas 20      # the same cells with a 20-value gamma grid (an MSE-vs-gamma figure)
"""
from __future__ import annotations

import numpy as np

from common import ROOT, Table, local_cluster, parser, timed, verdict, worker_pids

TARGET = 10.0
AGREEMENT = 1e-8


# ---- the plain script: what a notebook would do -------------------------------------------------------
def notebook_cell(X, y, X_test, y_test, weights_of_seed, phi, d, seeds, gammas):
    """Train/test MSE (seed x gamma) of random-features ridge regression, the straightforward way."""
    n = X.shape[1]
    train = np.zeros((seeds, len(gammas)))
    test = np.zeros((seeds, len(gammas)))
    for s in range(seeds):
        W = weights_of_seed(s)                       # d x p
        Phi = phi(W @ X)                             # d x n, formed whole
        Phi_test = phi(W @ X_test)
        for g, gamma in enumerate(gammas):
            beta = np.linalg.solve(Phi @ Phi.T / n + gamma * np.eye(d), Phi @ y / n)
            train[s, g] = np.mean((y - Phi.T @ beta) ** 2)
            test[s, g] = np.mean((y_test - Phi_test.T @ beta) ** 2)
    return train, test


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    p.add_argument("--experiment", default="rf_ridge")
    p.add_argument("--gammas", type=int, default=0, help="replace the gamma grid by this many values in [1e-3, 1]")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--jobs", type=int, default=0,
                   help="cells simulated at once on the shared cluster, as `rmtbench run --cores N` runs N jobs (default: workers)")
    args = p.parse_args()
    jobs = args.jobs or args.workers

    from threadpoolctl import threadpool_limits

    from rmtbench.activations import get_activation
    from rmtbench.config import load_sweep
    from rmtbench.experiments.base import RunContext
    from rmtbench.experiments.common import cell_data, data_key, width
    from rmtbench.weights import weight_law, weight_rows

    raw = __import__("yaml").safe_load(open(args.config))
    if args.gammas:
        for block in raw["experiments"]:
            if block["name"] == args.experiment:
                block["gamma"] = [float(g) for g in np.geomspace(1e-3, 1.0, args.gammas)]
    sweep = load_sweep(raw, project_dir=ROOT)
    plan = sweep.experiments[args.experiment]
    cells = plan.cells
    if args.quick:
        first = cells[0]
        cells = [c for c in cells if c["activation"] == first["activation"] and c["dataset"] == first["dataset"]]

    with local_cluster(args.workers) as client:
        ctx = RunContext(data_dir=sweep.data_dir, client=client, block_rows=sweep.compute["block_rows"])
        plan.kind.simulate(cells[0], ctx)  # warm-up: imports on the workers
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=jobs) as pool:  # the client is thread-safe
            ours = timed(lambda: list(pool.map(lambda c: plan.kind.simulate(c, ctx), cells)), pids=worker_pids(client))

    def naive_all():
        out = []
        for cell in cells:
            data = cell_data(cell, ctx)
            law, d = weight_law(cell["weights"]), width(cell)
            key = lambda s: ("rf", data_key(cell), law.label, s)
            W_of = lambda s: weight_rows(law, root_seed=cell.root_seed, key=key(s), start=0, stop=d, columns=data.X.shape[0])
            out.append(notebook_cell(data.X, data.y, data.X_test, data.y_test, W_of, get_activation(cell["activation"]).phi,
                                     d, int(cell["seeds"]), list(cell["gamma"])))
        return out

    with threadpool_limits(limits=args.workers):
        naive = timed(naive_all)

    # The design's ceiling at these sizes: the same graphs with no cluster (Dask's synchronous
    # scheduler in this process, one BLAS thread), i.e. rmtbench's arithmetic without its workers.
    in_process_ctx = RunContext(data_dir=sweep.data_dir, client=None, block_rows=sweep.compute["block_rows"])
    with threadpool_limits(limits=1):
        in_process = timed(lambda: [plan.kind.simulate(c, in_process_ctx) for c in cells])

    worst = 0.0
    for ds, (train, test) in zip(ours.value, naive.value):
        for mine, theirs in ((ds["train_mse"].values, train), (ds["test_mse"].values, test)):
            worst = max(worst, float(np.max(np.abs(mine - theirs) / np.abs(theirs))))
    same = all(np.array_equal(a[v].values, b[v].values) for a, b in zip(ours.value, in_process.value)
               for v in ("train_mse", "test_mse", "eigenvalues"))
    gammas = len(cells[0]["gamma"])
    table = Table(f"naive: the {args.experiment!r} double-descent numbers of {sweep.name!r}, plain script vs rmtbench "
                  f"({len(cells)} cells, {cells[0]['seeds']} seeds, {gammas} gammas)",
                  ["path", "wall s", "CPU s", "time / rmtbench (wall)", "time / rmtbench (CPU)"])
    table.notes += [f"sizes: n = {sorted({c['n'] for c in cells})}, d/n = {sorted({c['d_over_n'] for c in cells})}, "
                    f"n_test = {cells[0]['n_test']}; rmtbench: LocalCluster of {args.workers} single-threaded workers, {jobs} cells at a time; "
                    f"plain script: this process, {args.workers} BLAS threads",
                    f"largest relative difference of the {2 * len(cells) * int(cells[0]['seeds']) * gammas} MSE values: "
                    f"{worst:.1e} (required <= {AGREEMENT:g}: {verdict(worst, AGREEMENT, at_most=True)})",
                    f"no-cluster row: the same graphs in this process on one BLAS thread, {'bitwise the same' if same else 'NOT bitwise the same'} "
                    f"numbers; plain-script CPU over its CPU, {naive.cpu / in_process.cpu:.2f}, bounds what any scheduling of "
                    "rmtbench's arithmetic can gain over the plain script on these cells"]
    table.add("rmtbench (simulate, LocalCluster)", ours.wall, ours.cpu, 1.0, 1.0)
    table.add("rmtbench, no cluster (1 thread)", in_process.wall, in_process.cpu, in_process.wall / ours.wall, in_process.cpu / ours.cpu)
    table.add("plain script (Phi whole, one solve per gamma and seed)", naive.wall, naive.cpu, naive.wall / ours.wall, naive.cpu / ours.cpu)
    speedup = naive.wall / ours.wall
    table.print(f"**naive: rmtbench is {speedup:.2f}x faster than the plain script (target >= {TARGET:g}x: "
                f"{verdict(speedup, TARGET, at_most=False)}); numbers agree to {worst:.1e}**")


if __name__ == "__main__":
    main()
