"""Snakemake for real: a tiny sweep through `rmtbench run`, dry runs, and data export."""
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT, small_config

pytestmark = pytest.mark.workflow


def _project(tmp_path: Path, config: dict) -> Path:
    """A temporary copy of the workflow files with ``config`` as config/config.yaml."""
    for item in ("Snakefile", "workflow", "profiles"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / item)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def _run(args, cwd, timeout=600):
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def finished_sweep(tmp_path_factory):
    project = _project(tmp_path_factory.mktemp("sweep"), small_config())
    result = _run(["rmtbench", "run", "config/config.yaml", "--cores", "2"], project)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return project


def test_run_writes_gathered_store_table_and_figures(finished_sweep):
    from rmtbench.store import open_dataset

    out = finished_sweep / "results" / "unit"
    store = open_dataset(out / "rf.zarr")
    assert set(store["train_mse"].dims) == {"activation", "weights", "dataset", "n", "d_over_n", "seed", "gamma"}
    assert np.isfinite(store["test_mse_theory"].values).all()
    assert store.attrs["git_revision"]
    assert store["train_mse"].attrs["long_name"] == "training MSE"  # the variables keep their descriptions
    import pandas as pd

    table = pd.read_csv(out / "tables" / "rf.csv")
    mse_rows = table[table.quantity.isin(["train_mse", "test_mse"])]
    assert len(mse_rows) == 2 * 2  # train/test x 2 widths x 1 gamma
    assert mse_rows.rel_error.abs().max() < 0.5  # tiny n: only a sanity bound here
    figures = sorted(p.name for p in (out / "figures" / "rf").glob("*.png"))
    assert "double_descent-g-gaussian-n64.png" in figures
    page = (out / "snakemake-report.html").read_text()
    assert len(page) > 10_000
    # every figure's caption in the Snakemake report names the theory's source, the grid, the data and the seeds
    assert page.count("LLC18 (seed eq. 9; formula sheet sec. 2)") == len(figures)
    assert page.count("Root seed: 7.") == len(figures) and "seeds: 2" in page and "n_test = 32" in page


def test_second_run_has_nothing_to_do(finished_sweep):
    result = _run(["snakemake", "--profile", "profiles/default", "-n"], finished_sweep)
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


def test_export_data_reproduces_the_cell_data(finished_sweep):
    from rmtbench.store import decode_attr, open_dataset

    store = open_dataset(finished_sweep / "results/unit/rf.zarr")
    cell_id = next(iter(decode_attr(store, "cells")))
    out = finished_sweep / "cell.npz"
    result = _run(["rmtbench", "export-data", "--store", "results/unit/rf.zarr", "--cell", cell_id, "--out", str(out)], finished_sweep)
    assert result.returncode == 0, result.stderr
    data = np.load(out)
    assert data["X_train"].shape == (32, 64) and data["X_test"].shape == (32, 32)
    assert set(np.unique(data["y_train"])) == {-1.0, 1.0}

    # The exported arrays reproduce the stored MSEs of seed 0 by the plain ridge formula (Phi formed whole).
    from rmtbench.activations import get_activation
    from rmtbench.config import load_sweep
    from rmtbench.experiments.common import data_key, width
    from rmtbench.weights import weight_law, weight_rows

    sweep = load_sweep(decode_attr(store, "config"), project_dir=finished_sweep)
    cell = sweep.experiments["rf"].cell(cell_id)
    law, d, n = weight_law(cell["weights"]), width(cell), 64
    W = weight_rows(law, root_seed=cell.root_seed, key=("rf", data_key(cell), law.label, 0), start=0, stop=d, columns=32)
    phi = get_activation(cell["activation"]).phi
    Phi, Phi_test = phi(W @ data["X_train"]), phi(W @ data["X_test"])
    gamma = float(store["gamma"][0])
    alpha = np.linalg.solve(Phi.T @ Phi / n + gamma * np.eye(n), data["y_train"])
    train = np.mean((data["y_train"] - Phi.T @ Phi @ alpha / n) ** 2)
    test = np.mean((data["y_test"] - Phi_test.T @ Phi @ alpha / n) ** 2)
    stored = store.sel({axis: cell.point[axis] for axis in cell.axes}).isel(seed=0, gamma=0)
    np.testing.assert_allclose([train, test], [float(stored["train_mse"]), float(stored["test_mse"])], rtol=1e-9)


def test_an_edited_config_is_completed_in_one_run_without_recomputing_finished_cells(tmp_path):
    """Adding a width: the next run computes the new cell and the group's theory anew, and nothing else.

    Failed before the fix: the rule that rewrote sweep.json reran for its changed params and Snakemake
    scheduled nothing downstream of it (the new cell waited for a second run), and then the theory
    store, named by its key alone, lacked the new width and gather failed.
    """
    from rmtbench.config import load_sweep
    from rmtbench.store import open_dataset

    config = small_config()
    config["dask"] = {"mode": "synchronous"}
    project = _project(tmp_path, config)
    first = _run(["snakemake", "--profile", "profiles/default", "--cores", "2"], project)
    assert first.returncode == 0, first.stderr[-3000:]
    cells = project / "results/unit/cells/rf"
    before = {p.name: p.stat().st_ino for p in cells.iterdir()}

    config["experiments"][0]["grid"]["d_over_n"] = [0.5, 1.0, 2.0]
    (project / "config" / "config.yaml").write_text(yaml.safe_dump(config))
    second = _run(["snakemake", "--profile", "profiles/default", "--cores", "2"], project)
    assert second.returncode == 0, second.stderr[-3000:]
    log = second.stdout + second.stderr
    assert log.count("rule simulate:") == 1 and log.count("rule theory:") == 1, log[-4000:]
    after = {p.name: p.stat().st_ino for p in cells.iterdir()}
    assert len(after) == 3 and all(after[name] == inode for name, inode in before.items())  # finished cells untouched
    gathered = open_dataset(project / "results/unit/rf.zarr")
    assert list(gathered["d_over_n"].values) == [0.5, 1.0, 2.0]
    assert np.isfinite(gathered["test_mse"].values).all() and np.isfinite(gathered["test_mse_theory"].values).all()
    sweep = load_sweep(project / "results/unit/sweep.json", project_dir=project)
    assert sorted(sweep.experiments["rf"].cells[i].point["d_over_n"] for i in range(3)) == [0.5, 1.0, 2.0]
    third = _run(["snakemake", "--profile", "profiles/default", "-n"], project)
    assert "Nothing to be done" in third.stdout + third.stderr


def test_dry_run_of_the_default_config_is_fast():
    start = time.perf_counter()
    result = _run(["snakemake", "--profile", "profiles/default", "-n", "--quiet"], ROOT)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0, result.stderr[-2000:]
    print(f"dry run took {elapsed:.1f} s")
    assert elapsed < 20  # the 5 s target is measured in bench/, on a quiet machine


def test_bad_config_stops_snakemake_before_any_job(tmp_path):
    config = small_config()
    config["experiments"][0]["grid"]["activation"] = ["rleu"]
    project = _project(tmp_path, config)
    result = _run(["snakemake", "--profile", "profiles/default", "--cores", "1"], project)
    assert result.returncode != 0
    assert "experiments[0].grid.activation[0]" in result.stderr + result.stdout
    assert not (project / "results").exists()


def _every_kind_config() -> dict:
    """One tiny block of every experiment kind, on synthetic data only."""
    gmm = {"kind": "gmm", "p_over_n": 0.5, "classes": 2, "mean_scale": 2.5, "cov_shift": [0, 4]}
    return {
        "sweep": "kinds", "seed": 5, "results": "results",
        "datasets": {"g": gmm, "s": {"kind": "sphere", "p_over_n": 0.5},
                     "s3": {"kind": "sphere", "p": 3, "radius": 3.0, "noise": 0.0}},
        "experiments": [
            {"name": "rf", "kind": "rf_ridge", "seeds": 2, "gamma": [0.1], "n_test": 32,
             "grid": {"activation": ["relu"], "weights": ["gaussian"], "dataset": ["g"], "n": [48], "d_over_n": [2.0]}},
            {"name": "ck", "kind": "ck_gmm", "seeds": 2,
             "grid": {"activation": ["relu"], "weights": ["ternary-eps0.9"], "dataset": ["g"], "n": [48], "d_over_n": [16]}},
            {"name": "deep", "kind": "deep_ck", "seeds": 2, "ratio_depth": 3, "ratio_activations": ["relu"],
             "grid": {"activations": [["relu", "erf"]], "weights": ["gaussian"], "dataset": ["g"], "n": [48], "d_over_n": [2.0]}},
            {"name": "deq", "kind": "deq", "seeds": 2,
             "grid": {"activation": ["tanh"], "dataset": ["g"], "n": [48], "sigma_a2": [0.2], "d_over_n": [1.0]}},
            {"name": "lin", "kind": "kernel_linearization", "seeds": 2, "density_points": 32,
             "grid": {"activation": ["relu"], "dataset": ["s"], "n": [48], "d_over_n": ["inf", 2]}},
            {"name": "reg", "kind": "regimes", "draws": 200, "grid": {"activation": ["tanh"], "n": [50, 200]}},
            {"name": "scal", "kind": "scaling", "seeds": 2, "gamma": [1e-6],
             "grid": {"activation": ["relu"], "dataset": ["s3"], "d_over_n": [0.25], "n": [48, 96]}},
            {"name": "ntk", "kind": "ntk_lc", "seeds": 1, "n": 200, "n_test": 100, "depth": 2, "eps": [0.0, 0.9],
             "epochs": 2, "ntk_samples": 16, "grid": {"activation": ["relu"], "dataset": ["g"], "width": [32]}},
            {"name": "foot", "kind": "footprint", "seeds": 1, "n_test": 64, "gamma": [1.0, 0.1],
             "feature_maps": ["gaussian_rf", "ternary_rf", "nystroem", "lp_rff-b8"], "ternary_kernel_theory": False,
             "grid": {"dataset": ["g"], "n": [64], "n_features": [32, 128]}},
        ],
    }


def test_every_experiment_kind_runs_through_snakemake(tmp_path):
    from rmtbench.experiments import experiment_kinds
    from rmtbench.store import open_dataset

    config = _every_kind_config()
    assert {e["kind"] for e in config["experiments"]} == set(experiment_kinds()), "a new kind needs a block here"
    project = _project(tmp_path, config)
    result = _run(["rmtbench", "run", "config/config.yaml", "--cores", "2"], project, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = project / "results" / "kinds"
    report = (out / "report.html").read_text()
    for exp in config["experiments"]:
        store = open_dataset(out / f"{exp['name']}.zarr")
        assert store.data_vars, exp["name"]
        assert (out / "tables" / f"{exp['name']}.csv").stat().st_size > 0, exp["name"]
        assert list((out / "figures" / exp["name"]).glob("*.png")), exp["name"]
        assert f"id='exp-{exp['name']}'" in report, exp["name"]


def test_a_given_configfile_replaces_the_default_one(tmp_path):
    """--configfile is the whole config: nothing of config/config.yaml is merged into it.

    Failed before the fix: the Snakefile's `configfile:` directive made Snakemake merge the user's file
    into the laptop config. A data set named like a laptop one gained the laptop's keys (here gmm2 got
    p_over_n beside p, which the data-set checks reject), and the pipeline's cells differed from those
    `rmtbench validate` reported.
    """
    from rmtbench.config import load_sweep

    project = _project(tmp_path, small_config())
    shutil.copy(ROOT / "config" / "config.yaml", project / "config" / "config.yaml")  # the real laptop config
    mine = small_config()
    mine["datasets"] = {"gmm2": {"kind": "gmm", "p": 24, "classes": 2}}
    mine["experiments"][0]["grid"]["dataset"] = ["gmm2"]
    (project / "mine.yaml").write_text(yaml.safe_dump(mine))
    result = _run(["snakemake", "--profile", "profiles/default", "--cores", "1", "-n", "--configfile", "mine.yaml"], project)
    assert result.returncode == 0, result.stderr[-3000:]
    used = load_sweep(project / "results/unit/sweep.json", project_dir=project)
    assert used.config == load_sweep(project / "mine.yaml", project_dir=project).config
    assert set(used.config["datasets"]) == {"gmm2"}
    assert used.config["datasets"]["gmm2"]["p"] == 24 and used.config["datasets"]["gmm2"].get("p_over_n") is None

    # Without --configfile, config/config.yaml is the sweep, as before.
    default = _run(["snakemake", "--profile", "profiles/default", "--cores", "1", "-n"], project)
    assert default.returncode == 0, default.stderr[-3000:]
    assert (project / "results" / "laptop" / "sweep.json").is_file()
