# Speed/size measurements, one job per model (a task's searched students: one job for all seeds): a single
# `python -m adabert measure` process loads the model once, exports its ONNX graphs once (a main student
# and the teacher: times its export stage's graphs) and measures all its engines, devices and shapes (one
# JSON each, MEASURE_NAME). Every measurement job holds the whole cpu_bench resource, so it runs alone
# (common.smk).
# The repeatability check (measure.repeat_check) measures BERT-base and one student a second time.


if measure_combos():

    rule measure_student:
        """All engines and shapes of the retrained students of the main variant of one task (every seed),
        one after the other in one job: one process start-up and one GEMM peak for all of them (the ONNX
        Runtime engines time each student's export graphs)."""
        input:
            unpack(measure_data()),
            models=expand(
                rules.retrain.output.model, seed=MAIN_SEEDS, allow_missing=True
            ),
            exports=expand(
                rules.export_student.output.summary,
                seed=MAIN_SEEDS,
                allow_missing=True,
            ),
        output:
            [
                f
                for s in MAIN_SEEDS
                for f in measure_files(
                    f"results/measure/student/{{variant}}/{{task}}/seed{s}"
                )
            ],
        log:
            "logs/measure/student/{variant}/{task}.log",
        benchmark:
            "results/benchmarks_deploy/measure/student/{variant}/{task}.tsv"
        wildcard_constraints:
            variant=re.escape(MAIN),
        conda:
            ENV
        threads: MEASURE["threads"]
        resources:
            mem_mb=4000,
            runtime=len(MAIN_SEEDS) * measure_runtime(5),
            cpu_bench=BENCH_UNITS,
            gpu=measure_gpu(),
        params:
            models=folders_of("models"),
            exports=folders_of("exports"),
            seeds=" ".join(str(s) for s in MAIN_SEEDS),
            outs=out_folders,
            request=measure_request(),
            opts=measure_options,
            int8=measure_int8_options(),
        shell:
            "python -m adabert measure --model-kind student --model {params.models}"
            " {params.request} {params.opts} {params.int8} --task {wildcards.task:q}"
            " --variant {wildcards.variant:q} --seed {params.seeds}"
            " --export-dir {params.exports} --out-dir {params.outs} > {log:q} 2>&1"

    rule measure_teacher:
        """The teacher architecture, once per run: the first task's teacher on every engine and shape
        (the speedup and compression reference of every task's students)."""
        input:
            data=f"results/data/{MEASURE_TEACHER_TASK}/meta.json",
            teacher=f"results/teacher/{MEASURE_TEACHER_TASK}/metrics.json",
            export=f"results/export/teacher/{MEASURE_TEACHER_TASK}/export.json",
        output:
            measure_files(f"results/measure/teacher/{MEASURE_TEACHER_TASK}"),
        log:
            f"logs/measure/teacher/{MEASURE_TEACHER_TASK}.log",
        benchmark:
            f"results/benchmarks_deploy/measure/teacher/{MEASURE_TEACHER_TASK}.tsv"
        conda:
            ENV
        threads: MEASURE["threads"]
        resources:
            mem_mb=6000,
            runtime=measure_runtime(15),
            cpu_bench=BENCH_UNITS,
            gpu=measure_gpu(),
        params:
            model=in_folder("teacher"),
            request=measure_request(),
            opts=measure_options,
            int8=measure_int8_options(),
            task=MEASURE_TEACHER_TASK,
            export=in_folder("export"),
            out=out_folder,
        shell:
            "python -m adabert measure --model-kind teacher --model {params.model:q}"
            " {params.request} {params.opts} {params.int8} --task {params.task:q}"
            " --export-dir {params.export:q} --out-dir {params.out:q} > {log:q} 2>&1"

    rule measure_bert_base:
        """BERT-base (architecture only, or local weights) once per run, every engine and shape in one job:
        the shared speed/size reference."""
        output:
            measure_files("results/measure/bert-base"),
        log:
            "logs/measure/bert-base.log",
        benchmark:
            "results/benchmarks_deploy/measure/bert-base.tsv"
        conda:
            ENV
        threads: MEASURE["threads"]
        resources:
            mem_mb=8000,
            runtime=measure_runtime(30),
            cpu_bench=BENCH_UNITS,
            gpu=measure_gpu(),
        params:
            model=BERT_BASE_MODEL,
            request=measure_request(),
            opts=measure_options,
            int8=measure_int8_options(),
            out=out_folder,
        shell:
            "python -m adabert measure --model-kind bert-base {params.model}"
            " {params.request} {params.opts} {params.int8} --out-dir {params.out:q}"
            " > {log:q} 2>&1"


if measure_combos(MEASURE["ablation_engines"]):

    rule measure_student_ablation:
        """A student of an ablation variant, a random or a transferred architecture on
        measure.ablation_engines, every shape in one job."""
        input:
            unpack(measure_data(MEASURE["ablation_engines"])),
            model=rules.retrain.output.model,
        output:
            measure_files(
                "results/measure/student/{variant}/{task}/seed{seed}",
                MEASURE["ablation_engines"],
            ),
        log:
            "logs/measure/student/{variant}/{task}/seed{seed}.log",
        benchmark:
            "results/benchmarks_deploy/measure/student/{variant}/{task}/seed{seed}.tsv"
        wildcard_constraints:
            variant=ABLATION_VARIANT,
        conda:
            ENV
        threads: MEASURE["threads"]
        resources:
            mem_mb=4000,
            runtime=measure_runtime(5, MEASURE["ablation_engines"]),
            cpu_bench=BENCH_UNITS,
            gpu=measure_gpu(MEASURE["ablation_engines"]),
        params:
            model=in_folder("model"),
            request=measure_request(MEASURE["ablation_engines"]),
            opts=measure_options,
            int8=measure_int8_options(MEASURE["ablation_engines"]),
            out=out_folder,
        shell:
            "python -m adabert measure --model-kind student --model {params.model:q}"
            " {params.request} {params.opts} {params.int8} --task {wildcards.task:q}"
            " --variant {wildcards.variant:q} --seed {wildcards.seed}"
            " --out-dir {params.out:q} > {log:q} 2>&1"


if (
    measure_combos(MEASURE["ablation_engines"])
    and RANDOM_SAMPLES
    and RANDOM_TASKS
    and not RANDOM_FROM_SIDE_BY_SIDE
):

    rule measure_random:
        """The random architectures of one task (baselines.random) on measure.ablation_engines, one after
        the other in one job: one process start-up and one GEMM peak for all of them.
        """
        input:
            unpack(measure_data(MEASURE["ablation_engines"])),
            models=expand(
                "results/retrain/random/{{task}}/seed{n}/model.safetensors",
                n=RANDOM_SAMPLES,
            ),
        output:
            [
                f
                for n in RANDOM_SAMPLES
                for f in measure_files(
                    f"results/measure/student/random/{{task}}/seed{n}",
                    MEASURE["ablation_engines"],
                )
            ],
        log:
            "logs/measure/student/random/{task}.log",
        benchmark:
            "results/benchmarks_deploy/measure/student/random/{task}.tsv"
        wildcard_constraints:
            task=TASK_PATTERN,
        conda:
            ENV
        threads: MEASURE["threads"]
        resources:
            mem_mb=4000,
            runtime=len(RANDOM_SAMPLES)
            * measure_runtime(5, MEASURE["ablation_engines"]),
            cpu_bench=BENCH_UNITS,
            gpu=measure_gpu(MEASURE["ablation_engines"]),
        params:
            models=lambda wildcards, input: " ".join(
                shlex.quote(os.path.dirname(m)) for m in input.models
            ),
            outs=lambda wildcards: " ".join(
                shlex.quote(f) for f in random_measure_folders(wildcards.task)
            ),
            seeds=" ".join(str(n) for n in RANDOM_SAMPLES),
            request=measure_request(MEASURE["ablation_engines"]),
            opts=measure_options,
            int8=measure_int8_options(MEASURE["ablation_engines"]),
        shell:
            "python -m adabert measure --model-kind student --model {params.models}"
            " {params.request} {params.opts} {params.int8} --task {wildcards.task:q}"
            " --variant random --seed {params.seeds} --out-dir {params.outs} > {log:q} 2>&1"


if SIDE_BY_SIDE:

    rule measure_side_by_side:
        """The searched students and the random architectures of one task timed in one job, interleaved
        round by round (PyTorch, CPU, the largest measured shape): latencies that compare architectures
        whose difference is smaller than the drift of the machine between jobs. With
        RANDOM_FROM_SIDE_BY_SIDE it also writes the random architectures' measurement JSONs.
        """
        input:
            side_by_side_models,
        output:
            timing="results/measure/side_by_side/{task}.json",
            records=side_by_side_records(),
        log:
            "logs/measure/side_by_side/{task}.log",
        benchmark:
            "results/benchmarks_deploy/measure/side_by_side/{task}.tsv"
        wildcard_constraints:
            task=TASK_PATTERN,
        conda:
            ENV
        threads: MEASURE["threads"]
        resources:
            mem_mb=4000,
            runtime=len(RANDOM_SAMPLES) + len(SEEDS) + 5,
            cpu_bench=BENCH_UNITS,
        params:
            options=side_by_side_options,
        shell:
            "python -m adabert measure-side-by-side --task {wildcards.task:q} {params.options}"
            " --out {output.timing:q} > {log:q} 2>&1"


if measure_combos() and MEASURE["repeat_check"]:

    rule measure_student_repeat:
        """One student of the main variant measured a second time, by a job of its own."""
        input:
            unpack(measure_data()),
            model=rules.retrain.output.model,
            export=rules.export_student.output.summary,
        output:
            measure_files("results/measure/repeat/student/{variant}/{task}/seed{seed}"),
        log:
            "logs/measure/repeat/student/{variant}/{task}/seed{seed}.log",
        benchmark:
            "results/benchmarks_deploy/measure/repeat/student/{variant}/{task}/seed{seed}.tsv"
        wildcard_constraints:
            variant=re.escape(MAIN),
        conda:
            ENV
        threads: MEASURE["threads"]
        resources:
            mem_mb=4000,
            runtime=measure_runtime(5),
            cpu_bench=BENCH_UNITS,
            gpu=measure_gpu(),
        params:
            model=in_folder("model"),
            request=measure_request(),
            opts=measure_options,
            int8=measure_int8_options(),
            export=in_folder("export"),
            out=out_folder,
        shell:
            "python -m adabert measure --model-kind student --model {params.model:q}"
            " {params.request} {params.opts} {params.int8} --task {wildcards.task:q}"
            " --variant {wildcards.variant:q} --seed {wildcards.seed}"
            " --export-dir {params.export:q} --out-dir {params.out:q} > {log:q} 2>&1"

    use rule measure_bert_base as measure_bert_base_repeat with:
        output:
            measure_files("results/measure/repeat/bert-base"),
        log:
            "logs/measure/repeat/bert-base.log",
        benchmark:
            "results/benchmarks_deploy/measure/repeat/bert-base.tsv"

    rule repeatability_table:
        """The same models measured twice in this run (two jobs each): median vs median per engine and shape."""
        input:
            first=MEASURE_REPEATED,
            second=MEASURE_REPEATS,
        output:
            md=report(
                "results/tables/repeatability.md",
                category="Efficiency",
                caption="../report/repeatability.rst",
            ),
            csv="results/tables/repeatability.csv",
        log:
            "logs/tables/repeatability.log",
        conda:
            ENV
        shell:
            "python -m adabert repeatability-table --first {input.first:q}"
            " --second {input.second:q} --out-md {output.md:q} --out-csv {output.csv:q}"
            " > {log:q} 2>&1"

    localrules:
        repeatability_table,


rule efficiency_table:
    """Compression, speedup vs BERT-base and the teacher, GFLOP/s and dev metrics of every student."""
    input:
        measurements=MEASURE_STUDENTS
        + MEASURE_BASELINES
        + MEASURE_TEACHERS
        + MEASURE_BERT,
        retrained=RETRAINED + RANDOM_RETRAINED + BASELINE_RETRAINED,
        teachers=TEACHER_METRICS,
        exports=EXPORTS,
    output:
        md=report(
            "results/tables/efficiency.md",
            category="Efficiency",
            caption="../report/efficiency.rst",
        ),
        csv="results/tables/efficiency.csv",
        references="results/tables/efficiency_references.csv",
    log:
        "logs/tables/efficiency.log",
    conda:
        ENV
    shell:
        "python -m adabert efficiency-table --measurements {input.measurements:q}"
        " --retrained {input.retrained:q} --teachers {input.teachers:q}"
        " --exports {input.exports:q} --out-md {output.md:q} --out-csv {output.csv:q}"
        " > {log:q} 2>&1"
