# Empirical side: one job per cell, Dask inside.


rule simulate:
    input:
        ancient(SWEEP_JSON),
    output:
        directory(f"{OUT}/cells/{{experiment}}/{{cell}}.zarr"),
    log:
        f"{OUT}/logs/simulate/{{experiment}}/{{cell}}.log",
    benchmark:
        f"{OUT}/benchmarks/simulate/{{experiment}}/{{cell}}.tsv"
    threads: lambda wildcards: cell_resources("simulate")(wildcards, 1)["threads"]
    resources:
        mem_mb=lambda wildcards, attempt: cell_resources("simulate")(wildcards, attempt)["mem_mb"],
        runtime=lambda wildcards, attempt: cell_resources("simulate")(wildcards, attempt)["runtime"],
    shell:
        "{RMTBENCH} simulate --sweep {input} --experiment {wildcards.experiment} --cell {wildcards.cell}"
        " --threads {threads} --out {output} > {log} 2>&1"
