# Theory side: one job per theory key (what the prediction depends on), shared by all cells with it.


rule theory:
    input:
        ancient(SWEEP_JSON),
    output:
        directory(f"{OUT}/theory/{{experiment}}/{{key}}.zarr"),
    log:
        f"{OUT}/logs/theory/{{experiment}}/{{key}}.log",
    benchmark:
        f"{OUT}/benchmarks/theory/{{experiment}}/{{key}}.tsv"
    threads: 1
    resources:
        mem_mb=lambda wildcards, attempt: cell_resources("theory")(wildcards, attempt)["mem_mb"],
        runtime=lambda wildcards, attempt: cell_resources("theory")(wildcards, attempt)["runtime"],
    shell:
        "{RMTBENCH} theory --sweep {input} --experiment {wildcards.experiment} --key {wildcards.key}"
        " --out {output} > {log} 2>&1"
