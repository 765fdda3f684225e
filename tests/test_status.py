"""`python -m rmtbench status` on a half-finished sweep: cells done, running and missing per experiment.

The sweep is made half-finished for real: two cells are simulated through the CLI, a third looks like
a job in progress (a temporary store owned by a live process), a fourth like a crashed job (a
temporary store whose process is gone), the rest were never started.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

CONFIG = {
    "sweep": "half",
    "seed": 3,
    "results": "results",
    "dask": {"mode": "synchronous"},
    "datasets": {"g": {"kind": "gmm", "p_over_n": 0.5}},
    "experiments": [
        {"name": "rf", "kind": "rf_ridge", "seeds": 1, "gamma": [0.1], "n_test": 8,
         "grid": {"activation": ["relu"], "weights": ["gaussian"], "dataset": ["g"], "n": [16], "d_over_n": [0.5, 1.0, 2.0, 4.0]}},
        {"name": "rf_erf", "kind": "rf_ridge", "seeds": 1, "gamma": [0.1], "n_test": 8,
         "grid": {"activation": ["erf"], "weights": ["gaussian"], "dataset": ["g"], "n": [16], "d_over_n": [0.5, 2.0]}},
    ],
}
LINE = re.compile(r"^\s+(?P<name>\S+)\s+(?P<done>\d+) done\s+(?P<running>\d+) running\s+(?P<missing>\d+) missing\s+of\s+(?P<total>\d+)\s+store: (?P<store>.+)$")


def _rmtbench(project: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "rmtbench", *args], cwd=project, capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def _status(project: Path, capsys: pytest.CaptureFixture[str], *, subprocess_cli: bool = False) -> dict[str, dict[str, str]]:
    """Status rows by experiment, from a real ``python -m rmtbench`` or from the same CLI in-process."""
    if subprocess_cli:
        out = _rmtbench(project, "status", "sweep.yaml")
    else:  # the test runs inside the project folder (monkeypatch.chdir)
        from rmtbench.cli import main

        capsys.readouterr()
        assert main(["status", "sweep.yaml"]) == 0
        out = capsys.readouterr().out
    assert out.splitlines()[0] == "sweep 'half' in results/half/", out
    rows = {m["name"]: m.groupdict() for m in map(LINE.match, out.splitlines()[1:]) if m}
    assert len(rows) == 2, out
    return rows


def _counts(row: dict[str, str]) -> tuple[int, int, int, int]:
    return int(row["done"]), int(row["running"]), int(row["missing"]), int(row["total"])


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "sweep.yaml").write_text(yaml.safe_dump(CONFIG))
    return tmp_path


def test_status_counts_a_half_finished_sweep(project: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch):
    from rmtbench.cli import main
    from rmtbench.config import load_sweep

    monkeypatch.chdir(project)
    sweep = load_sweep(project / "sweep.yaml", project_dir=project)
    cells = sweep.experiments["rf"].cells
    before = _status(project, capsys)
    assert _counts(before["rf"]) == (0, 0, 4, 4) and before["rf"]["store"] == "not gathered yet"

    # two cells really computed through the CLI: one in a fresh process, one in this one (same argv)
    simulate = ["simulate", "--sweep", "sweep.yaml", "--experiment", "rf", "--cell"]
    _rmtbench(project, *simulate, cells[0].id, "--out", str(sweep.cell_store("rf", cells[0].id)))
    assert main([*simulate, cells[1].id, "--out", str(sweep.cell_store("rf", cells[1].id))]) == 0
    folder = project / sweep.cell_store("rf", cells[0].id).parent
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        # a store being written by a live process, and the leftover of a killed one (pid beyond pid_max)
        (folder / f"{cells[2].id}.zarr.tmp-{sleeper.pid}-1a2b3c4d").mkdir()
        (folder / f"{cells[3].id}.zarr.tmp-4999999-deadbeef").mkdir()
        rows = _status(project, capsys, subprocess_cli=True)
        assert _counts(rows["rf"]) == (2, 1, 1, 4)
        assert _counts(rows["rf_erf"]) == (0, 0, 2, 2)
        assert rows["rf"]["store"] == "not gathered yet"
    finally:
        sleeper.kill()
        sleeper.wait()
    # the writer died: its cell is missing again, not running forever
    assert _counts(_status(project, capsys)["rf"]) == (2, 0, 2, 4)

    # a partial gather: status points at the store
    assert main(["gather", "--sweep", "sweep.yaml", "--experiment", "rf", "--allow-missing", "--out", str(sweep.gathered_store("rf"))]) == 0
    rows = _status(project, capsys)
    assert rows["rf"]["store"] == "results/half/rf.zarr" and (project / rows["rf"]["store"]).is_dir()
    assert rows["rf_erf"]["store"] == "not gathered yet"


# -- progress of long cells (rmtbench.progress) ---------------------------------------------------------
def _slow(x: int) -> int:
    import time

    time.sleep(0.05)
    return x * x


def _fail(x: int) -> int:
    raise RuntimeError(f"task {x} failed")


def _graphs():
    import dask

    return [dask.delayed(_slow)(i) for i in range(5)]


def test_progress_modes(monkeypatch: pytest.MonkeyPatch):
    import io

    from rmtbench.progress import resolve_mode

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    for name in ("SLURM_JOB_ID", "PBS_JOBID", "LSB_JOBID", "JOB_ID", "RMTBENCH_PROGRESS"):
        monkeypatch.delenv(name, raising=False)
    assert resolve_mode(stream=Terminal()) == "bar"
    assert resolve_mode(stream=io.StringIO()) == "log"  # a log file, e.g. a Snakemake job's
    monkeypatch.setenv("SLURM_JOB_ID", "42")
    assert resolve_mode(stream=Terminal()) == "log"  # a batch job, even with a terminal
    monkeypatch.setenv("RMTBENCH_PROGRESS", "off")
    assert resolve_mode(stream=Terminal()) == "off"
    assert resolve_mode("bar", stream=io.StringIO()) == "bar"  # an explicit mode wins
    monkeypatch.setenv("RMTBENCH_PROGRESS", "loud")
    with pytest.raises(ValueError, match="RMTBENCH_PROGRESS"):
        resolve_mode()


def test_progress_synchronous_log_and_bar(caplog: pytest.LogCaptureFixture):
    import io
    import logging

    from rmtbench.parallel import compute as plain
    from rmtbench.progress import compute

    expected = plain(None, *_graphs())
    with caplog.at_level(logging.INFO, logger="rmtbench.progress"):
        assert compute(None, *_graphs(), label="cellA", mode="log", interval=0.0) == expected
    lines = [r.getMessage() for r in caplog.records if r.name == "rmtbench.progress"]
    assert lines[0] == "cellA: started, 5 task(s)"
    assert "cellA: 5/5 tasks done (100%)" in " ".join(lines)
    assert lines[-1].startswith("cellA: finished, 5 task(s) in ")
    bar = io.StringIO()
    assert compute(None, *_graphs(), label="cellB", mode="bar", stream=bar) == expected
    assert "\rcellB [" in bar.getvalue() and "100.0% 5/5 tasks" in bar.getvalue() and bar.getvalue().endswith("\n")


def test_progress_on_a_dask_cluster(local_client, caplog: pytest.LogCaptureFixture):
    import logging

    import dask

    from rmtbench.parallel import compute as plain
    from rmtbench.progress import compute

    with caplog.at_level(logging.INFO, logger="rmtbench.progress"):
        assert compute(local_client, *_graphs(), label="cellC", mode="log", interval=0.0) == plain(local_client, *_graphs())
        with pytest.raises(RuntimeError, match="task 3 failed"):
            compute(local_client, dask.delayed(_fail)(3), label="cellD", mode="log")
    lines = [r.getMessage() for r in caplog.records if r.name == "rmtbench.progress"]
    assert "cellC: started, 5 task(s)" in lines and any(m.startswith("cellC: finished, 5 task(s)") for m in lines)
    assert any(m.startswith("cellD: error") for m in lines)
