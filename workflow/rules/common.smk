# Shared helpers: config checks, wildcard constraints, per-stage config views.
import json
import os
import re
import shutil

adabert_config.check(config)

TASKS = list(config["tasks"])
SEEDS = list(config["seeds"])
VARIANTS = list(config["variants"])
MAIN = config["main_variant"]
ABLATIONS = [v for v in VARIANTS if v != MAIN]
# Every (variant, task, seed) searched, derived and retrained; ablations may run on fewer tasks/seeds.
RUNS = adabert_config.variant_runs(config)
AUGMENTED = [v for v in VARIANTS if config["variants"][v]["augment"]]
AUGMENT_TASKS = [
    t
    for t in TASKS
    if any(t in adabert_config.variant_tasks(config, v) for v in AUGMENTED)
]
RANDOM = config["baselines"]["random"]
RANDOM_TASKS = [t for t in TASKS if RANDOM["tasks"] is None or t in RANDOM["tasks"]]
RANDOM_SAMPLES = list(range(RANDOM["samples"]))
TRANSFER_TASKS = list(config["transfer"]["tasks"])
TRANSFER_SEEDS = config["transfer"]["seeds"] or SEEDS
# retrain/export/measure also run random architectures ("random") and transferred ones ("from-<task>")
STUDENT_VARIANT = "|".join(
    [re.escape(v) for v in VARIANTS]
    + ["random", "from-(?:" + "|".join(re.escape(t) for t in TASKS) + ")"]
)
# Conda env for --software-deployment-method conda (the same packages as pyproject.toml).
ENV = "../../envs/adabert.yaml"
# Jobs that can use a GPU ask for one when this machine has one (cluster profiles set their own).
GPU = 1 if shutil.which("nvidia-smi") else 0


wildcard_constraints:
    task="|".join(re.escape(t) for t in TASKS),
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


def out_folder(wildcards, output):
    """Params function: the folder of the first output file (the stage writes the whole folder)."""
    return os.path.dirname(output[0])


def in_folder(name):
    """Params function: the folder holding the named input file."""

    def parent(wildcards, input):
        return os.path.dirname(input[name])

    return parent


def run_files(pattern, variants=None, **extra):
    """``pattern`` formatted for every (variant, task, seed) run of ``variants`` (default: all)."""
    return [
        pattern.format(variant=v, task=t, seed=s, **extra)
        for v, t, s in adabert_config.variant_runs(config, variants)
    ]


def is_augmented(wildcards):
    return wildcards.variant in AUGMENTED


def teacher_inputs(wildcards):
    """Data/teacher/probe folders of a run: the augment stage's copies for an augmented variant."""
    if wildcards.get("variant") in AUGMENTED:
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
    """The derive folder a retrain reads: searched, random or transferred."""
    v = wildcards.variant
    if v == "random" or v.startswith("from-"):
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
