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
        training=expand(
            "results/benchmarks/{stage}/{task}.tsv",
            stage=["prepare", "teacher", "probes"],
            task=TASKS,
        )
        + expand(
            "results/benchmarks/search/{variant}/{task}/seed{seed}.tsv",
            task=TASKS,
            seed=SEEDS,
            variant=VARIANTS,
        ),
        deploy=expand(
            "results/benchmarks_deploy/retrain/{variant}/{task}/seed{seed}.tsv",
            task=TASKS,
            seed=SEEDS,
            variant=VARIANTS,
        ),
        # every export and measurement job has finished (their benchmark files are read from the folder)
        efficiency=rules.efficiency_table.output.csv,
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
        # <root>/<stage>/...: results/benchmarks and results/benchmarks_deploy
        roots=lambda wildcards, input: [
            input.training[0].split("/prepare/")[0],
            input.deploy[0].split("/retrain/")[0],
        ],
    shell:
        "python -m adabert cost-table --benchmarks {params.roots:q}"
        " --out-md {output.md:q} --out-csv {output.csv:q} > {log:q} 2>&1"


rule figures:
    """Searched cells, search dynamics, teacher probes, speedup over BERT-base and dev metric vs latency."""
    input:
        derived=expand(
            rules.derive.output.genotype, task=TASKS, seed=SEEDS, variant=VARIANTS
        ),
        probes=expand(rules.probes.output.probes, task=TASKS),
        teachers=expand(rules.teacher.output.metrics, task=TASKS),
        efficiency="results/tables/efficiency.csv",
    output:
        searched_cells=report(
            "paper/figures/searched_cells.png",
            category="Figures",
            caption="../report/fig_searched_cells.rst",
        ),
        search_dynamics=report(
            "paper/figures/search_dynamics.png",
            category="Figures",
            caption="../report/fig_search_dynamics.rst",
        ),
        probes=report(
            "paper/figures/probes.png",
            category="Figures",
            caption="../report/fig_probes.rst",
        ),
        speedup=report(
            "paper/figures/speedup.png",
            category="Figures",
            caption="../report/fig_speedup.rst",
        ),
        pareto=report(
            "paper/figures/pareto.png",
            category="Figures",
            caption="../report/fig_pareto.rst",
        ),
        searched_cells_pdf="paper/figures/searched_cells.pdf",
        search_dynamics_pdf="paper/figures/search_dynamics.pdf",
        probes_pdf="paper/figures/probes.pdf",
        speedup_pdf="paper/figures/speedup.pdf",
        pareto_pdf="paper/figures/pareto.pdf",
    log:
        "logs/figures.log",
    conda:
        ENV
    params:
        out=lambda wildcards, output: os.path.dirname(output.searched_cells),
    shell:
        "python -m adabert figures --derived {input.derived:q} --probes {input.probes:q}"
        " --teachers {input.teachers:q} --efficiency {input.efficiency:q}"
        " --out {params.out:q} > {log:q} 2>&1"


rule main_table:
    """The paper's reported rows (test) next to this run's teachers and students (dev)."""
    input:
        reported=os.path.join(workflow.basedir, "paper/reported.yaml"),
        teachers=expand(rules.teacher.output.metrics, task=TASKS),
        retrained=expand(
            rules.retrain.output.metrics, task=TASKS, seed=SEEDS, variant=VARIANTS
        ),
        efficiency="results/tables/efficiency.csv",
    output:
        md=report(
            "paper/tables/main.md", category="Main table", caption="../report/main.rst"
        ),
        tex="paper/tables/main.tex",
        csv="paper/tables/main.csv",
    log:
        "logs/tables/main.log",
    conda:
        ENV
    params:
        stem=lambda wildcards, output: os.path.splitext(output.md)[0],
    shell:
        "python -m adabert main-table --reported {input.reported:q} --teachers {input.teachers:q}"
        " --retrained {input.retrained:q} --efficiency {input.efficiency:q}"
        " --out {params.stem:q} > {log:q} 2>&1"
