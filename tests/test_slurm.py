"""Cluster execution on a real one-node SLURM (started by ``tests/slurm_cluster.py``).

1. A tiny sweep submitted with ``--profile profiles/slurm``: every cell (and the theory key) becomes
   a SLURM job of its own (``--group-components batch=1``), seen in ``squeue`` and in the per-job SLURM
   logs, and the gathered store equals a local Snakemake run of the same config bit for bit. The sweep
   sets ``compute.slurm_node_minutes`` so low that every cell is a two-task job: Snakemake's executor
   submits it with two tasks and the cell runs on a Dask cluster made of them.
2. The same sweep with the profile's batching: the small jobs share one SLURM job; same bits.
3. A two-task SLURM job submitted by hand runs one cell on a Dask cluster made of its tasks
   (``python -m rmtbench.slurm``, scheduler-file mode), with the same numbers as the local run.

Without SLURM (not root, cannot install, ...) both tests skip and say why.
"""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT
from rmtbench.parallel import WORKER_MALLOC_ENV
from slurm_cluster import slurm_cluster  # noqa: F401  (session fixture)

pytestmark = [pytest.mark.slurm, pytest.mark.workflow]

SWEEP = "slurmtiny"
EXPERIMENT = "rf"
TINY = {
    "sweep": SWEEP,
    "seed": 11,
    "results": "results",
    # a data-set name of its own: Snakemake merges this file into config/config.yaml's 'datasets'
    "datasets": {"slurm_gmm": {"kind": "gmm", "p_over_n": 0.5}},
    "experiments": [
        {
            "name": EXPERIMENT,
            "kind": "rf_ridge",
            "grid": {"activation": ["relu"], "weights": ["gaussian"], "dataset": ["slurm_gmm"], "n": [48], "d_over_n": [0.5, 2.0]},
            "seeds": 2,
            "gamma": [0.1],
            "n_test": 24,
        }
    ],
}
GATHERED = f"results/{SWEEP}/{EXPERIMENT}.zarr"
SNAKEMAKE = [sys.executable, "-m", "snakemake"]


def make_project(where: Path, *, compute: dict | None = None) -> Path:
    """A copy of the workflow (Snakefile, rules, profiles, configs) with the tiny sweep in sweep.yaml.

    ``compute`` settings never change a number nor a cell id, so every variant is compared with one local run.
    """
    where.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "Snakefile", where / "Snakefile")
    for folder in ("workflow", "profiles", "config"):
        shutil.copytree(ROOT / folder, where / folder, ignore=shutil.ignore_patterns("__pycache__"))
    (where / "sweep.yaml").write_text(yaml.safe_dump({**TINY, **({"compute": compute} if compute else {})}, sort_keys=False))
    return where


def submit(project: Path, slurm_cluster, *extra: str) -> tuple[str, list[str], float]:  # noqa: F811
    """Run the tiny sweep with ``--profile profiles/slurm`` on the test SLURM: (output, squeue records, seconds)."""
    # Account and partition for this cluster: what a user writes into profiles/slurm/config.yaml.
    profile = project / "profiles/slurm/config.yaml"
    settings = yaml.safe_load(profile.read_text())
    settings["default-resources"]["slurm_partition"] = slurm_cluster.partition
    settings["cores"] = slurm_cluster.cpus  # the widest (batch) job: at most one node's CPUs
    profile.write_text(yaml.safe_dump(settings, sort_keys=False))
    start = time.monotonic()
    result = subprocess.run(
        SNAKEMAKE + [
            GATHERED, "--profile", "profiles/slurm", "--configfile", "sweep.yaml",
            # no accounting database here: poll with squeue (MinJobAge=300), soon after submission
            "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "5", *extra,
        ],
        cwd=project, env=slurm_cluster.env(), capture_output=True, text=True, timeout=420,
    )
    elapsed = time.monotonic() - start
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    run_id = re.search(r"SLURM run ID: (\S+)", output).group(1)
    records = slurm_cluster.jobs(name=run_id)
    print(f"\nSnakemake with --profile profiles/slurm {' '.join(extra)}: {elapsed:.0f} s; squeue --states=all --name {run_id}:")
    print("JOBID|NAME|STATE|CPUS|MIN_MEMORY|TIME_LIMIT|NODES|COMMENT")
    print("\n".join(records))
    assert records and all(r.split("|")[2] == "COMPLETED" for r in records), records
    return output, records, elapsed


def sweep_of(project: Path):
    from rmtbench.config import load_sweep

    return load_sweep(project / "sweep.yaml", project_dir=project)


def data_variables_equal(a, b) -> list[str]:
    """Names of data variables or coordinates that differ (values, dtype, dims); [] when bit-identical."""
    differences = []
    if set(a.data_vars) != set(b.data_vars):
        differences.append(f"data variables {sorted(a.data_vars)} != {sorted(b.data_vars)}")
    for name in sorted(set(a.data_vars) & set(b.data_vars)) + sorted(set(a.coords) | set(b.coords)):
        if name not in a.variables or name not in b.variables:
            differences.append(f"{name}: missing on one side")
            continue
        x, y = a[name], b[name]
        if x.dims != y.dims or x.dtype != y.dtype or not np.array_equal(x.values, y.values, equal_nan=x.dtype.kind in "fc"):
            differences.append(name)
    return differences


class LocalRun:
    """The tiny sweep computed locally (profiles/default), started in the background."""

    def __init__(self, project: Path) -> None:
        self.project = project
        self.log = project / "local-run.log"
        with open(self.log, "w") as out:  # the child keeps its own descriptor
            self.proc = subprocess.Popen(
                SNAKEMAKE + [GATHERED, "--profile", "profiles/default", "--cores", "2", "--configfile", "sweep.yaml"],
                cwd=project, stdout=out, stderr=subprocess.STDOUT,
            )

    def wait(self, timeout: float = 400) -> Path:
        rc = self.proc.wait(timeout)
        assert rc == 0, f"local run failed:\n{self.log.read_text()[-3000:]}"
        return self.project


@pytest.fixture(scope="module")
def local_run(slurm_cluster, tmp_path_factory):  # noqa: F811  (SLURM first: no local run when it skips)
    run = LocalRun(make_project(tmp_path_factory.mktemp("local")))
    yield run
    if run.proc.poll() is None:
        run.proc.kill()


def test_sweep_on_slurm_matches_local_run(slurm_cluster, local_run, tmp_path):  # noqa: F811
    from rmtbench.store import open_dataset

    if slurm_cluster.cpus < 2:
        pytest.skip("the one-node SLURM has fewer than 2 CPUs")
    # every cell "too long for one node": each becomes one job of 2 tasks forming its Dask cluster
    project = make_project(tmp_path / "cluster", compute={"slurm_node_minutes": 1, "slurm_max_tasks": 2})
    _, records, _ = submit(project, slurm_cluster, "--group-components", "batch=1")  # one SLURM job per cell

    sweep = sweep_of(project)
    plan = sweep.experiments[EXPERIMENT]
    cells, keys = {c.id for c in plan.cells}, set(plan.theory_groups())
    assert len(records) == len(cells) + len(keys), records

    # Each SLURM job's own log (profiles/slurm: logs/slurm/<rule or group>/.../<job id>.log) names the
    # one cell or theory key it computed; a cell's job has 2 CPUs (2 tasks x 1) and its rule log says
    # that the cell ran on a Dask cluster of the job's two tasks.
    seen: dict[str, str] = {}
    cpus = {r.split("|")[0]: r.split("|")[3] for r in records}
    for record in records:
        job_id = record.split("|")[0]
        logs = list((project / "logs/slurm").rglob(f"{job_id}.log"))
        assert len(logs) == 1, f"no SLURM log for job {job_id}: {sorted((project / 'logs/slurm').rglob('*'))}"
        text = logs[0].read_text()
        ran = set(re.findall(r"wildcards: experiment=\w+, (?:cell|key)=([0-9a-f]{12})", text))
        assert len(ran) == 1, f"job {job_id} ran {ran}:\n{text[-2000:]}"
        seen[ran.pop()] = job_id
        print(f"  SLURM job {job_id}: {logs[0].relative_to(project)}")
    assert set(seen) == cells | keys
    for cell in cells:
        job_id = seen[cell]
        rule_log = (project / f"results/{SWEEP}/logs/simulate/{EXPERIMENT}/{cell}.log").read_text()
        print(f"  cell {cell}, SLURM job {job_id}: " + next(line for line in rule_log.splitlines() if "Dask cluster of" in line))
        assert cpus[job_id] == "2", records
        assert f"Dask cluster of 2 workers on 2 task(s) of SLURM job {job_id}" in rule_log, rule_log[-3000:]
    for key in keys:
        assert cpus[seen[key]] == "1", records

    local = local_run.wait()
    a, b = open_dataset(project / GATHERED), open_dataset(local / GATHERED)
    assert data_variables_equal(a, b) == []
    assert a.sizes == b.sizes and a["test_mse"].size > 0


def test_small_jobs_share_a_slurm_job_in_batches(slurm_cluster, local_run, tmp_path):  # noqa: F811
    from rmtbench.store import open_dataset

    project = make_project(tmp_path / "batched")
    output, records, _ = submit(project, slurm_cluster)  # the profile's group-components: batch 32
    plan = sweep_of(project).experiments[EXPERIMENT]
    jobs = len(plan.cells) + len(plan.theory_groups())
    assert len(records) < jobs, f"{len(records)} SLURM jobs for {jobs} small jobs:\n{records}"
    text = "".join(p.read_text() for p in (project / "logs/slurm").rglob("*.log"))
    assert len(set(re.findall(r"wildcards: experiment=\w+, (?:cell|key)=([0-9a-f]{12})", text))) == jobs
    local = local_run.wait()
    a, b = open_dataset(project / GATHERED), open_dataset(local / GATHERED)
    assert data_variables_equal(a, b) == []


def test_two_task_job_runs_a_cell_on_its_tasks(slurm_cluster, local_run, tmp_path):  # noqa: F811
    from rmtbench.store import open_dataset

    if slurm_cluster.cpus < 2:
        pytest.skip("the one-node SLURM has fewer than 2 CPUs")
    project = local_run.wait()
    cell = sweep_of(project).experiments[EXPERIMENT].cells[0]
    out, job_log = tmp_path / "two-task.zarr", tmp_path / "two-task.log"
    command = (f"{sys.executable} -m rmtbench.slurm simulate --sweep results/{SWEEP}/sweep.json "
               f"--experiment {EXPERIMENT} --cell {cell.id} --out {out}")
    submitted = slurm_cluster.run(
        "sbatch", "--parsable", "--job-name=rmtbench-two-task", "--ntasks=2", "--cpus-per-task=1", "--mem-per-cpu=1500",
        "--time=10", f"--chdir={project}", f"--output={job_log}", f"--wrap={command}",
    )
    job_id = submitted.stdout.strip().split(";")[0]
    states = slurm_cluster.wait_for_jobs([job_id], timeout=300)
    records = slurm_cluster.jobs(name="rmtbench-two-task")
    text = job_log.read_text() if job_log.exists() else "(no job output)"
    print("\nJOBID|NAME|STATE|CPUS|MIN_MEMORY|TIME_LIMIT|NODES|COMMENT\n" + "\n".join(records))
    print("\n".join(line for line in text.splitlines() if "rmtbench.slurm" in line))
    assert states[job_id] == "COMPLETED", text[-3000:]
    assert f"Dask cluster of 2 workers on 2 task(s) of SLURM job {job_id}" in text, text[-3000:]
    # the workers are the job's two tasks (ranks 0 and 1 of one srun step of this job)
    tasks = re.findall(rf"workers in host=\S+ job={job_id} step=(\d+) task=(\d+)", text)
    assert sorted(t for _, t in tasks) == ["0", "1"] and len({s for s, _ in tasks}) == 1, text[-3000:]
    # the workers run with rmtbench's malloc thresholds and one BLAS thread, as on a LocalCluster
    malloc = " ".join(f"{name}={value}" for name, value in WORKER_MALLOC_ENV.items())
    assert f"worker environment: {malloc} OMP_NUM_THREADS=1" in text, text[-3000:]

    a = open_dataset(out)
    b = open_dataset(project / f"results/{SWEEP}/cells/{EXPERIMENT}/{cell.id}.zarr")
    assert data_variables_equal(a, b) == []
    assert not (project / ".rmtbench-dask").exists(), "the scheduler folder is removed at the end"
