# Baseline students on the same prepared data as the AdaBERT students, measured in the same run:
# BiLSTM-SOFT (Tang et al. 2019) and the truncated teacher + KD (BERT-PKD-like).


rule baseline:
    """Train one baseline student with CE + KD on the teacher's logits; best dev epoch kept."""
    input:
        meta=rules.prepare.output.meta,
        teacher=rules.teacher.output.metrics,
    output:
        metrics="results/baselines/{kind}/{task}/seed{seed}/metrics.json",
    log:
        "logs/baselines/{kind}/{task}/seed{seed}.log",
    benchmark:
        "results/benchmarks_deploy/baseline/{kind}/{task}/seed{seed}.tsv"
    wildcard_constraints:
        kind="bilstm|truncated",
    conda:
        ENV
    threads: JOB_THREADS
    resources:
        mem_mb=6000,
        runtime=120,
        gpu=GPU,
        cpu_bench=1,
    params:
        cfg=stage_config("baseline"),
        data=in_folder("meta"),
        teacher=in_folder("teacher"),
        out=out_folder,
    shell:
        "python -m adabert baseline --kind {wildcards.kind} --task {wildcards.task:q}"
        " --seed {wildcards.seed} --config {params.cfg:q} --data {params.data:q}"
        " --teacher {params.teacher:q} --out {params.out:q} > {log:q} 2>&1"


if measure_combos():

    rule measure_baseline:
        """Latency/throughput, size and FLOPs of a baseline student: every engine and shape in one job."""
        input:
            unpack(measure_data()),
            metrics=rules.baseline.output.metrics,
        output:
            measure_files("results/measure/baseline/{kind}/{task}/seed{seed}"),
        log:
            "logs/measure/baseline/{kind}/{task}/seed{seed}.log",
        benchmark:
            "results/benchmarks_deploy/measure/baseline/{kind}/{task}/seed{seed}.tsv"
        wildcard_constraints:
            kind="bilstm|truncated",
        conda:
            ENV
        threads: MEASURE["threads"]
        resources:
            mem_mb=6000,
            runtime=measure_runtime(10),
            cpu_bench=BENCH_UNITS,
            gpu=measure_gpu(),
        params:
            model=in_folder("metrics"),
            model_kind=lambda wildcards: BASELINE_MODEL_KIND[wildcards.kind],
            request=measure_request(),
            opts=measure_options,
            int8=measure_int8_options(),
            out=out_folder,
        shell:
            "python -m adabert measure --model-kind {params.model_kind} --model {params.model:q}"
            " {params.request} {params.opts} {params.int8} --task {wildcards.task:q}"
            " --variant {wildcards.kind} --seed {wildcards.seed} --out-dir {params.out:q}"
            " > {log:q} 2>&1"
