# Architectures retrained without their own search: random samples of the search space (baseline),
# fixed one-op cells (the simplest students of the space) and genotypes searched on another task
# (cross-task transfer). All become derive folders under results/architectures/, which the retrain rule
# trains (variants "random" and "fixed-<op>": the main recipe and initialisation, weights from the task's
# main supernet; "from-<task>": from scratch).


rule random_architecture:
    """A genotype drawn uniformly from the search space (at the searched depth: baselines.random.depth),
    weighted from the task's main supernet."""
    input:
        meta=rules.prepare.output.meta,
        supernet=f"results/search/{MAIN}/{{task}}/seed{SEEDS[0]}/supernet.safetensors",
    output:
        genotype="results/architectures/random/{task}/seed{seed}/genotype.json",
        weights="results/architectures/random/{task}/seed{seed}/weights.safetensors",
    log:
        "logs/architectures/random/{task}/seed{seed}.log",
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        cfg=stage_config("random_architecture"),
        data=in_folder("meta"),
        search=in_folder("supernet"),
        out=out_folder,
    shell:
        "python -m adabert architecture --kind random --task {wildcards.task:q}"
        " --sample {wildcards.seed} --config {params.cfg:q} --search {params.search:q}"
        " --data {params.data:q} --out {params.out:q} > {log:q} 2>&1"


rule fixed_architecture:
    """The depth-1 cell with {op} on every edge, weighted from the task's main supernet of seed {seed}."""
    input:
        meta=rules.prepare.output.meta,
        supernet=f"results/search/{MAIN}/{{task}}/seed{{seed}}/supernet.safetensors",
    output:
        genotype="results/architectures/fixed-{op}/{task}/seed{seed}/genotype.json",
        weights="results/architectures/fixed-{op}/{task}/seed{seed}/weights.safetensors",
    log:
        "logs/architectures/fixed-{op}/{task}/seed{seed}.log",
    wildcard_constraints:
        op="[a-z0-9_]+",
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        cfg=stage_config("architecture"),
        data=in_folder("meta"),
        search=in_folder("supernet"),
        out=out_folder,
    shell:
        "python -m adabert architecture --kind fixed --op {wildcards.op:q} --task {wildcards.task:q}"
        " --sample {wildcards.seed} --config {params.cfg:q} --search {params.search:q}"
        " --data {params.data:q} --out {params.out:q} > {log:q} 2>&1"


rule transfer_architecture:
    """The main variant's genotype searched on {source}, set up for training on {task}."""
    input:
        meta=rules.prepare.output.meta,
        genotype=f"results/derive/{MAIN}/{{source}}/seed{{seed}}/genotype.json",
        embeddings=f"results/derive/{MAIN}/{{task}}/seed{{seed}}/weights.safetensors",
    output:
        genotype="results/architectures/from-{source}/{task}/seed{seed}/genotype.json",
        weights="results/architectures/from-{source}/{task}/seed{seed}/weights.safetensors",
    log:
        "logs/architectures/from-{source}/{task}/seed{seed}.log",
    wildcard_constraints:
        source=TASK_PATTERN,
    conda:
        ENV
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        cfg=stage_config("architecture"),
        data=in_folder("meta"),
        embeddings=in_folder("embeddings"),
        out=out_folder,
    shell:
        "python -m adabert architecture --kind transfer --task {wildcards.task:q}"
        " --sample {wildcards.seed} --genotype {input.genotype:q} --config {params.cfg:q}"
        " --embeddings {params.embeddings:q} --data {params.data:q} --out {params.out:q}"
        " > {log:q} 2>&1"
