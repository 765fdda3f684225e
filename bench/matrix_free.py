"""Matrix-free spectra: SLQ density of G = Phi^T Phi / n against the dense spectrum, and a run at large n.

Part 1 (n = 4096): the eigenvalues of G from the dense path (Gram by ``gram_graph`` on the LocalCluster,
then ``eigvalsh``) against stochastic Lanczos quadrature through :class:`rmtbench.matrix_free.GramProducts`
(feature blocks cached on the workers; G never formed): Kolmogorov-Smirnov distance of the SLQ CDF to
the dense eigenvalues, and both times.

Part 2 (n = 65536 on this machine's cores): SLQ with the same operator, where a dense eigendecomposition
would need 32 GiB for G alone and hours of compute. Checked against the exact (1/n) tr G (from the
feature norms). Its time is measured; the time of larger settings is extrapolated from the measured
rate, and the table says so.

Usage::

    python bench/matrix_free.py           # part 1 at n = 4096 (d = 8192), part 2 at n = 65536 (d = 4096)
    python bench/matrix_free.py --large-d 2048 --large-steps 40   # part 2 smaller, as recorded in README.md
    python bench/matrix_free.py --quick   # part 1 at n = 2048, part 2 at n = 16384 (d = 1024)
"""
from __future__ import annotations

import numpy as np

from common import PeakMemory, Table, gib, local_cluster, parser, timed, verdict, worker_pids

TARGET = 0.01


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--n", type=int)
    p.add_argument("--d-over-n", type=float, default=2.0)
    p.add_argument("--probes", type=int, default=16)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--large-n", type=int)
    p.add_argument("--large-d", type=int)
    p.add_argument("--large-probes", type=int, default=4)
    p.add_argument("--large-steps", type=int, default=60)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--block-rows", type=int, default=4096)
    p.add_argument("--skip-large", action="store_true")
    args = p.parse_args()
    n = args.n or (2048 if args.quick else 4096)
    big_n = args.large_n or (16384 if args.quick else 65536)
    big_d = args.large_d or (1024 if args.quick else 4096)

    from threadpoolctl import threadpool_limits

    from rmtbench.data import make_dataset
    from rmtbench.empirical import RandomFeatureMap, gram_graph, symmetric_from_upper
    from rmtbench.matrix_free import GramProducts, clip_zero, slq
    from rmtbench.parallel import compute
    from rmtbench.reduction import REDUCTION_ROWS
    from rmtbench.theory.laws import ks_distance
    from rmtbench.weights import WeightLaw

    d = int(args.d_over_n * n)
    table = Table(f"matrix-free: SLQ spectrum of G = Phi^T Phi / n (relu, gaussian weights, gmm data p = 784)",
                  ["run", "n", "d", "probes x steps", "wall s", "CPU s", "result"])
    table.notes.append(f"LocalCluster of {args.workers} single-threaded workers; block_rows = {args.block_rows}; "
                       "SLQ operator: GramProducts with feature blocks cached on the workers")
    rows = []
    with local_cluster(args.workers) as client:
        pids = worker_pids(client)
        data = make_dataset({"kind": "gmm", "p": 784}, n=n, n_test=1, seed=np.random.SeedSequence(1))
        fmap = RandomFeatureMap("relu", WeightLaw("gaussian"), d, 2, ("bench-mf", n))

        def dense():
            upper, _ = compute(client, gram_graph(fmap, data.X, None, in_flight=max(2, args.workers)))[0]
            with threadpool_limits(limits=args.workers):
                return clip_zero(np.linalg.eigvalsh(symmetric_from_upper(upper) / n))

        def matrix_free():
            op = GramProducts(fmap, data.X, client=client, block_rows=args.block_rows, cache=True)
            quad = slq(op, n, probes=args.probes, steps=args.steps, root_seed=3)
            op.release()
            return quad

        dense_t = timed(dense, pids=pids)
        slq_t = timed(matrix_free, pids=pids)
        eigs, quad = dense_t.value, slq_t.value
        ks = ks_distance(eigs, quad.cdf())
        probe_sd = np.sqrt(1 / (2 * n * args.probes))
        table.add("dense: Gram + eigvalsh", n, d, "-", dense_t.wall, dense_t.cpu, f"{n} eigenvalues")
        table.add("SLQ", n, d, f"{args.probes} x {args.steps}", slq_t.wall, slq_t.cpu,
                  f"KS to dense = {ks:.4f} (probe s.d. bound {probe_sd:.4f})")
        m_exact = np.mean(1 / (eigs + 0.1))
        est = quad.stieltjes(-0.1)
        table.add("Hutchinson (1/n) tr (G + 0.1 I)^-1", n, d, f"{args.probes} x {args.steps}", 0.0, 0.0,
                  f"{est.mean.real:.6f} +- {est.error:.1e} vs exact {m_exact:.6f}")

        if not args.skip_large:
            big = make_dataset({"kind": "gmm", "p": 784}, n=big_n, n_test=1, seed=np.random.SeedSequence(2))
            bmap = RandomFeatureMap("relu", WeightLaw("gaussian"), big_d, 2, ("bench-mf", big_n))
            with PeakMemory() as mem:
                op = GramProducts(bmap, big.X, client=client, block_rows=args.block_rows, cache=True)
                build = timed(lambda: op.trace(), pids=pids)  # builds the cache and the exact trace
                run = timed(lambda: slq(op, big_n, probes=args.large_probes, steps=args.large_steps, root_seed=4), pids=pids)
                op.release()
            bq = run.value
            tr = bq.trace(lambda t: t)
            table.add(f"SLQ, features cached ({gib(8 * big_d * big_n):.1f} GiB)", big_n, big_d,
                      f"{args.large_probes} x {args.large_steps}", build.wall + run.wall, build.cpu + run.cpu,
                      f"(1/n) tr G = {tr.mean:.6f} +- {tr.error:.1e} vs exact {build.value:.6f}; peak memory {gib(mem.peak):.1f} GiB")
            # d = n cannot cache Phi here: time products that recompute the features, and scale by the width
            V = np.ones((big_n, args.large_probes))
            nocache = GramProducts(bmap, big.X, client=client, block_rows=args.block_rows, cache=False)
            nocache(V)  # scatter X
            prod = timed(lambda: nocache(V), pids=pids)
            nocache.release()
            steps = args.steps
            per_unit = prod.cpu / bmap.units
            per_step = per_unit * big_n / REDUCTION_ROWS / args.workers
            table.add("one product, features recomputed (measured)", big_n, big_d, f"{args.large_probes} x 1", prod.wall, prod.cpu,
                      f"{per_unit:.1f} CPU-s per 512-row unit")
            table.notes.append(
                f"extrapolated, not run: n = d = {big_n} (Phi would take {gib(8 * big_n * big_n):.0f} GiB, so recomputed in every "
                f"product): {steps} Lanczos steps x {per_step:.0f} s per product ({big_n // REDUCTION_ROWS} units x the measured "
                f"CPU-s per unit / {args.workers} cores) = {steps * per_step / 3600:.0f} h on {args.workers} fully available cores; "
                f"a dense eigh at this n needs {gib(8 * big_n * big_n):.0f} GiB for G alone and about "
                f"{big_n**3 * 4 / 3 / 1e12:.0f} TFLOP")
    table.print(f"**matrix-free: KS distance of the SLQ CDF to the dense spectrum at n = {n}: {ks:.4f} "
                f"(target <= {TARGET}: {verdict(ks, TARGET, at_most=True)})**")


if __name__ == "__main__":
    main()
