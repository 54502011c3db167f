# Retrain the derived students (deployable folders) and export students and teachers to ONNX. An export
# times nothing (its dev checks are not measurements), so it runs on a training job's threads, beside others.


rule retrain:
    """Train the derived student (inherited weights) with CE + KD; save a self-contained student folder."""
    input:
        # meta, teacher, probes (augmented variants: the augment stage's folders) and the derive
        # folder: searched (results/derive), random or transferred (results/architectures)
        unpack(teacher_inputs),
        unpack(architecture_inputs),
    output:
        metrics="results/retrain/{variant}/{task}/seed{seed}/metrics.json",
        model="results/retrain/{variant}/{task}/seed{seed}/model.safetensors",
    log:
        "logs/retrain/{variant}/{task}/seed{seed}.log",
    benchmark:
        "results/benchmarks_deploy/retrain/{variant}/{task}/seed{seed}.tsv"
    wildcard_constraints:
        variant=STUDENT_VARIANT,
    conda:
        ENV
    threads: JOB_THREADS
    resources:
        mem_mb=6000,
        runtime=120,
        gpu=GPU,
        cpu_bench=1,
    params:
        cfg=retrain_config,
        data=in_folder("meta"),
        teacher=in_folder("teacher"),
        probes=in_folder("probes"),
        derive=in_folder("genotype"),
        out=out_folder,
    shell:
        "python -m adabert retrain --task {wildcards.task:q} --variant {wildcards.variant:q}"
        " --seed {wildcards.seed} --config {params.cfg:q} --data {params.data:q}"
        " --teacher {params.teacher:q} --probes {params.probes:q} --derive {params.derive:q}"
        " --out {params.out:q} > {log:q} 2>&1"


rule export_student:
    """ONNX fp32 + int8 of a retrained student; ONNX Runtime vs PyTorch checked on real dev batches."""
    input:
        meta=rules.prepare.output.meta,
        model=rules.retrain.output.model,
    output:
        summary="results/export/student/{variant}/{task}/seed{seed}/export.json",
        onnx="results/export/student/{variant}/{task}/seed{seed}/student.onnx",
        int8="results/export/student/{variant}/{task}/seed{seed}/student.int8.onnx",
    log:
        "logs/export/student/{variant}/{task}/seed{seed}.log",
    benchmark:
        "results/benchmarks_deploy/export/student/{variant}/{task}/seed{seed}.tsv"
    wildcard_constraints:
        variant=STUDENT_VARIANT,
    conda:
        ENV
    threads: JOB_THREADS
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        cfg=export_config,
        data=in_folder("meta"),
        model=in_folder("model"),
        out=out_folder,
    shell:
        "python -m adabert export --task {wildcards.task:q} --config {params.cfg:q}"
        " --model {params.model:q} --data {params.data:q} --threads {threads}"
        " --out {params.out:q} > {log:q} 2>&1"


rule export_teacher:
    """ONNX fp32 + int8 of a task's teacher, checked on real dev batches like the students."""
    input:
        meta=rules.prepare.output.meta,
        teacher=rules.teacher.output.metrics,
    output:
        summary="results/export/teacher/{task}/export.json",
        onnx="results/export/teacher/{task}/teacher.onnx",
        int8="results/export/teacher/{task}/teacher.int8.onnx",
    log:
        "logs/export/teacher/{task}.log",
    benchmark:
        "results/benchmarks_deploy/export/teacher/{task}.tsv"
    conda:
        ENV
    threads: JOB_THREADS
    resources:
        mem_mb=6000,
        runtime=30,
    params:
        cfg=export_config,
        data=in_folder("meta"),
        model=in_folder("teacher"),
        out=out_folder,
    shell:
        "python -m adabert export --task {wildcards.task:q} --config {params.cfg:q}"
        " --model {params.model:q} --data {params.data:q} --threads {threads}"
        " --out {params.out:q} > {log:q} 2>&1"
