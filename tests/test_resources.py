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
