# Helpers shared by the rules: the validated sweep, output paths, and the command that runs the library.
import json
import shlex
import sys
from pathlib import Path

from rmtbench.config import ConfigError, load_sweep
from rmtbench.resources import job_resources

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


rule resolve_config:
    # The merged, validated config that every job reads. Cells depend on it through ancient(): a
    # config edit changes the ids of affected cells, so finished cells are never recomputed for it.
    output:
        SWEEP_JSON,
    params:
        config=json.dumps(SWEEP.config, sort_keys=True),
    localrule: True
    run:
        Path(output[0]).write_text(params.config + "\n")
