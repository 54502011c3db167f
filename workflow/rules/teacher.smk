rule teacher:
    """Fine-tune the teacher encoder; dev metrics and train/dev logits (the KD targets)."""
    input:
        unpack(teacher_init),
        meta=rules.prepare.output.meta,
        train=rules.prepare.output.train,
    output:
        metrics="results/teacher/{task}/metrics.json",
        logits="results/teacher/{task}/logits.safetensors",
    log:
        "logs/teacher/{task}.log",
    benchmark:
        "results/benchmarks/teacher/{task}.tsv"
    priority: teacher_priority
    conda:
        ENV
    threads: JOB_THREADS
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=GPU,
        cpu_bench=1,
    params:
        cfg=stage_config("teacher"),
        data=in_folder("meta"),
        out=out_folder,
        init=teacher_init_option,
    shell:
        "python -m adabert teacher --task {wildcards.task:q} --config {params.cfg:q}"
        " --data {params.data:q} --out {params.out:q} {params.init} > {log:q} 2>&1"


rule probes:
    """Freeze the teacher; one linear probe per layer (embeddings + every hidden layer)."""
    input:
        meta=rules.prepare.output.meta,
        teacher=rules.teacher.output.metrics,
    output:
        probes="results/probes/{task}/probes.json",
        logits="results/probes/{task}/probe_logits.safetensors",
    log:
        "logs/probes/{task}.log",
    benchmark:
        "results/benchmarks/probes/{task}.tsv"
    conda:
        ENV
    threads: JOB_THREADS
    resources:
        mem_mb=8000,
        runtime=60,
        gpu=GPU,
        cpu_bench=1,
    params:
        cfg=stage_config("probes"),
        data=in_folder("meta"),
        teacher=in_folder("teacher"),
        out=out_folder,
    shell:
        "python -m adabert probes --task {wildcards.task:q} --config {params.cfg:q}"
        " --data {params.data:q} --teacher {params.teacher:q}"
        " --out {params.out:q} > {log:q} 2>&1"
