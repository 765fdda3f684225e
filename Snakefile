# rmtbench: the only Snakemake entry point.
#   snakemake --profile profiles/default                         laptop sweep (config/config.yaml)
#   snakemake --profile profiles/default --configfile config/paper.yaml
#   snakemake --profile profiles/slurm --configfile config/paper.yaml   SLURM cluster
import sys
from pathlib import Path

from snakemake.utils import min_version

min_version("8.20")


# The laptop sweep unless --configfile names another. Never both: a plain `configfile:` would have
# Snakemake merge the given file into this one, so a user's sweep would inherit the laptop's data sets,
# compute and dask blocks (a data set of the same name gaining keys it did not set), and `rmtbench
# validate` and `status`, which read the user's file alone, would disagree with the pipeline.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


# Validation against the schema (workflow/schemas/config.schema.yaml, generated from the library) and
# the semantic checks happen here, before any job is planned.
include: "workflow/rules/common.smk"
include: "workflow/rules/simulate.smk"
include: "workflow/rules/theory.smk"
include: "workflow/rules/gather.smk"
include: "workflow/rules/plots.smk"


rule all:
    input:
        all_targets(),
    default_target: True
