# Theory side: one job per theory key (what the prediction depends on), shared by all cells with it.
from rmtbench.resources import rule_group, rule_resources


rule theory:
    input:
        ancient(SWEEP_JSON),
    output:
        directory(f"{OUT}/theory/{{experiment}}/{{key}}.zarr"),
    log:
        f"{OUT}/logs/theory/{{experiment}}/{{key}}.log",
    benchmark:
        f"{OUT}/benchmarks/theory/{{experiment}}/{{key}}.tsv"
    group: lambda wildcards: rule_group(SWEEP, "theory", wildcards.experiment, wildcards.key)
    threads: lambda wildcards: rule_resources(SWEEP, "theory", wildcards.experiment, wildcards.key)["threads"]
    resources:
        mem_mb=lambda wildcards, attempt: rule_resources(SWEEP, "theory", wildcards.experiment, wildcards.key, attempt)["mem_mb"],
        runtime=lambda wildcards, attempt: rule_resources(SWEEP, "theory", wildcards.experiment, wildcards.key, attempt)["runtime"],
    shell:
        "{RMTBENCH} theory --sweep {input} --experiment {wildcards.experiment} --key {wildcards.key}"
        " --threads {threads} --out {output} > {log} 2>&1"
