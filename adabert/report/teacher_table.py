"""The teacher table: every task's teacher dev metrics, size, training cost and probe metrics."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from adabert.errors import AdabertError
from adabert.io import read_json
from adabert.report.head_vs_probes import CONFIDENCE, best_probe_vs_head
from adabert.report.common import folder_of, split_label, write_table


def teacher_rows(teacher_dirs: list[Path], probe_dirs: list[Path], data_dirs: list[Path] | None = None) -> pd.DataFrame:
    """One row per (task, eval split). With ``data_dirs`` (the Data folders, matched to the teachers by
    folder name as the probes are) the best probe's difference to the head gets a bootstrap interval."""
    probe_folders = {folder_of(p).name: folder_of(p) for p in probe_dirs}
    probes_by_task = {name: read_json(folder / "probes.json") for name, folder in probe_folders.items()}
    data_by_task = {folder_of(d).name: folder_of(d) for d in data_dirs or []}
    rows = []
    for tdir in teacher_dirs:
        tdir = folder_of(tdir)
        m = read_json(tdir / "metrics.json")
        task = m["task"]
        for split, metrics in m["eval"].items():
            row = {
                "task": task,
                "split": split,
                "split_kind": split_label(split, m.get("splits", {})),
                "main_split": split == m["main_split"],
                "main_metric": m["main_metric"],
                "value": metrics[m["main_metric"]],
                "metrics": ", ".join(f"{k} {v:.2f}" for k, v in sorted(metrics.items())),
                "params_M": m["params"] / 1e6,
                "n_train": m["n_train"],
                "n_labelled": m.get("n_labelled", m["n_train"]),
                "train_time_s": m["train_time_s"],
                "train_examples_per_s": m["train_examples_per_s"],
                "precision": m.get("precision", "fp32"),
            }
            probes = probes_by_task.get(task)
            if probes is None:
                raise AdabertError(f"no probes.json for task {task} among {[str(p) for p in probe_dirs]}")
            values = {f"probe_L{layer['layer']}": layer["eval"][split][m["main_metric"]] for layer in probes["layers"]}
            row["best_probe_value"] = max(values.values())
            row["best_probe_layer"] = int(max(values, key=values.get).removeprefix("probe_L"))
            row["head_beats_probes"] = row["value"] >= row["best_probe_value"]
            # the last layer's probe re-fits a linear head on the same fine-tuned features; an intermediate
            # layer's probe beating the head is the sign of an under-trained teacher
            last = f"probe_L{max(layer['layer'] for layer in probes['layers'])}"
            row["head_beats_intermediate_probes"] = row["value"] >= max(v for k, v in values.items() if k != last)
            if data_dirs is not None:
                row.update(_probe_difference(data_by_task, task, tdir, probe_folders[task], split, row))
            row.update(values)
            rows.append(row)
    return pd.DataFrame(rows)


def _probe_difference(data_by_task: dict[str, Path], task: str, teacher_dir: Path, probes_dir: Path, split: str,
                      row: dict) -> dict:
    if task not in data_by_task:
        raise AdabertError(f"no Data folder for task {task} among {sorted(data_by_task)}")
    ci = best_probe_vs_head(data_by_task[task], teacher_dir, probes_dir, split, row["best_probe_layer"], row["value"])
    return {"best_probe_minus_head": ci["difference"], "best_probe_minus_head_ci_low": ci["ci_low"],
            "best_probe_minus_head_ci_high": ci["ci_high"], "probe_better_beyond_noise": ci["ci_low"] > 0}


def write_teacher_table(teacher_dirs: list[Path], probe_dirs: list[Path], md_path: Path, csv_path: Path,
                        data_dirs: list[Path] | None = None) -> pd.DataFrame:
    df = teacher_rows(teacher_dirs, probe_dirs, data_dirs)
    models = sorted({read_json(folder_of(t) / "metrics.json")["model"] for t in teacher_dirs})
    notes = [
        f"Teacher model: {', '.join(models)}. Metrics in percent points on each task's evaluation split.",
        "split_kind 'dev' = the official GLUE dev set; 'held-out split, not official dev' = carved out of the "
        "training data (disjoint) because no dev file is available; 'dev subset (n of N)' = a seeded cap of the official "
        "split (data.max_eval_examples); 'dev subset (note)' = a partial local copy of it.",
        "probe_L0 = linear probe on the mean-pooled embedding output; probe_Ll = probe on the [CLS] state of layer l.",
        "head_beats_probes: the fine-tuned head >= every probe; head_beats_intermediate_probes: >= every probe but the "
        "last layer's (which re-fits a linear head on the same fine-tuned features).",
    ]
    if "best_probe_minus_head" in df:
        beyond = df.loc[df["probe_better_beyond_noise"], "task"].tolist()
        notes.append(
            f"best_probe_minus_head: the best probe's main metric minus the head's on the same rows, with a "
            f"{CONFIDENCE:.0%} paired percentile bootstrap interval (ci_low, ci_high; 1,000 resamples of the rows, "
            "seeded); the best probe is chosen on these rows, which favours it. probe_better_beyond_noise: the "
            "whole interval is above zero. "
            + (f"A probe is better beyond noise on {', '.join(beyond)}." if beyond
               else "No probe is better than the head beyond noise on any row of this table."))
    write_table(df, md_path, csv_path, "Teachers", notes)
    return df
