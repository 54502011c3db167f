rule teacher_table:
    """Every task's teacher dev metrics, size, training time and per-layer probe metrics.

    The best probe minus the head gets a bootstrap interval from the saved dev logits and the labels.
    """
    input:
        teachers=TEACHER_METRICS,
        probes=TEACHER_PROBES,
        data=TEACHER_DATA,
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
        " --data {input.data:q}"
        " --out-md {output.md:q} --out-csv {output.csv:q} > {log:q} 2>&1"


rule search_table:
    """Searched depth, op histogram, parameters and dev metric of every task/seed/variant."""
    input:
        derived=DERIVED,
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


rule task_adaptivity:
    """Genotype distances between the main searches: within a task (across seeds) vs across tasks."""
    input:
        derived=DERIVED_MAIN,
    output:
        md=report(
            "paper/tables/task_adaptivity.md",
            category="Search",
            caption="../report/task_adaptivity.rst",
        ),
        csv="paper/tables/task_adaptivity.csv",
    log:
        "logs/tables/task_adaptivity.log",
    conda:
        ENV
    shell:
        "python -m adabert task-adaptivity --derived {input.derived:q}"
        " --out-md {output.md:q} --out-csv {output.csv:q} > {log:q} 2>&1"


rule searched_vs_random:
    """Per task: the searched students against random architectures of the same space and recipe."""
    input:
        efficiency="results/tables/efficiency.csv",
        fixed=FIXED_RETRAINED,
        side_by_side=SIDE_BY_SIDE,
    output:
        md=report(
            "paper/tables/searched_vs_random.md",
            category="Search",
            caption="../report/searched_vs_random.rst",
        ),
        tex="paper/tables/searched_vs_random.tex",
        csv="paper/tables/searched_vs_random.csv",
    log:
        "logs/tables/searched_vs_random.log",
    conda:
        ENV
    params:
        main=MAIN,
        stem=out_stem,
        fixed=lambda wildcards, input: (
            "--fixed " + " ".join(shlex.quote(f) for f in input.fixed)
            if input.fixed
            else ""
        ),
        side_by_side=lambda wildcards, input: (
            "--side-by-side " + " ".join(shlex.quote(f) for f in input.side_by_side)
            if input.side_by_side
            else ""
        ),
    shell:
        "python -m adabert random-study --efficiency {input.efficiency:q} --main-variant {params.main:q}"
        " {params.fixed} {params.side_by_side} --out {params.stem:q} > {log:q} 2>&1"


rule cost_table:
    """Wall time and peak memory of every job (Snakemake benchmark files), per stage."""
    input:
        training=BENCHMARKS_TRAINING,
        deploy=BENCHMARKS_DEPLOY,
        # random, transfer and baseline runs have finished (benchmark files read from the folders)
        studies=RANDOM_RETRAINED
        + TRANSFER_RETRAINED
        + BASELINE_RETRAINED
        + SIDE_BY_SIDE,
        # every export and measurement job has finished (their benchmark files are read from the folder)
        efficiency="results/tables/efficiency.csv",
    output:
        md=report(
            "results/tables/cost.md", category="Cost", caption="../report/cost.rst"
        ),
        csv="results/tables/cost.csv",
        # one row per job (stage, job, seconds, max_rss_mb): the source of per-job and per-variant costs
        jobs="results/tables/cost_jobs.csv",
    log:
        "logs/tables/cost.log",
    conda:
        ENV
    params:
        # the benchmark folders (<root>/<stage>/...) the table reads
        roots=list(BENCHMARK_ROOTS.values()),
    shell:
        "python -m adabert cost-table --benchmarks {params.roots:q}"
        " --out-md {output.md:q} --out-csv {output.csv:q} > {log:q} 2>&1"


rule figures:
    """Searched cells, search dynamics, teacher probes, speedup over BERT-base and dev metric vs latency."""
    input:
        derived=DERIVED_MAIN,
        probes=TEACHER_PROBES,
        teachers=TEACHER_METRICS,
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
        main=MAIN,
        out=out_folder,
    shell:
        "python -m adabert figures --derived {input.derived:q} --probes {input.probes:q}"
        " --teachers {input.teachers:q} --efficiency {input.efficiency:q}"
        " --main-variant {params.main:q} --out {params.out:q} > {log:q} 2>&1"


rule main_table:
    """The paper's reported rows (test) next to this run's teachers and students (dev)."""
    input:
        reported=os.path.join(workflow.basedir, "paper/reported.yaml"),
        teachers=TEACHER_METRICS,
        retrained=RETRAINED_MAIN + BASELINE_RETRAINED + RANDOM_RETRAINED,
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
        main=MAIN,
        stem=out_stem,
    shell:
        "python -m adabert main-table --reported {input.reported:q} --teachers {input.teachers:q}"
        " --retrained {input.retrained:q} --efficiency {input.efficiency:q}"
        " --main-variant {params.main:q} --out {params.stem:q} > {log:q} 2>&1"


rule efficiency_summary:
    """Per task: size, throughput and speedup over BERT-base per engine of every model, and the
    paper's per-task layout (params, speedup, dev metric per model)."""
    input:
        efficiency="results/tables/efficiency.csv",
    output:
        md=report(
            "paper/tables/efficiency.md",
            category="Efficiency",
            caption="../report/efficiency_summary.rst",
        ),
        tex="paper/tables/efficiency.tex",
        csv="paper/tables/efficiency.csv",
        per_task_md=report(
            "paper/tables/efficiency_per_task.md",
            category="Efficiency",
            caption="../report/efficiency_per_task.rst",
        ),
        per_task_tex="paper/tables/efficiency_per_task.tex",
        per_task_csv="paper/tables/efficiency_per_task.csv",
    log:
        "logs/tables/efficiency_summary.log",
    conda:
        ENV
    params:
        main=MAIN,
        stem=out_stem,
    shell:
        "python -m adabert efficiency-summary --efficiency {input.efficiency:q}"
        " --main-variant {params.main:q} --out {params.stem:q} > {log:q} 2>&1"


rule ablation_table:
    """Every ablation variant's dev metric, depth, size and speed next to the main variant's."""
    input:
        results=RETRAINED,
        efficiency="results/tables/efficiency.csv",
    output:
        md=report(
            "paper/tables/ablations.md",
            category="Ablations",
            caption="../report/ablations.rst",
        ),
        tex="paper/tables/ablations.tex",
        csv="paper/tables/ablations.csv",
        beta=report(
            "paper/figures/beta_tradeoff.png",
            category="Ablations",
            caption="../report/fig_beta_tradeoff.rst",
        ),
        beta_pdf="paper/figures/beta_tradeoff.pdf",
    log:
        "logs/tables/ablations.log",
    conda:
        ENV
    params:
        main=MAIN,
        stem=out_stem,
        variants=json.dumps(config["variants"], sort_keys=True),
        beta=config["loss"]["beta"],
        figure=lambda wildcards, output: output.beta[: -len(".png")],
    shell:
        "python -m adabert ablation-table --results {input.results:q}"
        " --efficiency {input.efficiency:q} --variants {params.variants:q}"
        " --main-variant {params.main:q} --out {params.stem:q} --main-beta {params.beta}"
        " --beta-figure {params.figure:q} > {log:q} 2>&1"


rule transfer_table:
    """Cross-task transfer matrix (searched on x evaluated on) with random architectures as reference."""
    input:
        results=TRANSFER_RETRAINED + TRANSFER_RANDOM_RETRAINED,
    output:
        md=report(
            "paper/tables/transfer.md",
            category="Transfer",
            caption="../report/transfer.rst",
        ),
        tex="paper/tables/transfer.tex",
        csv="paper/tables/transfer.csv",
    log:
        "logs/tables/transfer.log",
    conda:
        ENV
    params:
        stem=out_stem,
    shell:
        "python -m adabert transfer-table --results {input.results:q}"
        " --out {params.stem:q} > {log:q} 2>&1"


rule seed_table:
    """Mean ± std over seeds of the teacher, the AdaBERT students and the baselines."""
    input:
        teachers=TEACHER_METRICS,
        results=RETRAINED_MAIN + BASELINE_RETRAINED + RANDOM_RETRAINED,
    output:
        md=report(
            "paper/tables/seeds.md", category="Seeds", caption="../report/seeds.rst"
        ),
        tex="paper/tables/seeds.tex",
        csv="paper/tables/seeds.csv",
    log:
        "logs/tables/seeds.log",
    conda:
        ENV
    params:
        main=MAIN,
        stem=out_stem,
    shell:
        "python -m adabert seed-table --teachers {input.teachers:q} --results {input.results:q}"
        " --main-variant {params.main:q} --out {params.stem:q} > {log:q} 2>&1"


rule scorecard:
    """The run against its targets (paper/targets.yaml), from the run's own tables."""
    input:
        targets=os.path.join(workflow.basedir, "paper/targets.yaml"),
        teacher="results/tables/teacher.csv",
        search="results/tables/search.csv",
        cost="results/tables/cost.csv",
        adaptivity=(
            ["paper/tables/task_adaptivity.csv"] if len(DERIVED_MAIN) > 1 else []
        ),
        random=["paper/tables/searched_vs_random.csv"] if RANDOM_RETRAINED else [],
    output:
        md=report(
            "paper/tables/scorecard.md",
            category="Main table",
            caption="../report/scorecard.rst",
        ),
        tex="paper/tables/scorecard.tex",
        csv="paper/tables/scorecard.csv",
    log:
        "logs/tables/scorecard.log",
    conda:
        ENV
    params:
        main=MAIN,
        stem=out_stem,
        optional=lambda wildcards, input: " ".join(
            f"--{key} {shlex.quote(input[key][0])}"
            for key in ("adaptivity", "random")
            if input[key]
        ),
    shell:
        "python -m adabert scorecard --targets {input.targets:q} --teacher {input.teacher:q}"
        " --search {input.search:q} --cost {input.cost:q} {params.optional}"
        " --main-variant {params.main:q} --out {params.stem:q} > {log:q} 2>&1"


rule readme_section:
    """The README's results section: main table, AdaBERT efficiency, speedup figure, machine."""
    input:
        main=rules.main_table.output.md,
        efficiency=rules.efficiency_summary.output.csv,
        figure=rules.figures.output.speedup,
        measurement=README_MEASUREMENT,
        scorecard=rules.scorecard.output.md,
        cost=rules.cost_table.output.csv,
        cost_jobs=rules.cost_table.output.jobs,  # read beside cost.csv
    output:
        "paper/README_results.md",
    log:
        "logs/tables/readme_section.log",
    conda:
        ENV
    shell:
        "python -m adabert readme-section --main {input.main:q} --figure {input.figure:q}"
        " --measurement {input.measurement:q} --efficiency {input.efficiency:q}"
        " --scorecard {input.scorecard:q} --cost {input.cost:q}"
        " --out {output:q} > {log:q} 2>&1"
