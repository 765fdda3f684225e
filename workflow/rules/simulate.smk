# Empirical side: one job per cell, Dask inside.
from rmtbench.resources import rule_group, rule_resources, rule_tasks


rule simulate:
    input:
        ancient(SWEEP_JSON),
    output:
        directory(f"{OUT}/cells/{{experiment}}/{{cell}}.zarr"),
    log:
        f"{OUT}/logs/simulate/{{experiment}}/{{cell}}.log",
    benchmark:
        f"{OUT}/benchmarks/simulate/{{experiment}}/{{cell}}.tsv"
    # Resources from the cell's sizes (rmtbench.resources), growing with the attempt; small cells join
    # the group "batch", which cluster profiles batch into few jobs (groups are ignored locally).
    group: lambda wildcards: rule_group(SWEEP, "simulate", wildcards.experiment, wildcards.cell)
    threads: lambda wildcards: rule_resources(SWEEP, "simulate", wildcards.experiment, wildcards.cell)["threads"]
    resources:
        mem_mb=lambda wildcards, attempt: rule_resources(SWEEP, "simulate", wildcards.experiment, wildcards.cell, attempt)["mem_mb"],
        runtime=lambda wildcards, attempt: rule_resources(SWEEP, "simulate", wildcards.experiment, wildcards.cell, attempt)["runtime"],
        tasks=lambda wildcards: rule_tasks(SWEEP, wildcards.experiment, wildcards.cell),
    # rmtbench.slurm simulate = rmtbench simulate, except inside a multi-task SLURM job, where it first
    # makes the job's tasks into a Dask cluster (scheduler file) and computes the cell on it.
    shell:
        "{RMTBENCH}.slurm simulate --sweep {input} --experiment {wildcards.experiment} --cell {wildcards.cell}"
        " --threads {threads} --out {output} > {log} 2>&1"
