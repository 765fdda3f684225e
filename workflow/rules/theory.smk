# Theory side: one job per theory key (what the prediction depends on), shared by all cells with it.
from rmtbench.resources import rule_group, rule_resources


rule theory:
    input:
        ancient(SWEEP_JSON),
    output:
        # named by the key and by the group's cells (ExperimentPlan.theory_members): a group that gains
        # a cell gets its theory computed anew
        directory(f"{OUT}/theory/{{experiment}}/{{key}}/{{members}}.zarr"),
    log:
        f"{OUT}/logs/theory/{{experiment}}/{{key}}/{{members}}.log",
    benchmark:
        f"{OUT}/benchmarks/theory/{{experiment}}/{{key}}/{{members}}.tsv"
    group: lambda wildcards: rule_group(SWEEP, "theory", wildcards.experiment, wildcards.key)
    threads: lambda wildcards: rule_resources(SWEEP, "theory", wildcards.experiment, wildcards.key)["threads"]
    resources:
        mem_mb=lambda wildcards, attempt: rule_resources(SWEEP, "theory", wildcards.experiment, wildcards.key, attempt)["mem_mb"],
        runtime=lambda wildcards, attempt: rule_resources(SWEEP, "theory", wildcards.experiment, wildcards.key, attempt)["runtime"],
    shell:
        "{RMTBENCH} theory --sweep {input} --experiment {wildcards.experiment} --key {wildcards.key}"
        " --threads {threads} --out {output} > {log} 2>&1"
