"""Dry runs: the SLURM profile plans a paper-scale sweep on a machine without SLURM, quickly.

``snakemake -n --profile profiles/slurm`` on a sweep of thousands of cells (n up to 16384) must work
with no SLURM command on the PATH, print the job count and the resources every job would request
(the same numbers :mod:`rmtbench.resources` computes), batch the small cells, and use under 30 s of
CPU; ``snakemake -n`` on the laptop config under 5 s of CPU. CPU time (user + sys of Snakemake) is
asserted because wall time on a shared test machine measures the other processes; both are printed.
"""
from __future__ import annotations

import math
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import ROOT

pytestmark = pytest.mark.workflow

BIG = {
    "sweep": "dryrun-big",
    "seed": 5,
    "datasets": {"dry_gmm_a": {"kind": "gmm", "p_over_n": 0.5}, "dry_gmm_b": {"kind": "gmm", "p_over_n": 1.0}},
    "experiments": [
        {
            "name": "rf_big",
            "kind": "rf_ridge",
            "grid": {
                "activation": ["relu", "erf", "tanh", "sign"],
                "weights": ["gaussian", "rademacher"],
                "dataset": ["dry_gmm_a", "dry_gmm_b"],
                "n": [256, 512, 1024, 2048, 4096, 8192, 16384],
                "d_over_n": [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2, 1.3, 1.5, 1.7, 2.0, 2.5, 3.0, 4.0, 6.0],
            },
            "seeds": 3,
            "gamma": [0.1, 0.01],
            "n_test": 512,
        }
    ],
}
SLURM_COMMANDS = ("sbatch", "srun", "squeue", "sacct", "sinfo", "scontrol", "scancel")


def make_project(where: Path) -> Path:
    shutil.copy(ROOT / "Snakefile", where / "Snakefile")
    for folder in ("workflow", "profiles", "config"):
        shutil.copytree(ROOT / folder, where / folder, ignore=shutil.ignore_patterns("__pycache__"))
    return where


def path_without_slurm(where: Path) -> str:
    """A PATH with the venv and the few system tools Snakemake uses, and no SLURM command."""
    bin_dir = where / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "sh", "which", "env", "uname", "git"):
        found = shutil.which(tool)
        if found:
            (bin_dir / tool).symlink_to(found)
    path = f"{Path(sys.executable).parent}{os.pathsep}{bin_dir}"
    assert not any(shutil.which(c, path=path) for c in SLURM_COMMANDS)
    return path


def timed_run(args: list[str], cwd: Path, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, float, float]:
    """Run a command; its result, wall seconds and CPU seconds (user + sys)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    result = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return result, wall, cpu


def job_stats(output: str) -> dict[str, int]:
    """The 'Job stats' table of a Snakemake run: rule -> job count."""
    table = output.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)\s*$", table, re.MULTILINE)}


def effective_cores() -> int:
    """The --cores Snakemake uses with --profile profiles/slurm: the workflow profile (profiles/default)
    wins key by key over the cluster profile."""
    for name in ("default", "slurm"):
        settings = yaml.safe_load((ROOT / f"profiles/{name}/config.yaml").read_text()) or {}
        if "cores" in settings:
            return os.cpu_count() if settings["cores"] == "all" else int(settings["cores"])
    raise AssertionError("profiles/slurm must set cores")


@pytest.fixture(scope="module")
def big_sweep():
    from rmtbench.config import load_sweep

    return load_sweep(BIG, project_dir=ROOT)


def test_dry_run_of_a_paper_scale_sweep_with_the_slurm_profile(big_sweep, tmp_path):
    from rmtbench.resources import BATCH_GROUP, rule_group, rule_resources

    project = make_project(tmp_path)
    (project / "big.yaml").write_text(yaml.safe_dump(BIG, sort_keys=False))
    env = {**os.environ, "PATH": path_without_slurm(tmp_path)}
    env.pop("SLURM_CONF", None)
    result, wall, cpu = timed_run([sys.executable, "-m", "snakemake", "-n", "--profile", "profiles/slurm", "--configfile", "big.yaml"],
                                  project, env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]

    plan = big_sweep.experiments["rf_big"]
    groups = plan.theory_groups()
    stats = job_stats(output)
    cores = effective_cores()
    print(f"\nsnakemake -n --profile profiles/slurm, {len(plan.cells)} cells, no SLURM on PATH: "
          f"{wall:.1f} s wall, {cpu:.1f} s CPU; job stats {stats}")
    assert len(plan.cells) >= 2000 and max(c["n"] for c in plan.cells) == 16384
    assert stats["simulate"] == len(plan.cells) and stats["theory"] == len(groups)
    others = {rule: count for rule, count in stats.items() if rule not in ("simulate", "theory", "total")}
    assert set(others.values()) == {1} and {"gather", "all"} <= set(others)  # per experiment / per sweep
    assert stats["total"] == len(plan.cells) + len(groups) + len(others)

    # Every job's block shows the resources it would request, equal to rmtbench.resources' estimates.
    blocks = re.findall(r"rule (simulate|theory):\n((?:[ \t]+(?!\[|rule )\S.*\n)+)", output)
    assert len(blocks) == len(plan.cells) + len(groups)
    for rule, block in blocks:
        name = re.search(r"wildcards: experiment=rf_big, (?:cell|key)=(\w+)", block).group(1)
        expected = rule_resources(big_sweep, rule, "rf_big", name)
        printed = dict(re.findall(r"\b(mem_mb|runtime)=(\d+)", block.split("resources:")[1]))
        assert {k: int(v) for k, v in printed.items()} == {"mem_mb": expected["mem_mb"], "runtime": expected["runtime"]}, block
        threads = re.search(r"threads: (\d+)", block)
        assert (int(threads.group(1)) if threads else 1) == min(expected["threads"], cores), block

    # Small jobs are batched 32 to a SLURM job (profiles/slurm: group-components batch=32).
    small = sum(rule_group(big_sweep, "simulate", "rf_big", c.id) == BATCH_GROUP for c in plan.cells)
    small += sum(rule_group(big_sweep, "theory", "rf_big", k) == BATCH_GROUP for k in groups)
    batches = output.count(f"Group job {BATCH_GROUP} ")
    unbatched = len(plan.cells) + len(groups) - small
    print(f"  {small} small jobs in {batches} batch jobs + {unbatched} jobs of their own = {batches + unbatched} SLURM jobs")
    assert 0 < small < len(plan.cells) and batches == math.ceil(small / 32)
    assert cpu < 30, f"dry run used {cpu:.1f} s of CPU ({wall:.1f} s wall)"


def test_dry_run_of_the_laptop_config_is_fast(tmp_path):
    project = make_project(tmp_path)
    result, wall, cpu = timed_run([sys.executable, "-m", "snakemake", "-n"], project)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    print(f"\nsnakemake -n (config/config.yaml): {wall:.1f} s wall, {cpu:.1f} s CPU; job stats {job_stats(output)}")
    assert job_stats(output)["simulate"] >= 1
    # Regression guard with headroom for shared CI machines; the < 5 s target itself is measured on a
    # quiet machine by bench/dry_run_time.sh (recorded in bench/README.md).
    assert cpu < 10, f"snakemake -n used {cpu:.1f} s of CPU ({wall:.1f} s wall)"


def test_resources_grow_with_the_attempt(big_sweep):
    from rmtbench.resources import rule_resources

    plan = big_sweep.experiments["rf_big"]
    largest = max(plan.cells, key=lambda c: (c["n"], c["d_over_n"]))
    first, third = (rule_resources(big_sweep, "simulate", "rf_big", largest.id, attempt) for attempt in (1, 3))
    assert third["mem_mb"] >= 3 * first["mem_mb"] - 3 and third["runtime"] == 3 * first["runtime"]
    assert first["threads"] == third["threads"] == 4
    # the n x n Gram (and its eigenvectors) of the largest cell alone is 2 GiB per copy
    assert first["mem_mb"] > 3 * 8 * 16384**2 / 2**20
    smallest = min(plan.cells, key=lambda c: (c["n"], c["d_over_n"]))
    small = rule_resources(big_sweep, "simulate", "rf_big", smallest.id)
    assert small["threads"] == 1 and small["runtime"] == 10 and 600 < small["mem_mb"] < 1000
    with pytest.raises(KeyError, match="no cell"):
        rule_resources(big_sweep, "simulate", "rf_big", "0" * 12)


def test_cluster_settings_are_not_overridden_by_the_workflow_profile():
    """profiles/default is Snakemake's *workflow* profile, applied on top of ``--profile profiles/slurm``
    key by key: it must not set what the cluster profile decides (a 'cores: all' there would size batch
    jobs by the login node's CPUs; 'latency-wait: 5' is too short for shared file systems)."""
    default = yaml.safe_load((ROOT / "profiles/default/config.yaml").read_text()) or {}
    slurm = yaml.safe_load((ROOT / "profiles/slurm/config.yaml").read_text())
    assert sorted(set(default) & set(slurm) - {"rerun-incomplete", "printshellcmds", "show-failed-logs"}) == []
