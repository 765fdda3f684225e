"""Job resources grow with the cell and the attempt; very long Dask cells span several SLURM tasks."""
from conftest import small_config
from rmtbench.config import load_sweep
from rmtbench.resources import rule_resources


def _sweep(n, d_over_n, seeds=1):
    config = small_config()
    exp = config["experiments"][0]
    exp["grid"].update({"n": [n], "d_over_n": [d_over_n]})
    exp.update({"seeds": seeds, "n_test": 1024})
    return load_sweep(config)


def test_small_cell_is_one_task_and_memory_grows_with_attempt():
    sweep = _sweep(64, 0.5)
    cell = sweep.experiments["rf"].cells[0]
    first = rule_resources(sweep, "simulate", "rf", cell.id)
    second = rule_resources(sweep, "simulate", "rf", cell.id, attempt=2)
    assert first["tasks"] == 1 and first["threads"] == 1
    assert second["mem_mb"] > first["mem_mb"] and second["runtime"] >= first["runtime"]


def test_huge_cell_spans_several_tasks_with_shorter_runtime_each():
    sweep = _sweep(32768, 64.0, seeds=30)
    cell = sweep.experiments["rf"].cells[0]
    res = rule_resources(sweep, "simulate", "rf", cell.id)
    assert res["tasks"] > 1
    assert res["mem_mb"] > 3 * 32768**2 * 8 / 2**20  # the n x n Gram and its copies


def test_only_multi_task_cells_declare_tasks_and_they_are_never_batched():
    from rmtbench.resources import rule_group, rule_tasks

    small = _sweep(64, 0.5)
    cell = small.experiments["rf"].cells[0]
    # no 'tasks' resource at all: Snakemake would sum it over a batch group (tasks x threads CPUs)
    assert rule_tasks(small, "rf", cell.id) is None and rule_group(small, "simulate", "rf", cell.id) == "batch"
    config = small.config | {"compute": {**small.config["compute"], "slurm_node_minutes": 0.01, "slurm_max_tasks": 3}}
    forced = load_sweep(config)
    assert rule_tasks(forced, "rf", cell.id) == 3 and rule_group(forced, "simulate", "rf", cell.id) is None
    huge = _sweep(32768, 64.0, seeds=30)
    assert rule_tasks(huge, "rf", huge.experiments["rf"].cells[0].id) > 1


# -- kinds with their own cost model -----------------------------------------------------------------
import json
import subprocess
import sys

import pytest

GMM = {"kind": "gmm", "p_over_n": 0.5, "classes": 2, "mean_scale": 2.5, "cov_shift": [0, 4]}
OWN_MODEL = {
    "regimes": {"kind": "regimes", "draws": 3000, "sample_points": 3000, "grid": {"activation": ["tanh"], "n": [40000]}},
    "footprint-dual": {"kind": "footprint", "seeds": 1, "n_test": 1000, "gamma": [0.1], "ternary_kernel_theory": False,
                       "feature_maps": ["gaussian_rf", "nystroem"], "grid": {"dataset": ["g"], "n": [3000], "n_features": [6000]}},
    "footprint-primal": {"kind": "footprint", "seeds": 1, "n_test": 1000, "gamma": [0.1], "ternary_kernel_theory": False,
                         "feature_maps": ["gaussian_rf", "ternary_rf"], "grid": {"dataset": ["g"], "n": [3000], "n_features": [2500]}},
    "ntk_lc": {"kind": "ntk_lc", "seeds": 1, "n": 4000, "n_test": 400, "depth": 2, "eps": [0.9], "epochs": 1,
               "ntk_samples": 16, "grid": {"activation": ["relu"], "dataset": ["g"], "width": [1024]}},
}


@pytest.mark.parametrize("name", sorted(OWN_MODEL))
def test_own_cost_models_cover_the_measured_peak_memory(tmp_path, name):
    """The cost model covers what the job really allocates: its arrays, plus the interpreter and libraries (peak RSS)."""
    from rmtbench.resources import _estimate

    config = {"sweep": "res", "seed": 3, "results": "results", "datasets": {"g": GMM},
              "experiments": [{"name": "e", **OWN_MODEL[name]}]}
    path = tmp_path / "c.json"
    path.write_text(json.dumps(config))
    sweep = load_sweep(config)
    cell = sweep.experiments["e"].cells[0]
    asked = rule_resources(sweep, "simulate", "e", cell.id)
    # The child reports the peak of its own address space, VmHWM (getrusage's ru_maxrss survives execve and
    # so may report the forked pytest process's size; RUSAGE_CHILDREN mixes in every earlier child).
    script = ("import re, sys; from pathlib import Path; from rmtbench.cli import main; rc = main(sys.argv[1:]); "
              "print('PEAK_KIB', re.search(r'VmHWM:\\s+(\\d+)', Path('/proc/self/status').read_text()).group(1)); sys.exit(rc)")
    result = subprocess.run([sys.executable, "-c", script, "simulate", "--sweep", str(path), "--experiment", "e",
                             "--cell", cell.id, "--out", str(tmp_path / "cell.zarr"), "--threads", str(asked["threads"])],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    peak_mb = int(result.stdout.split("PEAK_KIB")[-1].split()[0]) / 1024  # KiB on Linux
    assert peak_mb > 50  # a real measurement: Python with numpy and xarray loaded
    model_mb = _estimate(sweep.experiments["e"].kind, [cell], step="simulate", block_rows=1024)["memory"] / 2**20
    assert model_mb > 100, f"{name}: the sizes should make the arrays dominate ({model_mb:.0f} MB)"
    # 300 MB: Python, numpy, scipy, xarray and zarr loaded (the job's request adds OVERHEAD_MB = 600)
    assert model_mb + 300 >= peak_mb, f"{name}: the model counts {model_mb:.0f} MB of arrays, the job peaked at {peak_mb:.0f} MB"
    assert asked["mem_mb"] >= peak_mb


def test_paper_cells_with_their_own_cost_model_fit_an_ordinary_node():
    """The generic Gram model asked 369 GB for an LLN/CLT cell and 73 GB for the census footprint."""
    from conftest import ROOT

    sweep = load_sweep(ROOT / "config" / "paper.yaml", project_dir=ROOT)
    for name, limit_mb in (("lln_clt", 4000), ("ntk_lc", 4000), ("footprint_census", 16000)):
        for cell in sweep.experiments[name].cells:
            asked = rule_resources(sweep, "simulate", name, cell.id)
            assert asked["mem_mb"] < limit_mb and asked["runtime"] < 24 * 60, (name, cell.label, asked)
