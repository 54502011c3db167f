"""The search table: every (variant, task, seed)'s derived architecture and search cost."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pandas as pd

from adabert.io import read_json
from adabert.report.common import split_label, write_table


def _cell_text(genotype: dict) -> str:
    parts = []
    for j, node in enumerate(genotype["nodes"]):
        parts.append(f"n{j + 2}=" + "+".join(f"{e['op']}({e['input']})" for e in node))
    return "; ".join(parts)


def search_rows(derived: list[Path]) -> pd.DataFrame:
    rows = []
    for path in derived:
        folder = path if path.is_dir() else path.parent
        summary = read_json(folder / "derive.json")
        search = read_json(Path(summary["search_dir"]) / "metrics.json")
        genotype = summary["genotype"]
        ops = Counter(e["op"] for node in genotype["nodes"] for e in node)
        row = {
            "variant": search["variant"],
            "task": search["task"],
            "seed": search["seed"],
            "depth": genotype["depth"],
            "cell": _cell_text(genotype),
            "params_M": summary["params"] / 1e6,
            "params_no_emb_M": summary["params_without_embeddings"] / 1e6,
            "main_metric": search["main_metric"],
            "split_kind": split_label(search["main_split"], search.get("splits", {})),
            "dev_main": search["best_dev_main"],
            "best_epoch": search["best_epoch"],
            "search_time_s": search["total_time_s"],
            "train_examples_per_s": search["train_examples_per_s"],
        }
        for op in genotype["ops"]:
            if op != "none":
                row[f"n_{op}"] = ops.get(op, 0)
        rows.append(row)
    df = pd.DataFrame(rows)
    return df.sort_values(["variant", "task", "seed"]).reset_index(drop=True) if not df.empty else df


def write_search_table(derived: list[Path], md_path: Path, csv_path: Path) -> pd.DataFrame:
    df = search_rows(derived)
    notes = [
        "depth = number of cells K; cell = the searched cell shared by all K cells: for each intermediate node "
        "(n2..n4), its two kept edges as op(input), inputs 0/1 = the cell's two inputs.",
        "n_<op> = how many of the cell's kept edges use that op. params include the 128-d embedding tables.",
        "dev_main = the derived architecture's dev metric during search (supernet weights, before retraining), "
        "on the task's main evaluation split; split_kind says whether that is the official GLUE dev set, "
        "a partial copy of it ('dev subset') or a 'held-out split, not official dev' carved out of the training data.",
    ]
    write_table(df, md_path, csv_path, "Searched architectures", notes)
    return df
