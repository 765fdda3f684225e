"""Theory share: time of the theory step over time of the simulation step on the default sweep.

Every cell of ``config/config.yaml`` (or ``--config``) is simulated through its kind's ``simulate`` on one
LocalCluster of single-threaded workers (as ``rmtbench run`` shares one cluster), and every theory key
through the kind's ``theory`` in this process with ``--theory-threads`` BLAS threads (default 1: the
theory rule asks Snakemake for one thread per job; several theory jobs then run side by side, which
this serial loop does not credit). Nothing is written to disk.

Usage::

    python bench/theory_share.py                       # the default sweep
    python bench/theory_share.py --quick               # only the first two theory keys and their cells
    python bench/theory_share.py --config config/paper.yaml
"""
from __future__ import annotations

from common import ROOT, Table, local_cluster, parser, timed, verdict, worker_pids

TARGET = 0.10


def main() -> None:
    p = parser(__doc__.splitlines()[0])
    p.add_argument("--config", default=str(ROOT / "config" / "config.yaml"))
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--theory-threads", type=int, default=1)
    args = p.parse_args()

    from threadpoolctl import threadpool_limits

    from rmtbench.config import load_sweep
    from rmtbench.experiments.base import RunContext

    sweep = load_sweep(args.config, project_dir=ROOT)
    table = Table(f"theory-share: theory time / simulation time on the sweep {sweep.name!r} ({args.config})",
                  ["experiment", "cells", "theory keys", "simulate wall s", "theory wall s", "simulate CPU s", "theory CPU s",
                   "share (wall)", "share (CPU)"])
    table.notes.append(f"simulate: LocalCluster of {args.workers} single-threaded workers, block_rows = "
                       f"{sweep.compute['block_rows']}; theory: this process, {args.theory_threads} BLAS thread(s), keys one after another")
    totals = [0.0, 0.0, 0.0, 0.0]
    with local_cluster(args.workers) as client:
        pids = worker_pids(client)
        for name, plan in sweep.experiments.items():
            groups = plan.theory_groups()
            keys = list(groups)[:2] if args.quick else list(groups)
            cells = [c for c in plan.cells if not args.quick or plan.kind.theory_key(c) in keys]
            ctx = RunContext(data_dir=sweep.data_dir, client=client if plan.kind.uses_dask else None,
                             block_rows=sweep.compute["block_rows"])
            sim = timed(lambda: [plan.kind.simulate(c, ctx) for c in cells], pids=pids)
            with threadpool_limits(limits=args.theory_threads):
                theory_ctx = RunContext(data_dir=sweep.data_dir, client=None, block_rows=sweep.compute["block_rows"])
                th = timed(lambda: [plan.kind.theory(groups[k], theory_ctx) for k in keys if k is not None])
            table.add(name, len(cells), len(keys), sim.wall, th.wall, sim.cpu, th.cpu, th.wall / sim.wall, th.cpu / sim.cpu)
            for i, v in enumerate((sim.wall, th.wall, sim.cpu, th.cpu)):
                totals[i] += v
    share = totals[1] / totals[0]
    table.add("**all**", "", "", totals[0], totals[1], totals[2], totals[3], share, totals[3] / totals[2])
    table.print(f"**theory-share: theory / simulation = {share:.3f} wall, {totals[3] / totals[2]:.3f} CPU "
                f"(target <= {TARGET}: {verdict(share, TARGET, at_most=True)})**")


if __name__ == "__main__":
    main()
