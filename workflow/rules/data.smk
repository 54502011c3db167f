rule prepare:
    """Load a task's splits (local GLUE folder, the Hub, or custom files), cap and tokenise them."""
    output:
        meta="results/data/{task}/meta.json",
        train="results/data/{task}/train.safetensors",
    log:
        "logs/prepare/{task}.log",
    benchmark:
        "results/benchmarks/prepare/{task}.tsv"
    priority: teacher_priority
    conda:
        ENV
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        cfg=stage_config("prepare"),
        out=out_folder,
    shell:
        "python -m adabert prepare --task {wildcards.task:q} --config {params.cfg:q}"
        " --out {params.out:q} > {log:q} 2>&1"
