# Speed/size measurements (one job per model, engine, device, batch, seq_len) and the efficiency table.


rule measure_student:
    """Latency/throughput, size and FLOPs of a retrained student for one engine/device/shape."""
    input:
        unpack(measure_data),
        model=rules.retrain.output.model,
    output:
        f"results/measure/student/{{variant}}/{{task}}/seed{{seed}}/{MEASURE_NAME}.json",
    log:
        f"logs/measure/student/{{variant}}/{{task}}/seed{{seed}}/{MEASURE_NAME}.log",
    benchmark:
        f"results/benchmarks_deploy/measure/student/{{variant}}/{{task}}/seed{{seed}}/{MEASURE_NAME}.tsv"
    wildcard_constraints:
        engine="torch|torch-fp16|onnxruntime|onnxruntime-int8",
        device="cpu|cuda",
        batch=r"\d+",
        seq_len=r"\d+",
        variant=STUDENT_VARIANT,
    conda:
        ENV
    threads: MEASURE["threads"]
    resources:
        mem_mb=4000,
        runtime=30,
        cpu_bench=1,
        gpu=measure_gpu,
    params:
        model=in_folder("model"),
        opts=measure_options,
        int8=measure_int8_options,
    shell:
        "python -m adabert measure --model-kind student --model {params.model:q}"
        " --engine {wildcards.engine} --device {wildcards.device} --batch {wildcards.batch}"
        " --seq-len {wildcards.seq_len} {params.opts} {params.int8} --task {wildcards.task:q}"
        " --variant {wildcards.variant:q} --seed {wildcards.seed} --out {output:q} > {log:q} 2>&1"


rule measure_teacher:
    """Latency/throughput, size and FLOPs of a task's teacher (speedup reference of its students)."""
    input:
        unpack(measure_data),
        teacher=rules.teacher.output.metrics,
    output:
        f"results/measure/teacher/{{task}}/{MEASURE_NAME}.json",
    log:
        f"logs/measure/teacher/{{task}}/{MEASURE_NAME}.log",
    benchmark:
        f"results/benchmarks_deploy/measure/teacher/{{task}}/{MEASURE_NAME}.tsv"
    wildcard_constraints:
        engine="torch|torch-fp16|onnxruntime|onnxruntime-int8",
        device="cpu|cuda",
        batch=r"\d+",
        seq_len=r"\d+",
    conda:
        ENV
    threads: MEASURE["threads"]
    resources:
        mem_mb=6000,
        runtime=30,
        cpu_bench=1,
        gpu=measure_gpu,
    params:
        model=in_folder("teacher"),
        opts=measure_options,
        int8=measure_int8_options,
    shell:
        "python -m adabert measure --model-kind teacher --model {params.model:q}"
        " --engine {wildcards.engine} --device {wildcards.device} --batch {wildcards.batch}"
        " --seq-len {wildcards.seq_len} {params.opts} {params.int8} --task {wildcards.task:q}"
        " --out {output:q} > {log:q} 2>&1"


rule measure_bert_base:
    """BERT-base (architecture only, or local weights) once per run: the shared speed/size reference."""
    output:
        f"results/measure/bert-base/{MEASURE_NAME}.json",
    log:
        f"logs/measure/bert-base/{MEASURE_NAME}.log",
    benchmark:
        f"results/benchmarks_deploy/measure/bert-base/{MEASURE_NAME}.tsv"
    wildcard_constraints:
        engine="torch|torch-fp16|onnxruntime|onnxruntime-int8",
        device="cpu|cuda",
        batch=r"\d+",
        seq_len=r"\d+",
    conda:
        ENV
    threads: MEASURE["threads"]
    resources:
        mem_mb=8000,
        runtime=60,
        cpu_bench=1,
        gpu=measure_gpu,
    params:
        model=BERT_BASE_MODEL,
        opts=measure_options,
        int8=measure_int8_options,
    shell:
        "python -m adabert measure --model-kind bert-base {params.model}"
        " --engine {wildcards.engine} --device {wildcards.device} --batch {wildcards.batch}"
        " --seq-len {wildcards.seq_len} {params.opts} {params.int8} --out {output:q} > {log:q} 2>&1"


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
