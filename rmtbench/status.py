"""What is done, running and missing in a sweep, read from the results folder alone."""
from __future__ import annotations

from typing import Any

from rmtbench.store import TMP_MARK, is_orphan


def sweep_status(sweep: Any) -> list[str]:
    """One line per experiment: cells done / running / missing, and where the gathered store is."""
    lines = [f"sweep {sweep.name!r} in {sweep.out}/"]
    root = sweep.project_dir
    for name, plan in sweep.experiments.items():
        folder = root / sweep.cell_store(name, "x").parent
        running_ids = set()
        if folder.is_dir():
            for entry in folder.iterdir():
                if TMP_MARK in entry.name and not is_orphan(entry):  # a live writer, on any host
                    running_ids.add(entry.name.split(".zarr", 1)[0])
        done = sum((root / sweep.cell_store(name, c.id)).is_dir() for c in plan.cells)
        running = sum(c.id in running_ids for c in plan.cells)
        missing = len(plan.cells) - done - running
        gathered = root / sweep.gathered_store(name)
        where = str(sweep.gathered_store(name)) if gathered.is_dir() else "not gathered yet"
        lines.append(f"  {name:<24} {done:>5} done  {running:>4} running  {missing:>5} missing  of {len(plan.cells):>5}   store: {where}")
    return lines
