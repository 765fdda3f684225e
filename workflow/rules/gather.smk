# Gather cells and theory into one store per experiment, then the error table.


rule gather:
    input:
        sweep=ancient(SWEEP_JSON),
        cells=lambda wildcards: cell_stores(wildcards.experiment),
        theory=lambda wildcards: theory_stores(wildcards.experiment),
    output:
        directory(f"{OUT}/{{experiment}}.zarr"),
    log:
        f"{OUT}/logs/gather/{{experiment}}.log",
    localrule: True
    shell:
        "{RMTBENCH} gather --sweep {input.sweep} --experiment {wildcards.experiment} --out {output} > {log} 2>&1"


rule compare:
    input:
        sweep=ancient(SWEEP_JSON),
        store=f"{OUT}/{{experiment}}.zarr",
    output:
        report(f"{OUT}/tables/{{experiment}}.csv", category="Error tables", labels={"experiment": "{experiment}"}),
    log:
        f"{OUT}/logs/compare/{{experiment}}.log",
    localrule: True
    shell:
        "{RMTBENCH} compare --sweep {input.sweep} --experiment {wildcards.experiment} --store {input.store}"
        " --out {output} > {log} 2>&1"
