rule search:
    """Differentiable architecture search (Gumbel-softmax over ops and depth) for one task/seed/variant."""
    input:
        # meta, teacher, probes: the augment stage's folders for an augmented variant
        unpack(teacher_inputs),
    output:
        metrics="results/search/{variant}/{task}/seed{seed}/metrics.json",
        history="results/search/{variant}/{task}/seed{seed}/alpha_history.json",
        weights="results/search/{variant}/{task}/seed{seed}/supernet.safetensors",
    log:
        "logs/search/{variant}/{task}/seed{seed}.log",
    benchmark:
        "results/benchmarks/search/{variant}/{task}/seed{seed}.tsv"
    conda:
        ENV
    threads: JOB_THREADS
    resources:
        mem_mb=8000,
        runtime=240,
        gpu=GPU,
        cpu_bench=1,
    params:
        cfg=stage_config("search"),
        data=in_folder("meta"),
        teacher=in_folder("teacher"),
        probes=in_folder("probes"),
        out=out_folder,
    shell:
        "python -m adabert search --task {wildcards.task:q} --seed {wildcards.seed}"
        " --variant {wildcards.variant:q} --config {params.cfg:q} --data {params.data:q}"
        " --teacher {params.teacher:q} --probes {params.probes:q} --out {params.out:q}"
        " > {log:q} 2>&1"


rule derive:
    """Genotype (depth K, two strongest edges per node) and the inherited weights of the student."""
    input:
        metrics=rules.search.output.metrics,
        weights=rules.search.output.weights,
    output:
        genotype="results/derive/{variant}/{task}/seed{seed}/genotype.json",
        weights="results/derive/{variant}/{task}/seed{seed}/weights.safetensors",
    log:
        "logs/derive/{variant}/{task}/seed{seed}.log",
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        cfg=stage_config("derive"),
        search=in_folder("metrics"),
        out=out_folder,
    shell:
        "python -m adabert derive --config {params.cfg:q} --search {params.search:q}"
        " --out {params.out:q} > {log:q} 2>&1"
