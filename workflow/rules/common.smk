# Shared helpers: config checks, wildcard constraints, per-stage config views.
import json
import os
import re
import shutil

adabert_config.check(config)

TASKS = list(config["tasks"])
SEEDS = list(config["seeds"])
VARIANTS = list(config["variants"])
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
