"""The seed table: every model's dev metric per task as mean ± std over seeds, with min, max and n.

Inputs: the teacher ``metrics.json`` (one run per task: n = 1) and the retrain / baseline
``metrics.json`` of the main variant, the baselines and the random architectures (their sample index
plays the role of the seed). Ablation variants are in the ablation table.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from adabert.report.common import (BASELINE_LABELS, HELD_OUT, mean_std, read_results, split_label, summary_cell,
                                   wide_cells, write_tables)


def model_label(variant: str, main_variant: str, record: dict | None = None) -> str:
    if variant == main_variant:
        return "AdaBERT (searched)"
    if variant == "truncated" and record and record.get("layers"):
        return f"{BASELINE_LABELS['truncated']} (first {record['layers']} layers)"
    return BASELINE_LABELS.get(variant, variant)


def build_seed_table(teachers: list[dict], results: list[dict], main_variant: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    rows = []
    for t in teachers:
        rows.append({"model": f"Teacher ({t.get('model', '?')})", "task": t["task"], "metric": t["main_metric"],
                     "split": split_label(t["main_split"], t.get("splits", {})), "mean": float(t["main_value"]),
                     "std": None, "min": float(t["main_value"]), "max": float(t["main_value"]), "n": 1, "seeds": ""})
    keep = [r for r in results if r["variant"] == main_variant or r["variant"] in BASELINE_LABELS]
    order = [main_variant, *BASELINE_LABELS]
    for variant in [v for v in order if any(r["variant"] == v for r in keep)]:
        for task in dict.fromkeys(r["task"] for r in keep if r["variant"] == variant):
            group = sorted((r for r in keep if r["variant"] == variant and r["task"] == task), key=lambda r: r["seed"])
            values = [float(r["main_value"]) for r in group]
            mean, std = mean_std(values)
            rows.append({"model": model_label(variant, main_variant, group[0]), "task": task,
                         "metric": group[0]["main_metric"],
                         "split": split_label(group[0]["main_split"], group[0].get("splits", {})),
                         "mean": mean, "std": std, "min": min(values), "max": max(values), "n": len(values),
                         "seeds": " ".join(str(r["seed"]) for r in group)})
    df = pd.DataFrame(rows)
    tasks = list(dict.fromkeys(df["task"]))
    shown_rows = []
    for model in dict.fromkeys(df["model"]):
        part = df[df["model"] == model]
        cells = wide_cells(part, "task", tasks, lambda r: summary_cell(r) + ("" if r["n"] == 1 else f" [{r['n']}]"))
        shown_rows.append({"model": model, **cells})
    header = {t: f"{t} ({df[df['task'] == t]['metric'].iloc[0]})" for t in tasks}
    return df, pd.DataFrame(shown_rows).rename(columns=header)


def write_seed_table(teacher_paths: list[Path], result_paths: list[Path], main_variant: str, out_stem: Path) -> pd.DataFrame:
    teachers = read_results(teacher_paths, required=("task", "main_value", "main_split", "main_metric"))
    results = read_results(result_paths)
    df, shown = build_seed_table(teachers, results, main_variant)
    notes = ["Dev metric, percent points: mean ± std over seeds [number of seeds]; the CSV adds min and max.",
             "Random architectures: one sample per 'seed' (its sample index); the teacher is one fine-tuning run."]
    if (df["split"] == HELD_OUT).any():
        notes.append(f"† {HELD_OUT}.")
    write_tables(df, out_stem, "Seeds: mean ± std of every model", notes, shown)
    return df
