# Figures of each experiment, registered in the Snakemake report.


rule plot:
    input:
        sweep=ancient(SWEEP_JSON),
        store=f"{OUT}/{{experiment}}.zarr",
    output:
        report(
            directory(f"{OUT}/figures/{{experiment}}"),
            patterns=["{name}.png"],
            caption="../report/figure.rst",
            category="{experiment}",
        ),
    log:
        f"{OUT}/logs/plot/{{experiment}}.log",
    localrule: True
    shell:
        "{RMTBENCH} plot --sweep {input.sweep} --experiment {wildcards.experiment} --store {input.store}"
        " --out {output} > {log} 2>&1"
