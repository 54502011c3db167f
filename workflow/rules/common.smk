# The names the rule files use, defined once and before the rules (the Snakefile includes this file
# first, then targets.smk): the config's tasks, seeds, variants and studies, wildcard constraints and
# the params/input functions. The file lists of the aggregating rules are in targets.smk; the rule
# files define no globals of their own.
import json
import os
import re
import shlex
import shutil

adabert_config.check(config)

TASKS = list(config["tasks"])
# Threads of a training job; Snakemake caps them at --cores (config job_threads, null = every core).
JOB_THREADS = config["job_threads"] or workflow.cores
# A timing job runs alone: it holds all BENCH_UNITS units of the cpu_bench resource (its capacity in
# profiles/default), every training job one unit, so no training job or other timing job runs beside it.
BENCH_UNITS = 100
SEEDS = list(config["seeds"])
VARIANTS = list(config["variants"])
MAIN = config["main_variant"]
ABLATIONS = [v for v in VARIANTS if v != MAIN]
# Every (variant, task, seed) searched, derived and retrained; ablations may run on fewer tasks/seeds.
RUNS = adabert_config.variant_runs(config)
# Baselines (BiLSTM-SOFT, truncated teacher + KD) on their seeds; random architectures per task.
BASELINES = [k for k in ("bilstm", "truncated") if config["baselines"][k]["enabled"]]
BASELINE_SEEDS = config["baselines"]["seeds"] or SEEDS
# measurement kind of each baseline's model folder (a truncated teacher is an HF teacher folder)
BASELINE_MODEL_KIND = {"bilstm": "bilstm", "truncated": "teacher"}
RANDOM = config["baselines"]["random"]
RANDOM_TASKS = [t for t in TASKS if RANDOM["tasks"] is None or t in RANDOM["tasks"]]
RANDOM_SAMPLES = list(range(RANDOM["samples"]))
# one-op cells (baselines.fixed_cells), next to the random architectures on their tasks, one per main seed
FIXED_OPS = list(config["baselines"]["fixed_cells"]["ops"]) if RANDOM_SAMPLES else []
TRANSFER_TASKS = list(config["transfer"]["tasks"])
TRANSFER_SEEDS = config["transfer"]["seeds"] or SEEDS
TASK_PATTERN = "|".join(re.escape(t) for t in TASKS)
# retrain/export/measure also run random architectures ("random"), fixed one-op cells ("fixed-<op>") and
# transferred ones ("from-<task>")
STUDENT_VARIANT = "|".join(
    [re.escape(v) for v in VARIANTS]
    + ["random", "fixed-[a-z0-9_]+", f"from-(?:{TASK_PATTERN})"]
)
# the students measured on measure.ablation_engines one job each: every one but the main variant's and
# the random architectures (measured a task at a time: by its side-by-side job, or rule measure_random)
ABLATION_VARIANT = "|".join(
    [re.escape(v) for v in ABLATIONS] + [f"from-(?:{TASK_PATTERN})"]
)
# Speed/size measurements: one job per model (all its engines, devices and shapes in one process), one
# file per engine, device and shape, named MEASURE_NAME. The teacher architecture is measured once per
# run, as the teacher of the first task (the tasks' teachers differ only in the classifier's outputs).
MEASURE = config["measure"]
MEASURE_NAME = "{engine}.{device}.b{batch}.s{seq_len}"
MEASURE_TEACHER_TASK = TASKS[0]
# Snakemake benchmark folders (<root>/<stage>/...) the cost table reads.
BENCHMARK_ROOTS = {
    "training": "results/benchmarks",
    "deploy": "results/benchmarks_deploy",
}
# Conda env for --software-deployment-method conda (the same packages as pyproject.toml).
ENV = "../../envs/adabert.yaml"
# Jobs that can use a GPU ask for one when this machine has one (cluster profiles set their own).
GPU = 1 if shutil.which("nvidia-smi") else 0


wildcard_constraints:
    task=TASK_PATTERN,
    variant="|".join(re.escape(v) for v in VARIANTS),
    seed=r"\d+",


def stage_config(stage):
    """Params function: the stage's resolved config view as JSON (a change reruns the stage)."""

    def view(wildcards):
        return json.dumps(
            adabert_config.stage_config(
                config, stage, wildcards.get("task"), wildcards.get("variant")
            ),
            sort_keys=True,
        )

    return view


def teacher_init(wildcards):
    """The teacher a task's teacher starts from (teacher.per_task.<task>.init_from), as a named input."""
    source = config["teacher"]["per_task"].get(wildcards.task, {}).get("init_from")
    return {"init": f"results/teacher/{source}/metrics.json"} if source else {}


def teacher_priority(wildcards):
    """Scheduling priority of a task's data and teacher jobs: 1 for a teacher that other tasks' teachers
    start from (teacher.per_task.<task>.init_from: MNLI in the default config) and for the data it is
    trained on (a priority does not pass to a job's inputs), so it starts first and the teachers waiting
    for it (MRPC, RTE) do not run last; 0 for the others."""
    sources = {opts.get("init_from") for opts in config["teacher"]["per_task"].values()}
    return 1 if wildcards.task in sources else 0


def teacher_init_option(wildcards, input):
    """Params function: ``--init <folder>`` (shell-quoted) when the teacher starts from another task's."""
    return (
        f"--init {shlex.quote(os.path.dirname(input.init))}"
        if "init" in input.keys()
        else ""
    )


def out_folder(wildcards, output):
    """Params function: the folder of the first output file (the stage writes the whole folder)."""
    return os.path.dirname(output[0])


def in_folder(name):
    """Params function: the folder holding the named input file."""

    def parent(wildcards, input):
        return os.path.dirname(input[name])

    return parent


def quoted_folders(files):
    """The folders of ``files``, each once, in order, shell-quoted, space-separated."""
    return " ".join(
        shlex.quote(d) for d in dict.fromkeys(os.path.dirname(f) for f in files)
    )


def out_folders(wildcards, output):
    """Params function: the folders of the output files (a job writing several model folders)."""
    return quoted_folders(output)


def out_stem(wildcards, output):
    """Params function: the path of the ``md`` output without extension (the table's output stem)."""
    return os.path.splitext(output.md)[0]


def teacher_inputs(wildcards):
    """Data/teacher/probe folders of a run: the augment stage's copies where its variant augments the task
    (random architectures and transfer runs: where the main variant does)."""
    variant = wildcards.get("variant")
    if variant and wildcards.task in adabert_config.augmented_tasks(config, variant):
        root = f"results/augment/{wildcards.task}"
        return {
            "meta": f"{root}/data/meta.json",
            "teacher": f"{root}/teacher/metrics.json",
            "probes": f"{root}/probes/probes.json",
        }
    return {
        "meta": f"results/data/{wildcards.task}/meta.json",
        "teacher": f"results/teacher/{wildcards.task}/metrics.json",
        "probes": f"results/probes/{wildcards.task}/probes.json",
    }


def architecture_inputs(wildcards):
    """The derive folder a retrain reads: searched, random, fixed or transferred."""
    v = wildcards.variant
    if v == "random" or v.startswith(("fixed-", "from-")):
        root = f"results/architectures/{v}/{wildcards.task}/seed{wildcards.seed}"
    else:
        root = f"results/derive/{v}/{wildcards.task}/seed{wildcards.seed}"
    return {
        "genotype": f"{root}/genotype.json",
        "weights": f"{root}/weights.safetensors",
    }


def retrain_config(wildcards):
    """Params function: the retrain view (random/transfer runs: the main recipe from scratch)."""
    return json.dumps(
        adabert_config.retrain_config(config, wildcards.task, wildcards.variant),
        sort_keys=True,
    )


def export_config(wildcards):
    """Params function: the export stage's config (threads of the ONNX Runtime checks, the int8 mode and
    its calibration rows)."""
    keys = ("threads", "int8", "calibration_examples")
    return json.dumps(
        {"measure": {k: MEASURE[k] for k in keys}, "task": wildcards.task},
        sort_keys=True,
    )


def measure_shapes():
    """(batch, seq_len) of the latency and throughput shapes, without duplicates."""
    shapes = [(MEASURE["latency"]["batch"], n) for n in MEASURE["latency"]["seq_lens"]]
    shapes += [
        (MEASURE["throughput"]["batch"], n) for n in MEASURE["throughput"]["seq_lens"]
    ]
    return list(dict.fromkeys(shapes))


def ort_has_cuda():
    try:
        import onnxruntime

        return "CUDAExecutionProvider" in onnxruntime.get_available_providers()
    except ImportError:
        return False


def measure_combos(engines=None):
    """(engine, device) pairs to run: cuda only with a GPU, int8 CPU only, fp16 cuda only, ORT cuda only
    with its provider."""
    devices = [d for d in MEASURE["devices"] if d == "cpu" or GPU]
    ort_cuda = GPU and "cuda" in devices and ort_has_cuda()
    on_device = {
        "cpu": ("torch", "onnxruntime", "onnxruntime-int8"),
        "cuda": ("torch", "torch-fp16") + (("onnxruntime",) if ort_cuda else ()),
    }
    return [
        (e, d)
        for e in (MEASURE["engines"] if engines is None else engines)
        for d in devices
        if e in on_device[d]
    ]


def measure_files(prefix, engines=None):
    """The measurement JSONs (MEASURE_NAME) of one model folder of results/measure: the outputs of its
    one measurement job."""
    return [
        f"{prefix}/{e}.{d}.b{b}.s{n}.json"
        for e, d in measure_combos(engines)
        for b, n in measure_shapes()
    ]


def measure_request(engines=None):
    """Params: the engines (``engine@cuda`` on the GPU) and shapes of one model's measurement job."""
    runs = [e if d == "cpu" else f"{e}@{d}" for e, d in measure_combos(engines)]
    shapes = [f"{b}x{n}" for b, n in measure_shapes()]
    return f"--engines {' '.join(runs)} --shapes {' '.join(shapes)}"


def measure_options(wildcards):
    """Params function: the timing settings (a change reruns the measurements)."""
    return (
        f"--threads {MEASURE['threads']} --min-seconds {MEASURE['min_seconds']}"
        f" --min-batches {MEASURE['min_batches']} --repeats {MEASURE['repeats']}"
        f" --warmup {MEASURE['warmup_batches']} --peak-seconds {MEASURE['peak_seconds']}"
        + (
            f" --warmup-rows {MEASURE['warmup_rows']}"
            if MEASURE["warmup_rows"] is not None
            else ""
        )
        + ("" if MEASURE["references"] else " --no-references")
    )


def measures_int8(engines=None):
    return any(e == "onnxruntime-int8" for e, _ in measure_combos(engines))


def measure_data(engines=None):
    """Input function (of a job measuring ``engines``): int8 graphs of a task's model calibrate on the
    task's prepared data."""

    def data(wildcards):
        if not measures_int8(engines) or "task" not in wildcards.keys():
            return {}
        return {"data": f"results/data/{wildcards.task}/meta.json"}

    return data


def measure_int8_options(engines=None):
    """Params function: the int8 mode and, where the task's data is an input, its folder (calibration
    on its training rows); without it (BERT-base), as many synthetic rows as
    measure.synthetic_calibration_examples."""

    def options(wildcards, input):
        if not measures_int8(engines):
            return ""
        opts = f"--int8 {MEASURE['int8']}"
        if "data" in input.keys():
            return (
                f"{opts} --calibration-examples {MEASURE['calibration_examples']}"
                f" --data {shlex.quote(os.path.dirname(input.data))}"
            )
        return (
            f"{opts} --calibration-examples {MEASURE['synthetic_calibration_examples']}"
        )

    return options


def random_measure_folders(task):
    """The measurement folders of a task's random architectures (one job writes them all: the task's
    side-by-side timing, or measure_random)."""
    return [f"results/measure/student/random/{task}/seed{n}" for n in RANDOM_SAMPLES]


MAIN_SEEDS = adabert_config.variant_seeds(config, MAIN)


def folders_of(name):
    """Params function: the folders of the named input files (one file per folder), shell-quoted."""

    def folders(wildcards, input):
        return quoted_folders(input[name])

    return folders


def searched_models(task):
    """The main variant's retrained students of ``task``: (seed, model file)."""
    return [
        (s, f"results/retrain/{v}/{t}/seed{s}/model.safetensors")
        for v, t, s in adabert_config.variant_runs(config, [MAIN])
        if t == task
    ]


def side_by_side_students(task):
    """(variant, seed, model file) of the students a task's side-by-side timing compares: the searched
    students and the random architectures."""
    return [(MAIN, s, m) for s, m in searched_models(task)] + [
        ("random", n, f"results/retrain/random/{task}/seed{n}/model.safetensors")
        for n in RANDOM_SAMPLES
    ]


def side_by_side_models(wildcards):
    """Input function: the model files of a task's side-by-side timing."""
    return [m for _, _, m in side_by_side_students(wildcards.task)]


def side_by_side_records():
    """Output patterns ({task} wildcard): the measurement JSONs a task's side-by-side job writes besides
    its own, the random architectures' (RANDOM_FROM_SIDE_BY_SIDE), else none."""
    if not RANDOM_FROM_SIDE_BY_SIDE:
        return []
    return [
        f
        for d in random_measure_folders("{task}")
        for f in measure_files(d, MEASURE["ablation_engines"])
    ]


def side_by_side_options(wildcards):
    """Params function: a --model VARIANT SEED FOLDER triple per student, a --record triple per random
    architecture whose measurement the job writes, the shape and the timing settings."""
    batch, seq_len = max(measure_shapes())
    records = (
        [
            f"--record random {n} {shlex.quote(d)}"
            for n, d in zip(RANDOM_SAMPLES, random_measure_folders(wildcards.task))
        ]
        + [f"--peak-seconds {MEASURE['peak_seconds']}"]
        if RANDOM_FROM_SIDE_BY_SIDE
        else []
    )
    return " ".join(
        [
            f"--model {shlex.quote(v)} {s} {shlex.quote(os.path.dirname(m))}"
            for v, s, m in side_by_side_students(wildcards.task)
        ]
        + records
    ) + (
        f" --batch {batch} --seq-len {seq_len} --threads {MEASURE['threads']}"
        f" --min-seconds {MEASURE['min_seconds']} --min-batches {MEASURE['min_batches']}"
        f" --repeats {MEASURE['repeats']} --warmup {MEASURE['warmup_batches']}"
    )


def measure_gpu(engines=None):
    """Resource: a GPU for a job with cuda measurements."""
    return 1 if any(d == "cuda" for _, d in measure_combos(engines)) else 0


def measure_runtime(minutes_each, engines=None):
    """Resource (minutes): a generous bound for one model's job, per measurement it makes."""
    return 10 + minutes_each * len(measure_combos(engines)) * len(measure_shapes())


# The BERT-base reference: local weights (measure.bert_base_weights) or the architecture only.
BERT_BASE_MODEL = (
    f"--model {shlex.quote(MEASURE['bert_base_weights'])}"
    if MEASURE["bert_base_weights"]
    else ""
)
