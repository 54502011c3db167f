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
    meta = io.read_json(custom_pipeline["data_dir"] / "meta.json")
    assert meta["label_names"] == ["entailment", "not_entailment"] and meta["type"] == "classification"
    assert meta["splits"]["train"]["n"] == 96 and meta["splits"]["dev"]["n"] == 48
    teacher = io.read_json(custom_pipeline["teacher_dir"] / "metrics.json")
    assert teacher["task"] == "claims" and teacher["main_metric"] == "accuracy"
    assert 0 <= teacher["main_value"] <= 100
    probes = io.read_json(custom_pipeline["probes_dir"] / "probes.json")
    assert len(probes["layers"]) == probes["num_layers"] + 1 == 7  # MiniLM-L6: embedding + 6 layers
    genotype = io.read_json(custom_pipeline["derive_dir"] / "genotype.json")
    assert 1 <= genotype["depth"] <= 2 and len(genotype["nodes"]) == 3
    assert custom_pipeline["derived"]["params"] > 0


def test_custom_task_gets_the_same_dag_as_a_glue_task(glue_dir, tmp_path):
    entry = write_jsonl_from_rte(glue_dir, tmp_path)
    override = "custom_tasks={'claims': " + json.dumps(entry) + "}"
    proc = snakemake("-n", "--directory", str(tmp_path), "--configfile", str(REPO / ".test/config.yaml"),
                     "--config", "tasks=[claims,MRPC]", "transfer={'tasks': []}", override)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    counts = job_counts(proc.stdout)
    assert counts["prepare"] == counts["teacher"] == counts["probes"] == 2
    # main on both tasks + the smoke config's two MRPC ablations; + one random architecture per task
    assert counts["search"] == counts["derive"] == 2 + 2
    assert counts["retrain"] == 4 + 2 and counts["baseline"] == 2 * 2
    assert "results/derive/main/claims/seed0/genotype.json" in proc.stdout
