"""Faults and bad inputs: killed workers and jobs, malformed configs, bad data files.

Guarantees held here (see docs/reliability.md):
- a Dask worker process killed in the middle of a cell's graph is replaced by its nanny and the cell
  finishes with bitwise the same numbers;
- a job killed while writing leaves no store that reads as complete; its temporary store is ignored by
  readers and removed by the next write in that folder (only by a writer on the same host);
- malformed configs are refused before any job starts, naming the key;
- bad data files end the pipeline entry points with one line naming the file, exit status 2.
"""
from __future__ import annotations

import gzip
import os
import signal
import struct
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT, small_config
from rmtbench.config import ConfigError, load_sweep
from rmtbench.experiments.base import RunContext


# ------------------------------------------------------------------------------------------------
# 1. Worker faults
# ------------------------------------------------------------------------------------------------
def _scheduler_state(dask_scheduler):  # runs on the scheduler
    tasks = list(dask_scheduler.tasks.values())
    in_memory = sum(t.state == "memory" for t in tasks)
    busy = [t.processing_on.address for t in tasks if t.state == "processing" and t.processing_on is not None]
    return in_memory, busy, len(tasks)


def test_killed_worker_is_replaced_and_the_cell_gives_bitwise_the_same_numbers(tmp_path):
    from rmtbench.parallel import dask_client

    config = small_config()
    block = config["experiments"][0]
    block["grid"].update(n=[256], d_over_n=[8.0])  # d = 2048: four reduction units per seed, two seeds
    block["n_test"] = 64
    plan = load_sweep(config).experiments["rf"]
    cell = plan.cells[0]
    undisturbed = plan.kind.simulate(cell, RunContext(data_dir=tmp_path, client=None, block_rows=512))

    with dask_client({"mode": "local"}, threads=2) as client:
        pids = client.run(os.getpid)  # worker address -> pid of the worker process (nanny's child)
        kill: dict = {}

        def killer():
            # SIGKILL the worker that is computing a task while another task's result is held in
            # memory: the graph is in flight and the dead worker loses both running and held work.
            deadline = time.monotonic() + 120
            while "stop" not in kill and time.monotonic() < deadline:
                in_memory, busy, total = client.run_on_scheduler(_scheduler_state)
                if in_memory >= 1 and busy:
                    kill.update(pid=pids[busy[0]], in_memory=in_memory, total=total)
                    os.kill(pids[busy[0]], signal.SIGKILL)
                    return
                time.sleep(0.005)

        thread = threading.Thread(target=killer, daemon=True)
        thread.start()
        disturbed = plan.kind.simulate(cell, RunContext(data_dir=tmp_path, client=client, block_rows=512))
        kill["stop"] = True
        thread.join(5)
        assert "pid" in kill, "the graph finished before a worker could be killed mid-way"
        client.wait_for_workers(2, timeout=120)
        new_pids = set(client.run(os.getpid).values())
    assert kill["pid"] not in new_pids and len(new_pids) == 2, "the nanny did not replace the killed worker"
    for name in ("train_mse", "test_mse", "eigenvalues", "ill_conditioned"):
        assert np.array_equal(undisturbed[name].values, disturbed[name].values), name


# ------------------------------------------------------------------------------------------------
# 1b. A job killed while writing its store
# ------------------------------------------------------------------------------------------------
_STALLING_WRITER = textwrap.dedent(
    """
    import os, sys, time
    import numpy as np, xarray as xr
    from rmtbench import store

    target, ready, stall_at = sys.argv[1], sys.argv[2], sys.argv[3]
    dataset = xr.Dataset({"a": ("x", np.arange(4.0)), "b": ("x", np.ones(4))})

    def stall():
        open(ready, "w").close()  # tell the test where we are, then wait for SIGKILL
        time.sleep(600)

    if stall_at == "to_zarr":  # killed half-way through writing the chunks
        real = xr.Dataset.to_zarr
        def partial(self, tmp, **kw):
            real(self[["a"]], tmp, **kw)
            stall()
        xr.Dataset.to_zarr = partial
    else:  # killed after the data are written, before (or between) the renames
        calls = []
        real_rename = os.rename
        def rename(src, dst):
            calls.append(src)
            if len(calls) == int(stall_at):
                stall()
            real_rename(src, dst)
        os.rename = rename
    store.write_dataset(dataset, target)
    """
)


def _kill_writer_midway(target: Path, stall_at: str, tmp_path: Path) -> int:
    ready = tmp_path / f"ready-{stall_at}"
    proc = subprocess.Popen([sys.executable, "-c", _STALLING_WRITER, str(target), str(ready), stall_at])
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert proc.poll() is None, "the writer ended before reaching the stall point"
        assert time.monotonic() < deadline
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("stall_at,existing", [("to_zarr", False), ("1", False), ("2", True)],
                         ids=["mid-chunks", "before-rename", "between-renames-of-a-replacement"])
def test_job_killed_mid_write_leaves_no_store_that_reads_as_complete(tmp_path, stall_at, existing):
    import xarray as xr

    from rmtbench.store import TMP_MARK, open_dataset, remove_orphans, write_dataset

    folder = tmp_path / "cells"
    target = folder / "abc.zarr"
    if existing:
        write_dataset(xr.Dataset({"a": ("x", np.zeros(4))}), target)
    pid = _kill_writer_midway(target, stall_at, tmp_path)

    leftovers = [p for p in folder.iterdir() if TMP_MARK in p.name]
    assert leftovers and all(f"{TMP_MARK}{pid}-" in p.name for p in leftovers)
    # Neither the final path nor a leftover reads as a complete store: the cell counts as missing.
    assert not target.exists()
    with pytest.raises(FileNotFoundError):
        open_dataset(target)
    for leftover in leftovers:
        with pytest.raises(FileNotFoundError):
            open_dataset(leftover)
    # The next write in that folder (another cell) removes the orphans of the dead writer.
    write_dataset(xr.Dataset({"c": ("x", np.ones(2))}), folder / "other.zarr")
    assert not [p for p in folder.iterdir() if TMP_MARK in p.name]
    assert remove_orphans(folder) == []
    assert sorted(p.name for p in folder.iterdir()) == ["other.zarr"]


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_temporary_store_of_a_live_writer_is_left_alone(tmp_path):
    from rmtbench.store import TMP_MARK, remove_orphans, temporary_path

    live = temporary_path(tmp_path / "a.zarr")
    live.mkdir()
    assert f"{TMP_MARK}{os.getpid()}-" in live.name
    assert remove_orphans(tmp_path) == [] and live.exists()
    dead = tmp_path / live.name.replace(f"{TMP_MARK}{os.getpid()}-", f"{TMP_MARK}{_dead_pid()}-")
    dead.mkdir()
    assert remove_orphans(tmp_path) == [dead] and live.exists()


def test_a_killed_writer_that_nobody_reaped_counts_as_dead(tmp_path):
    # A SIGKILLed job whose parent died too stays a zombie until someone reaps it, forever in a
    # container without an init process; its temporary store must still count as orphaned.
    from rmtbench.store import TMP_MARK, is_orphan, temporary_path

    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        os.kill(proc.pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z":  # not reaped yet
            assert time.monotonic() < deadline
            time.sleep(0.01)
        store = tmp_path / temporary_path(tmp_path / "a.zarr").name.replace(f"{TMP_MARK}{os.getpid()}-", f"{TMP_MARK}{proc.pid}-")
        store.mkdir()
        assert is_orphan(store)
    finally:
        proc.wait()


def test_temporary_store_written_on_another_host_is_never_removed(tmp_path):
    # On a cluster, jobs on several nodes write into the same results folder. A pid means nothing on
    # another node: deleting a store another node is still writing would let that job rename a
    # half-deleted store into place. Failed before the fix (pids were checked on the local host only).
    from rmtbench.store import TMP_MARK, remove_orphans, temporary_path

    mine = temporary_path(tmp_path / "a.zarr")
    assert f"{TMP_MARK}{os.getpid()}-" in mine.name and "@" in mine.name
    foreign = tmp_path / f"b.zarr{TMP_MARK}{_dead_pid()}-1234abcd@node-0042.cluster"
    foreign.mkdir()
    assert remove_orphans(tmp_path) == []
    assert foreign.exists()


def test_a_write_that_fails_leaves_neither_store_nor_temporary(tmp_path):
    import xarray as xr

    from rmtbench.store import write_dataset

    bad = xr.Dataset({"a": ("x", np.arange(3.0))}, attrs={"not_serialisable": object()})
    with pytest.raises(Exception):
        write_dataset(bad, tmp_path / "bad.zarr")
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------
# 3. Bad configs (beyond the 30 of tests/test_config.py)
# ------------------------------------------------------------------------------------------------
def _config(mutate) -> dict:
    config = small_config()
    mutate(config)
    return config


def _grid(**values):
    return lambda c: c["experiments"][0]["grid"].update(values)


def _option(**values):
    return lambda c: c["experiments"][0].update(values)


def _dataset(**spec):
    return lambda c: c["datasets"].update(g=spec)


MORE_BAD_CONFIGS = [
    # eps outside [0, 1) in every form a weight law can take
    ("eps 1 in a law string", _grid(weights=["ternary-eps1"]), "experiments[0].grid.weights[0]"),
    ("eps above 1 in a law string", _grid(weights=["ternary-eps1.5"]), "experiments[0].grid.weights[0]"),
    ("negative eps in a law string", _grid(weights=["ternary-eps-0.2"]), "[0, 1)"),
    ("nan eps in a law string", _grid(weights=["ternary-epsnan"]), "experiments[0].grid.weights[0]"),
    ("nan eps in a law mapping", _grid(weights=[{"law": "ternary", "eps": float("nan")}]), "experiments[0].grid.weights[0]"),
    ("text eps in a law mapping", _grid(weights=[{"law": "ternary", "eps": "most"}]), "experiments[0].grid.weights[0]"),
    ("law mapping without a law", _grid(weights=[{"eps": 0.5}]), "experiments[0].grid.weights[0]"),
    ("student-t without finite variance", _grid(weights=["student_t-dof2"]), "experiments[0].grid.weights[0]"),
    # data sets whose classes are not available
    ("mnist class 10", _dataset(kind="mnist", classes=[1, 10]), "datasets.g.classes[1]"),
    ("cifar10 class 10", _dataset(kind="cifar10", classes=[0, 10]), "datasets.g.classes[1]"),
    ("adult class 2", _dataset(kind="adult", classes=[0, 2]), "datasets.g.classes[1]"),
    ("repeated class", _dataset(kind="mnist", classes=[3, 3]), "datasets.g.classes"),
    ("no class", _dataset(kind="digits", classes=[]), "datasets.g.classes"),
    ("unknown data-set key", _dataset(kind="gmm", p_over_nn=0.5), "p_over_nn"),
    # data-set specs the schema cannot fault, refused by the kinds' size checks (before: a traceback
    # in the simulate job)
    ("both p and p_over_n", _dataset(kind="gmm", p=24, p_over_n=0.5), "datasets.g"),
    ("neither p nor p_over_n", _dataset(kind="sphere"), "datasets.g"),
    ("proportions not summing to 1", _dataset(kind="gmm", p_over_n=0.5, proportions=[0.3, 0.3]), "datasets.g"),
    ("three classes, two covariance shifts", _dataset(kind="gmm", p_over_n=0.5, classes=3), "datasets.g"),
    ("more classes than dimensions", _dataset(kind="gmm", p=2, classes=3, cov_shift=[0, 0, 0]), "datasets.g"),
    ("a non-positive covariance", _dataset(kind="gmm", p=4, cov_shift=[0, -4]), "datasets.g"),
    # sizes, seeds and options
    ("n_test zero", _option(n_test=0), "experiments[0].n_test"),
    ("negative root seed", lambda c: c.update(seed=-1), "seed"),
    ("too few quadrature nodes", _option(kernel_nodes=4), "experiments[0].kernel_nodes"),
    ("negative d_over_n", _grid(d_over_n=[-1.0]), "experiments[0].grid.d_over_n[0]"),
    ("axis given as a scalar", _grid(activation="relu"), "experiments[0].grid.activation"),
    ("activation written as code", _grid(activation=["leaky_relu(a=__import__('os').getpid(),b=1)"]), "experiments[0].grid.activation[0]"),
    ("non-finite activation parameter", _grid(activation=[{"family": "clip", "c": float("inf")}]), "experiments[0].grid.activation[0]"),
    ("zero dask workers", lambda c: c.update(dask={"workers": 0}), "dask.workers"),
    ("unknown dask mode", lambda c: c.update(dask={"mode": "mpi"}), "dask.mode"),
    ("'..' inside the results path", lambda c: c.update(results="a/../../x"), "results"),
]


@pytest.mark.parametrize("mutate,needle", [pytest.param(m, t, id=i) for i, m, t in MORE_BAD_CONFIGS])
def test_more_malformed_configs_are_rejected_naming_the_key(mutate, needle):
    with pytest.raises(ConfigError) as info:
        load_sweep(_config(mutate))
    assert needle in str(info.value)
    # and says what is wrong or allowed, not just the key ("'law'" alone failed this before the fix)
    assert len(str(info.value).split("': ", 1)[-1]) >= 20, str(info.value)


NON_FINITE = [
    ("infinite gamma", _option(gamma=[float("inf")]), "experiments[0].gamma[0]"),
    ("nan gamma", _option(gamma=[0.1, float("nan")]), "experiments[0].gamma[1]"),
    ("infinite d_over_n", _grid(d_over_n=[float("inf")]), "experiments[0].grid.d_over_n[0]"),
    ("nan data-set parameter", lambda c: c["datasets"]["g"].update(p_over_n=float("nan")), "datasets.g.p_over_n"),
]


@pytest.mark.parametrize("mutate,needle", [pytest.param(m, t, id=i) for i, m, t in NON_FINITE])
def test_non_finite_numbers_are_rejected_naming_the_key(mutate, needle):
    with pytest.raises(ConfigError) as info:
        load_sweep(_config(mutate))
    assert needle in str(info.value)


# ------------------------------------------------------------------------------------------------
# 4. Bad data through the pipeline entry points
# ------------------------------------------------------------------------------------------------
def _idx_bytes(arr: np.ndarray) -> bytes:
    arr = np.asarray(arr, dtype=np.uint8)
    return bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


def _write_mnist(folder: Path, *, n_train: int = 100, n_test: int = 50, labels_mod: int = 10) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for part, count in (("train", n_train), ("t10k", n_test)):
        labels = np.arange(count) % labels_mod
        images = rng.integers(0, 256, size=(count, 28, 28), dtype=np.uint8)
        (folder / f"{part}-images-idx3-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(images)))
        (folder / f"{part}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx_bytes(labels)))


def _bad_data_project(tmp_path: Path, spec: dict, *, n: int = 16) -> tuple[Path, str]:
    config = {
        "sweep": "bad", "seed": 3, "results": "results", "data_dir": "data", "dask": {"mode": "synchronous"},
        "datasets": {"m": spec},
        "experiments": [{
            "name": "rf", "kind": "rf_ridge", "seeds": 1, "gamma": [0.1], "n_test": 8,
            "grid": {"activation": ["relu"], "weights": ["gaussian"], "dataset": ["m"], "n": [n], "d_over_n": [1.0]},
        }],
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    cell = load_sweep(tmp_path / "config.yaml", project_dir=tmp_path).experiments["rf"].cells[0]
    return tmp_path, cell.id


def _truncate(path: Path) -> None:
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-5]))


BAD_DATA = [
    # (id, spec, how to spoil data/mnist or data/adult, n, file the message must name)
    ("missing file", {"kind": "mnist"}, lambda d: (d / "mnist/train-images-idx3-ubyte.gz").unlink(), 16, "train-images-idx3-ubyte"),
    ("truncated IDX", {"kind": "mnist"}, lambda d: _truncate(d / "mnist/t10k-labels-idx1-ubyte.gz"), 16, "t10k-labels-idx1-ubyte.gz"),
    ("corrupt gzip", {"kind": "mnist"}, lambda d: (d / "mnist/train-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b" + bytes(40)), 16, "train-labels-idx1-ubyte.gz"),
    ("bad IDX magic", {"kind": "mnist"}, lambda d: (d / "mnist/t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x12\x34\x56\x78" + bytes(64))), 16, "t10k-images-idx3-ubyte.gz"),
    ("wrong checksum", {"kind": "mnist", "sha256": {"train-images-idx3-ubyte.gz": "0" * 64}}, lambda d: None, 16, "train-images-idx3-ubyte.gz"),
    ("too few samples of a class", {"kind": "mnist"}, lambda d: None, 64, "train-labels-idx1-ubyte.gz"),
    ("class absent from the files", {"kind": "mnist", "classes": [1, 7]}, lambda d: _write_mnist(d / "mnist", labels_mod=5), 16, "train-labels-idx1-ubyte.gz"),
    ("corrupt CSV", {"kind": "adult"}, lambda d: _write_bad_adult(d / "adult"), 16, "adult.data"),
]


def _write_bad_adult(folder: Path) -> None:
    folder.mkdir(parents=True)
    good = "39, State-gov, 77516, Bachelors, 13, Never-married, Adm-clerical, Not-in-family, White, Male, 2174, 0, 40, United-States, <=50K"
    (folder / "adult.data").write_text(good + "\n" + good.replace("39,", "thirty-nine,") + "\n")
    (folder / "adult.test").write_text("|1x3 Cross validator\n" + good + ".\n")


@pytest.mark.parametrize("spec,spoil,n,needle", [pytest.param(*case[1:], id=case[0]) for case in BAD_DATA])
def test_bad_data_ends_simulate_with_one_line_naming_the_file(tmp_path, monkeypatch, capsys, spec, spoil, n, needle):
    from rmtbench.cli import main

    project, cell_id = _bad_data_project(tmp_path, spec, n=n)
    _write_mnist(project / "data" / "mnist")
    spoil(project / "data")
    monkeypatch.chdir(project)
    out = f"results/bad/cells/rf/{cell_id}.zarr"
    status = main(["simulate", "--sweep", "config.yaml", "--experiment", "rf", "--cell", cell_id, "--out", out])
    stderr = capsys.readouterr().err
    errors = [line for line in stderr.splitlines() if line.startswith("rmtbench: error:")]
    assert status == 2, stderr
    assert len(errors) == 1 and needle in errors[0], stderr
    assert "Traceback" not in stderr
    assert not (project / "results").exists() or not any((project / "results").rglob("*.zarr*"))


def test_bad_data_in_a_fresh_process_and_in_the_theory_step(tmp_path):
    project, cell_id = _bad_data_project(tmp_path, {"kind": "mnist"})
    _write_mnist(project / "data" / "mnist")
    _truncate(project / "data" / "mnist" / "train-images-idx3-ubyte.gz")
    key = next(iter(load_sweep(project / "config.yaml", project_dir=project).experiments["rf"].theory_groups()))
    for verb, option in (("simulate", ["--cell", cell_id]), ("theory", ["--key", key])):
        result = subprocess.run(
            [sys.executable, "-m", "rmtbench", verb, "--sweep", "config.yaml", "--experiment", "rf", *option,
             "--out", f"results/bad/{verb}.zarr"], cwd=project, capture_output=True, text=True, timeout=300,
        )
        assert result.returncode == 2, result.stderr
        assert "Traceback" not in result.stderr
        last = result.stderr.strip().splitlines()[-1]
        assert last.startswith("rmtbench: error:") and "train-images-idx3-ubyte.gz" in last and "truncated" in last
        assert not (project / "results").exists()


# ------------------------------------------------------------------------------------------------
# 3b. A bad config stops Snakemake before any job is planned
# ------------------------------------------------------------------------------------------------
@pytest.mark.workflow
def test_snakemake_refuses_a_bad_config_before_any_job(tmp_path):
    import shutil

    for item in ("Snakefile", "workflow", "profiles"):
        src = ROOT / item
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / item)
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "config.yaml").write_text(yaml.safe_dump(_config(_grid(weights=["ternary-eps1.5"]))))
    result = subprocess.run([sys.executable, "-m", "snakemake", "--profile", "profiles/default", "--cores", "1"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=300)
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "experiments[0].grid.weights[0]" in output and "[0, 1)" in output
    assert "Traceback" not in output
    assert not (tmp_path / "results").exists()
