"""The paper's efficiency table: per task, each model's size, throughput and speedup per engine.

Inputs: the efficiency table's CSV (one row per student / baseline measurement) and its
``_references.csv`` (the teacher of each task and BERT-base). Rows per (task, device): BERT-base,
the teacher, the main AdaBERT variant and the baselines (means over seeds); one throughput and one
speedup-over-BERT-base column per engine, at the largest measured (batch, seq_len) shape.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from adabert.errors import AdabertError
from adabert.report.common import BASELINE_LABELS, write_tables

ENGINES = ("torch", "onnxruntime", "onnxruntime-int8")


def _shape(df: pd.DataFrame) -> tuple[int, int] | None:
    rows = df.dropna(subset=["samples_per_s"])
    if rows.empty:
        return None
    return max(zip(rows["batch"].astype(int), rows["seq_len"].astype(int)))


def build_efficiency_summary(rows: pd.DataFrame, refs: pd.DataFrame, main_variant: str) -> tuple[pd.DataFrame, tuple]:
    shape = _shape(rows)
    if shape is None:
        raise AdabertError("efficiency summary: the efficiency table has no timed rows")
    at = lambda df: df[(df["batch"] == shape[0]) & (df["seq_len"] == shape[1])]  # noqa: E731
    rows, refs = at(rows.dropna(subset=["samples_per_s"])), at(refs)
    bert = refs[refs["model"] == "bert-base"]
    out = []
    for (task, device), part in rows.groupby(["task", "device"], sort=True):
        entries = [("BERT-base", bert[bert["device"] == device]),
                   ("Teacher", refs[(refs["model"] == "teacher") & (refs["task"] == task) & (refs["device"] == device)])]
        for variant in [main_variant, *BASELINE_LABELS]:
            label = "AdaBERT" if variant == main_variant else BASELINE_LABELS[variant]
            entries.append((label, part[part["variant"] == variant]))
        for label, df in entries:
            if df.empty:
                continue
            per_seed = df.groupby("seed")["params_M"].first() if "seed" in df else df["params_M"]
            row = {"task": task, "device": device, "model": label, "params_M": float(per_seed.mean()),
                   "n_seeds": int(df["seed"].nunique()) if "seed" in df else 1}
            bert_params = float(bert["params_M"].iloc[0]) if not bert.empty else None
            row["compression_vs_bert"] = bert_params / row["params_M"] if bert_params else None
            for engine in ENGINES:
                e = df[df["engine"] == engine]
                ref = bert[(bert["engine"] == engine) & (bert["device"] == device)]
                sps = float(e["samples_per_s"].mean()) if not e.empty else None
                row[f"{engine}_samples_per_s"] = sps
                row[f"{engine}_speedup_vs_bert"] = (sps / float(ref["samples_per_s"].iloc[0])
                                                    if sps is not None and not ref.empty else None)
            if "student_dev" in df:
                dev = df["student_dev"].dropna()
                row["dev"] = float(dev.mean()) if not dev.empty else None
            out.append(row)
    return pd.DataFrame(out), shape


def write_efficiency_summary(efficiency_csv: Path, main_variant: str, out_stem: Path) -> pd.DataFrame:
    rows = pd.read_csv(efficiency_csv)
    refs_path = Path(efficiency_csv).with_name(Path(efficiency_csv).stem + "_references.csv")
    if not refs_path.is_file():
        raise AdabertError(f"{refs_path}: file not found (written by the efficiency table)")
    df, shape = build_efficiency_summary(rows, pd.read_csv(refs_path), main_variant)
    shown = df.drop(columns=["n_seeds"])
    notes = [
        f"Throughput in samples/s at batch {shape[0]}, seq {shape[1]}; speedup = model throughput / BERT-base "
        "throughput with the same engine and device, measured in this run (BERT-base: architecture only unless "
        "measure.bert_base_weights is set).",
        "AdaBERT and the baselines: means over seeds; params_M includes embeddings; dev = student dev metric "
        "(percent points) on the task's main split.",
        "Empty cells: that engine or device was not measured for that model (e.g. ablation students: torch only).",
    ]
    write_tables(df, out_stem, "Efficiency per task and engine", notes, shown)
    return df
