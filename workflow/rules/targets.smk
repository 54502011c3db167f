# The file lists of the aggregating rules (tables, figures, `all`), built from the config alone (the
# names of common.smk) before any rule is defined. Each list is named for the runs it holds, so no
# rule recovers a task, variant or seed by splitting a path. The paths are the rules' output paths.


def run_files(pattern, variants=None, **extra):
    """``pattern`` formatted for every (variant, task, seed) run of ``variants`` (default: all)."""
    return [
        pattern.format(variant=v, task=t, seed=s, **extra)
        for v, t, s in adabert_config.variant_runs(config, variants)
    ]


# Teachers, their probes and their Data folders, one per task.
TEACHER_METRICS = [f"results/teacher/{t}/metrics.json" for t in TASKS]
TEACHER_PROBES = [f"results/probes/{t}/probes.json" for t in TASKS]
TEACHER_DATA = [f"results/data/{t}/meta.json" for t in TASKS]

# Searched students: every (variant, task, seed) run, and the main variant's runs.
DERIVED = run_files("results/derive/{variant}/{task}/seed{seed}/genotype.json")
DERIVED_MAIN = run_files(
    "results/derive/{variant}/{task}/seed{seed}/genotype.json", [MAIN]
)
RETRAINED = run_files("results/retrain/{variant}/{task}/seed{seed}/metrics.json")
RETRAINED_MAIN = run_files(
    "results/retrain/{variant}/{task}/seed{seed}/metrics.json", [MAIN]
)

# Architectures retrained without their own search (variants "random", "fixed-<op>" and "from-<source>").
RANDOM_RETRAINED = [
    f"results/retrain/random/{t}/seed{n}/metrics.json"
    for t in RANDOM_TASKS
    for n in RANDOM_SAMPLES
]
FIXED_RETRAINED = [
    f"results/retrain/fixed-{op}/{t}/seed{s}/metrics.json"
    for op in FIXED_OPS
    for t in RANDOM_TASKS
    for s in SEEDS
]
TRANSFER_RETRAINED = [
    f"results/retrain/from-{src}/{t}/seed{s}/metrics.json"
    for src in TRANSFER_TASKS
    for t in TRANSFER_TASKS
    for s in TRANSFER_SEEDS
]
# the transfer table's reference row: the random architectures of the transfer tasks
TRANSFER_RANDOM_RETRAINED = [
    f"results/retrain/random/{t}/seed{n}/metrics.json"
    for t in RANDOM_TASKS
    if t in TRANSFER_TASKS
    for n in RANDOM_SAMPLES
]

# Baseline students (BiLSTM-SOFT, truncated teacher + KD).
BASELINE_RETRAINED = [
    f"results/baselines/{k}/{t}/seed{s}/metrics.json"
    for k in BASELINES
    for t in TASKS
    for s in BASELINE_SEEDS
]

# ONNX exports of the main variant's students and of the teachers.
EXPORTS = run_files(
    "results/export/student/{variant}/{task}/seed{seed}/export.json", [MAIN]
) + [f"results/export/teacher/{t}/export.json" for t in TASKS]

# Measurements, one job per model (the outputs of measure.smk's rules). The main variant's students on
# every engine; ablation students and the random architectures (baselines.random: their speed and the
# Pareto figure) on measure.ablation_engines; the teacher architecture once (the first task's teacher);
# BERT-base once.
MEASURE_STUDENTS = [
    f
    for v, t, s in RUNS
    + [("random", t, n) for t in RANDOM_TASKS for n in RANDOM_SAMPLES]
    for f in measure_files(
        f"results/measure/student/{v}/{t}/seed{s}",
        None if v == MAIN else MEASURE["ablation_engines"],
    )
]
MEASURE_BASELINES = [
    f
    for k in BASELINES
    for t in TASKS
    for s in BASELINE_SEEDS
    for f in measure_files(f"results/measure/baseline/{k}/{t}/seed{s}")
]
MEASURE_TEACHERS = (
    measure_files(f"results/measure/teacher/{MEASURE_TEACHER_TASK}")
    if MEASURE["teacher"]
    else []
)
MEASURE_BERT = (
    measure_files("results/measure/bert-base") if MEASURE["include_bert_base"] else []
)
# measure.repeat_check: BERT-base and the first student of the main variant measured a second time, by
# jobs of their own (results/measure/repeat/); the repeatability table compares the two.
REPEAT_STUDENT = "student/{}/{}/seed{}".format(
    *adabert_config.variant_runs(config, [MAIN])[0]
)
REPEAT_MODELS = (["bert-base"] if MEASURE["include_bert_base"] else []) + [
    REPEAT_STUDENT
]
MEASURE_REPEATED = (
    [f for m in REPEAT_MODELS for f in measure_files(f"results/measure/{m}")]
    if MEASURE["repeat_check"]
    else []
)
MEASURE_REPEATS = (
    [f for m in REPEAT_MODELS for f in measure_files(f"results/measure/repeat/{m}")]
    if MEASURE["repeat_check"]
    else []
)
# The searched students and the random architectures of a task timed side by side in one job (the
# latencies of the searched-vs-random table; PyTorch on the CPU, the largest measured shape).
SIDE_BY_SIDE = [
    f"results/measure/side_by_side/{t}.json"
    for t in RANDOM_TASKS
    if RANDOM_SAMPLES
    and ("torch", "cpu") in measure_combos(MEASURE["ablation_engines"])
    and searched_models(t)
]
# The random architectures' measurements come from their task's side-by-side job (one timing job per
# task, not two) when it times all they need: measure.ablation_engines = [torch] on the CPU, one shape.
RANDOM_FROM_SIDE_BY_SIDE = bool(SIDE_BY_SIDE) and (
    measure_combos(MEASURE["ablation_engines"]) == [("torch", "cpu")]
    and len(measure_shapes()) == 1
)
# the measurement whose machine and library versions the README's results section quotes
README_MEASUREMENT = (MEASURE_BERT + MEASURE_TEACHERS + MEASURE_STUDENTS)[0]

# Snakemake benchmark files (BENCHMARK_ROOTS) of the training stages and of the searched students'
# retrains; the cost table waits for them.
BENCHMARKS_TRAINING = [
    f"{BENCHMARK_ROOTS['training']}/{stage}/{t}.tsv"
    for stage in ("prepare", "teacher", "probes")
    for t in TASKS
] + run_files(
    f"{BENCHMARK_ROOTS['training']}/search/{{variant}}/{{task}}/seed{{seed}}.tsv"
)
BENCHMARKS_DEPLOY = run_files(
    f"{BENCHMARK_ROOTS['deploy']}/retrain/{{variant}}/{{task}}/seed{{seed}}.tsv"
)

# The final outputs (the default target `all`), with the studies the config may switch off
# (ablation variants, transfer.tasks).
FINAL_TARGETS = [
    "results/tables/teacher.md",
    "results/tables/search.md",
    "results/tables/cost.md",
    "results/tables/efficiency.md",
    "paper/figures/searched_cells.png",
    "paper/tables/main.md",
    "paper/tables/efficiency.md",
    "paper/tables/seeds.md",
    "paper/README_results.md",
]
FINAL_TARGETS += ["paper/tables/ablations.md"] if ABLATIONS else []
FINAL_TARGETS += ["paper/tables/transfer.md"] if TRANSFER_TASKS else []
FINAL_TARGETS += ["paper/tables/task_adaptivity.md"] if len(DERIVED_MAIN) > 1 else []
FINAL_TARGETS += ["paper/tables/searched_vs_random.md"] if RANDOM_RETRAINED else []
FINAL_TARGETS += ["results/tables/repeatability.md"] if MEASURE_REPEATS else []
