"""A custom task (user files, not GLUE) goes through every stage exactly like a GLUE task.

The custom files are real rows: RTE sentence pairs rewritten as JSONL with other column names, so
nothing in the pipeline can fall back on the GLUE reader or the GLUE task registry.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import torch

from adabert import config, io
from adabert.nas.derive import run_derive
from adabert.nas.search import run_search

from conftest import REPO, run_small_pipeline
from recompute import check_derived_genotype, check_predictions_file, check_teacher_metrics, metric, read_jsonl, read_tsv
from test_workflow import job_counts, snakemake


def write_jsonl_from_rte(glue_dir: Path, out: Path, n_train: int = 96, n_dev: int = 48) -> dict:
    """Custom-task entry for real RTE rows stored as JSONL with the columns premise/claim/verdict."""
    paths = {}
    for split, n in (("train", n_train), ("dev", n_dev)):
        with open(glue_dir / "RTE" / f"{split}.tsv", encoding="utf-8", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))[:n]
        path = out / f"{split}.jsonl"
        path.write_text("".join(json.dumps({"premise": r["sentence1"], "claim": r["sentence2"],
                                            "verdict": r["label"]}) + "\n" for r in rows), encoding="utf-8")
        paths[split] = str(path)
    return {**paths, "text_columns": ["premise", "claim"], "label_column": "verdict", "type": "classification"}


@pytest.fixture(scope="module")
def custom_pipeline(glue_dir, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("custom")
    entry = write_jsonl_from_rte(glue_dir, root)
    cfg = config.resolve({
        "tasks": ["claims"],
        "seeds": [0],
        "custom_tasks": {"claims": entry},
        "data": {"max_seq_length": 32},
        "teacher": {"epochs": 1, "batch_size": 16},
        "probes": {"epochs": 2},
        "search": {"epochs": 1, "batch_size": 32, "width": 32, "k_max": 2},
    })
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        stages = run_small_pipeline(root, cfg, "claims")
        search_dir, derive_dir = root / "search", root / "derive"
        run_search(config.stage_config(cfg, "search", "claims", "main"), "claims", 0, "main", stages["data_dir"],
                   stages["teacher_dir"], stages["probes_dir"], search_dir)
        derived = run_derive(config.stage_config(cfg, "derive", "claims", "main"), search_dir, derive_dir)
    finally:
        torch.set_num_threads(threads)
    return {**stages, "root": root, "derived": derived, "derive_dir": derive_dir}


def test_custom_task_runs_prepare_teacher_probes_search_derive(custom_pipeline):
    """Every stage's reported numbers recompute from what it saved and from the user's own files."""
    data_dir = custom_pipeline["data_dir"]
    meta = io.read_json(data_dir / "meta.json")
    assert meta["label_names"] == ["entailment", "not_entailment"] and meta["type"] == "classification"
    assert meta["splits"]["train"]["n"] == 96 and meta["splits"]["dev"]["n"] == 48
    # the prepared rows are the custom file's rows, in order, labels mapped by name
    for split in ("train", "dev"):
        source = read_jsonl(custom_pipeline["root"] / f"{split}.jsonl")
        rows = read_jsonl(data_dir / f"{split}.jsonl")
        assert [r["texts"] for r in rows] == [[s["premise"], s["claim"]] for s in source]
        assert [meta["label_names"][r["label"]] for r in rows] == [s["verdict"] for s in source]

    teacher = io.read_json(custom_pipeline["teacher_dir"] / "metrics.json")
    assert teacher["task"] == "claims" and teacher["main_metric"] == "accuracy"
    recomputed = check_teacher_metrics(custom_pipeline["teacher_dir"], data_dir)
    assert teacher["main_value"] == pytest.approx(recomputed["dev"]["accuracy"])

    probes = io.read_json(custom_pipeline["probes_dir"] / "probes.json")
    assert len(probes["layers"]) == probes["num_layers"] + 1 == 7  # MiniLM-L6: embedding + 6 layers
    probe_logits = io.load_tensors(custom_pipeline["probes_dir"] / "probe_logits.safetensors")["dev"]
    gold = [r["label"] for r in read_jsonl(data_dir / "dev.jsonl")]
    for layer in probes["layers"]:
        value = metric("accuracy", probe_logits[:, layer["layer"]].double().numpy(), gold)
        assert layer["eval"]["dev"]["accuracy"] == pytest.approx(value, abs=1e-3), layer["layer"]

    genotype = check_derived_genotype(custom_pipeline["root"] / "search", custom_pipeline["derive_dir"])
    assert 1 <= genotype["depth"] <= 2 and len(genotype["nodes"]) == 3
    # the reported sizes count the derived weights: parameters (not BatchNorm statistics), embeddings apart
    weights = io.load_tensors(custom_pipeline["derive_dir"] / "weights.safetensors")
    params = sum(t.numel() for k, t in weights.items()
                 if not k.endswith(("running_mean", "running_var", "num_batches_tracked")))
    embeddings = weights["word_embeddings.weight"].numel() + weights["position_embeddings.weight"].numel()
    derived = custom_pipeline["derived"]
    assert derived["params"] == params and derived["params_without_embeddings"] == params - embeddings
    assert {int(k.split(".")[1]) for k in weights if k.startswith("cells.")} == set(range(genotype["depth"]))


def test_custom_task_gets_the_same_dag_as_a_glue_task(glue_dir, tmp_path):
    entry = write_jsonl_from_rte(glue_dir, tmp_path)
    override = "custom_tasks={'claims': " + json.dumps(entry) + "}"
    proc = snakemake("-n", "--directory", str(tmp_path), "--configfile", str(REPO / ".test/config.yaml"),
                     "--config", "tasks=[claims,MRPC]", "transfer={'tasks': []}", override)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    counts = job_counts(proc.stdout)
    assert counts["prepare"] == counts["teacher"] == counts["probes"] == 2
    # main on both tasks + the smoke config's two MRPC ablations; + one random architecture and one identity
    # cell (baselines.fixed_cells) per task
    assert counts["search"] == counts["derive"] == 2 + 2
    assert counts["retrain"] == 4 + 2 + 2 and counts["baseline"] == 2 * 2
    assert "--kind fixed --op skip_connect --task claims" in proc.stdout
    assert "results/derive/main/claims/seed0/genotype.json" in proc.stdout


# -- the README's example: config/custom_example.yaml, its commands, its prediction ---------------------------
README = REPO / "README.md"
EXAMPLE = REPO / "config" / "custom_example.yaml"


def readme_commands() -> list[list[str]]:
    """The shell commands of the README's "Compress your own task" section (continuation lines joined)."""
    import re
    import shlex

    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Compress your own task"):]
    section = section[:section.index("\n## ", 1)]
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", section, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            if line.strip() and not line.lstrip().startswith(("#", ". ")):
                commands.append(shlex.split(line))
    return commands


def test_readme_shows_the_example_config_verbatim():
    assert f"```yaml\n{EXAMPLE.read_text(encoding='utf-8')}```\n" in README.read_text(encoding="utf-8")
    snakemake_cmds = [c for c in readme_commands() if c[0] == "snakemake"]
    assert snakemake_cmds and all(c[-2:] == ["--configfile", "config/custom_example.yaml"] for c in snakemake_cmds)


@pytest.fixture(scope="module")
def example_run(tmp_path_factory) -> dict:
    """The README's example config, exactly as committed, run from a folder where its relative paths resolve
    as they do from the repository root: a dry run of the README's student command, then the stages of the
    single-sentence task up to its retrained student (the pair task: prepared), at the README's paths."""
    import yaml

    from adabert.encode import prepare
    from adabert.probes import train_probes
    from adabert.retrain import run_retrain
    from adabert.teacher import train_teacher

    root = tmp_path_factory.mktemp("custom_example")
    for name in ("tests", "config"):  # the README's relative paths: the fixture files, the config
        (root / name).symlink_to(REPO / name)
    students = next(c for c in readme_commands() if c[0] == "snakemake" and "all" not in c)
    dry = snakemake(*students[1:], "-n", cwd=root)
    assert dry.returncode == 0, dry.stderr + dry.stdout
    res = root / "results"
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        cfg = config.resolve(yaml.safe_load(EXAMPLE.read_text(encoding="utf-8")))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            for task in cfg["tasks"]:
                prepare(config.stage_config(cfg, "prepare", task), task, res / "data" / task)
            task, data, teacher, probes = "reviews", res / "data/reviews", res / "teacher/reviews", res / "probes/reviews"
            search, derive = res / "search/main/reviews/seed0", res / "derive/main/reviews/seed0"
            student = res / "retrain/main/reviews/seed0"
            train_teacher(config.stage_config(cfg, "teacher", task), task, data, teacher)
            train_probes(config.stage_config(cfg, "probes", task), task, data, teacher, probes)
            run_search(config.stage_config(cfg, "search", task, "main"), task, 0, "main", data, teacher, probes, search)
            run_derive(config.stage_config(cfg, "derive", task, "main"), search, derive)
            run_retrain(config.stage_config(cfg, "retrain", task, "main"), task, "main", 0, data, teacher, probes,
                        derive, student)
        finally:
            torch.set_num_threads(threads)
    return {"root": root, "cfg": cfg, "dry_run": dry.stdout, "student": student, "search": search, "derive": derive}


@pytest.mark.slow
def test_readme_example_runs_through_every_stage(example_run):
    from conftest import n_rows

    counts = job_counts(example_run["dry_run"])
    assert counts["prepare"] == counts["teacher"] == counts["probes"] == counts["search"] == 2
    assert counts["derive"] == counts["retrain"] == 2
    res = example_run["root"] / "results"
    for task, columns, labels, folder in (("reviews", ["sentence"], ["0", "1"], "SST-2"),
                                          ("entailment", ["sentence1", "sentence2"], ["entailment", "not_entailment"],
                                           "RTE")):
        meta = io.read_json(res / "data" / task / "meta.json")
        assert meta["text_columns"] == columns and meta["label_names"] == labels and meta["type"] == "classification"
        for split in ("train", "dev"):  # no caps in the example: every row of the files
            assert meta["splits"][split]["n"] == n_rows(REPO / "tests/data/glue" / folder / f"{split}.tsv")
    reviews = read_jsonl(res / "data/reviews/dev.jsonl")
    assert all(r["texts"] == [s["sentence"]] for r, s in
               zip(reviews, read_tsv(REPO / "tests/data/glue/SST-2/dev.tsv"), strict=True))
    check_teacher_metrics(res / "teacher/reviews", res / "data/reviews")
    check_derived_genotype(example_run["search"], example_run["derive"])
    student = example_run["student"]
    recomputed = check_predictions_file(student, res / "data/reviews")
    assert io.read_json(student / "metrics.json")["main_value"] == pytest.approx(recomputed["accuracy"], abs=1e-3)
    assert io.read_json(student / "student.json")["task"]["text_columns"] == ["sentence"]


@pytest.mark.slow
def test_readme_predict_command_on_the_example_student(example_run, monkeypatch, capsys):
    """The README's predict command, verbatim: one prediction per row of the dev file, the label names of
    the task, and the same predictions (and probabilities) as the retrain stage's own on those rows."""
    import math

    from adabert.cli import main

    command = next(c for c in readme_commands() if c[:4] == ["python", "-m", "adabert", "predict"])
    monkeypatch.chdir(example_run["root"])
    assert main(command[3:]) == 0
    output = example_run["root"] / command[command.index("--output") + 1]
    rows = read_jsonl(output)
    saved = read_jsonl(example_run["student"] / "predictions_dev.jsonl")
    assert [r["idx"] for r in saved] == list(range(len(rows)))  # the prepared dev rows: the file's rows in order
    assert [r["row"] for r in rows] == list(range(len(rows)))
    assert [r["prediction"] for r in rows] == [s["prediction"] for s in saved]
    for r, s in zip(rows, saved, strict=True):
        probs = [math.exp(x) for x in s["logits"]]
        assert r["probability"] == pytest.approx(max(probs) / sum(probs), abs=1e-4)
    assert f"{len(rows)} predictions written" in capsys.readouterr().out
