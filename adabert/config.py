"""Configuration: load, validate against the JSON schema, fill defaults, specialise per stage.

The schema (``adabert/config.schema.yaml``, linked as ``workflow/schemas/config.schema.yaml``) is the
single source of truth for keys, types, ranges and defaults. The Snakefile validates with
``snakemake.utils.validate`` and then calls :func:`check`; the command line calls :func:`resolve`.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any, Iterable

import jsonschema
import yaml

from adabert.errors import AdabertError

SCHEMA_PATH = Path(__file__).with_name("config.schema.yaml")
GLUE_TASKS = ("CoLA", "SST-2", "MRPC", "STS-B", "QQP", "MNLI", "QNLI", "RTE", "WNLI")


def schema() -> dict:
    return yaml.safe_load(SCHEMA_PATH.read_text(encoding="utf-8"))


def _with_defaults(validator_class):
    validate_properties = validator_class.VALIDATORS["properties"]

    def set_defaults(validator, properties, instance, sch):
        if isinstance(instance, dict):
            for prop, sub in properties.items():
                if "default" in sub and prop not in instance:
                    instance[prop] = copy.deepcopy(sub["default"])
        yield from validate_properties(validator, properties, instance, sch)

    return jsonschema.validators.extend(validator_class, {"properties": set_defaults})


_Validator = _with_defaults(jsonschema.Draft202012Validator)


def _key(path: Iterable[Any]) -> str:
    return ".".join(str(p) for p in path) or "<top level>"


def _describe(error: jsonschema.ValidationError) -> str:
    key = _key(error.absolute_path)
    if error.validator == "additionalProperties":
        allowed = sorted(error.schema.get("properties", {}))
        extra = sorted(set(error.instance) - set(allowed)) if isinstance(error.instance, dict) else []
        where = f"under '{key}'" if error.absolute_path else "at the top level"
        return f"unknown config key(s) {extra} {where}; allowed keys: {allowed}"
    if error.validator == "enum":
        return f"config key '{key}': {error.instance!r} is not allowed; allowed values: {error.validator_value}"
    if error.validator == "pattern":
        return (f"config key '{key}': {error.instance!r} is not a valid name "
                f"(letters, digits, '_', '.', '-'; must match {error.validator_value})")
    if error.validator == "oneOf":
        return f"config key '{key}': {error.instance!r} is not allowed; allowed: {_alternatives(error.validator_value)}"
    return f"config key '{key}': {error.message}"


def _alternatives(schemas: list[dict]) -> str:
    """The alternatives of a ``oneOf``, in words: "'a', 'b' or an integer >= 1"."""
    words = []
    for alt in schemas:
        if "enum" in alt:
            words += [repr(v) for v in alt["enum"]]
        elif "minimum" in alt:
            words.append(f"an {alt.get('type', 'value')} >= {alt['minimum']}")
        else:
            words.append(f"a value of type {alt.get('type', 'any')}")
    return ", ".join(words[:-1]) + " or " + words[-1] if len(words) > 1 else words[0]


def validate(cfg: dict) -> dict:
    """Validate ``cfg`` in place (filling defaults) and return it; errors name the key."""
    errors = sorted(_Validator(schema()).iter_errors(cfg), key=lambda e: list(e.absolute_path))
    if errors:
        raise AdabertError("invalid configuration:\n  " + "\n  ".join(_describe(e) for e in errors))
    return cfg


def check(cfg: dict) -> dict:
    """Checks the schema cannot express: every task is a GLUE task or a defined custom task."""
    known = list(GLUE_TASKS) + sorted(cfg.get("custom_tasks", {}))
    for task in cfg["tasks"]:
        if task not in known:
            raise AdabertError(
                f"config key 'tasks': unknown task {task!r}; allowed values: {known} "
                "(define other tasks under 'custom_tasks')"
            )
    if cfg["search"].get("fixed_depth") and cfg["search"]["fixed_depth"] > cfg["search"]["k_max"]:
        raise AdabertError(
            f"config key 'search.fixed_depth': {cfg['search']['fixed_depth']} exceeds search.k_max "
            f"= {cfg['search']['k_max']}"
        )
    depth = cfg.get("baselines", {}).get("random", {}).get("depth")
    if isinstance(depth, int) and depth > cfg["search"]["k_max"]:
        raise AdabertError(f"config key 'baselines.random.depth': {depth} exceeds search.k_max = {cfg['search']['k_max']}")
    for name, override in cfg["variants"].items():
        for section in VARIANT_SECTIONS:
            if section in override:
                merged = copy.deepcopy(cfg)
                merged[section] = {**cfg[section], **override[section]}
                try:
                    validate({section: merged[section]})
                except AdabertError as exc:
                    raise AdabertError(f"variant {name!r}: {exc}") from None
        _check_subset(f"variants.{name}.tasks", override.get("tasks"), cfg["tasks"], "tasks")
        _check_subset(f"variants.{name}.seeds", override.get("seeds"), cfg["seeds"], "seeds")
        if isinstance(override.get("augment"), list):
            extra = [t for t in override["augment"] if t not in variant_tasks(cfg, name)]
            if extra:
                raise AdabertError(f"config key 'variants.{name}.augment': {extra} are not tasks this variant "
                                   f"runs on ({variant_tasks(cfg, name)})")
        depth = {**cfg["search"], **override.get("search", {})}
        if depth.get("fixed_depth") and depth["fixed_depth"] > depth["k_max"]:
            raise AdabertError(f"config key 'variants.{name}.search.fixed_depth': {depth['fixed_depth']} exceeds "
                               f"search.k_max = {depth['k_max']}")
    main = cfg["main_variant"]
    if main not in cfg["variants"]:
        raise AdabertError(f"config key 'main_variant': {main!r} is not a variant; defined in 'variants': "
                           f"{sorted(cfg['variants'])}")
    for key in ("tasks", "seeds"):
        if cfg["variants"][main].get(key) not in (None, cfg[key]):
            raise AdabertError(f"config key 'variants.{main}.{key}': the main variant must run on every one of "
                               f"the top-level {key} ({cfg[key]}); leave it null")
    for task, recipe in cfg["teacher"].get("per_task", {}).items():
        source = recipe.get("init_from")
        if source is not None and task in cfg["tasks"]:
            if source not in cfg["tasks"]:
                raise AdabertError(f"config key 'teacher.per_task.{task}.init_from': ['{source}'] not among the "
                                   f"top-level tasks {cfg['tasks']}: add {source} to 'tasks' (its teacher is "
                                   f"trained first) or set teacher.per_task.{task}.init_from: null")
            if source == task or cfg["teacher"]["per_task"].get(source, {}).get("init_from"):
                raise AdabertError(f"config key 'teacher.per_task.{task}.init_from': {source!r} must be another task "
                                   "whose teacher starts from the pretrained encoder")
    _check_subset("transfer.tasks", cfg["transfer"]["tasks"], cfg["tasks"], "tasks")
    _check_subset("transfer.seeds", cfg["transfer"]["seeds"], cfg["seeds"], "seeds")
    _check_subset("baselines.seeds", cfg["baselines"]["seeds"], cfg["seeds"], "seeds")
    _check_subset("baselines.random.tasks", cfg["baselines"]["random"]["tasks"], cfg["tasks"], "tasks")
    return cfg


# Sections a variant may override.
VARIANT_SECTIONS = ("search", "loss", "retrain")


def _check_subset(key: str, values, allowed, top: str) -> None:
    if values is None:
        return
    extra = [v for v in values if v not in allowed]
    if extra:
        raise AdabertError(f"config key '{key}': {extra} not among the top-level {top} {list(allowed)}")


def variant_tasks(cfg: dict, variant: str) -> list:
    """Tasks a variant runs on (its own list, else every task), in the order of the top-level list."""
    own = cfg["variants"][variant].get("tasks")
    return [t for t in cfg["tasks"] if own is None or t in own]


def augmented_tasks(cfg: dict, variant: str) -> list:
    """Tasks on which a variant searches and retrains on augmented data (``variants.<v>.augment``: true =
    all of its tasks, a list = those). ``random``, ``fixed-<op>`` and ``from-<task>`` runs follow the main
    variant."""
    if variant == RANDOM_VARIANT or variant.startswith((FIXED_PREFIX, TRANSFER_PREFIX)):
        variant = cfg["main_variant"]
    setting = cfg["variants"][variant].get("augment", False)
    tasks = variant_tasks(cfg, variant)
    if isinstance(setting, list):
        return [t for t in tasks if t in setting]
    return tasks if setting else []


def variant_seeds(cfg: dict, variant: str) -> list:
    own = cfg["variants"][variant].get("seeds")
    return [s for s in cfg["seeds"] if own is None or s in own]


def variant_runs(cfg: dict, variants: Iterable[str] | None = None) -> list[tuple[str, str, int]]:
    """Every (variant, task, seed) the workflow runs, variants in config order."""
    names = list(cfg["variants"]) if variants is None else list(variants)
    return [(v, t, s) for v in names for t in variant_tasks(cfg, v) for s in variant_seeds(cfg, v)]


def resolve(cfg: dict | None = None) -> dict:
    """Validate, fill defaults and check a config dict (a deep copy is returned)."""
    return check(validate(copy.deepcopy(cfg or {})))


def load(paths: Iterable[str | os.PathLike] = (), overrides: dict | None = None) -> dict:
    """Merge YAML config files as Snakemake merges its ``--configfile`` files (later files win, nested
    mappings merged key by key, lists replaced), apply overrides (per top-level key), resolve."""
    cfg: dict = {}
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise AdabertError(f"{path}: config file not found")
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise AdabertError(f"{path}: not valid YAML ({exc})") from exc
        if not isinstance(data, dict):
            raise AdabertError(f"{path}: a config file must be a mapping of keys to values")
        cfg = _merge(cfg, data)
    cfg.update(overrides or {})
    return resolve(cfg)


def _merge(base: dict, override: dict) -> dict:
    out = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


# Which config sections each stage reads. Only these reach the stage, so editing, say, the search
# section never invalidates the teachers (Snakemake reruns a job when its params change).
STAGE_SECTIONS = {
    "prepare": ("glue_dir", "custom_tasks", "data", "teacher.model"),
    "teacher": ("glue_dir", "custom_tasks", "data", "teacher"),
    "probes": ("glue_dir", "custom_tasks", "data", "teacher", "probes"),
    "search": ("glue_dir", "custom_tasks", "data", "teacher", "probes", "search", "loss"),
    "derive": ("search", "loss"),
    "retrain": ("loss", "retrain", "search.dropout"),
    "measure": ("measure",),
    "augment": ("glue_dir", "custom_tasks", "data", "teacher", "probes", "augment"),
    "baseline": ("data", "teacher", "loss", "baselines.bilstm", "baselines.truncated"),
    "architecture": ("search", "retrain.init"),  # fixed one-op cells and transferred genotypes
    "random_architecture": ("search", "retrain.init", "baselines.random.depth"),
}

RANDOM_VARIANT = "random"  # retrained random architectures (baselines.random)
FIXED_PREFIX = "fixed-"  # "fixed-<op>": the one-op cell of baselines.fixed_cells
TRANSFER_PREFIX = "from-"  # "from-<task>": the genotype searched on <task> (transfer)


def retrain_config(cfg: dict, task: str, variant: str) -> dict:
    """The retrain stage's view for a variant, the random-architecture baseline or a transfer run.

    ``random`` and ``fixed-<op>`` retrain with the main variant's recipe, initialisation included (the
    architecture stage cut their weights out of the same supernet as the searched student's, or made them
    fresh);
    ``from-<task>`` with the main recipe from scratch (``retrain.init: scratch``): its genotype was
    searched on another task's supernet.
    """
    if variant == RANDOM_VARIANT or variant.startswith(FIXED_PREFIX):
        view = stage_config(cfg, "retrain", task, cfg["main_variant"])
        view["variant"] = variant
        return view
    if variant.startswith(TRANSFER_PREFIX):
        view = stage_config(cfg, "retrain", task, cfg["main_variant"])
        view["retrain"] = {**view["retrain"], "init": "scratch"}
        view["variant"] = variant
        return view
    return stage_config(cfg, "retrain", task, variant)


def stage_config(cfg: dict, stage: str, task: str | None = None, variant: str | None = None) -> dict:
    """The part of a resolved config a stage needs, specialised to its task and variant.

    ``data.per_task[task]`` is merged into ``data``; ``variants[variant]`` into ``search``/``loss``.
    The glue_dir is resolved against ``ADABERT_GLUE_DIR`` here, so the stage sees the real path.
    """
    if stage not in STAGE_SECTIONS:
        raise AdabertError(f"unknown stage {stage!r}; allowed: {sorted(STAGE_SECTIONS)}")
    cfg = copy.deepcopy(cfg)
    if task is not None:
        caps = cfg["data"].get("per_task", {}).get(task, {})
        cfg["data"] = {**cfg["data"], **caps}
        cfg["data"]["per_task"] = {}
        recipe = cfg["teacher"].get("per_task", {}).get(task, {})
        cfg["teacher"] = {**cfg["teacher"], **recipe, "per_task": {}}
    if variant is not None:
        if variant not in cfg["variants"]:
            raise AdabertError(f"unknown variant {variant!r}; defined in config 'variants': {sorted(cfg['variants'])}")
        override = cfg["variants"][variant]
        cfg = _merge(cfg, {k: v for k, v in override.items() if k in VARIANT_SECTIONS})
    if cfg.get("glue_dir") is None and os.environ.get("ADABERT_GLUE_DIR"):
        cfg["glue_dir"] = os.environ["ADABERT_GLUE_DIR"]
    out: dict = {}
    for section in STAGE_SECTIONS[stage]:  # "a", "a.b", "a.b.c": that part of the config, nested as in it
        *parents, leaf = section.split(".")
        src, dst = cfg, out
        for key in parents:
            src, dst = src[key], dst.setdefault(key, {})
        dst[leaf] = src[leaf]
    if task is not None:
        out["task"] = task
        if task in cfg.get("custom_tasks", {}):
            out["custom_tasks"] = {task: cfg["custom_tasks"][task]}
        else:
            out["custom_tasks"] = {}
    if variant is not None:
        out["variant"] = variant
        if task is not None and task in augmented_tasks(cfg, variant):
            out["augmented"] = True  # the stage reads the augment stage's folders
    return out


def parse_cli_config(text: str) -> dict:
    """``--config`` value: inline JSON (what the workflow passes) or a YAML file path."""
    text = text.strip()
    if text.startswith("{"):
        try:
            return json.loads(text)
        except json.JSONDecodeError as exc:
            raise AdabertError(f"--config: not valid JSON ({exc})") from exc
    return load([text])
