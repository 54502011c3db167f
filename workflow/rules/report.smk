rule teacher_table:
    """Every task's teacher dev metrics, size, training time and per-layer probe metrics."""
    input:
        teachers=expand(rules.teacher.output.metrics, task=TASKS),
        probes=expand(rules.probes.output.probes, task=TASKS),
    output:
        md=report(
            "results/tables/teacher.md",
            category="Teacher",
            caption="../report/teacher.rst",
        ),
        csv="results/tables/teacher.csv",
    log:
        "logs/tables/teacher.log",
    conda:
        ENV
    shell:
        "python -m adabert teacher-table --teachers {input.teachers:q} --probes {input.probes:q}"
        " --out-md {output.md:q} --out-csv {output.csv:q} > {log:q} 2>&1"


rule search_table:
    """Searched depth, op histogram, parameters and dev metric of every task/seed/variant."""
    input:
        derived=expand(
            rules.derive.output.genotype, task=TASKS, seed=SEEDS, variant=VARIANTS
        ),
    output:
        md=report(
            "results/tables/search.md",
            category="Search",
            caption="../report/search.rst",
        ),
        csv="results/tables/search.csv",
    log:
        "logs/tables/search.log",
    conda:
        ENV
    shell:
        "python -m adabert search-table --derived {input.derived:q}"
        " --out-md {output.md:q} --out-csv {output.csv:q} > {log:q} 2>&1"


rule cost_table:
    """Wall time and peak memory of every job (Snakemake benchmark files), per stage."""
    input:
        expand(
            "results/benchmarks/{stage}/{task}.tsv",
            stage=["prepare", "teacher", "probes"],
            task=TASKS,
        ),
        expand(
            "results/benchmarks/search/{variant}/{task}/seed{seed}.tsv",
            task=TASKS,
            seed=SEEDS,
            variant=VARIANTS,
        ),
    output:
        md=report(
            "results/tables/cost.md", category="Cost", caption="../report/cost.rst"
        ),
        csv="results/tables/cost.csv",
    log:
        "logs/tables/cost.log",
    conda:
        ENV
    params:
        # results/benchmarks (the benchmark files are <root>/<stage>/...)
        root=lambda wildcards, input: os.path.dirname(os.path.dirname(input[0])),
    shell:
        "python -m adabert cost-table --benchmarks {params.root:q}"
        " --out-md {output.md:q} --out-csv {output.csv:q} > {log:q} 2>&1"
