"""Interrupted sweeps: SIGKILL Snakemake midway, rerun, and nothing finished is lost or recomputed.

Snakemake runs for real on a six-cell sweep in a temporary copy of the project. The whole process
group is killed once Snakemake has registered some (not all) cells as finished; ``rmtbench status``
and ``gather`` then describe the partial sweep, the directory is unlocked (a SIGKILLed Snakemake cannot
release its lock) and the sweep is rerun. The final gathered store is compared with one computed
without interruption, in process, on a Dask LocalCluster with another block size.
``gather --allow-missing`` on partial sweeps is tested on fixed sets of finished cells.
"""
from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT

CONFIG = {
    "sweep": "resume", "seed": 11, "results": "results", "dask": {"mode": "synchronous"},
    "datasets": {"g": {"kind": "gmm", "p_over_n": 0.5}},
    "experiments": [{
        "name": "rf", "kind": "rf_ridge", "seeds": 2, "gamma": [0.1, 0.001], "n_test": 24,
        "grid": {"activation": ["relu"], "weights": ["gaussian"], "dataset": ["g"], "n": [48],
                 "d_over_n": [0.25, 0.5, 1.0, 1.5, 2.0, 3.0]},
    }],
}
TARGET = "results/resume/rf.zarr"
CELLS = Path("results/resume/cells/rf")


def _project(root: Path) -> Path:
    root.mkdir()
    for item in ("Snakefile", "workflow", "profiles"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, root / item)
    (root / "config").mkdir()
    (root / "config" / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    return root


def _snakemake(project: Path, *args: str, **kwargs):
    return [sys.executable, "-m", "snakemake", "--profile", "profiles/default", "--cores", "2", *args], dict(cwd=project, **kwargs)


def _complete_stores(project: Path) -> dict[str, tuple[int, int]]:
    """Cell id -> (inode, mtime_ns) of every complete cell store."""
    folder = project / CELLS
    if not folder.is_dir():
        return {}
    stores = {}
    for entry in folder.iterdir():
        if entry.name.endswith(".zarr"):
            st = entry.stat()
            stores[entry.name[: -len(".zarr")]] = (st.st_ino, st.st_mtime_ns)
    return stores


def _marked_incomplete(project: Path) -> set[str]:
    """Cells whose job Snakemake has started but not (yet) registered as finished."""
    folder = project / ".snakemake" / "incomplete"  # one file per output, named urlsafe-base64(path)
    cells = set()
    for marker in folder.iterdir() if folder.is_dir() else []:
        try:
            path = base64.urlsafe_b64decode(marker.name).decode()
        except (ValueError, UnicodeDecodeError):
            continue
        if path.startswith(str(CELLS)) and path.endswith(".zarr"):
            cells.add(Path(path).name[: -len(".zarr")])
    return cells


def _kill_group_and_stragglers(proc: subprocess.Popen, project: Path) -> None:
    import psutil

    group = [p for p in psutil.process_iter(["pid"]) if _in_group(p, proc.pid)]
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    for other in psutil.process_iter(["pid", "cwd"]):  # anything of ours that left the group
        try:
            if other.info["cwd"] == str(project) and other.pid != os.getpid():
                other.kill()
                group.append(other)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            pass
    psutil.wait_procs(group, timeout=10)  # SIGKILL is delivered asynchronously


def _in_group(process, pgid: int) -> bool:
    try:
        return os.getpgid(process.pid) == pgid
    except OSError:
        return False


def _reference(tmp: Path, client) -> "xr.Dataset":
    """The same sweep computed without interruption, in process, on a LocalCluster (2 processes)."""
    from rmtbench.config import load_sweep
    from rmtbench.experiments.base import RunContext
    from rmtbench.gather import gather_experiment
    from rmtbench.store import write_dataset

    sweep = load_sweep(CONFIG, project_dir=tmp)
    plan = sweep.experiments["rf"]
    ctx = RunContext(data_dir=sweep.data_dir, client=client, block_rows=1536)
    for cell in plan.cells:
        write_dataset(plan.kind.simulate(cell, ctx), tmp / sweep.cell_store("rf", cell.id))
    for key, cells in plan.theory_groups().items():
        write_dataset(plan.kind.theory(cells, RunContext(data_dir=sweep.data_dir)), tmp / sweep.theory_store("rf", key))
    return gather_experiment(sweep, "rf")


@pytest.mark.workflow
def test_killed_sweep_resumes_without_recomputing_finished_cells(tmp_path, monkeypatch, capsys, local_client):
    import xarray as xr

    from rmtbench.cli import main
    from rmtbench.config import load_sweep
    from rmtbench.store import TMP_MARK, open_dataset

    project = _project(tmp_path / "project")
    cells = load_sweep(CONFIG, project_dir=project).experiments["rf"].cells
    labels = {c.id: c.label for c in cells}

    # -- run, and SIGKILL the whole process group once some but not all cells are stored -----------
    command, options = _snakemake(project, TARGET)
    with open(tmp_path / "first.log", "w") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, **options)
        deadline = time.monotonic() + 400
        # wait until Snakemake has registered two cells as finished (their incomplete marker is gone)
        while len(set(_complete_stores(project)) - _marked_incomplete(project)) < 2:
            assert proc.poll() is None, (tmp_path / "first.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "no cell finished in time"
            time.sleep(0.02)
        _kill_group_and_stragglers(proc, project)
    before = _complete_stores(project)
    in_flight = _marked_incomplete(project)
    missing = set(labels) - set(before)
    assert 2 <= len(before) < len(cells), f"{len(before)} of {len(cells)} cells done at the kill"

    # -- the partial sweep: status counts it, gather names what is missing -------------------------
    monkeypatch.chdir(project)
    capsys.readouterr()
    assert main(["status", "config/config.yaml"]) == 0
    status = capsys.readouterr().out
    assert re.search(rf"\brf\s+{len(before)} done\s+0 running\s+{len(missing)} missing\s+of\s+6\b", status), status
    assert main(["gather", "--sweep", "config/config.yaml", "--experiment", "rf", "--out", "results/resume/partial.zarr"]) == 2
    assert "has no store at" in capsys.readouterr().err
    monkeypatch.chdir(tmp_path)

    # -- rerun: a SIGKILLed Snakemake leaves its lock, so unlock first (docs/reliability.md) ---------
    command, options = _snakemake(project, "--unlock", TARGET)
    assert subprocess.run(command, capture_output=True, text=True, timeout=300, **options).returncode == 0
    command, options = _snakemake(project, TARGET)
    rerun = subprocess.run(command, capture_output=True, text=True, timeout=600, **options)
    output = rerun.stdout + rerun.stderr
    assert rerun.returncode == 0, output[-4000:]
    recomputed = set(re.findall(r"wildcards: experiment=rf, cell=([0-9a-f]{12})", output))

    # every missing cell was computed; a stored cell only if its job was still registered as running
    # (killed between the store's rename and Snakemake noticing the job's end)
    print(f"at the kill: {len(before)} of {len(cells)} cells stored, {len(in_flight & set(before))} of them "
          f"still registered as running; the rerun computed {len(recomputed)} cell(s)")
    assert missing <= recomputed <= missing | (in_flight & set(before)), (missing, recomputed, in_flight)
    assert len(set(before) - recomputed) >= 2, "no finished cell was left alone: the check would be vacuous"
    after = _complete_stores(project)
    assert set(after) == set(labels)
    for cell_id, stamp in before.items():
        if cell_id not in recomputed:
            assert after[cell_id] == stamp, f"finished cell {labels[cell_id]} was rewritten"
    assert not [p for p in (project / CELLS).iterdir() if TMP_MARK in p.name]

    # -- the final store equals an uninterrupted computation, bit for bit ---------------------------
    resumed = open_dataset(project / TARGET)
    reference = _reference(tmp_path / "reference", local_client)
    assert set(resumed.data_vars) == set(reference.data_vars) and set(resumed.coords) == set(reference.coords)
    for name in list(reference.data_vars) + list(reference.coords):
        a, b = resumed[name], reference[name]
        assert a.dims == b.dims, name
        if a.dtype.kind == "f":
            assert np.array_equal(a.values, b.values, equal_nan=True), name
        else:
            assert np.array_equal(a.values, b.values), name
    xr.testing.assert_identical(resumed.drop_attrs(), reference.drop_attrs())
    volatile = {"git_revision"}  # other people may commit between the two computations
    assert {k: v for k, v in resumed.attrs.items() if k not in volatile} == {k: v for k, v in reference.attrs.items() if k not in volatile}


# ------------------------------------------------------------------------------------------------
# gather --allow-missing on a partial sweep
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def computed():
    """Every cell and theory dataset of CONFIG, computed once (synchronously)."""
    from rmtbench.config import load_sweep
    from rmtbench.experiments.base import RunContext

    plan = load_sweep(CONFIG).experiments["rf"]
    ctx = RunContext(data_dir=Path("."))
    cells = {c.id: plan.kind.simulate(c, ctx) for c in plan.cells}
    theory = {key: plan.kind.theory(group, ctx) for key, group in plan.theory_groups().items()}
    return cells, theory


@pytest.mark.parametrize("done", [
    pytest.param((3, 4, 5), id="last-cells-done"),
    pytest.param((0, 2, 4), id="first-cell-done"),
])
def test_gather_allow_missing_lists_the_missing_cells_of_a_partial_sweep(tmp_path, monkeypatch, capsys, computed, done):
    from rmtbench.cli import main
    from rmtbench.config import load_sweep
    from rmtbench.store import decode_attr, open_dataset, write_dataset

    (tmp_path / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    sweep = load_sweep(CONFIG, project_dir=tmp_path)
    cells = sweep.experiments["rf"].cells
    simulated, theory = computed
    for index in done:
        write_dataset(simulated[cells[index].id], tmp_path / sweep.cell_store("rf", cells[index].id))
    for key, dataset in theory.items():
        write_dataset(dataset, tmp_path / sweep.theory_store("rf", key))
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    status = main(["gather", "--sweep", "config.yaml", "--experiment", "rf", "--out", "results/partial.zarr", "--allow-missing"])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    missing = [c for i, c in enumerate(cells) if i not in done]
    assert captured.out.strip() == f"{len(missing)} missing in rf: " + ", ".join(c.label for c in missing)
    gathered = open_dataset("results/partial.zarr")
    assert [m["id"] for m in decode_attr(gathered, "missing_cells")] == [c.id for c in missing]
    for index, cell in enumerate(cells):
        values = gathered["train_mse"].sel(d_over_n=cell.point["d_over_n"]).values
        flags = gathered["ill_conditioned"].sel(d_over_n=cell.point["d_over_n"]).values
        if index in done:
            assert np.array_equal(values.ravel(), simulated[cell.id]["train_mse"].values.ravel())
            assert np.array_equal(flags.ravel(), simulated[cell.id]["ill_conditioned"].values.ravel())
        else:  # unknown, not "ill-conditioned" (a NaN cast to a boolean would read True)
            assert np.isnan(values).all()
            assert np.isnan(flags.astype(float)).all(), flags
    assert np.isfinite(gathered["test_mse_theory"].values).all()  # the theory is there for every cell
