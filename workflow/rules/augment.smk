# TinyBERT-style offline data augmentation for the variants with `augment: true`.


rule augment:
    """Word-substituted copies of the training split, labelled by the teacher (logits and probe logits)."""
    input:
        meta=rules.prepare.output.meta,
        teacher=rules.teacher.output.metrics,
        probes=rules.probes.output.probes,
    output:
        meta="results/augment/{task}/data/meta.json",
        teacher="results/augment/{task}/teacher/metrics.json",
        probes="results/augment/{task}/probes/probes.json",
    log:
        "logs/augment/{task}.log",
    benchmark:
        "results/benchmarks/augment/{task}.tsv"
    conda:
        ENV
    threads: JOB_THREADS
    resources:
        mem_mb=8000,
        runtime=120,
        gpu=GPU,
        cpu_bench=1,
    params:
        cfg=stage_config("augment"),
        data=in_folder("meta"),
        teacher=in_folder("teacher"),
        probes=in_folder("probes"),
        out=lambda wildcards, output: os.path.dirname(os.path.dirname(output.meta)),
    shell:
        "python -m adabert augment --task {wildcards.task:q} --config {params.cfg:q}"
        " --data {params.data:q} --teacher {params.teacher:q} --probes {params.probes:q}"
        " --out {params.out:q} > {log:q} 2>&1"
