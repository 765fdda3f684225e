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


rule report:
    # One HTML page for the sweep: every figure with its caption, the error tables, the provenance.
    input:
        sweep=ancient(SWEEP_JSON),
        tables=[str(SWEEP.table(name)) for name in SWEEP.experiments],
        figures=[str(SWEEP.figures_dir(name)) for name in SWEEP.experiments],
    output:
        report(f"{OUT}/report.html", category="Report"),
    log:
        f"{OUT}/logs/report.log",
    localrule: True
    shell:
        "{RMTBENCH} report --sweep {input.sweep} --out {output} > {log} 2>&1"
