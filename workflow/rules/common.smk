# Helpers shared by the rules: the validated sweep, output paths, and the command that runs the library.
import json
import shlex
import sys
from pathlib import Path

from rmtbench.config import ConfigError, load_sweep
from rmtbench.store import write_text_atomic

try:
    SWEEP = load_sweep(config, project_dir=Path.cwd())
except ConfigError as exc:
    sys.stderr.write(f"rmtbench: {exc}\n")
    sys.exit(2)

OUT = str(SWEEP.out)
SWEEP_JSON = f"{OUT}/sweep.json"
RMTBENCH = f"{shlex.quote(sys.executable)} -m rmtbench"


wildcard_constraints:
    experiment="[A-Za-z0-9][A-Za-z0-9_-]*",
    cell="[0-9a-f]{12}",
    key="[0-9a-f]{12}",
    members="[0-9a-f]{12}",


def cell_stores(experiment):
    plan = SWEEP.experiments[experiment]
    return [str(SWEEP.cell_store(experiment, c.id)) for c in plan.cells]


def theory_stores(experiment):
    plan = SWEEP.experiments[experiment]
    return [str(SWEEP.theory_store(experiment, key)) for key in plan.theory_groups()]


def all_targets():
    targets = []
    for name in SWEEP.experiments:
        targets += [str(SWEEP.gathered_store(name)), str(SWEEP.table(name)), str(SWEEP.figures_dir(name))]
    targets.append(f"{OUT}/report.html")
    return targets


def write_resolved_config(path, text):
    """Write the merged, validated config that every job reads, when its content changed.

    Written while the Snakefile is parsed, not by a rule: a rule rerun for its changed params made
    Snakemake 9 schedule nothing downstream of it in the same run (the new cells of an edited config
    were left for a second run). Cells depend on the file through ancient(): a config edit changes
    the ids of affected cells, so finished cells are never recomputed for it. Atomic, since cluster
    jobs parse the Snakefile too (they find the same content and write nothing).
    """
    target = Path(path)
    if not (target.is_file() and target.read_text() == text):
        write_text_atomic(target, text)


write_resolved_config(SWEEP_JSON, json.dumps(SWEEP.config, sort_keys=True) + "\n")
