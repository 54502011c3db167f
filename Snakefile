# adabert-bench: AdaBERT (Chen et al., IJCAI 2020) end to end.
#   glue data -> teacher fine-tuning -> teacher probes -> [augment] -> search (task x seed x variant) -> derive
#   -> retrain (+ random / transferred architectures, baselines) -> export -> measure -> tables, figures
# Every rule is a thin call of `python -m adabert <stage>`; the logic lives in the adabert package.
import os

from snakemake.utils import min_version, validate

from adabert import config as adabert_config

min_version("9.27")


# config/config.yaml is the default setting. A config file given with --configfile is a complete
# setting of its own (config/paper.yaml, .test/config.yaml): it replaces the default instead of being
# merged into it, and the keys it leaves out take the schema defaults (config/README.md).
if not workflow.overwrite_configfiles:

    configfile: os.path.join(workflow.basedir, "config", "config.yaml")


# Our validator first: its errors name the key and list the allowed keys/values.
adabert_config.validate(config)
validate(config, "workflow/schemas/config.schema.yaml")


# common.smk and targets.smk define every name the rule files use (config views, params functions,
# the target lists); the rule files hold rules only.
include: "workflow/rules/common.smk"
include: "workflow/rules/targets.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/teacher.smk"
include: "workflow/rules/augment.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/retrain.smk"
include: "workflow/rules/architectures.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/measure.smk"
include: "workflow/rules/report.smk"


# Jobs of a few seconds (cutting an architecture's weights out of a supernet, tables, figures, the
# README section) run where snakemake runs, never as cluster jobs: on SLURM each would wait for an
# allocation and the executor's status polling, for less work than the wait.
localrules:
    all,
    derive,
    random_architecture,
    fixed_architecture,
    transfer_architecture,
    teacher_table,
    search_table,
    task_adaptivity,
    searched_vs_random,
    cost_table,
    figures,
    main_table,
    efficiency_summary,
    ablation_table,
    transfer_table,
    seed_table,
    readme_section,
    efficiency_table,


rule all:
    default_target: True
    input:
        # tables, figures and the README section; the studies the config switches on
        FINAL_TARGETS,
