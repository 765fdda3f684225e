"""Command line: ``python -m rmtbench <verb> ...``. Snakemake rules call these verbs and nothing else.

User mistakes (bad config, missing data) end with one clear line and exit status 2, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any, Sequence

log = logging.getLogger("rmtbench")


def _sweep(path: str, *, kind_checks: bool = True) -> Any:
    from rmtbench.config import load_sweep

    return load_sweep(path, project_dir=Path.cwd(), kind_checks=kind_checks)


def _job_sweep(path: str) -> Any:
    """The sweep of a job verb: the workflow ran the kinds' own checks once, when it wrote the sweep file."""
    return _sweep(path, kind_checks=False)


def _context(sweep: Any, client: Any, block_rows: int | None = None) -> Any:
    from rmtbench.experiments.base import RunContext

    return RunContext(data_dir=sweep.data_dir, client=client, block_rows=block_rows or sweep.compute["block_rows"])


def _client(sweep: Any, plan: Any, threads: int, memory: str | None) -> Any:
    import contextlib

    from rmtbench.parallel import dask_client

    if not plan.kind.uses_dask:
        return contextlib.nullcontext(None)
    return dask_client(sweep.dask, threads=threads, memory_limit=memory)


def _blas_threads(threads: int | None) -> Any:
    """Limit BLAS/OpenMP threads of this process to ``threads`` (None: leave them; Dask workers set their own)."""
    import contextlib

    if threads is None:
        return contextlib.nullcontext()
    from rmtbench.parallel import blas_threads

    return blas_threads(threads)


def cmd_validate(args: argparse.Namespace) -> int:
    sweep = _sweep(args.config)
    total = 0
    print(f"sweep {sweep.name!r}: seed {sweep.seed}, results in {sweep.out}/")
    for name, plan in sweep.experiments.items():
        groups = plan.theory_groups()
        total += len(plan.cells)
        print(f"  {name} ({plan.kind.kind}): {len(plan.cells)} cells, {len(groups)} theory computations")
    print(f"  total: {total} cells")
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    from rmtbench.schema_doc import schema_yaml

    text = schema_yaml()
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    from rmtbench.store import write_dataset

    sweep = _job_sweep(args.sweep)
    plan = sweep.experiments[args.experiment]
    cell = plan.cell(args.cell)
    start = time.perf_counter()
    log.info("simulate %s/%s (%s) with %d thread(s)", args.experiment, cell.id, cell.label, args.threads)
    with _client(sweep, plan, args.threads, args.memory) as client, _blas_threads(None if client else args.threads):
        dataset = plan.kind.simulate(cell, _context(sweep, client, args.block_rows))
    write_dataset(dataset, args.out)
    log.info("wrote %s in %.1f s", args.out, time.perf_counter() - start)
    return 0


def cmd_theory(args: argparse.Namespace) -> int:
    from rmtbench.store import write_dataset

    sweep = _job_sweep(args.sweep)
    plan = sweep.experiments[args.experiment]
    cells = plan.theory_groups()[args.key]
    start = time.perf_counter()
    log.info("theory %s/%s for %d cell(s)", args.experiment, args.key, len(cells))
    with _blas_threads(args.threads):  # the job's threads, not every core of a shared node
        dataset = plan.kind.theory(cells, _context(sweep, None))
    write_dataset(dataset, args.out)
    log.info("wrote %s in %.1f s", args.out, time.perf_counter() - start)
    return 0


def cmd_gather(args: argparse.Namespace) -> int:
    from rmtbench.gather import gather_experiment
    from rmtbench.store import decode_attr, write_dataset

    sweep = _job_sweep(args.sweep)
    dataset = gather_experiment(sweep, args.experiment, allow_missing=args.allow_missing)
    missing = decode_attr(dataset, "missing_cells")
    if missing:
        print(f"{len(missing)} missing in {args.experiment}:", ", ".join(m.get("label", m.get("theory", "?")) for m in missing))
    write_dataset(dataset, args.out)
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from rmtbench.store import open_dataset

    sweep = _job_sweep(args.sweep)
    table = sweep.experiments[args.experiment].kind.compare(open_dataset(args.store))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out, index=False, float_format="%.6g")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from rmtbench.store import open_dataset

    sweep = _job_sweep(args.sweep)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    paths = sweep.experiments[args.experiment].kind.plot(open_dataset(args.store), out)
    log.info("%d figure(s) in %s", len(paths), out)
    return 0


def cmd_export_data(args: argparse.Namespace) -> int:
    import numpy as np

    from rmtbench.config import load_sweep
    from rmtbench.experiments.common import cell_data
    from rmtbench.store import decode_attr, open_dataset

    gathered = open_dataset(args.store)
    config = decode_attr(gathered, "config")
    name = gathered.attrs["experiment"]
    sweep = load_sweep(config, project_dir=Path.cwd())
    cell = sweep.experiments[name].cell(args.cell)
    data = cell_data(cell, _context(sweep, None))
    np.savez(args.out, X_train=data.X, y_train=data.y, X_test=data.X_test, y_test=data.y_test,
             labels_train=data.labels, labels_test=data.labels_test, cell=cell.to_json(), meta=json.dumps(data.meta, default=str))
    print(f"wrote {args.out}: X_train {data.X.shape}, X_test {data.X_test.shape} for cell {cell.label}")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    from rmtbench.status import sweep_status

    sweep = _sweep(args.config)
    for line in sweep_status(sweep):
        print(line)
    return 0


def cmd_report_path(args: argparse.Namespace) -> int:
    sweep = _sweep(args.config)
    print(sweep.out / "report.html")
    return 0


def cmd_config_reference(args: argparse.Namespace) -> int:
    from rmtbench.schema_doc import config_reference

    text = config_reference()
    if args.out:
        Path(args.out).write_text(text)
    else:
        sys.stdout.write(text)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    """The whole sweep on this machine: one shared LocalCluster, Snakemake, then the reports."""
    import os
    import subprocess

    from rmtbench.parallel import SHARED_CLUSTER_ENV, shared_local_cluster

    sweep = _sweep(args.config)  # refuse a bad config before starting anything
    cores = args.cores or os.cpu_count() or 1
    snakemake = [sys.executable, "-m", "snakemake", "--profile", args.profile, "--configfile", args.config]
    workdir = Path(".snakemake") / "rmtbench"
    workdir.mkdir(parents=True, exist_ok=True)
    scheduler_file = workdir / f"scheduler-{os.getpid()}.json"
    log.info("sweep %r: starting a LocalCluster with %d worker process(es)", sweep.name, cores)
    # Snakemake and its jobs get this environment, not the one the cluster's nannies leave behind
    # (worker malloc and BLAS settings: they would slow every theory and plot job).
    environment = dict(os.environ)
    try:
        with shared_local_cluster(cores, str(scheduler_file)):
            env = dict(environment, **{SHARED_CLUSTER_ENV: str(scheduler_file.resolve())})
            status = subprocess.call([*snakemake, "--cores", str(cores), *args.snakemake_args], env=env)
    finally:
        scheduler_file.unlink(missing_ok=True)
    if status != 0:
        return status
    report = sweep.out / "report.html"
    status = subprocess.call([*snakemake, "--report", str(sweep.out / "snakemake-report.html")])
    print(f"results in {sweep.out}/: gathered stores *.zarr, tables/, figures/, snakemake-report.html")
    if report.exists():
        print(f"report: {report}")
    return status


# -- report (issue 11) ------------------------------------------------------------------------------
def cmd_report(args: argparse.Namespace) -> int:
    """Build the one-page HTML report of a sweep from its results folder."""
    from rmtbench.report import build_report

    path = build_report(_sweep(args.sweep), args.out, embed=not args.link_images)
    print(path)
    return 0


def _add_report_verb(sub: Any) -> None:
    p = sub.add_parser("report", help="one HTML page: every figure with its caption, error tables, provenance")
    p.add_argument("--sweep", default="config/config.yaml", help="config file (YAML or JSON)")
    p.add_argument("--out", default=None, help="output file (default: <results>/<sweep>/report.html)")
    p.add_argument("--link-images", action="store_true", help="link the PNGs relative to the page instead of embedding them")
    p.set_defaults(func=cmd_report)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="rmtbench", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="verb", required=True)

    p = sub.add_parser("validate", help="validate a config and count its cells")
    p.add_argument("config")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("run", help="run a sweep locally: one LocalCluster shared by all jobs, then the reports",
                       epilog="Arguments after -- go to Snakemake unchanged: rmtbench run my.yaml --cores 2 -- --keep-going")
    p.add_argument("config", nargs="?", default="config/config.yaml")
    p.add_argument("--cores", type=int, default=None, help="worker processes and Snakemake cores (default: all)")
    p.add_argument("--profile", default="profiles/default")
    # Snakemake's own arguments follow `--` (split off in main): a REMAINDER positional here took every
    # option after the config, `--cores` included, for Snakemake, and the cluster kept all cores.
    p.set_defaults(func=cmd_run, snakemake_args=[])

    p = sub.add_parser("report-path", help="where the HTML report of a config goes")
    p.add_argument("config")
    p.set_defaults(func=cmd_report_path)

    p = sub.add_parser("config-reference", help="the config reference (Markdown) generated from the schema")
    p.add_argument("--out")
    p.set_defaults(func=cmd_config_reference)

    p = sub.add_parser("schema", help="print the config JSON schema as YAML")
    p.add_argument("--out")
    p.set_defaults(func=cmd_schema)

    for verb, func, what in (("simulate", cmd_simulate, "--cell"), ("theory", cmd_theory, "--key")):
        p = sub.add_parser(verb, help=f"compute one {'cell' if verb == 'simulate' else 'theory group'} into a Zarr store")
        p.add_argument("--sweep", required=True, help="the sweep file the workflow writes (results/<sweep>/sweep.json) or a config "
                       "file; the kinds' own checks are left to `rmtbench validate` and the workflow")
        p.add_argument("--experiment", required=True)
        p.add_argument(what, required=True, dest=what.strip("-"))
        p.add_argument("--out", required=True)
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--memory", default=None, help="per-worker memory limit, e.g. 4GiB")
        p.add_argument("--block-rows", type=int, default=None, help="override compute.block_rows")
        p.set_defaults(func=func)

    p = sub.add_parser("gather", help="combine cell and theory stores into one store")
    p.add_argument("--sweep", required=True)
    p.add_argument("--experiment", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--allow-missing", action="store_true", help="gather a partial sweep (missing cells are NaN)")
    p.set_defaults(func=cmd_gather)

    for verb, func in (("compare", cmd_compare), ("plot", cmd_plot)):
        p = sub.add_parser(verb, help=f"{verb} a gathered store")
        p.add_argument("--sweep", required=True)
        p.add_argument("--experiment", required=True)
        p.add_argument("--store", required=True)
        p.add_argument("--out", required=True)
        p.set_defaults(func=func)

    p = sub.add_parser("export-data", help="write the exact data arrays a cell used to an .npz file")
    p.add_argument("--store", required=True, help="a gathered store")
    p.add_argument("--cell", required=True, help="cell id")
    p.add_argument("--out", required=True)
    p.set_defaults(func=cmd_export_data)

    p = sub.add_parser("status", help="cells done / running / missing per experiment")
    p.add_argument("config", nargs="?", default="config/config.yaml")
    p.set_defaults(func=cmd_status)

    _add_report_verb(sub)
    return parser


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    """Parse a command line (without the program name); exits with status 2 on a usage error.

    Everything after the first ``--`` is handed to Snakemake by ``run`` (as ``snakemake_args``), so
    ``run``'s own options may follow the config: ``run my.yaml --cores 2 -- --keep-going``.
    """
    argv = list(argv)
    passthrough: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, passthrough = argv[:cut], argv[cut + 1 :]
    parser = build_parser()
    args = parser.parse_args(argv)
    if passthrough:
        if args.func is not cmd_run:
            parser.error(f"arguments after -- ({' '.join(passthrough)}) are passed to Snakemake by `rmtbench run` only")
        args.snakemake_args = passthrough
    return args


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    from rmtbench.config import ConfigError

    args = parse_arguments(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", stream=sys.stderr)
    user_errors: tuple[type[BaseException], ...] = (ConfigError, FileNotFoundError, KeyError)
    try:
        from rmtbench.data import DataError

        user_errors = user_errors + (DataError,)
    except ImportError:
        pass
    try:
        return int(args.func(args) or 0)
    except user_errors as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"rmtbench: error: {message}", file=sys.stderr)
        return 2
