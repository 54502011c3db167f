# Helpers of the retrain/export/measure rules: export config view, measurement shapes and targets.
import shlex

MEASURE = config["measure"]
MEASURE_NAME = "{engine}.{device}.b{batch}.s{seq_len}"


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
    """(engine, device) pairs to run: cuda only with a GPU, int8 CPU only, ORT cuda only with its provider."""
    devices = [d for d in MEASURE["devices"] if d == "cpu" or GPU]
    ort_cuda = GPU and "cuda" in devices and ort_has_cuda()
    return [
        (e, d)
        for e in (MEASURE["engines"] if engines is None else engines)
        for d in devices
        if d == "cpu" or e == "torch" or (e == "onnxruntime" and ort_cuda)
    ]


def measure_files(prefix, engines=None):
    """The measurement JSONs of one model folder of results/measure."""
    return [
        f"{prefix}/{e}.{d}.b{b}.s{n}.json"
        for e, d in measure_combos(engines)
        for b, n in measure_shapes()
    ]


def measure_options(wildcards):
    """Params function: the timing settings (a change reruns the measurements)."""
    return (
        f"--threads {MEASURE['threads']} --min-seconds {MEASURE['min_seconds']}"
        f" --min-batches {MEASURE['min_batches']} --warmup {MEASURE['warmup_batches']}"
        f" --peak-seconds {MEASURE['peak_seconds']}"
    )


def measure_gpu(wildcards):
    return 1 if wildcards.device == "cuda" else 0


# The main variant's students on every engine; ablation students and the random architectures
# (baselines.random: their speed and the Pareto figure) on measure.ablation_engines.
MEASURE_STUDENTS = [
    f
    for v, t, s in RUNS
    + [("random", t, n) for t in RANDOM_TASKS for n in RANDOM_SAMPLES]
    for f in measure_files(
        f"results/measure/student/{v}/{t}/seed{s}",
        None if v == MAIN else MEASURE["ablation_engines"],
    )
]
MEASURE_TEACHERS = (
    [f for t in TASKS for f in measure_files(f"results/measure/teacher/{t}")]
    if MEASURE["teacher"]
    else []
)
MEASURE_BERT = (
    measure_files("results/measure/bert-base") if MEASURE["include_bert_base"] else []
)


def export_config(wildcards):
    """Params function: the export stage's config (threads of the ONNX Runtime checks)."""
    return json.dumps(
        {"measure": {"threads": config["measure"]["threads"]}, "task": wildcards.task},
        sort_keys=True,
    )
